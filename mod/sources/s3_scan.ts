/**
 * S3 prefix scanning for Hive-partitioned log feeds (`<prefix>/year=YYYY/month=M/day=D/`, files
 * named `<unix_ts>_<id>_<id>_<seq>[.gz]`): every `scan_interval`, list only the day partitions
 * that can hold new files and yield the files older than `delay_window`, oldest first.
 *
 * The reference streamer kept only "last processed timestamp", which loses a file that lands
 * late with a timestamp at or below it. Here the state is the watermark plus the keys already
 * delivered within `lateness` behind it: a late file is still picked up, exactly once, and the
 * set stays bounded (keys older than watermark − lateness are forgotten).
 *
 * The watermark never passes a file that is neither delivered nor quarantined: a file whose
 * attempt failed (a destination down) holds it back until it is delivered, so it is listed
 * again at every scan however long the outage lasts. Files in flight keep how many of their
 * lines were delivered (in `<state_file>.progress`, see progress_file.ts), so a retry or a restart
 * resumes after them. A file that
 * failed for good is quarantined (`quarantined` in the state), not read again until
 * `edge-agent stream requeue s3://bucket/key`.
 *
 * A state file in the reference's format (`last_processed_timestamp` only, no `done`) means
 * every file at or below that timestamp was delivered (`done_through`).
 * @module
 */

import { dirname } from "node:path";
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../log/logger.ts";
import { removeStaleTemps, writeFileAtomic } from "../pipeline/atomic_file.ts";
import { ProgressFile } from "../pipeline/progress_file.ts";
import type { QuarantineRecord, Source, Unit, UnitResult } from "../pipeline/types.ts";
import { fileTime } from "./file_time.ts";
import { openS3Object } from "./s3_object.ts";
import { scanLoop } from "./scan_loop.ts";

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
  /**
   * Every file at or below this timestamp is delivered: set when a reference state file (no
   * `done`) was read, dropped once the watermark is `lateness` past it.
   */
  done_through?: number;
  /** Files that failed for good, by key (also in `done` while within `lateness`). */
  quarantined?: Record<string, QuarantineRecord & { time: number }>;
}

/** Quarantine records kept in the state at most (the oldest are dropped past this). */
const MAX_QUARANTINED = 1000;

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
  /** Failed, to be read again: they hold the watermark back so that it never passes them. */
  #failed = new Map<string, number>();
  #progress: ProgressFile;
  #quarantined = new Map<string, QuarantineRecord & { time: number }>();
  /** Re-queued files, read at the next scan whatever their time. */
  #requeued = new Map<string, number>();
  #doneThrough: number | undefined;
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
    this.#progress = new ProgressFile(`${o.stateFile}.progress`, o.log);
  }

  /** The watermark (unix seconds): every file at or below it, minus `lateness`, is done. */
  get watermark(): number {
    return this.#watermark;
  }

  /** Load the state file, or start at now − delay_window when there is none. */
  async load(): Promise<void> {
    try {
      await Deno.mkdir(dirname(this.#o.stateFile), { recursive: true });
    } catch (e) {
      throw new Error(
        `cannot create the directory of state file ${this.#o.stateFile}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    const removed = await this.#removeStaleTemps();
    if (removed > 0) {
      this.#o.log.info("removed temp files of a killed writer", {
        state_file: this.#o.stateFile,
        files: removed,
      });
    }
    await this.#progress.load();
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
    for (const [k, q] of Object.entries(state.quarantined ?? {})) this.#quarantined.set(k, q);
    // The reference kept no done set: what it checkpointed was delivered.
    this.#doneThrough = state.done === undefined
      ? state.last_processed_timestamp
      : state.done_through;
    for (const k of this.#progress.ids()) {
      if (this.#done.has(k) || this.#quarantined.has(k)) this.#progress.delete(k);
    }
  }

  /** The files quarantined, as recorded in the state. */
  quarantined(): QuarantineRecord[] {
    return [...this.#quarantined.values()].map(({ time: _, ...r }) => r);
  }

  /** Delivered or quarantined, and not being read again. */
  #finished(key: string): boolean {
    return (this.#done.has(key) || this.#quarantined.has(key)) && !this.#inflight.has(key) &&
      !this.#failed.has(key) && !this.#requeued.has(key);
  }

  /** The oldest file listed and not yet delivered or quarantined (ms since epoch). */
  oldestPending(): number | undefined {
    let oldest: number | undefined;
    for (const t of [...this.#inflight.values(), ...this.#failed.values()]) {
      if (oldest === undefined || t < oldest) oldest = t;
    }
    return oldest === undefined ? undefined : oldest * 1000;
  }

  /** Persist the state atomically (coalesced: at most one write in flight). */
  save(): Promise<void> {
    this.#dirty = true;
    this.#saving = this.#saving.catch(() => {}).then(async () => {
      if (!this.#dirty) return;
      this.#dirty = false;
      const state: ScanState = {
        last_processed_timestamp: this.#watermark,
        last_processed_time: new Date(this.#watermark * 1000).toISOString().replace(".000", ""),
        done: Object.fromEntries(this.#done),
        ...(this.#doneThrough !== undefined && { done_through: this.#doneThrough }),
        ...(this.#quarantined.size > 0 &&
          { quarantined: Object.fromEntries(this.#quarantined) }),
      };
      // Files finished now need no progress once this write has recorded them.
      const finished = this.#progress.ids().filter((k) => this.#finished(k));
      await writeFileAtomic(this.#o.stateFile, JSON.stringify(state, null, 1) + "\n");
      for (const k of finished) if (this.#finished(k)) this.#progress.delete(k);
    });
    return this.#saving;
  }

  async *units(signal: AbortSignal): AsyncIterable<Unit> {
    await this.load();
    yield* scanLoop({
      ...this.#o,
      inflight: this.#inflight,
      failed: this.#failed,
      requeue: (key) => {
        // Forgotten as done and quarantined: read at the next scan.
        const q = this.#quarantined.get(key);
        if (!q) return false;
        this.#quarantined.delete(key);
        this.#done.delete(key);
        this.#progress.delete(key);
        this.#requeued.set(key, q.time);
        return true;
      },
      requeued: () => this.save(),
      scan: (s) => this.scan(s),
      unit: (f: { key: string; time: number; size?: number }) => this.#unit(f.key, f.time, f.size),
    }, signal);
  }

  /** List the partitions that can hold new files; the eligible files, oldest first. */
  async scan(signal?: AbortSignal): Promise<{ key: string; time: number; size?: number }[]> {
    const now = Math.floor(this.#o.now() / 1000);
    const horizon = Math.floor((this.#o.now() - this.#o.delayWindow) / 1000);
    const floor = this.#watermark - Math.floor(this.#o.lateness / 1000);
    const out: { key: string; time: number; size?: number }[] = [];
    const seen = new Set<string>();
    let from = floor;
    for (const t of this.#requeued.values()) from = Math.min(from, t - 1);
    for (const p of dayPrefixes(this.#o.prefix, from, now)) {
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
          if (this.#requeued.delete(key)) {
            out.push({ key, time, ...(obj.Size !== undefined && { size: obj.Size }) });
            continue;
          }
          if (time > horizon || time <= floor) continue;
          if (this.#doneThrough !== undefined && time <= this.#doneThrough) continue;
          if (this.#done.has(key) || this.#inflight.has(key)) continue;
          out.push({ key, time, ...(obj.Size !== undefined && { size: obj.Size }) });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    }
    // A failed or re-queued file that is gone no longer holds anything back.
    for (const k of [...this.#failed.keys()]) if (!seen.has(k)) this.#failed.delete(k);
    for (const k of [...this.#requeued.keys()]) if (!seen.has(k)) this.#requeued.delete(k);
    out.sort((a, b) => a.time - b.time || (a.key < b.key ? -1 : 1));
    return out;
  }

  #unit(key: string, time: number, size?: number): Unit {
    const { client, bucket } = this.#o;
    const resume = this.#progress.get(key) ?? 0;
    return {
      id: `s3://${bucket}/${key}`,
      time: time * 1000,
      ...(size !== undefined && { size }),
      ...(resume > 0 && { resumeItems: resume }),
      open: (signal) => openS3Object(client, bucket, key, signal),
      progress: (items) => this.#progress.set(key, items),
      ack: async (_r: UnitResult) => {
        this.#inflight.delete(key);
        this.#done.set(key, time);
        this.#advance();
        await this.save();
      },
      quarantine: async (record: QuarantineRecord) => {
        this.#inflight.delete(key);
        this.#done.set(key, time);
        this.#quarantined.set(key, { ...record, time });
        for (const k of this.#quarantined.keys()) {
          if (this.#quarantined.size <= MAX_QUARANTINED) break;
          this.#quarantined.delete(k);
        }
        this.#advance();
        await this.save();
      },
      nack: (_e: Error) => {
        // Not done: it holds the watermark back and the next scan lists it again.
        this.#inflight.delete(key);
        this.#failed.set(key, time);
        return Promise.resolve();
      },
    };
  }

  /** Watermark = newest done file, but never past a file still in flight; prune old keys. */
  #advance(): void {
    let newest = this.#watermark;
    for (const t of this.#done.values()) if (t > newest) newest = t;
    for (const t of this.#inflight.values()) if (t - 1 < newest) newest = t - 1;
    for (const t of this.#failed.values()) if (t - 1 < newest) newest = t - 1;
    if (newest > this.#watermark) this.#watermark = newest;
    const floor = this.#watermark - Math.floor(this.#o.lateness / 1000);
    for (const [k, t] of this.#done) {
      if (t > floor) continue;
      this.#done.delete(k);
      this.#progress.delete(k);
    }
    if (this.#doneThrough !== undefined && this.#doneThrough <= floor) {
      this.#doneThrough = undefined;
    }
  }

  async close(): Promise<void> {
    await this.#saving;
    await this.#progress.flush();
    await this.#removeStaleTemps();
  }

  /** Temp files a killed agent left beside the state and progress files. */
  async #removeStaleTemps(): Promise<number> {
    return await removeStaleTemps(this.#o.stateFile) +
      await removeStaleTemps(this.#progress.path);
  }
}
