/**
 * Which AWS errors are worth retrying, for {@link retry} (the one retry policy): throttling,
 * 5xx, timeouts and network failures are; everything else (validation, access, missing resources)
 * is not. AWS clients made by the route are built with the SDK's own retries off
 * (`maxAttempts: 1`) so that retry.ts alone decides.
 * @module
 */

import { retry, RetryableError, type RetryOptions } from "../pipeline/retry.ts";

const THROTTLING = new Set([
  "ThrottlingException",
  "Throttling",
  "ThrottledException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "ProvisionedThroughputExceededException",
  "SlowDown",
]);
const TRANSIENT = new Set([
  "ServiceUnavailable",
  "ServiceUnavailableException",
  "InternalFailure",
  "InternalError",
  "InternalServerError",
  "InternalServerException",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
  "IDPCommunicationError",
]);

/** The AWS error code of `e` (`ThrottlingException`, `NoSuchKey`), looking through causes. */
export function awsErrorName(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; depth++) {
    const code = (cur as { Code?: unknown }).Code;
    if ("$metadata" in cur) return typeof code === "string" ? code : cur.name;
    cur = cur.cause;
  }
  return undefined;
}

/** HTTP status of an AWS SDK error, when it got one. */
export function awsStatus(e: unknown): number | undefined {
  const m = (e as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata;
  return m?.httpStatusCode;
}

/** Whether an AWS SDK (or network) error is worth retrying. */
export function isAwsRetryable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (!("$metadata" in e)) {
    // Not an AWS answer: fetch's network errors, aborts by timeout, connection resets.
    if (e.name === "AbortError") return false;
    return e instanceof TypeError || e.name === "TimeoutError" ||
      /ECONNRESET|ECONNREFUSED|ETIMEDOUT|socket hang up|connection (reset|closed|refused)/i.test(
        e.message,
      );
  }
  const name = awsErrorName(e) ?? "";
  if (THROTTLING.has(name) || TRANSIENT.has(name)) return true;
  if ((e as { $retryable?: unknown }).$retryable) return true;
  const status = awsStatus(e);
  return status === 429 || (status !== undefined && status >= 500);
}

/** Throttling (as opposed to another transient failure), for a metric. */
export function isAwsThrottling(e: unknown): boolean {
  return THROTTLING.has(awsErrorName(e) ?? "");
}

/**
 * Run one AWS call under {@link retry}: retryable AWS errors are retried with capped exponential
 * backoff and jitter; the last error is rethrown as it came from the SDK.
 */
export function retryAws<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  return retry(async (attempt) => {
    try {
      return await fn(attempt);
    } catch (e) {
      throw new RetryableError(e instanceof Error ? e.message : String(e), {
        cause: e,
        retryable: isAwsRetryable(e),
      });
    }
  }, opts).catch((e) => {
    throw e instanceof RetryableError && e.cause !== undefined ? e.cause : e;
  });
}
