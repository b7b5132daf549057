"""`tryon-gateway ops <command>`: the ops API (`/ops/api`, service/api/ops.py) over HTTP, one
command per route, each answer rendered as a few lines for a terminal.

The CLI holds no state and reads no Redis: it does what the API does, with an admin token.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from service.ops.control import Snapshot
from service.ops.pauses import PauseState
from service.ops.queue import ReadyJob

# Long enough for a status over a large backlog; an unreachable gateway still fails fast.
TIMEOUT = 30.0


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(n) for c, n in zip(r, widths, strict=True)) for r in rows]


def _pause_line(what: str, state: PauseState | None, now: float) -> str:
    if state is None:
        return f"{what:<11} running"
    until = "until resumed" if state.until is None else f"for {_ago(state.until - now)} more"
    reason = f" ({state.reason})" if state.reason else ""
    return f"{what:<11} PAUSED by {state.by} {_ago(now - state.at)} ago, {until}{reason}"


def render_status(data: Any) -> str:
    """`ops status`: the snapshot as a few aligned lines and a worker table."""
    snap = msgspec.convert(data, Snapshot)
    q = snap.queue
    exact = "" if q.in_progress_exact else " (at least)"
    lines = [
        _pause_line("intake", snap.intake_pause, snap.at),
        _pause_line("processing", snap.processing_pause, snap.at),
        "",
        f"queue {q.name}: {q.ready} ready, {q.deferred} deferred, "
        f"{q.in_progress}{exact} in progress; oldest ready {_ago(q.oldest_ready_age_seconds)}",
        f"try-ons: {snap.tryons_active} not finished, {snap.tryons_failed_listed} failed listed",
        f"deliveries: {snap.deliveries_pending} pending ({snap.deliveries_due_now} due now), "
        f"{snap.deliveries_failed_listed} failed listed",
        "",
        f"workers: {len(snap.workers)} live",
    ]
    if snap.workers:
        header = ("ID", "VERSION", "UP", "LAST BEAT", "RUNNING", "DONE", "FAILED", "PICKING")
        lines += _table(
            [header]
            + [
                (
                    w.id,
                    w.version,
                    _ago(snap.at - w.started_at),
                    _ago(snap.at - w.beat_at) + " ago",
                    str(w.jobs_in_progress),
                    str(w.jobs_complete),
                    str(w.jobs_failed),
                    "yes" if w.picking else "NO",
                )
                for w in snap.workers
            ]
        )
    return "\n".join(lines)


def render_jobs(data: Any) -> str:
    """`ops jobs`: the counts and the oldest jobs waiting for a worker."""
    oldest = msgspec.convert(data["oldestReady"], list[ReadyJob])
    lines = [
        f"queue {data['queue']}: {data['ready']} ready, {data['deferred']} deferred, "
        f"{data['inProgress']} in progress",
    ]
    if oldest:
        lines.append("oldest ready:")
        lines += [f"  {_ago(j.age_seconds):>7}  {j.function or '?':<16} {j.job_id}" for j in oldest]
    return "\n".join(lines)


def render_failed_tryons(data: Any) -> str:
    """`ops tryons`: recently failed try-ons, newest first, and whether a retry is safe."""
    if not data:
        return "no failed try-ons listed"
    now = time.time()

    def retry(t: dict[str, Any]) -> str:
        if t["retryable"]:
            return "safe"
        return "credit spent" if t.get("generationId") else "outcome unknown"

    rows = [("ID", "APP", "FAILED", "RETRY", "ERROR")]
    rows += [
        (
            t["id"],
            t["app"],
            _ago(now - t["failedAt"]) + " ago" if t.get("failedAt") else "-",
            retry(t),
            f"{t['error']['code']}: {t['error']['message']}" if t.get("error") else "-",
        )
        for t in data
    ]
    return "\n".join(_table(rows))


def render_failed_deliveries(data: Any) -> str:
    """`ops deliveries`: dead deliveries, newest first, with their last error."""
    if not data:
        return "no failed deliveries listed"
    rows = [("ID", "EVENT", "TRY-ON", "TARGET", "ATTEMPTS", "LAST ERROR")]
    rows += [
        (
            d["id"],
            d["eventType"],
            d.get("tryonId") or "-",
            d["target"],
            str(len(d["attempts"])),
            d.get("lastError") or "-",
        )
        for d in data
    ]
    return "\n".join(_table(rows))


def render_json(data: Any) -> str:
    """`ops tryon` and `ops delivery`: the whole record, as the API answers it."""
    return json.dumps(data, indent=2, sort_keys=True)


def render_paused(data: Any) -> str:
    state = data["state"]
    until = f", lifts in {_ago(state['until'] - time.time())}" if state.get("until") else ""
    return f"{data['what']} paused by {state['by']}{until}"


def render_resumed(data: Any) -> str:
    return f"{data['what']} resumed" + ("" if data["wasPaused"] else " (it was not paused)")


def render_retried(data: Any) -> str:
    return f"{data['id']}: {data['status']}. {data['message']}"


def render_discarded(data: Any) -> str:
    listed = "dropped from the failed list" if data["discarded"] else "was not listed"
    return f"{data['id']}: {listed} (it stays failed)"


def render_resent(data: Any) -> str:
    return f"{data['id']}: {data['status']}, sent again with the same webhook-id"


def render_usage(data: Any) -> str:
    """`ops usage`: one line per row, the grouping's fields then the figures."""
    keys = ("day", "account", "app", "userId", "productId")
    figures = ("accepted", "completed", "failed", "canceled", "credits")
    rows = [tuple(k for k in keys if any(k in r for r in data["rows"])) + figures]
    for r in data["rows"]:
        rows.append(tuple(str(r.get(k, "-")) for k in rows[0]))
    total = data["total"]
    rows.append(tuple("total" if i == 0 else "" for i in range(len(rows[0]) - len(figures)))
                + tuple(str(total[f]) for f in figures))  # fmt: skip
    head = f"usage {data['from']} .. {data['to']} by {data['groupBy']}"
    return "\n".join([head, *_table(rows)])


def _path(template: str, args: dict[str, Any]) -> str:
    # Ids come from the operator: quoted, so none can reach another route.
    return template.format(**{k: quote(str(v), safe="") for k, v in args.items()})


@dataclass(frozen=True, slots=True)
class OpsCommand:
    method: str
    # `/tryons/{tryon_id}/retry`: filled from the parsed arguments of the same names.
    path: str
    render: Callable[[Any], str]
    # Arguments sent as query parameters (GET) or as the JSON body (POST), when given.
    fields: tuple[str, ...] = ()

    def request(self, client: httpx.Client, args: dict[str, Any]) -> httpx.Response:
        sent = {k: args[k] for k in self.fields if args.get(k) is not None}
        path = _path(self.path, args)
        if self.method == "GET":
            return client.get(path, params=sent)
        return client.post(path, json=sent if self.fields else None)


COMMANDS: dict[str, OpsCommand] = {
    "status": OpsCommand("GET", "/status", render_status),
    "jobs": OpsCommand("GET", "/jobs", render_jobs, ("limit",)),
    "pause": OpsCommand("POST", "/pause", render_paused, ("what", "reason", "seconds")),
    "resume": OpsCommand("POST", "/resume", render_resumed, ("what",)),
    "tryons": OpsCommand("GET", "/tryons", render_failed_tryons, ("status", "limit")),
    "tryon": OpsCommand("GET", "/tryons/{tryon_id}", render_json),
    "retry": OpsCommand("POST", "/tryons/{tryon_id}/retry", render_retried),
    "discard": OpsCommand("POST", "/tryons/{tryon_id}/discard", render_discarded),
    "deliveries": OpsCommand("GET", "/deliveries", render_failed_deliveries, ("status", "limit")),
    "delivery": OpsCommand("GET", "/deliveries/{delivery_id}", render_json),
    "resend": OpsCommand("POST", "/deliveries/{delivery_id}/resend", render_resent),
    "usage": OpsCommand("GET", "/usage", render_usage, ("from", "to", "groupBy", "app", "format")),
}


def run_ops_command(url: str, token: str, command: str, args: dict[str, Any]) -> int:
    """`tryon-gateway ops <command>` over HTTP; prints the answer, returns the exit status:
    0 done, 1 refused or unreachable (the error's code and message on stderr)."""
    spec = COMMANDS[command]
    try:
        with httpx.Client(
            base_url=url.rstrip("/") + "/ops/api",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        ) as client:
            r = spec.request(client, args)
    except httpx.TransportError as exc:
        print(f"{url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if r.status_code >= 400:
        try:
            err = r.json()
            print(f"{r.status_code} {err['code']}: {err['message']}", file=sys.stderr)
        except (ValueError, KeyError, TypeError):
            print(f"{r.status_code}: {r.text[:500]}", file=sys.stderr)
        return 1
    if r.headers.get("content-type", "").startswith("text/csv"):
        print(r.text, end="")  # `ops usage --format csv`: the file as the API sends it
    else:
        print(spec.render(r.json()))
    return 0
