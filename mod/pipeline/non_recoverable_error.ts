/**
 * Errors that retrying cannot fix: a malformed notification, a key outside the expected layout,
 * an unknown tenant, an object that is gone. A source that meets one (as a unit's nack reason)
 * stops redelivering that work: it deletes the message (or skips the object), counts it and logs
 * the reason. Every other failure leaves the work for redelivery: we prefer a duplicate line to a
 * lost one.
 * @module
 */

/** A failure that redelivery cannot fix. `reason` is a short label for metrics. */
export class NonRecoverableError extends Error {
  readonly retryable = false;
  /** Short machine-readable reason, used as a metric label (`unknown_tenant`, `object_gone`). */
  readonly reason: string;
  constructor(message: string, options: ErrorOptions & { reason?: string } = {}) {
    super(message, options);
    this.name = "NonRecoverableError";
    this.reason = options.reason ?? "non_recoverable";
  }
}

/**
 * The {@link NonRecoverableError} in `e`'s cause chain (the first error in the chain that says
 * whether it is retryable decides), or undefined when `e` is worth retrying later.
 */
export function nonRecoverable(e: unknown): NonRecoverableError | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; depth++) {
    if (cur instanceof NonRecoverableError) return cur;
    if ("retryable" in cur && typeof cur.retryable === "boolean") {
      return cur.retryable ? undefined : new NonRecoverableError(cur.message, { cause: cur });
    }
    cur = cur.cause;
  }
  return undefined;
}
