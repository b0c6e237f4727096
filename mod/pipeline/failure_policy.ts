/**
 * The data path's one failure policy, decided here for every mode:
 *
 * - **Retryable** (the destination is down, 5xx, 408, 429, throttling, timeouts, a sink that gave
 *   up after its `max_retries`, a download cut short): the unit is nacked and read again later,
 *   resuming after the items already delivered. It is never skipped: a source's watermark never
 *   passes a unit that is neither acked nor quarantined. Destination outages do not count as
 *   attempts against the unit; a failure of the unit's own reading does, and after
 *   `max_attempts` of those the unit is quarantined (reason `max_attempts`) when its source
 *   records quarantines (scans of S3 or a directory); SQS and Kafka units keep their own
 *   redelivery limits.
 * - **Permanent** (corrupt or unreadable input, content the destination refused for good): the
 *   unit is quarantined: one record in the source's state, one error log naming unit, offset and
 *   reason, `<source>_units_quarantined_total{reason}`, listed in /status, not read again until
 *   `edge-agent <mode> requeue ID`. Items a sink refused go to the dead letter (dead_letter.ts)
 *   and the rest of the unit is delivered. A source that cannot record a quarantine is nacked
 *   with a NonRecoverableError instead (an SQS source then deletes the message).
 *
 * We prefer a duplicate line to a lost one, and a quarantined unit to one retried forever.
 * @module
 */

import { DecodeError } from "./gzip.ts";
import { nonRecoverable } from "./non_recoverable_error.ts";

/** Attempts (unit-level failures) before a unit is quarantined, unless configured. */
export const DEFAULT_MAX_ATTEMPTS = 5;

/** How a failure of reading a unit is handled. */
export type Verdict =
  | { kind: "permanent"; reason: string; offset?: number }
  | { kind: "retry" };

const UNREADABLE = [
  Deno.errors.PermissionDenied,
  Deno.errors.IsADirectory,
  Deno.errors.NotFound,
  Deno.errors.InvalidData,
];

/**
 * Classify an error met while opening, reading or decoding a unit (not a sink's error: those
 * say `retryable` themselves).
 *
 * @param e the error (its cause chain is searched).
 * @returns `permanent` with a reason for corrupt, unreadable or gone input; else `retry`.
 */
export function classifyReadError(e: unknown): Verdict {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; depth++) {
    if (cur instanceof DecodeError) {
      return { kind: "permanent", reason: cur.reason, offset: cur.offset };
    }
    if (UNREADABLE.some((k) => cur instanceof k)) {
      return {
        kind: "permanent",
        reason: cur instanceof Deno.errors.NotFound ? "gone" : "unreadable",
      };
    }
    cur = cur.cause;
  }
  const permanent = nonRecoverable(e);
  return permanent ? { kind: "permanent", reason: permanent.reason } : { kind: "retry" };
}

/** The file beside a state file where `requeue` leaves ids for the running agent to take. */
export function requeuePath(stateFile: string): string {
  return `${stateFile}.requeue`;
}

/**
 * Ask the agent that owns `stateFile` to read quarantined units again: their ids are appended to
 * `<stateFile>.requeue`, which the source takes at start and at every scan (so this works with
 * the agent running or stopped).
 *
 * @param stateFile the mode's state file.
 * @param ids unit ids as listed in /status or the state (`s3://bucket/key`, `file:///path`).
 * @throws {Error} naming the file when it cannot be written.
 */
export async function requestRequeue(stateFile: string, ids: string[]): Promise<void> {
  const path = requeuePath(stateFile);
  try {
    await Deno.writeTextFile(path, ids.map((id) => id + "\n").join(""), { append: true });
  } catch (e) {
    throw new Error(`cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Take the ids waiting in `<stateFile>.requeue` (the file is removed).
 *
 * @returns the ids, in the order they were asked for; empty when there are none.
 */
export async function takeRequeues(stateFile: string): Promise<string[]> {
  const path = requeuePath(stateFile);
  const taking = `${path}.taking-${Deno.pid}`;
  try {
    await Deno.rename(path, taking);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw new Error(`cannot take ${path}: ${(e as Error).message}`, { cause: e });
  }
  const text = await Deno.readTextFile(taking);
  await Deno.remove(taking).catch(() => {});
  return text.split("\n").map((s) => s.trim()).filter(Boolean);
}
