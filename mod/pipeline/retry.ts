/**
 * The one place that decides what is retried and how long to wait: capped exponential backoff
 * with full jitter, a `Retry-After` hint honoured when the server gives one, and an explicit
 * give-up after `max_retries` (the caller then fails the unit; nothing is dropped silently).
 * @module
 */

import { f, type Infer } from "../config/spec.ts";

/** The `retry:` settings a sink embeds. */
export const retrySpec = f.object({
  max_retries: f.int({
    description:
      "Attempts after the first before giving up on a batch (its units are then not checkpointed and are retried later); -1 retries forever",
    default: 10,
    min: -1,
  }),
  initial_backoff: f.duration({ description: "Wait before the first retry", default: "100ms" }),
  max_backoff: f.duration({ description: "Longest wait between retries", default: "30s" }),
}, { description: "Retries with capped exponential backoff and full jitter" });

/** Retry settings. */
export type RetryConfig = Infer<typeof retrySpec>;

/** An error that says whether to retry and, optionally, when (a server's Retry-After). */
export class RetryableError extends Error {
  readonly retryable: boolean;
  /** Milliseconds the server asked us to wait. */
  readonly retryAfter: number | undefined;
  constructor(
    message: string,
    options: ErrorOptions & { retryable?: boolean; retryAfter?: number | undefined } = {},
  ) {
    super(message, options);
    this.name = "RetryableError";
    this.retryable = options.retryable ?? true;
    this.retryAfter = options.retryAfter;
  }
}

/** Whether an HTTP status is worth retrying: 408, 429 and 5xx. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Whether an error is worth retrying: network failures and timeouts are; a
 * {@link RetryableError} says for itself; anything with `retryable: false` is not.
 */
export function isRetryable(e: unknown): boolean {
  if (e instanceof RetryableError) return e.retryable;
  if (e && typeof e === "object" && "retryable" in e) return Boolean(e.retryable);
  if (e instanceof TypeError) return true; // fetch's network errors
  if (e instanceof DOMException) return e.name === "TimeoutError";
  if (e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.ConnectionReset) {
    return true;
  }
  return e instanceof Error && /ECONNRESET|ECONNREFUSED|ETIMEDOUT|socket hang up/i.test(e.message);
}

/** Parse a Retry-After header (seconds or an HTTP date) to milliseconds. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** Backoff before retry number `attempt` (1-based): full jitter over a capped exponential. */
export function backoff(attempt: number, c: Pick<RetryConfig, "initial_backoff" | "max_backoff">) {
  const cap = Math.min(c.max_backoff, c.initial_backoff * 2 ** Math.min(attempt - 1, 30));
  return Math.random() * cap;
}

/** Options for {@link retry}. */
export interface RetryOptions extends Partial<RetryConfig> {
  signal?: AbortSignal;
  /** Called before each wait (log it, count it). */
  onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
}

/**
 * Call `fn` until it succeeds, the error is not retryable, retries run out, or `signal` aborts.
 *
 * @param fn the attempt; gets the attempt number (0 = first try).
 * @returns what `fn` returned.
 * @throws the last error when giving up.
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  { max_retries = 10, initial_backoff = 100, max_backoff = 30_000, signal, onRetry }: RetryOptions =
    {},
): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!isRetryable(e) || signal?.aborted) throw e;
      if (max_retries >= 0 && attempt >= max_retries) throw e;
      const hinted = e instanceof RetryableError ? e.retryAfter : undefined;
      const wait = hinted !== undefined
        ? Math.min(hinted, max_backoff)
        : backoff(attempt + 1, { initial_backoff, max_backoff });
      onRetry?.(e, attempt + 1, wait);
      await sleep(wait, signal);
      if (signal?.aborted) throw e;
    }
  }
}

/** Wait `ms`, or less if `signal` aborts. */
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
