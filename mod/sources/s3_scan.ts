/**
 * S3 prefix scanning for Hive-partitioned log feeds (`<prefix>/year=YYYY/month=M/day=D/`, files
 * named `<unix_ts>_<id>_<id>_<seq>[.gz]`): every `scan_interval`, list only the day partitions
 * that can hold new files and yield the files older than `delay_window`, oldest first.
 *
 * The reference streamer kept only "last processed timestamp", which loses a file that lands
 * late with a timestamp at or below it. Here the state is the watermark plus the keys already
 * delivered within `lateness` behind it: a late file is still picked up, exactly once, and the
 * set stays bounded (keys older than watermark − lateness are forgotten).
 * @module
 */

import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../log/logger.ts";
import { writeFileAtomic } from "../pipeline/atomic_file.ts";
import { sleep } from "../pipeline/retry.ts";
import type { Source, Unit, UnitResult } from "../pipeline/types.ts";
import { fileTime } from "./file_time.ts";
import { openS3Object } from "./s3_object.ts";

export { fileTime };

/**
 * The day-partition prefixes from the day of `fromSec` to the day of `toSec` (UTC), both the
 * reference's unpadded form (`month=3/day=7/`) and the zero-padded one (`month=03/day=07/`).
 */
export function dayPrefixes(prefix: string, fromSec: number, toSec: number): string[] {
  const base = prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
  const out = new Set<string>();
  const day = 86_400;
  for (let t = Math.floor(fromSec / day) * day; t <= toSec; t += day) {
    const d = new Date(t * 1000);
    const y = d.getUTCFullYear();
    const mo = d.getUTCMonth() + 1;
    const da = d.getUTCDate();
    out.add(`${base}year=${y}/month=${mo}/day=${da}/`);
    out.add(
      `${base}year=${y}/month=${String(mo).padStart(2, "0")}/day=${String(da).padStart(2, "0")}/`,
    );
  }
  return [...out];
}

/** The persisted scan state; `last_processed_*` keep the reference's state.json readable. */
export interface ScanState {
  last_processed_timestamp: number;
  last_processed_time?: string;
  /** Keys delivered within `lateness` behind the watermark, with their file time. */
  done?: Record<string, number>;
}

/** Options for {@link S3ScanSource}. */
export interface S3ScanOptions {
  client: S3Client;
  bucket: string;
  prefix: string;
  /** Where the watermark and recent keys are kept. */
  stateFile: string;
  /** @default 15_000 */
  scanInterval?: number;
  /** Files younger than this are left for a later scan. @default 60_000 */
  delayWindow?: number;
  /** How far behind the watermark late files are still picked up. @default 600_000 */
  lateness?: number;
  /** One scan, then end (tests, backfills). @default false */
  once?: boolean;
  log: Logger;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
  /** Called when a scan finds keys whose names carry no timestamp (skipped, counted). */
  onSkipped?: (key: string) => void;
}

/** Yields new S3 objects of a partitioned prefix as units; acks advance the watermark. */
export class S3ScanSource implements Source {
  readonly kind = "s3";
  #o: Required<Omit<S3ScanOptions, "onSkipped">> & Pick<S3ScanOptions, "onSkipped">;
  #watermark = 0;
  #done = new Map<string, number>();
  #inflight = new Map<string, number>();
  #saving: Promise<void> = Promise.resolve();
  #dirty = false;
  #skipped = new Set<string>();

  constructor(o: S3ScanOptions) {
    if (o.bucket.startsWith("s3://")) {
      throw new TypeError(`bucket must be a bucket name without "s3://": got ${o.bucket}`);
    }
    this.#o = {
      scanInterval: 15_000,
      delayWindow: 60_000,
      lateness: 600_000,
      once: false,
      now: Date.now,
      onSkipped: undefined,
      ...o,
    };
  }

  /** The watermark (unix seconds): every file at or below it, minus `lateness`, is done. */
  get watermark(): number {
    return this.#watermark;
  }

  /** Load the state file, or start at now − delay_window when there is none. */
  async load(): Promise<void> {
    let text: string | undefined;
    try {
      text = await Deno.readTextFile(this.#o.stateFile);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new Error(`cannot read state file ${this.#o.stateFile}`, { cause: e });
      }
    }
    if (text === undefined) {
      this.#watermark = Math.floor((this.#o.now() - this.#o.delayWindow) / 1000);
      this.#o.log.info("no state file: starting at now - delay_window", {
        state_file: this.#o.stateFile,
        watermark: this.#watermark,
      });
      return;
    }
    let state: ScanState;
    try {
      state = JSON.parse(text);
      if (typeof state.last_processed_timestamp !== "number") {
        throw new TypeError("last_processed_timestamp must be a number");
      }
    } catch (e) {
      throw new Error(
        `state file ${this.#o.stateFile} is not valid (delete it to start at now - delay_window)`,
        { cause: e },
      );
    }
    this.#watermark = state.last_processed_timestamp;
    for (const [k, t] of Object.entries(state.done ?? {})) this.#done.set(k, t);
  }

  /** Persist the state atomically (coalesced: at most one write in flight). */
  save(): Promise<void> {
    this.#dirty = true;
    this.#saving = this.#saving.then(async () => {
      if (!this.#dirty) return;
      this.#dirty = false;
      const state: ScanState = {
        last_processed_timestamp: this.#watermark,
        last_processed_time: new Date(this.#watermark * 1000).toISOString().replace(".000", ""),
        done: Object.fromEntries(this.#done),
      };
      await writeFileAtomic(this.#o.stateFile, JSON.stringify(state, null, 1) + "\n");
    });
    return this.#saving;
  }

  async *units(signal: AbortSignal): AsyncIterable<Unit> {
    await this.load();
    while (!signal.aborted) {
      const found = await this.scan(signal);
      // Everything found counts as in flight at once, so the watermark never passes a file
      // that is still queued. Units are pulled as the pipeline's workers free up.
      for (const { key, time } of found) this.#inflight.set(key, time);
      for (const [i, { key, time, size }] of found.entries()) {
        if (signal.aborted) {
          for (const rest of found.slice(i)) this.#inflight.delete(rest.key);
          return;
        }
        yield this.#unit(key, time, size);
      }
      if (this.#o.once) return;
      await sleep(this.#o.scanInterval, signal);
    }
  }

  /** List the partitions that can hold new files; the eligible files, oldest first. */
  async scan(signal?: AbortSignal): Promise<{ key: string; time: number; size?: number }[]> {
    const now = Math.floor(this.#o.now() / 1000);
    const horizon = Math.floor((this.#o.now() - this.#o.delayWindow) / 1000);
    const floor = this.#watermark - Math.floor(this.#o.lateness / 1000);
    const out: { key: string; time: number; size?: number }[] = [];
    const seen = new Set<string>();
    for (const p of dayPrefixes(this.#o.prefix, floor, now)) {
      let token: string | undefined;
      do {
        const page = await this.#o.client.send(
          new ListObjectsV2Command({
            Bucket: this.#o.bucket,
            Prefix: p,
            ...(token && { ContinuationToken: token }),
          }),
          signal ? { abortSignal: signal } : {},
        );
        for (const obj of page.Contents ?? []) {
          const key = obj.Key!;
          if (seen.has(key)) continue;
          seen.add(key);
          const time = fileTime(key);
          if (time === undefined) {
            if (!this.#skipped.has(key)) {
              this.#skipped.add(key);
              this.#o.log.warn("skipped: name carries no <unix_ts>_ timestamp", {
                unit: `s3://${this.#o.bucket}/${key}`,
              });
              this.#o.onSkipped?.(key);
            }
            continue;
          }
          if (time > horizon || time <= floor) continue;
          if (this.#done.has(key) || this.#inflight.has(key)) continue;
          out.push({ key, time, ...(obj.Size !== undefined && { size: obj.Size }) });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    }
    out.sort((a, b) => a.time - b.time || (a.key < b.key ? -1 : 1));
    return out;
  }

  #unit(key: string, time: number, size?: number): Unit {
    const { client, bucket } = this.#o;
    return {
      id: `s3://${bucket}/${key}`,
      time: time * 1000,
      ...(size !== undefined && { size }),
      open: (signal) => openS3Object(client, bucket, key, signal),
      ack: async (_r: UnitResult) => {
        this.#inflight.delete(key);
        this.#done.set(key, time);
        this.#advance();
        await this.save();
      },
      nack: (_e: Error) => {
        // Not done: the next scan lists it again (it is neither done nor in flight).
        this.#inflight.delete(key);
        return Promise.resolve();
      },
    };
  }

  /** Watermark = newest done file, but never past a file still in flight; prune old keys. */
  #advance(): void {
    let newest = this.#watermark;
    for (const t of this.#done.values()) if (t > newest) newest = t;
    for (const t of this.#inflight.values()) if (t - 1 < newest) newest = t - 1;
    if (newest > this.#watermark) this.#watermark = newest;
    const floor = this.#watermark - Math.floor(this.#o.lateness / 1000);
    for (const [k, t] of this.#done) if (t <= floor) this.#done.delete(k);
  }

  async close(): Promise<void> {
    await this.#saving;
  }
}
