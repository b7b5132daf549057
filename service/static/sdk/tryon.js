// tryon-gateway browser client. Dependency-free ES module, served by the gateway at /sdk/tryon.js.
//
//   import { TryOnClient, TryOnError } from "https://gateway.example/sdk/tryon.js";
//   const client = new TryOnClient({ publishableKey: "pk_...", getToken: fetchTokenFromMyBackend });
//   const done = await client.tryOn({ productId: "shirt-1", photo: input.files[0],
//                                     onProgress: ({ status }) => show(status) });
//   img.src = done.result.imageUrl;
//
// The page never holds a secret: the publishable key names the app, and a short-lived end-user
// token (minted by the merchant's backend with POST /v1/sessions) scopes it to one shopper.
// docs/browser.md ("JavaScript client") is the reference.

/**
 * @typedef {"queued"|"submitting"|"running"|"completed"|"failed"|"canceled"} TryOnStatus
 *
 * @typedef {object} TryOn  The gateway's try-on view (GET /v1/try-ons/{id}).
 * @property {string} id
 * @property {TryOnStatus} status
 * @property {string} createdAt  ISO 8601
 * @property {string} updatedAt  ISO 8601
 * @property {string} [productExternalId]
 * @property {string} [externalUserId]
 * @property {{imageUrl: string}} [result]  Set once completed.
 * @property {{code: string, message: string}} [error]  Set once failed.
 * @property {Record<string, unknown>} [metadata]
 * @property {string} [completedAt]
 *
 * @typedef {object} UploadedPhoto  The answer of POST /v1/images.
 * @property {string} id  Pass it to tryOn({imageId}) as often as you like.
 * @property {string} contentType
 * @property {number} size
 * @property {boolean} crop
 * @property {number} keepForDays
 *
 * @typedef {object} Progress
 * @property {"uploading"|TryOnStatus} status  Each value is reported once, in pipeline order.
 * @property {TryOn} [tryOn]  The try-on as last seen (absent while uploading).
 *
 * @typedef {"auto"|"sse"|"poll"} Transport
 *   "auto": Server-Sent Events read over fetch(), long-polling if streaming fails;
 *   "sse": streaming only (fails instead of falling back); "poll": long-polling only.
 *
 * @typedef {string | {token: string, expiresAt?: string|number|Date}} TokenValue
 */

const TERMINAL = new Set(["completed", "failed", "canceled"]);
// Pipeline order: progress never goes backwards even if a late answer shows an older state.
const RANK = { uploading: 0, queued: 1, submitting: 2, running: 3, completed: 4, failed: 4, canceled: 4 };
const MAX_PHOTO_BYTES = 10 * 1024 * 1024;
// The gateway sends a keep-alive comment every 15 s; a stream silent for longer than this is
// stuck behind a buffering proxy, and polling will do better.
const STREAM_IDLE_MS = 40_000;
// Refresh a token this long before it expires, so a request never races its expiry.
const TOKEN_MARGIN_MS = 30_000;
const MAX_TRANSIENT_FAILURES = 6;

/**
 * Every failure the client reports. Branch on `code` (stable, the gateway's error codes, plus
 * NETWORK_ERROR and STREAM_UNAVAILABLE raised here); `message` is for humans.
 */
export class TryOnError extends Error {
  /**
   * @param {object} init
   * @param {string} init.code  e.g. INVALID_TOKEN, RATE_LIMITED, PRODUCT_NOT_FOUND, NETWORK_ERROR,
   *   or a failed try-on's own code (INSUFFICIENT_CREDITS, PRODUCT_IMAGE_FETCH_FAILED, ...).
   * @param {string} init.message
   * @param {number} [init.status]  The HTTP status; 0 when no answer came (network, CORS,
   *   refused before sending) or when a try-on itself failed.
   * @param {number|null} [init.retryAfter]  Seconds to wait before trying again (429, 503).
   * @param {Array<{path: string, message: string}>|null} [init.details]  Per-field errors.
   * @param {TryOn|null} [init.tryOn]  The try-on, when it ended failed or canceled.
   * @param {unknown} [init.cause]
   */
  constructor({ code, message, status = 0, retryAfter = null, details = null, tryOn = null, cause }) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "TryOnError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
    this.details = details;
    this.tryOn = tryOn;
  }

  /** True when the same call may succeed later (after `retryAfter` seconds when set). */
  get retryable() {
    return this.code === "NETWORK_ERROR" || this.status === 429 || this.status >= 500;
  }
}

class StreamUnavailable extends Error {}

/** Browser-safe access to tryon-gateway: upload a photo, start a try-on, follow it to its end. */
export class TryOnClient {
  #baseUrl;
  #publishableKey;
  #getToken;
  #token = null;
  #tokenExpiresAt = Infinity;
  #refreshing = null;
  #fetch;
  #transport;
  #pollWait;

  /**
   * @param {object} options
   * @param {string} options.publishableKey  The app's `pk_...` key; the page's origin must be
   *   one of the app's allowed origins.
   * @param {string} [options.token]  An end-user token, for pages that get one with the HTML.
   *   With neither token nor getToken, calls are anonymous (for apps whose policy allows it).
   * @param {(info: {reason: "initial"|"expiring"|"rejected"}) => TokenValue|Promise<TokenValue>} [options.getToken]
   *   Called for the first token, before it expires (when `expiresAt` is given) and once when the
   *   gateway rejects it (INVALID_TOKEN, TOKEN_EXPIRED); the failed request is then sent again.
   * @param {string} [options.baseUrl]  The gateway's URL; defaults to where this file was loaded from.
   * @param {Transport} [options.transport]  How tryOn() follows a try-on; default "auto".
   * @param {number} [options.pollWaitSeconds]  Long-poll length when polling; default 25.
   * @param {typeof fetch} [options.fetch]  A fetch implementation (default: the global one).
   */
  constructor({ publishableKey, token, getToken, baseUrl, transport = "auto", pollWaitSeconds = 25, fetch: fetchImpl } = {}) {
    if (typeof publishableKey !== "string" || !publishableKey.startsWith("pk_")) {
      throw new TypeError("TryOnClient: publishableKey must be the app's pk_... key");
    }
    if (!["auto", "sse", "poll"].includes(transport)) {
      throw new TypeError(`TryOnClient: unknown transport ${transport}`);
    }
    this.#baseUrl = String(baseUrl ?? new URL(import.meta.url).origin).replace(/\/+$/, "");
    this.#publishableKey = publishableKey;
    this.#getToken = typeof getToken === "function" ? getToken : null;
    if (token) this.setToken(token);
    this.#fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.#transport = transport;
    this.#pollWait = pollWaitSeconds;
  }

  /** Replace the end-user token (e.g. after your own refresh). */
  setToken(value) {
    const { token, expiresAt } = typeof value === "string" ? { token: value } : value ?? {};
    if (typeof token !== "string" || !token) throw new TypeError("TryOnClient: empty token");
    this.#token = token;
    this.#tokenExpiresAt = expiresAt === undefined || expiresAt === null ? Infinity : new Date(expiresAt).getTime();
  }

  /**
   * Upload a shopper's photo (JPEG, PNG, WebP or HEIC, at most 10 MB). The gateway checks the
   * bytes and deduplicates; the returned id can start any number of try-ons.
   * @param {Blob|File} photo
   * @param {{crop?: boolean, signal?: AbortSignal}} [options]  crop (default true): a
   *   person-aware 4:5 crop; false keeps the framing.
   * @returns {Promise<UploadedPhoto>}
   */
  async uploadPhoto(photo, { crop, signal } = {}) {
    if (!(photo instanceof Blob)) throw new TypeError("uploadPhoto: expected a File or Blob");
    if (photo.size > MAX_PHOTO_BYTES) {
      throw new TryOnError({ code: "PAYLOAD_TOO_LARGE", message: "Photos are limited to 10 MB." });
    }
    // Built per attempt: a body is consumed by the request that sends it.
    const body = () => {
      const form = new FormData();
      form.append("file", photo, photo.name || "photo");
      if (crop !== undefined) form.append("crop", crop ? "true" : "false");
      return form;
    };
    return this.#json("POST", "/v1/images", { body, signal });
  }

  /**
   * Start a try-on and answer at once (202): its status is "queued".
   * @param {{productId: string, imageId: string, idempotencyKey?: string,
   *          metadata?: Record<string, string|number|boolean|null>, deadlineSeconds?: number,
   *          signal?: AbortSignal}} options  deadlineSeconds (at least 1): if the try-on has not
   *   been sent upstream by then, it ends failed with DEADLINE_EXCEEDED and spends nothing.
   * @returns {Promise<TryOn>}
   */
  async createTryOn({ productId, imageId, idempotencyKey, metadata, deadlineSeconds, signal }) {
    if (!productId || !imageId) throw new TypeError("createTryOn: productId and imageId are required");
    const payload = { products: [{ externalId: productId }], person: { image: { source: { id: imageId } } } };
    if (metadata) payload.metadata = metadata;
    if (deadlineSeconds !== undefined) payload.deadlineSeconds = deadlineSeconds;
    const headers = { "Content-Type": "application/json" };
    if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
    return this.#json("POST", "/v1/try-ons", { body: () => JSON.stringify(payload), headers, signal });
  }

  /**
   * Cancel a try-on that has not been sent upstream yet: it ends "canceled" and spends nothing.
   * Rejects with TRYON_NOT_CANCELABLE (409) once it has been sent (the credit is spent then, so
   * it follows through).
   * @param {string} id
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<TryOn>}
   */
  async cancelTryOn(id, { signal } = {}) {
    return this.#json("DELETE", `/v1/try-ons/${encodeURIComponent(id)}`, { signal });
  }

  /**
   * Read a try-on; with `wait` (seconds, up to 60) the gateway holds the answer until the try-on
   * ends or the time is up.
   * @param {string} id
   * @param {{wait?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<TryOn>}
   */
  async getTryOn(id, { wait = 0, signal } = {}) {
    const query = wait > 0 ? `?wait=${encodeURIComponent(wait)}` : "";
    return this.#json("GET", `/v1/try-ons/${encodeURIComponent(id)}${query}`, { signal });
  }

  /**
   * Each state of a try-on as it changes, ending with the terminal one. Reads Server-Sent
   * Events over fetch() (EventSource cannot send the key and token headers) and falls back to
   * long-polling when streaming fails (a proxy that buffers or drops the stream). A state that
   * lasted less than a read may be skipped; none is repeated, none goes backwards.
   * @param {string} id
   * @param {{transport?: Transport, signal?: AbortSignal}} [options]
   * @returns {AsyncGenerator<TryOn, void, void>}
   */
  async *watchTryOn(id, { transport = this.#transport, signal } = {}) {
    let last = null;
    const fresh = (view) => {
      if (last !== null && RANK[view.status] <= RANK[last.status]) return false;
      last = view;
      return true;
    };
    if (transport !== "poll") {
      try {
        for await (const view of this.#stream(id, signal)) {
          if (fresh(view)) yield view;
          if (TERMINAL.has(view.status)) return;
        }
      } catch (err) {
        if (transport === "sse" || !(err instanceof StreamUnavailable)) {
          throw err instanceof StreamUnavailable
            ? new TryOnError({ code: "STREAM_UNAVAILABLE", message: err.message, cause: err.cause })
            : err;
        }
      }
    }
    let failures = 0;
    let wait = last === null ? 0 : this.#pollWait;
    for (;;) {
      let view;
      try {
        view = await this.getTryOn(id, { wait, signal });
        failures = 0;
      } catch (err) {
        if (!(err instanceof TryOnError) || !err.retryable || ++failures > MAX_TRANSIENT_FAILURES) throw err;
        await sleep(backoffMs(err, failures), signal);
        continue;
      }
      if (fresh(view)) yield view;
      if (TERMINAL.has(view.status)) return;
      wait = this.#pollWait;
    }
  }

  /**
   * Follow a try-on to its end: resolves with the completed try-on (`result.imageUrl`), rejects
   * with a TryOnError carrying the try-on's own error code when it failed (or TRYON_CANCELED).
   * @param {string} id
   * @param {{onProgress?: (p: Progress) => void, transport?: Transport, signal?: AbortSignal}} [options]
   * @returns {Promise<TryOn>}
   */
  async waitForTryOn(id, { onProgress, transport, signal } = {}) {
    for await (const view of this.watchTryOn(id, { transport, signal })) {
      onProgress?.({ status: view.status, tryOn: view });
      if (TERMINAL.has(view.status)) return settle(view);
    }
    throw new TryOnError({ code: "STREAM_UNAVAILABLE", message: "The try-on ended without a final state." });
  }

  /**
   * The whole flow in one call: upload the photo (unless `imageId` is given), start the try-on,
   * report each state, resolve with the completed try-on. The try-on is started with an
   * idempotency key, so calling tryOn again with the same `idempotencyKey` after a network
   * failure never starts a second one.
   *
   * Giving up (the `signal` aborts, or `timeout` runs out) rejects at once and cancels the
   * try-on in the background if it has not been sent upstream yet; one already sent follows
   * through server-side (its credit is spent). `timeout` is also sent as the try-on's deadline
   * (`deadlineSeconds`, what is left of it once the photo is uploaded), so the gateway never
   * sends upstream a try-on this page stopped waiting for, even if the cancel is lost.
   * @param {object} options
   * @param {string} options.productId  The product's externalId in the app's catalog.
   * @param {string} [options.imageId]  A photo uploaded before (uploadPhoto).
   * @param {Blob|File} [options.photo]  Or the photo itself.
   * @param {boolean} [options.crop]  With `photo`: see uploadPhoto.
   * @param {(p: Progress) => void} [options.onProgress]  Called once per state, in order:
   *   "uploading" (with `photo`), "queued", "submitting", "running", then the terminal one.
   * @param {AbortSignal} [options.signal]  e.g. a Cancel button's AbortController
   * @param {number} [options.timeout]  Milliseconds to wait in all (at least 1000); then the
   *   call rejects with a "TimeoutError" DOMException.
   * @param {Transport} [options.transport]
   * @param {string} [options.idempotencyKey]  Default: a random one per call.
   * @param {Record<string, string|number|boolean|null>} [options.metadata]
   * @returns {Promise<TryOn>}
   */
  async tryOn({ productId, imageId, photo, crop, onProgress, signal, transport, idempotencyKey, metadata, timeout }) {
    if (!imageId === !photo) throw new TypeError("tryOn: pass exactly one of imageId and photo");
    if (timeout !== undefined && !(timeout >= 1000)) throw new TypeError("tryOn: timeout is at least 1000 ms");
    const report = onProgress ?? (() => {});
    const started = Date.now();
    const until = giveUpSignal(signal, timeout);
    try {
      if (photo) {
        report({ status: "uploading" });
        imageId = (await this.uploadPhoto(photo, { crop, signal: until.signal })).id;
      }
      const created = await this.createTryOn({
        productId,
        imageId,
        metadata,
        signal: until.signal,
        idempotencyKey: idempotencyKey ?? randomKey(),
        // Whole seconds left, rounded down: the gateway gives up no later than this page.
        deadlineSeconds: timeout === undefined ? undefined : Math.max(1, Math.floor((timeout - (Date.now() - started)) / 1000)),
      });
      report({ status: created.status, tryOn: created });
      if (TERMINAL.has(created.status)) return settle(created);
      // States already reported (the 202's) are not reported again.
      let seen = RANK[created.status];
      try {
        until.signal?.throwIfAborted();
        return await this.waitForTryOn(created.id, {
          transport,
          signal: until.signal,
          onProgress: (p) => {
            if (RANK[p.status] <= seen) return;
            seen = RANK[p.status];
            report(p);
          },
        });
      } catch (err) {
        if (until.signal?.aborted) {
          // Nobody waits for it any more. Not awaited: the rejection comes at once. A try-on
          // already sent upstream answers 409 and follows through; nothing to do about that.
          this.cancelTryOn(created.id).catch(() => {});
        }
        throw err;
      }
    } finally {
      until.dispose();
    }
  }

  // --- transport --------------------------------------------------------------------------

  async *#stream(id, signal) {
    // Our own controller: it ends the request when the caller aborts, when the stream goes
    // silent, and when the consumer stops early (return() of this generator).
    signal?.throwIfAborted();
    const control = new AbortController();
    const onAbort = () => control.abort(signal.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    let response;
    try {
      try {
        response = await this.#send("GET", `/v1/try-ons/${encodeURIComponent(id)}/events`, {
          headers: { Accept: "text/event-stream" },
          signal: control.signal,
        });
      } catch (err) {
        // No answer or a server-side failure: polling may still work. A refusal (4xx) would be
        // the same for polling, so it is reported as is.
        if (err instanceof TryOnError && err.retryable) throw new StreamUnavailable(err.message, { cause: err });
        throw err;
      }
      const type = response.headers.get("Content-Type") || "";
      if (!response.body || !type.startsWith("text/event-stream")) {
        response.body?.cancel().catch(() => {});
        throw new StreamUnavailable(`The events endpoint answered ${type || "no body"}, not a stream.`);
      }
      for await (const data of readEvents(response.body, control, signal)) {
        let view;
        try {
          view = JSON.parse(data);
        } catch (err) {
          throw new StreamUnavailable("An event was not JSON.", { cause: err });
        }
        yield view;
      }
      throw new StreamUnavailable("The stream ended before the try-on did.");
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!control.signal.aborted) control.abort();
    }
  }

  async #json(method, path, init) {
    const response = await this.#send(method, path, init);
    return response.json();
  }

  /** One request with the key and token; a rejected token is refreshed once and resent. */
  async #send(method, path, { body, headers = {}, signal } = {}) {
    let refreshed = false;
    for (;;) {
      const token = await this.#currentToken(refreshed ? "rejected" : null);
      let response;
      try {
        response = await this.#fetch(`${this.#baseUrl}${path}`, {
          method,
          body: body?.(),
          signal,
          cache: "no-store",
          credentials: "omit",
          headers: {
            ...headers,
            Authorization: `Bearer ${this.#publishableKey}`,
            // Without a token the call is anonymous: only apps that allow it accept that.
            ...(token ? { "X-Tryon-Token": token } : {}),
          },
        });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        // fetch() rejects with a TypeError for a network failure and for a CORS refusal alike.
        throw new TryOnError({
          code: "NETWORK_ERROR",
          message: `The gateway could not be reached (${err?.message ?? err}).`,
          cause: err,
        });
      }
      if (response.ok) return response;
      const error = await errorFrom(response);
      const tokenRejected = error.code === "INVALID_TOKEN" || error.code === "TOKEN_EXPIRED";
      if (tokenRejected && this.#getToken && !refreshed) {
        refreshed = true;
        continue;
      }
      throw error;
    }
  }

  async #currentToken(reason) {
    const expiring = this.#tokenExpiresAt - TOKEN_MARGIN_MS <= Date.now();
    if (this.#token && !reason && !(expiring && this.#getToken)) return this.#token;
    if (!this.#getToken) return this.#token;
    const why = reason ?? (this.#token ? "expiring" : "initial");
    // Concurrent requests share one refresh.
    this.#refreshing ??= Promise.resolve(this.#getToken({ reason: why }))
      .then((value) => this.setToken(value))
      .finally(() => {
        this.#refreshing = null;
      });
    await this.#refreshing;
    return this.#token;
  }
}

// --- helpers ---------------------------------------------------------------------------------

function settle(view) {
  if (view.status === "completed") return view;
  if (view.status === "canceled") {
    throw new TryOnError({ code: "TRYON_CANCELED", message: "The try-on was canceled.", tryOn: view });
  }
  throw new TryOnError({
    code: view.error?.code ?? "TRYON_FAILED",
    message: view.error?.message ?? "The try-on failed.",
    tryOn: view,
  });
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new TryOnError({
    code: typeof body?.code === "string" ? body.code : `HTTP_${response.status}`,
    message: typeof body?.message === "string" ? body.message : response.statusText || `HTTP ${response.status}`,
    status: response.status,
    retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
    details: Array.isArray(body?.details) ? body.details : null,
  });
}

function parseRetryAfter(value) {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function backoffMs(err, failures) {
  if (err.retryAfter !== null) return err.retryAfter * 1000;
  return Math.min(10_000, 250 * 2 ** failures) * (0.5 + Math.random() / 2);
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * One signal that aborts when `signal` does or when `timeoutMs` has passed (with a
 * "TimeoutError" DOMException, as AbortSignal.timeout does); `dispose` stops the timer.
 */
function giveUpSignal(signal, timeoutMs) {
  if (timeoutMs === undefined) return { signal, dispose() {} };
  const control = new AbortController();
  const onAbort = () => control.abort(signal.reason);
  const timer = setTimeout(
    () => control.abort(new DOMException("The try-on took longer than its timeout.", "TimeoutError")),
    timeoutMs,
  );
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: control.signal,
    dispose() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    },
  };
}

function randomKey() {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * The `data` of each event in a text/event-stream body (comments and other fields skipped).
 * `control` is aborted when the stream stays silent past STREAM_IDLE_MS.
 */
async function* readEvents(body, control, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  let idle = null;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(() => control.abort(new StreamUnavailable("The stream went silent.")), STREAM_IDLE_MS);
  };
  try {
    arm();
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (control.signal.reason instanceof StreamUnavailable) throw control.signal.reason;
        throw new StreamUnavailable("The stream broke.", { cause: err });
      }
      if (chunk.done) return;
      arm();
      buffer += chunk.value;
      // A chunk may end mid-line, or between the \r and \n of one line end: keep the tail.
      const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(cut);
      for (const line of lines) {
        if (line === "") {
          if (data.length) yield data.join("\n");
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
        }
      }
    }
  } finally {
    clearTimeout(idle);
    reader.cancel().catch(() => {});
  }
}
