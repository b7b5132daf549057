// The ops dashboard: everything shown comes from the admin-only /ops/api with the token kept in
// this tab's sessionStorage. Data reaches the DOM through textContent only, never innerHTML:
// ids, messages and error texts come from callers and upstream, and a script injected here
// would run with an admin token at hand.
"use strict";

const TOKEN_KEY = "tryonOpsToken";
const REFRESH_MS = 3000;
const $ = (id) => document.getElementById(id);
let timer = null;
let busy = false;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status; this.code = code; this.detail = message;
  }
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${token()}` }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let r;
  try { r = await fetch(`/ops/api${path}`, init); }
  catch (e) { throw new ApiFailure(0, "UNREACHABLE", `the gateway did not answer (${e.message})`); }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    const code = (data && data.code) || `HTTP_${r.status}`;
    const message = (data && data.message) || text.slice(0, 200) || r.statusText;
    if (r.status === 401 || r.status === 403) { logout(`${code}: ${message}`); }
    throw new ApiFailure(r.status, code, message);
  }
  return data;
}

// --- DOM helpers ---------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") node.className = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function setText(id, value) { $(id).textContent = value; }

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return `${seconds.toFixed(1)}s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}

function when(ts) {
  if (!ts) return "–";
  return new Date(ts * 1000).toLocaleTimeString();
}

function mib(bytes) { return `${(bytes / 1048576).toFixed(1)} MiB`; }
function num(x) { return Number.isInteger(x) ? String(x) : String(Math.round(x * 10) / 10); }

function flash(kind, text) {
  const box = $("flash");
  box.replaceChildren(el("div", { class: `note ${kind}`, text }));
}

function flashFailure(what, err) {
  if (err instanceof ApiFailure) {
    flash("err", `${what} refused — ${err.code}: ${err.detail}` +
      (err.status ? ` (HTTP ${err.status})` : ""));
  } else {
    flash("err", `${what} failed — ${err}`);
  }
}

// --- rendering -----------------------------------------------------------------------------

function renderPause(what, state) {
  const cell = $(`${what}-state`);
  const button = $(`${what}-toggle`);
  if (!state) {
    cell.replaceChildren(el("span", { class: "state-ok", text: "running" }));
    button.textContent = `Pause ${what}`;
    button.className = "danger";
    button.dataset.paused = "0";
  } else {
    const until = state.until ? `for ${ago(state.until - Date.now() / 1000)} more`
      : "until resumed";
    const reason = state.reason ? ` (${state.reason})` : "";
    cell.replaceChildren(el("span", { class: "state-paused", text: "PAUSED" }),
      ` by ${state.by} ${ago(Date.now() / 1000 - state.at)} ago, ${until}${reason}`);
    button.textContent = `Resume ${what}`;
    button.className = "";
    button.dataset.paused = "1";
  }
}

function renderStatus(s) {
  renderPause("intake", s.intakePause);
  renderPause("processing", s.processingPause);
  const q = s.queue;
  setText("q-ready", q.inProgressExact ? num(q.ready) : `≤${q.ready}`);
  setText("q-deferred", num(q.deferred));
  setText("q-inprogress", q.inProgressExact ? num(q.inProgress) : `≥${q.inProgress}`);
  setText("q-oldest", q.oldestReadyAgeSeconds === null ? "none" : ago(q.oldestReadyAgeSeconds));
  setText("t-active", num(s.tryonsActive));
  setText("d-pending", `${s.deliveriesPending} (${s.deliveriesDueNow} due)`);
  setText("r-stored", `${s.resultsStoredObjects} (${mib(s.resultsStoredBytes)})`);
  setText("workers-count", String(s.workers.length));
  const rows = s.workers.map((w) => el("tr", {},
    el("td", { class: "id", text: w.id }),
    el("td", { text: w.version }),
    el("td", { text: ago(s.at - w.startedAt) }),
    el("td", { text: `${ago(Math.max(0, s.at - w.beatAt))} ago` }),
    el("td", { text: num(w.jobsInProgress) }),
    el("td", { text: num(w.jobsComplete) }),
    el("td", { text: num(w.jobsFailed) }),
    el("td", { class: w.picking ? "yes" : "no", text: w.picking ? "yes" : "NO" })));
  $("workers").tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "8", class: "empty", text: "no live worker" }))]));
}

function renderSpend(h) {
  const now = h.now;
  const first = h.samples.length ? h.samples[0] : now;
  const pair = (key) => `${num(Math.max(0, now[key] - first[key]))} / ${num(now[key])}`;
  setText("s-upstream", pair("upstreamRequests"));
  setText("s-grants", pair("budgetGrants"));
  setText("s-429", pair("upstreamRateLimited"));
  setText("s-credits", pair("creditsSpent"));
  setText("s-saved", pair("creditsSaved"));
  setText("s-cache", `${num(now.cacheHits)} / ${num(now.cacheMisses)}`);
  setText("s-errors", pair("upstreamErrors"));
  setText("s-finished", `${num(now.completed)} / ${num(now.failed)}`);
}

function actionButton(label, cls, handler) {
  return el("button", { type: "button", class: cls, onclick: handler }, label);
}

function renderFailed(list) {
  setText("failed-count", String(list.length));
  const rows = list.map((t) => el("tr", { "data-id": t.id },
    el("td", { class: "id", text: t.id }),
    el("td", { text: t.app }),
    el("td", { text: when(t.failedAt) }),
    el("td", { class: "code", text: t.error ? t.error.code : "–" }),
    el("td", { class: "msg", text: t.error ? t.error.message : "" }),
    el("td", { class: t.retryable ? "yes" : "no",
      text: t.retryable ? "safe" : (t.generationId ? "credit spent" : "outcome unknown") }),
    el("td", {},
      actionButton("Retry", "", () => retryTryon(t.id)), " ",
      actionButton("Discard", "", () => discardTryon(t.id)))));
  $("failed").tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "7", class: "empty", text: "no failed try-on" }))]));
}

function renderDead(list) {
  setText("dead-count", String(list.length));
  const rows = list.map((d) => el("tr", { "data-id": d.id },
    el("td", { class: "id", text: d.id }),
    el("td", { text: d.eventType }),
    el("td", { class: "id", text: d.tryonId || "–" }),
    el("td", { class: "msg", text: d.target }),
    el("td", { text: String(d.attempts.length) }),
    el("td", { class: "msg", text: d.lastError || "–" }),
    el("td", {}, actionButton("Resend", "", () => resendDelivery(d.id)))));
  $("dead").tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "7", class: "empty", text: "no dead delivery" }))]));
}

function renderUsage(report) {
  const rows = report.rows.map((u) => el("tr", { "data-app": u.app },
    el("td", { class: "id", text: u.app }),
    ...["accepted", "completed", "failed", "canceled", "credits"].map(
      (k) => el("td", { text: String(u[k]) }))));
  $("usage").tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "6", class: "empty", text: "no try-on in these days" }))]));
}

// The CSV needs the bearer header, so it is fetched and handed to the browser as a file.
async function exportUsage() {
  try {
    const r = await fetch("/ops/api/usage?format=csv", {
      headers: { Authorization: `Bearer ${token()}` }, cache: "no-store" });
    if (!r.ok) throw new ApiFailure(r.status, `HTTP_${r.status}`, r.statusText);
    const link = el("a", { href: URL.createObjectURL(await r.blob()), download: "usage.csv" });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  } catch (err) {
    flashFailure("Usage export", err);
  }
}

// --- charts (inline SVG) -------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const W = 360, H = 120, PAD_L = 30, PAD_B = 16, PAD_T = 6;

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// Counters are running totals: each step's delta is counted in the minute its later point
// falls in, so a bar reads "completed during that minute" whatever the sampling interval.
// A counter that went down (the metrics hash was reset) counts as 0 for that step.
function perMinute(points, key) {
  const buckets = new Map();
  for (let i = 1; i < points.length; i++) {
    const minute = Math.floor(points[i].at / 60) * 60;
    const delta = Math.max(0, points[i][key] - points[i - 1][key]);
    buckets.set(minute, (buckets.get(minute) || 0) + delta);
  }
  const out = [];
  for (const [minute, count] of [...buckets.entries()].sort((a, b) => a[0] - b[0])) {
    out.push([minute, count], [minute + 60, count]);  // a step: flat over its minute
  }
  return out;
}

function gauge(points, key) { return points.map((p) => [p.at, p[key]]); }

// The x axis spans the last hour, or less while the history is younger than that (a fresh
// deployment's first minutes would otherwise be a few pixels at the right edge).
function span(label) {
  if (label >= 3600) return "-60m";
  return label >= 120 ? `-${Math.round(label / 60)}m` : `-${Math.round(label)}s`;
}

function drawChart(id, series, t0, t1) {
  const chart = $(id);
  let max = 1;
  for (const s of series) for (const [, v] of s.points) max = Math.max(max, v);
  const x = (t) => PAD_L + (W - PAD_L - 4) * (Math.min(t1, Math.max(t0, t)) - t0) / (t1 - t0);
  const y = (v) => H - PAD_B - (H - PAD_B - PAD_T) * v / max;
  const nodes = [
    svg("line", { class: "axis", x1: PAD_L, y1: H - PAD_B, x2: W - 4, y2: H - PAD_B }),
    svg("line", { class: "axis", x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: H - PAD_B }),
  ];
  const label = (text, attrs) => { const t = svg("text", attrs); t.textContent = text; return t; };
  nodes.push(label(num(max), { x: PAD_L - 3, y: PAD_T + 8, "text-anchor": "end" }));
  nodes.push(label("0", { x: PAD_L - 3, y: H - PAD_B, "text-anchor": "end" }));
  nodes.push(label(span(t1 - t0), { x: PAD_L, y: H - 3 }));
  nodes.push(label(span((t1 - t0) / 2), { x: x((t0 + t1) / 2), y: H - 3, "text-anchor": "middle" }));
  nodes.push(label("now", { x: W - 4, y: H - 3, "text-anchor": "end" }));
  let drawn = 0;
  for (const s of series) {
    const pts = s.points.filter(([t]) => t >= t0 - 60);
    if (!pts.length) continue;
    drawn += pts.length;
    const d = pts.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    nodes.push(svg("path", { d: d.join(""), fill: "none", stroke: s.color, "stroke-width": "1.8",
      "stroke-linejoin": "round" }));
    if (pts.length === 1) {
      const [t, v] = pts[0];
      nodes.push(svg("circle", { cx: x(t), cy: y(v), r: 2.5, fill: s.color }));
    }
  }
  if (!drawn) {
    nodes.push(label("no samples yet (workers record one per sweep)",
      { x: (W + PAD_L) / 2, y: H / 2, "text-anchor": "middle" }));
  }
  chart.replaceChildren(...nodes);
}

function renderCharts(h) {
  const pts = h.samples.concat([h.now]);
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const t1 = h.now.at;
  const t0 = t1 - Math.min(3600, Math.max(60, t1 - pts[0].at));
  drawChart("chart-finished", [
    { points: perMinute(pts, "completed"), color: color("--ok") },
    { points: perMinute(pts, "failed"), color: color("--bad") },
  ], t0, t1);
  drawChart("chart-queue", [
    { points: gauge(pts, "ready"), color: color("--a") },
    { points: gauge(pts, "inProgress"), color: color("--b") },
  ], t0, t1);
  drawChart("chart-age", [{ points: gauge(pts, "oldestReadyAgeSeconds"), color: color("--warn") }],
    t0, t1);
}

// --- refresh loop --------------------------------------------------------------------------

async function refresh() {
  if (busy || !token()) return;
  busy = true;
  try {
    const [status, history, failed, dead, usage] = await Promise.all([
      api("GET", "/status"),
      api("GET", "/history"),
      api("GET", "/tryons?status=failed&limit=50"),
      api("GET", "/deliveries?status=failed&limit=50"),
      api("GET", "/usage?groupBy=app"),
    ]);
    renderStatus(status);
    renderSpend(history);
    renderCharts(history);
    renderFailed(failed);
    renderDead(dead);
    renderUsage(usage);
    setText("refreshed", `updated ${new Date().toLocaleTimeString()}`);
    document.body.dataset.loaded = "1";
  } catch (err) {
    if (token()) flashFailure("Refresh", err);
  } finally {
    busy = false;
  }
}

function startLoop() {
  stopLoop();
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

function stopLoop() { if (timer) clearInterval(timer); timer = null; }

// --- actions -------------------------------------------------------------------------------

async function act(what, fn, okText) {
  try {
    const out = await fn();
    flash("ok", okText(out));
  } catch (err) {
    flashFailure(what, err);
  }
  await refresh();
}

function togglePause(what) {
  const paused = $(`${what}-toggle`).dataset.paused === "1";
  if (paused) {
    return act(`Resume ${what}`, () => api("POST", "/resume", { what }),
      () => `${what} resumed.`);
  }
  const reason = $("pause-reason").value.trim();
  const body = reason ? { what, reason } : { what };
  return act(`Pause ${what}`, () => api("POST", "/pause", body), () => `${what} paused.`);
}

function retryTryon(id) {
  return act(`Retry ${id}`, () => api("POST", `/tryons/${encodeURIComponent(id)}/retry`),
    (out) => `${out.id} queued again. ${out.message}`);
}

function discardTryon(id) {
  return act(`Discard ${id}`, () => api("POST", `/tryons/${encodeURIComponent(id)}/discard`),
    (out) => out.discarded ? `${out.id} removed from the failed list (it stays failed).`
      : `${out.id} was not in the failed list.`);
}

function resendDelivery(id) {
  return act(`Resend ${id}`, () => api("POST", `/deliveries/${encodeURIComponent(id)}/resend`),
    (out) => `${out.id} resent (${out.eventType}, same webhook-id); status ${out.status}.`);
}

async function lookup(id) {
  const isDelivery = id.startsWith("msg_");
  const path = isDelivery ? `/deliveries/${encodeURIComponent(id)}`
    : `/tryons/${encodeURIComponent(id)}`;
  const actions = $("lookup-actions");
  actions.replaceChildren();
  try {
    const found = await api("GET", path);
    $("lookup-result").textContent = JSON.stringify(found, null, 2);
    if (isDelivery) {
      actions.append(actionButton("Resend", "", () => resendDelivery(id)));
    } else {
      const status = found.record.status;
      actions.append(el("span", { text: `status ${status}` }));
      if (status === "failed") {
        actions.append(actionButton("Retry", "", () => retryTryon(id)),
          actionButton("Discard", "", () => discardTryon(id)));
        if (!found.retryable) {
          actions.append(el("span", { class: "muted", text: found.retryRefusal || "" }));
        }
      }
    }
  } catch (err) {
    $("lookup-result").textContent = "";
    flashFailure(`Look up ${id}`, err);
  }
}

// --- login ---------------------------------------------------------------------------------

function showLogin(message) {
  $("dash").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  setText("login-error", message || "");
  $("token").focus();
}

function showDash() {
  $("login").hidden = true;
  $("dash").hidden = false;
  $("logout").hidden = false;
  startLoop();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopLoop();
  delete document.body.dataset.loaded;
  showLogin(message);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    try {
      await api("GET", "/status");
      setText("login-error", "");
      showDash();
    } catch (err) {
      if (err instanceof ApiFailure && err.status !== 401 && err.status !== 403) {
        logout(`${err.code}: ${err.detail}`);
      }
    }
  });
  $("logout").addEventListener("click", () => logout(""));
  $("usage-csv").addEventListener("click", exportUsage);
  for (const what of ["intake", "processing"]) {
    $(`${what}-toggle`).addEventListener("click", () => togglePause(what));
  }
  $("lookup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("lookup-id").value.trim();
    if (id) lookup(id);
  });
  if (token()) showDash(); else showLogin("");
});
