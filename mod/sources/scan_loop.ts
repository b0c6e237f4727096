/**
 * The listing loop both S3 scanning sources share (`s3_scan.ts` for stream, `s3_bucket_scan.ts`
 * for route): take re-queue requests, list, mark everything found as in flight at once (so the
 * watermark never passes a file that is still queued), hand the units out as the pipeline's
 * workers free up, sleep, repeat. A failed listing is retried at the next interval (the first
 * one, or any with `once`, is thrown); SIGTERM during a listing ends the loop cleanly, and what
 * was found but not handed out holds the watermark back until a later run lists it again.
 * @module
 */

import type { Logger } from "../log/logger.ts";
import { takeRequeues } from "../pipeline/failure_policy.ts";
import { sleep } from "../pipeline/retry.ts";

/** What a listing found: an object key and its time (unix seconds). */
export interface Listed {
  key: string;
  time: number;
}

/** Options for {@link scanLoop}. */
export interface ScanLoopOptions<F extends Listed, U> {
  bucket: string;
  /** Scan once, then end. */
  once: boolean;
  /** Milliseconds between scans. */
  scanInterval: number;
  log: Logger;
  /** Keys handed out and not yet settled, with their times. */
  inflight: Map<string, number>;
  /** Keys to be listed again (failed, or found and not handed out), with their times. */
  failed: Map<string, number>;
  /** The state file whose `requeue` requests are taken before each scan. */
  stateFile: string;
  /**
   * Forget `key` as quarantined (and done) so the next scan lists it again.
   * @returns false when the key was not quarantined here.
   */
  requeue(key: string): boolean;
  /** After requeue requests were applied, e.g. to save the state. */
  requeued?(): Promise<void>;
  /** One listing. */
  scan(signal: AbortSignal): Promise<F[]>;
  /** The unit of a found object. */
  unit(found: F): U;
}

/**
 * Scan until `signal` aborts (or once), yielding a unit for every object a scan found.
 *
 * @throws the first listing's error, or any listing's with `once`.
 */
export async function* scanLoop<F extends Listed, U>(
  o: ScanLoopOptions<F, U>,
  signal: AbortSignal,
): AsyncIterable<U> {
  let scans = 0;
  while (!signal.aborted) {
    await applyRequeues(o);
    let found: F[];
    try {
      found = await o.scan(signal);
      scans++;
    } catch (e) {
      // SIGTERM during a listing: drain what is in flight, exit cleanly.
      if (signal.aborted) return;
      if (o.once || scans === 0) throw e;
      o.log.error("scan failed: retrying at the next interval", { bucket: o.bucket, error: e });
      await sleep(o.scanInterval, signal);
      continue;
    }
    for (const f of found) {
      o.failed.delete(f.key);
      o.inflight.set(f.key, f.time);
    }
    for (const [i, f] of found.entries()) {
      if (signal.aborted) {
        // Not handed out: they hold the watermark back, the next run lists them again.
        for (const rest of found.slice(i)) {
          o.inflight.delete(rest.key);
          o.failed.set(rest.key, rest.time);
        }
        return;
      }
      yield o.unit(f);
    }
    if (o.once) return;
    await sleep(o.scanInterval, signal);
  }
}

/** Apply the `requeue` requests waiting beside the state file (ids are `s3://bucket/key` or keys). */
async function applyRequeues<F extends Listed, U>(o: ScanLoopOptions<F, U>): Promise<void> {
  let ids: string[];
  try {
    ids = await takeRequeues(o.stateFile);
  } catch (e) {
    o.log.error("cannot take re-queued units", { error: e });
    return;
  }
  const prefix = `s3://${o.bucket}/`;
  for (const id of ids) {
    const key = id.startsWith(prefix) ? id.slice(prefix.length) : id;
    if (o.requeue(key)) o.log.info("re-queued: will be read again", { unit: id });
    else o.log.warn("requeue: not quarantined here, nothing to do", { unit: id });
  }
  if (ids.length > 0) await o.requeued?.();
}
