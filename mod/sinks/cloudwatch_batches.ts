/**
 * The CloudWatch Logs PutLogEvents limits, and cutting a stream's events into requests that
 * respect them: at most 10,000 events, at most 1,048,576 bytes counting each message's UTF-8
 * bytes plus 26, in chronological order, spanning less than 24 hours; events older than 14 days
 * or more than 2 hours in the future are refused by the service, so they are set aside up front
 * (and counted by the caller) instead of being sent.
 * @module
 */

/** PutLogEvents limits (AWS documentation, CloudWatch Logs quotas). */
export const PUT_LOG_EVENTS = {
  maxEvents: 10_000,
  maxBytes: 1_048_576,
  eventOverhead: 26,
  maxSpanMs: 24 * 3600_000,
  maxAgeMs: 14 * 24 * 3600_000,
  maxFutureMs: 2 * 3600_000,
} as const;

/** An event on its way to a log stream. `bytes` is the message's UTF-8 length. */
export interface TimedEvent {
  timestamp: number;
  message: string;
  bytes: number;
}

/** Options for {@link planPutLogEvents}. */
export interface PlanOptions {
  /** Events per request (≤ 10,000). @default 10000 */
  maxEvents?: number;
  /** Bytes per request, 26 per event included (≤ 1,048,576). @default 1048576 */
  maxBytes?: number;
  /** A request's events span less than this, ms. @default 86400000 */
  maxSpanMs?: number;
}

/**
 * Sort `events` chronologically (stable: equal timestamps keep their order) and cut them into
 * PutLogEvents requests within the limits.
 *
 * @throws {RangeError} when a limit is above the service's.
 */
export function planPutLogEvents<E extends TimedEvent>(
  events: readonly E[],
  {
    maxEvents = PUT_LOG_EVENTS.maxEvents,
    maxBytes = PUT_LOG_EVENTS.maxBytes,
    maxSpanMs = PUT_LOG_EVENTS.maxSpanMs,
  }: PlanOptions = {},
): E[][] {
  if (!(maxEvents >= 1 && maxEvents <= PUT_LOG_EVENTS.maxEvents)) {
    throw new RangeError(`maxEvents must be within 1..10000: got ${maxEvents}`);
  }
  if (!(maxBytes > PUT_LOG_EVENTS.eventOverhead && maxBytes <= PUT_LOG_EVENTS.maxBytes)) {
    throw new RangeError(`maxBytes must be within 27..1048576: got ${maxBytes}`);
  }
  const sorted = events.toSorted((a, b) => a.timestamp - b.timestamp);
  const out: E[][] = [];
  let cur: E[] = [];
  let bytes = 0;
  for (const e of sorted) {
    const size = e.bytes + PUT_LOG_EVENTS.eventOverhead;
    if (
      cur.length > 0 &&
      (cur.length >= maxEvents || bytes + size > maxBytes ||
        e.timestamp - cur[0]!.timestamp >= maxSpanMs)
    ) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(e);
    bytes += size;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Why an event is refused before sending. */
export type Refusal = "too_old" | "too_new";

/**
 * Whether the service would refuse an event for its time: older than 14 days, or more than
 * 2 hours ahead of `now`.
 */
export function refusal(timestamp: number, now: number): Refusal | undefined {
  if (timestamp < now - PUT_LOG_EVENTS.maxAgeMs) return "too_old";
  if (timestamp > now + PUT_LOG_EVENTS.maxFutureMs) return "too_new";
  return undefined;
}
