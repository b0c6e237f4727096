/**
 * The one place that decides what is retried and how long to wait: capped exponential backoff
 * with full jitter, a server's `Retry-After` hint honoured (up to `max_backoff`), and an explicit
 * give-up after `max_retries` (the caller then fails the unit; nothing is dropped silently).
 *
 * Retried: network failures (refused, reset, aborted, broken pipe, unexpected EOF), timeouts,
 * HTTP 408, 429 and 5xx. Not retried: other 4xx (the request itself is wrong; sending it again
 * cannot help), the caller's own abort, and any error that says `retryable: false`.
 *
 * An HTTP intake's answer means one of four things for a batch ({@link httpVerdict}): retry it
 * (408, 429, 5xx), a configuration problem (401, 403, 404: wrong token, URL or permissions;
 * retried without limit, since fixing the configuration fixes it, and counted apart from
 * `max_retries`), too large (413: the sink splits the batch), or rejected for good (400, 422 and
 * any other 4xx: the content is wrong; it goes to the dead letter, never sent again).
 *
 * @example
 * ```ts
 * import { retry, RetryableError } from "./retry.ts";
 * const res = await retry(async () => {
 *   const r = await fetch("http://127.0.0.1:8080/");
 *   if (!r.ok) throw new RetryableError(`answered ${r.status}`, { status: r.status });
 *   return r;
 * }, { max_retries: 5, signal: AbortSignal.timeout(60_000) });
 * ```
 * @module
 */

import { f, type Infer } from "../config/spec.ts";

/** The `retry:` settings a sink embeds. */
export const retrySpec = f.object({
  max_retries: f.int({
    description:
      "Retries of a batch that failed for a reason a later try may fix (5xx, 408, 429, timeouts, connection errors) before the sink gives it back: the pipeline then nacks its units and retries them later, resuming after their acknowledged lines, so giving up loses nothing; -1 retries in the sink until shutdown. Configuration problems (401, 403, 404) are retried without limit (readiness 503 meanwhile); rejections (400, 422, a line over the intake's size limit) are never retried",
    default: 10,
    min: -1,
  }),
  initial_backoff: f.duration({
    description: "Longest wait before the first retry",
    default: "100ms",
  }),
  max_backoff: f.duration({
    description: "Longest wait between retries (a server's Retry-After is capped here too)",
    default: "30s",
  }),
}, {
  description: "Retries with capped exponential backoff and full jitter",
  check: (v) =>
    v.initial_backoff > v.max_backoff
      ? [`initial_backoff must be ≤ max_backoff: got ${v.initial_backoff}ms > ${v.max_backoff}ms`]
      : [],
});

/** Retry settings (durations in milliseconds). */
export type RetryConfig = Infer<typeof retrySpec>;

/** An error that says whether to retry and, optionally, when (a server's Retry-After). */
export class RetryableError extends Error {
  readonly retryable: boolean;
  /**
   * A configuration problem (an intake's 401, 403, 404): retried without limit, not counted
   * against `max_retries` (see {@link retry}).
   */
  readonly configuration: boolean;
  /** Milliseconds the server asked us to wait. */
  readonly retryAfter: number | undefined;
  /** The HTTP status behind the error, when there is one. */
  readonly status: number | undefined;
  /**
   * @param message what failed, with context (`http://x:8080 answered 503 Service Unavailable`).
   * @param options `retryable` defaults to what `status` implies, else true.
   */
  constructor(
    message: string,
    options: ErrorOptions & {
      retryable?: boolean;
      retryAfter?: number | undefined;
      status?: number | undefined;
      configuration?: boolean;
    } = {},
  ) {
    super(message, options);
    this.name = "RetryableError";
    this.status = options.status;
    this.configuration = options.configuration ?? false;
    this.retryable = options.retryable ?? (this.configuration ||
      (options.status === undefined ? true : retryableStatus(options.status)));
    this.retryAfter = options.retryAfter;
  }
}

/**
 * What an HTTP intake's answer means for the batch it was sent: `ok` (2xx), `retry` (408, 429,
 * 5xx: a later try may succeed), `configuration` (401, 403, 404: retried without limit until the
 * configuration is fixed), `too_large` (413: split the batch; one line still too large is
 * refused for good), `rejected` (any other status: the content is refused for good).
 *
 * @param status the HTTP status.
 * @returns the verdict.
 */
export function httpVerdict(
  status: number,
): "ok" | "retry" | "configuration" | "too_large" | "rejected" {
  if (status >= 200 && status < 300) return "ok";
  if (retryableStatus(status)) return "retry";
  if (status === 401 || status === 403 || status === 404) return "configuration";
  if (status === 413) return "too_large";
  return "rejected";
}

/**
 * Whether an intake refused the content itself: an answer with a status that is neither 2xx nor
 * worth retrying nor a configuration problem (400, 413, 422 ...). Only such a failure makes a
 * sink report its lines as refused for good; any other (retries run out, shutdown, an unexpected
 * error) may pass on a later try.
 */
export function isRefusal(e: unknown): boolean {
  return e instanceof RetryableError && e.status !== undefined && !e.retryable;
}

/** Whether an error is a configuration problem ({@link RetryableError.configuration}). */
export function isConfigurationError(e: unknown): boolean {
  return e instanceof RetryableError && e.configuration;
}

/** Whether an HTTP status is worth retrying: 408, 429 and 5xx. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

const NETWORK_ERRORS = [
  Deno.errors.ConnectionRefused,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.NotConnected,
  Deno.errors.BrokenPipe,
  Deno.errors.UnexpectedEof,
  Deno.errors.TimedOut,
  Deno.errors.AddrNotAvailable,
];
const NETWORK_MESSAGE =
  /ECONNRESET|ECONNREFUSED|ECONNABORTED|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|socket hang up|connection (closed|reset|refused)/i;

/** The HTTP status an error carries: ours, an AWS SDK error's, or a plain `status` field. */
function statusOf(e: object): number | undefined {
  const o = e as {
    status?: unknown;
    statusCode?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  for (const s of [o.status, o.statusCode, o.$metadata?.httpStatusCode]) {
    if (typeof s === "number" && s >= 100 && s <= 599) return s;
  }
  return undefined;
}

/**
 * Whether an error is worth retrying. An explicit `retryable` field decides first; then an HTTP
 * status (408/429/5xx yes, other 4xx no); then the kind: network errors (fetch's TypeError,
 * Deno's connection errors) and timeouts (`TimeoutError`) are; an `AbortError` (the caller
 * aborted) and anything else are not.
 *
 * @param e what an attempt threw.
 * @returns true when trying again may succeed.
 */
export function isRetryable(e: unknown): boolean {
  if (e === null || typeof e !== "object") return false;
  if ("retryable" in e && typeof e.retryable === "boolean") return e.retryable;
  const status = statusOf(e);
  if (status !== undefined) return retryableStatus(status);
  if (e instanceof DOMException) return e.name === "TimeoutError";
  if (e instanceof TypeError) return true; // fetch's network errors
  if (NETWORK_ERRORS.some((c) => e instanceof c)) return true;
  return e instanceof Error && NETWORK_MESSAGE.test(e.message);
}

/** The wait (ms) an error asks for: a numeric `retryAfter` field, as RetryableError carries. */
export function retryAfterOf(e: unknown): number | undefined {
  if (e === null || typeof e !== "object" || !("retryAfter" in e)) return undefined;
  const v = e.retryAfter;
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/**
 * Parse a Retry-After header: delay-seconds (`120`) or an HTTP date.
 *
 * @param v the header value (null when absent).
 * @param now the clock, for dates. @default Date.now()
 * @returns milliseconds to wait (0 for a date in the past), or undefined when absent or invalid.
 */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (!v) return undefined;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/**
 * Backoff before retry number `attempt` (1-based): full jitter, i.e. uniform in
 * [0, min(max_backoff, initial_backoff × 2^(attempt−1))].
 */
export function backoff(
  attempt: number,
  c: Pick<RetryConfig, "initial_backoff" | "max_backoff">,
  random: () => number = Math.random,
): number {
  const cap = Math.min(c.max_backoff, c.initial_backoff * 2 ** Math.min(attempt - 1, 30));
  return random() * cap;
}

/** Options for {@link retry}. */
export interface RetryOptions extends Partial<RetryConfig> {
  /** Aborting stops waiting at once; the last error is thrown. */
  signal?: AbortSignal;
  /** Called before each wait (log it, count it). */
  onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
  /** Decides what is retried. @default isRetryable */
  retryable?: (error: unknown) => boolean;
  /** Random source for the jitter, in [0, 1). @default Math.random */
  random?: () => number;
}

/**
 * Call `fn` until it succeeds, its error is not retryable, retries run out, or `signal` aborts.
 * Between attempts it waits a full-jitter backoff, or the error's `retryAfter` hint when it has
 * one (capped at `max_backoff`, so one server cannot stall a worker for an hour). A
 * configuration problem ({@link isConfigurationError}) is retried until `signal` aborts and does
 * not count against `max_retries`.
 *
 * @param fn the attempt; gets the attempt number (0 = first try).
 * @param options `max_retries` (default 10, -1 = until `signal` aborts), `initial_backoff`
 *   (default 100 ms), `max_backoff` (default 30 s), `signal`, `onRetry`.
 * @returns what `fn` returned.
 * @throws the last error when giving up, unchanged (its `cause` chain intact).
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  {
    max_retries = 10,
    initial_backoff = 100,
    max_backoff = 30_000,
    signal,
    onRetry,
    retryable = isRetryable,
    random = Math.random,
  }: RetryOptions = {},
): Promise<T> {
  for (let attempt = 0, counted = 0;; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (signal?.aborted || !retryable(e)) throw e;
      if (!isConfigurationError(e) && max_retries >= 0 && counted++ >= max_retries) throw e;
      const hinted = retryAfterOf(e);
      const wait = hinted !== undefined
        ? Math.min(hinted, max_backoff)
        : backoff(attempt + 1, { initial_backoff, max_backoff }, random);
      onRetry?.(e, attempt + 1, wait);
      await sleep(wait, signal);
      if (signal?.aborted) throw e;
    }
  }
}

/** Wait `ms`, or less if `signal` aborts (resolves either way, never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
