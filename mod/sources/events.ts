/**
 * The events that travel through Kafka between the agent's modes, in one place for producer and
 * consumer: the blob events `monitor` publishes and `ingest --worker` consumes (JSON keyed by
 * blob name: one blob's events land in one partition, in order), the completion event `ingest`
 * sends after each pass, and the log-file event `discover` publishes and `process` consumes
 * (keyed by instance).
 *
 * @example
 * ```ts
 * const e = parseBlobEvent(unit.value);
 * if (typeof e === "string") log.error("not a blob event", { reason: e });
 * else if (e.type === "BlobObserved") read(e.name, e.size);
 * ```
 * @module
 */

/** Where a blob lives and what it holds (shared by the per-blob events). */
export interface BlobRef {
  /** The blob name, e.g. `kubernetes/20250606.api-1-2_ns_c.gz`. */
  name: string;
  container: string;
  subscription: string;
  environment: string;
  /** The service parsed from the name. */
  service: string;
  /** `YYYYMMDD` of the name. */
  date: string;
}

/** A new blob, or one that grew. */
export interface BlobObserved extends BlobRef {
  type: "BlobObserved";
  size: number;
  previous_size: number;
  last_modified: string;
  etag: string;
  /** ISO 8601. */
  observed_at: string;
}

/** A blob that stopped growing (`inactive`) or was sealed: the last pass reads it to its end. */
export interface BlobClosed extends BlobRef {
  type: "BlobClosed";
  size: number;
  etag: string;
  last_growth_at: string;
  reason: "inactive" | "sealed";
  closed_at: string;
}

/** Per scan, date, service and environment: how many blobs and bytes were listed. */
export interface BlobsListed {
  type: "BlobsListed";
  container: string;
  subscription: string;
  environment: string;
  date: string;
  service: string;
  count: number;
  total_bytes: number;
  listed_at: string;
}

/** Any event the monitor publishes. */
export type BlobEvent = BlobObserved | BlobClosed | BlobsListed;

/** A database log file that changed (`discover` → `process`). */
export interface LogFileChanged {
  type: "LogFileChanged";
  instance: string;
  engine: string;
  file: string;
  previous_size: number;
  size: number;
  /** ISO 8601. */
  last_written: string;
  /** The file got smaller (rotated or truncated): read it from its start. */
  rotated: boolean;
}

/** A stretch of a blob that was not ingested because it did not decode. */
export interface SkippedRange {
  /** Blob byte offset where the bad stretch starts. */
  offset: number;
  /** Its length in bytes. */
  bytes: number;
  /** `corrupt_gzip`, `truncated_gzip`, `not_gzip`. */
  reason: string;
}

/** The completion event `ingest` sends to `completion_topic` after each pass over a blob. */
export interface BlobIngested {
  type: "BlobIngested";
  subscription: string;
  environment: string;
  container: string;
  blob: string;
  service: string;
  /** Where the pass started and where the blob's committed offset is now. */
  start_offset: number;
  end_offset: number;
  /** The blob's size when the pass started. */
  size: number;
  lines: number;
  /** Blob bytes ingested (end_offset − start_offset, skipped ones included). */
  bytes: number;
  /** What went to Kafka: the lines' bytes. */
  message_bytes: number;
  /** Bytes passed over because they did not decode (never sent). */
  skipped_bytes: number;
  /** Where and why. */
  skipped: SkippedRange[];
  /** A BlobClosed was handled: the blob was read to its end. */
  closed: boolean;
  at: string;
}

/** An event of a type this version does not know, about a blob (kept, not handled). */
export interface OtherBlobEvent
  extends Pick<BlobRef, "name" | "container" | "subscription" | "environment"> {
  type: string;
}

const dec = new TextDecoder();

/**
 * Parse a blob event for the consumer: the fields a worker needs are checked, the rest is kept.
 *
 * @param value the message value.
 * @returns the event, or why it is not one.
 */
export function parseBlobEvent(value: Uint8Array): BlobEvent | OtherBlobEvent | string {
  let e: unknown;
  try {
    e = JSON.parse(dec.decode(value));
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
  if (e === null || typeof e !== "object") return "not a JSON object";
  const o = e as Record<string, unknown>;
  if (typeof o.type !== "string") return "field type missing or not a string";
  if (o.type === "BlobsListed") return o as unknown as BlobsListed;
  for (const k of ["name", "container", "subscription", "environment"]) {
    if (typeof o[k] !== "string") return `field ${k} missing or not a string`;
  }
  return o as unknown as BlobEvent;
}
