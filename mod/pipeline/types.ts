/**
 * The data path's contracts: a source yields units (an object, a blob range, a message), each
 * with its own ack; the pipeline decodes, frames and batches the unit's bytes; a sink delivers
 * batches. A unit is acked only after every batch carrying its data is delivered; a unit whose
 * batch a sink gave up on is nacked and never checkpointed. We prefer a duplicate line to a lost
 * one: a crash between delivery and checkpoint re-sends, it never skips.
 * @module
 */

/** What the pipeline learned while reading a unit. Passed to the unit's ack. */
export interface UnitResult {
  /** Lines (or records) delivered. */
  lines: number;
  /** Decoded bytes delivered (line bytes without newlines). */
  bytes: number;
  /**
   * Input bytes consumed up to the end of the last complete gzip member (for plain input, all
   * bytes read). A resumable source continues from `offset + consumed`.
   */
  consumed: number;
  /** Lines cut at `max_line_bytes`. */
  truncated: number;
  /** Where the first cut line starts, in decoded bytes (when a line was cut). */
  truncatedAt?: number;
  /** Input bytes passed over as corrupt (gzip resync); absent when none. */
  skipped?: number;
  /** Items a sink refused for good, written to the dead letter; absent when none. */
  rejected?: number;
  /** Items skipped at the start because an earlier attempt delivered them (resume). */
  resumed?: number;
}

/**
 * A unit that failed for good (corrupt input, content the destination refused, too many failed
 * attempts): recorded in the source's state, listed in /status, not read again until an operator
 * re-queues it (`edge-agent <mode> requeue ID`).
 */
export interface QuarantineRecord {
  /** The unit's id. */
  id: string;
  /** Short label: `corrupt_gzip`, `truncated_gzip`, `not_gzip`, `unreadable`, `rejected`, `too_large`, `max_attempts`. */
  reason: string;
  /** What was wrong, with the unit and offset. */
  message: string;
  /** Input byte offset of the fault, when known. */
  offset?: number;
  /** When it was quarantined, ms since epoch. */
  at: number;
  /** Attempts made (unit-level failures; destination outages are not counted). */
  attempts: number;
  /** Items delivered before (and around) the fault. */
  lines: number;
  /** Input bytes passed over as corrupt. */
  skipped?: number;
  /** Items written to the dead letter. */
  rejected?: number;
}

/** A unit of work from a source. */
export interface Unit {
  /** Stable id for checkpoints, logs and errors: `s3://bucket/key`, `file:///var/log/x.gz`. */
  readonly id: string;
  /** When the unit's data was written (ms since epoch), for `processing_lag_seconds`. */
  readonly time?: number;
  /** Size in bytes of what `open` returns, when known. */
  readonly size?: number;
  /** Free-form attributes a sink may use (Kafka headers, stream name templates). */
  readonly attributes?: Readonly<Record<string, string>>;
  /**
   * Items of this unit an earlier attempt already delivered (contiguously, from the start): the
   * pipeline skips that many. See {@link progress}.
   */
  readonly resumeItems?: number;
  /** The unit's raw bytes (the pipeline detects and decodes gzip). Streamed, never buffered whole. */
  open(signal: AbortSignal): Promise<ReadableStream<Uint8Array>>;
  /**
   * The first `items` items of the unit (counted from its start, resumed ones included) are
   * delivered: a source that persists this with its checkpoint resumes a retried unit there
   * (`resumeItems`), so a crash re-sends only the batches that were in flight.
   */
  progress?(items: number): void;
  /**
   * The unit failed for good (see {@link QuarantineRecord}): record it, do not read it again
   * until it is re-queued. Instead of ack or nack. Sources without it get `ack` when the unit's
   * good data went out, else `nack` with a non-retryable error.
   */
  quarantine?(record: QuarantineRecord, result: UnitResult): Promise<void>;
  /** Every batch carrying this unit's data was delivered: checkpoint it, delete the message. */
  ack(result: UnitResult): Promise<void>;
  /**
   * The unit failed (corrupt input, a sink gave up, shutdown before delivery): do NOT
   * checkpoint; leave it to be retried (SQS redelivery, next scan).
   */
  nack(error: Error): Promise<void>;
}

/** A source of units. */
export interface Source {
  /** Kind for metric names and logs: `s3`, `file`, `azure_blob`, `kafka`. */
  readonly kind: string;
  /**
   * Units to process, in the order they should start. Ends when the source is exhausted (a
   * one-shot run) or when `signal` aborts (a long-running scan stops taking new work).
   */
  units(signal: AbortSignal): AsyncIterable<Unit>;
  /**
   * The time (ms since epoch) of the oldest unit the source handed out or must hand out again
   * that is neither acked nor quarantined (a nacked unit waiting for the next scan), for
   * `processing_lag_seconds`; undefined when there is none.
   */
  oldestPending?(): number | undefined;
  /** The units its state records as quarantined (for /status), once its state is loaded. */
  quarantined?(): QuarantineRecord[];
  /** Release connections. */
  close?(): Promise<void>;
}

/** A batch of items (lines, records) on its way to a sink. */
export interface Batch<T = Uint8Array> {
  readonly items: T[];
  /** Encoded size in bytes (for lines: sum of line lengths plus one newline each). */
  readonly bytes: number;
  /**
   * For byte lines, when the data path built it: every item followed by "\n", in one buffer
   * (`bytes` long). A sink sending newline-delimited bytes sends it as is. Like `items`, valid
   * until `write` settles (the buffer is then reused).
   */
  readonly body?: Uint8Array;
}

/**
 * Why a sink gave up on a batch. `retryable` tells the pipeline whether a later try may succeed
 * (destination down, 5xx, 408, 429, throttling, timeouts, a configuration problem such as 401):
 * the unit is then retried, never skipped. `retryable: false` means the destination rejected the
 * content for good (400, 422, a single item over the size limit): the batch's items go to the
 * dead letter, are counted under `reason`, and are not sent again.
 */
export class SinkError extends Error {
  readonly retryable: boolean;
  /** Short label for metrics and the dead letter (`rejected`, `too_large`, `closed`). */
  readonly reason: string;
  constructor(
    message: string,
    options: ErrorOptions & { retryable?: boolean; reason?: string } = {},
  ) {
    super(message, options);
    this.name = "SinkError";
    this.retryable = options.retryable ?? true;
    this.reason = options.reason ?? (this.retryable ? "retryable" : "rejected");
  }
}

/** One item of a batch that the destination refused for good. */
export interface FailedItem {
  /** Index into the batch's `items`. */
  readonly index: number;
  /** Short label (`too_large`, `rejected`). */
  readonly reason: string;
  /** The destination's words, for the dead letter. */
  readonly message?: string;
  /**
   * The item was not delivered for a reason a later try may fix (its stream throttled, its
   * destination down while the rest of the batch went through). Its unit is retried, resuming
   * after its acknowledged items; units of the batch with no such item are settled.
   */
  readonly retryable?: boolean;
}

/**
 * A batch was accepted except for some items (the Benthos `BatchError.Failed(i)` model): every
 * item not in `failed` was delivered; those in `failed` were refused for good and go to the dead
 * letter, except those marked `retryable`, whose units are retried. The batch as a whole is never
 * retried: what was delivered is not sent again by this error.
 */
export class BatchError extends SinkError {
  readonly failed: readonly FailedItem[];
  constructor(message: string, failed: readonly FailedItem[], options: ErrorOptions = {}) {
    super(message, { ...options, retryable: false, reason: failed[0]?.reason ?? "rejected" });
    this.name = "BatchError";
    this.failed = failed;
  }
}

/** A destination of batches. */
export interface Sink<T = Uint8Array> {
  /** Kind for metric names and logs: `http`, `kafka`, `cloudwatch`, `stdout`. */
  readonly kind: string;
  /**
   * Deliver one batch. Resolves when the destination acknowledged all of it; retries inside
   * (see retry.ts); rejects with {@link SinkError} once it gives up. Called concurrently up to
   * the sink's `workers`.
   */
  write(batch: Batch<T>, signal: AbortSignal): Promise<void>;
  /** Flush and release connections. */
  close(): Promise<void>;
}
