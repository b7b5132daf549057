// Type declarations for tryon.js, the gateway's browser client: copy this file beside your
// copy of tryon.js (or into your typings) for a TypeScript project. docs/browser.md ("JavaScript
// client") is the reference; tests/unit/test_sdk_typescript.py type-checks a TypeScript program
// against this file with tsc and compares it with the module's runtime exports.

/** A try-on's state, in pipeline order; the last three are terminal. */
export type TryOnStatus = "queued" | "submitting" | "running" | "completed" | "failed" | "canceled";

/** The gateway's try-on view (GET /v1/try-ons/{id}). */
export interface TryOn {
  id: string;
  status: TryOnStatus;
  /** ISO 8601 */
  createdAt: string;
  /** ISO 8601 */
  updatedAt: string;
  productExternalId?: string;
  externalUserId?: string;
  /** Set once completed. */
  result?: { imageUrl: string };
  /** Set once failed. */
  error?: { code: string; message: string };
  metadata?: Record<string, string | number | boolean | null>;
  completedAt?: string;
}

/** The answer of POST /v1/images. */
export interface UploadedPhoto {
  /** Pass it to tryOn({imageId}) as often as you like. */
  id: string;
  contentType: string;
  size: number;
  crop: boolean;
  keepForDays: number;
  externalUserId?: string;
}

/** One report of tryOn()'s / waitForTryOn()'s `onProgress`: each status once, in order. */
export interface Progress {
  status: "uploading" | TryOnStatus;
  /** The try-on as last seen (absent while uploading). */
  tryOn?: TryOn;
}

/**
 * "auto": Server-Sent Events read over fetch(), long-polling if streaming fails;
 * "sse": streaming only (fails instead of falling back); "poll": long-polling only.
 */
export type Transport = "auto" | "sse" | "poll";

/** An end-user token, with its expiry when known (then it is refreshed before it expires). */
export type TokenValue = string | { token: string; expiresAt?: string | number | Date };

export type Metadata = Record<string, string | number | boolean | null>;

/** A per-field problem of a 400 VALIDATION_FAILED. */
export interface FieldError {
  path: string;
  message: string;
}

export interface TryOnErrorInit {
  /** e.g. INVALID_TOKEN, RATE_LIMITED, PRODUCT_NOT_FOUND, NETWORK_ERROR, or a failed try-on's code. */
  code: string;
  message: string;
  /** The HTTP status; 0 when no answer came or when a try-on itself failed. */
  status?: number;
  retryAfter?: number | null;
  details?: FieldError[] | null;
  tryOn?: TryOn | null;
  cause?: unknown;
}

/**
 * Every failure the client reports. Branch on `code` (stable: the gateway's error codes, plus
 * NETWORK_ERROR, STREAM_UNAVAILABLE, TRYON_CANCELED raised by the client); `message` is for humans.
 */
export declare class TryOnError extends Error {
  constructor(init: TryOnErrorInit);
  readonly name: "TryOnError";
  code: string;
  status: number;
  /** Seconds to wait before trying again (429, 503), or null. */
  retryAfter: number | null;
  details: FieldError[] | null;
  /** The try-on, when it ended failed or canceled. */
  tryOn: TryOn | null;
  /** True when the same call may succeed later (after `retryAfter` seconds when set). */
  get retryable(): boolean;
}

export interface TryOnClientOptions {
  /** The app's `pk_...` key; the page's origin must be one of the app's allowed origins. */
  publishableKey: string;
  /** An end-user token, for pages that get one with the HTML. */
  token?: TokenValue;
  /**
   * Called for the first token, before it expires (when `expiresAt` is given) and once when the
   * gateway rejects it (INVALID_TOKEN, TOKEN_EXPIRED); the failed request is then sent again.
   */
  getToken?: (info: { reason: "initial" | "expiring" | "rejected" }) => TokenValue | Promise<TokenValue>;
  /** The gateway's URL; defaults to where tryon.js was loaded from. */
  baseUrl?: string;
  /** How tryOn() follows a try-on; default "auto". */
  transport?: Transport;
  /** Long-poll length when polling; default 25. */
  pollWaitSeconds?: number;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

export interface UploadOptions {
  /** Default true: a person-aware 4:5 crop; false keeps the framing. */
  crop?: boolean;
  signal?: AbortSignal;
}

export interface CreateTryOnOptions {
  /** The product's externalId in the app's catalog. */
  productId: string;
  imageId: string;
  idempotencyKey?: string;
  metadata?: Metadata;
  /** At least 1: a try-on not sent upstream within it ends DEADLINE_EXCEEDED, spending nothing. */
  deadlineSeconds?: number;
  signal?: AbortSignal;
}

export interface WatchOptions {
  transport?: Transport;
  signal?: AbortSignal;
}

export interface WaitOptions extends WatchOptions {
  onProgress?: (progress: Progress) => void;
}

export interface TryOnCommon extends WaitOptions {
  /** The product's externalId in the app's catalog. */
  productId: string;
  /** Default: a random one per call. */
  idempotencyKey?: string;
  metadata?: Metadata;
  /**
   * Milliseconds to wait in all (at least 1000); then rejects with a TimeoutError. Also sent as
   * the try-on's deadline, so the gateway never sends upstream a try-on the page gave up on.
   */
  timeout?: number;
}

/** tryOn() takes exactly one of a photo uploaded before (`imageId`) or the photo itself. */
export type TryOnOptions =
  | (TryOnCommon & { imageId: string; photo?: never; crop?: never })
  | (TryOnCommon & { photo: Blob; imageId?: never; crop?: boolean });

/** Browser-safe access to tryon-gateway: upload a photo, start a try-on, follow it to its end. */
export declare class TryOnClient {
  constructor(options: TryOnClientOptions);
  /** Replace the end-user token (e.g. after your own refresh). */
  setToken(value: TokenValue): void;
  /** Upload a shopper's photo (JPEG, PNG, WebP or HEIC, at most 10 MB). */
  uploadPhoto(photo: Blob, options?: UploadOptions): Promise<UploadedPhoto>;
  /** Start a try-on and answer at once (202): its status is "queued". */
  createTryOn(options: CreateTryOnOptions): Promise<TryOn>;
  /** Cancel a try-on not yet sent upstream (409 TRYON_NOT_CANCELABLE once it was). */
  cancelTryOn(id: string, options?: { signal?: AbortSignal }): Promise<TryOn>;
  /** Read a try-on; with `wait` (seconds, up to 60) hold until it ends or the time is up. */
  getTryOn(id: string, options?: { wait?: number; signal?: AbortSignal }): Promise<TryOn>;
  /** Each state of a try-on as it changes, ending with the terminal one. */
  watchTryOn(id: string, options?: WatchOptions): AsyncGenerator<TryOn, void, void>;
  /** Resolves with the completed try-on; rejects with a TryOnError when it failed or was canceled. */
  waitForTryOn(id: string, options?: WaitOptions): Promise<TryOn>;
  /** Upload (unless `imageId`), start and follow a try-on; resolves with the completed one. */
  tryOn(options: TryOnOptions): Promise<TryOn>;
}
