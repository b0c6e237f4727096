/**
 * Vector-compatible event timestamps: which field holds it and how its value is read.
 * @module
 */
import { parseRfc3339 } from "./rfc3339.ts";
import type { LogRecord } from "./record.ts";

/** The fields looked at, in order: the first one holding a readable time wins. */
export const TIMESTAMP_FIELDS: readonly string[] = ["timestamp", "@timestamp", "time", "ts"];

const NUMERIC = /^[+-]?(?:\d+\.?\d*|\.\d+)$/;

/**
 * Reads one timestamp value as epoch milliseconds. Accepted:
 * - an RFC 3339 string (see {@linkcode parseRfc3339}), e.g. `2024-05-01T12:00:00.123+02:00`;
 * - an epoch number, or a string of one (`"1714564800"`, `"1714564800.5"`), its unit decided by
 *   magnitude: |v| ≥ 1e17 nanoseconds, ≥ 1e14 microseconds, ≥ 1e11 milliseconds, else seconds
 *   (so milliseconds before March 1973 and seconds after the year 5138 are misread);
 * - a `Date`.
 *
 * @param value the field's value
 * @returns whole epoch milliseconds (sub-millisecond parts truncated), or `undefined`
 */
export function toEpochMs(value: unknown): number | undefined {
  if (typeof value === "number") return epochNumberMs(value);
  if (typeof value === "string") {
    const text = value.trim();
    if (NUMERIC.test(text)) return epochNumberMs(Number(text));
    return parseRfc3339(text);
  }
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isFinite(ms) ? ms : undefined;
  }
  return undefined;
}

function epochNumberMs(v: number): number | undefined {
  if (!Number.isFinite(v)) return undefined;
  const abs = Math.abs(v);
  if (abs >= 1e17) return Math.floor(v / 1e6);
  if (abs >= 1e14) return Math.floor(v / 1e3);
  if (abs >= 1e11) return Math.floor(v);
  // seconds: round to microseconds first so 1714564800.123 does not become ...122.9999
  return Math.floor(Math.round(v * 1e6) / 1e3);
}

/**
 * The time of a log event, as Vector reads it: `timestamp`, else `@timestamp`, `time`, `ts`
 * (the first of them that holds a readable value, see {@linkcode toEpochMs}), else `fallback`
 * (for objects from S3, the object's LastModified).
 *
 * @param record the event
 * @param fallback used when no field holds a readable time
 * @returns epoch milliseconds, or `undefined` when nothing is readable and there is no fallback
 *
 * @example
 * ```ts
 * import { extractTimestamp } from "./timestamp.ts";
 * extractTimestamp({ "@timestamp": "2024-05-01T12:00:00Z" }); // 1714564800000
 * extractTimestamp({ ts: 1714564800 }); // 1714564800000
 * extractTimestamp({ msg: "no time" }, new Date("2024-05-01T00:00:00Z")); // 1714521600000
 * ```
 */
export function extractTimestamp(record: LogRecord, fallback?: number | Date): number | undefined {
  for (const field of TIMESTAMP_FIELDS) {
    const value = record[field];
    if (value === undefined || value === null) continue;
    const ms = toEpochMs(value);
    if (ms !== undefined) return ms;
  }
  return fallback instanceof Date ? toEpochMs(fallback) : fallback;
}
