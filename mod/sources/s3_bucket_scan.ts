/**
 * Polling a bucket (or a prefix of it) for new objects whatever their key layout: every
 * `scan_interval`, list it and yield the objects not delivered yet, oldest LastModified first.
 *
 * State (a {@link CheckpointStore} file): a watermark (`state.watermark`, unix seconds of
 * LastModified) and the keys delivered within `lateness` behind it, so an object that shows up
 * late with an older LastModified is still read, once. An object that failed for a reason
 * retrying cannot fix (unknown tenant, invalid key) is recorded as done, its reason logged by
 * whoever failed it; one that failed otherwise is listed again by the next scan and holds the
 * watermark back until it is delivered, resuming after the records already delivered
 * (`progress`); one the pipeline quarantined is recorded in `quarantined` and read again only
 * when re-queued (`edge-agent route requeue s3://bucket/key`). Without a state
 * file, every object already in the bucket is new.
 * @module
 */

import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../log/logger.ts";
import { CheckpointStore } from "../pipeline/checkpoint.ts";
import { nonRecoverable } from "../pipeline/non_recoverable_error.ts";
import type { QuarantineRecord } from "../pipeline/types.ts";
import { openS3Object, type S3ObjectSource, type S3ObjectUnit } from "./s3_object.ts";
import { scanLoop } from "./scan_loop.ts";

/** Options for {@link S3BucketScanSource}. */
export interface S3BucketScanOptions {
  client: S3Client;
  bucket: string;
  /** Only keys under this prefix. @default "" */
  prefix?: string;
  /** The checkpoint file. */
  stateFile: string;
  /** @default 10000 */
  scanInterval?: number;
  /** How far behind the watermark late objects are still picked up, ms. @default 600000 */
  lateness?: number;
  /** One scan, then end. @default false */
  once?: boolean;
  log: Logger;
}

interface Found {
  key: string;
  /** LastModified, unix seconds. */
  time: number;
  size?: number;
}

/** New objects of a bucket as units; acks advance the checkpoint. */
export class S3BucketScanSource implements S3ObjectSource {
  readonly kind = "s3";
  readonly #o: Required<S3BucketScanOptions>;
  readonly #store: CheckpointStore;
  readonly #inflight = new Map<string, number>();
  /** Failed, to be read again: they hold the watermark back so that it never passes them. */
  readonly #failed = new Map<string, number>();
  /** Re-queued keys, listed by the next scan whatever their time. */
  readonly #requeued = new Set<string>();

  constructor(o: S3BucketScanOptions) {
    if (!o.bucket || o.bucket.startsWith("s3://")) {
      throw new TypeError(`source_bucket must be a bucket name without "s3://": got "${o.bucket}"`);
    }
    this.#o = { prefix: "", scanInterval: 10_000, lateness: 600_000, once: false, ...o };
    this.#store = new CheckpointStore(o.stateFile, { log: o.log });
  }

  get #watermark(): number {
    return this.#store.get<number>("watermark") ?? 0;
  }

  async *units(signal: AbortSignal): AsyncIterable<S3ObjectUnit> {
    await this.#store.load();
    yield* scanLoop({
      ...this.#o,
      inflight: this.#inflight,
      failed: this.#failed,
      requeue: (key) => {
        // No longer done nor quarantined: listed by the next scan whatever its time.
        if (!this.#store.requeue(key)) return false;
        this.#requeued.add(key);
        return true;
      },
      scan: (s) => this.#scan(s),
      unit: (f: Found) => this.#unit(f),
    }, signal);
  }

  async #scan(signal: AbortSignal): Promise<Found[]> {
    const floor = this.#watermark - Math.floor(this.#o.lateness / 1000);
    const out: Found[] = [];
    let token: string | undefined;
    do {
      const page = await this.#o.client.send(
        new ListObjectsV2Command({
          Bucket: this.#o.bucket,
          ...(this.#o.prefix && { Prefix: this.#o.prefix }),
          ...(token && { ContinuationToken: token }),
        }),
        { abortSignal: signal },
      );
      for (const obj of page.Contents ?? []) {
        const key = obj.Key!;
        const time = Math.floor((obj.LastModified?.getTime() ?? 0) / 1000);
        if (this.#requeued.delete(key)) {
          out.push({ key, time, ...(obj.Size !== undefined && { size: obj.Size }) });
          continue;
        }
        if (time <= floor || this.#store.isDone(key) || this.#inflight.has(key)) continue;
        out.push({ key, time, ...(obj.Size !== undefined && { size: obj.Size }) });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => a.time - b.time || (a.key < b.key ? -1 : 1));
  }

  #unit(f: Found): S3ObjectUnit {
    const { client, bucket } = this.#o;
    const done = (lines: number, consumed: number) => {
      this.#inflight.delete(f.key);
      this.#store.markDone(f.key, { lines, consumed });
      this.#advance(f.time);
      return Promise.resolve();
    };
    const resume = this.#store.getProgress(f.key);
    return {
      id: `s3://${bucket}/${f.key}`,
      bucket,
      key: f.key,
      time: f.time * 1000,
      ...(f.size !== undefined && { size: f.size }),
      ...(resume > 0 && { resumeItems: resume }),
      open: (signal) => openS3Object(client, bucket, f.key, signal),
      progress: (items) => this.#store.setProgress(f.key, items),
      ack: (r) => done(r.lines + (r.resumed ?? 0), r.consumed),
      quarantine: (record, r) => {
        this.#inflight.delete(f.key);
        this.#store.markQuarantined(f.key, record, {
          lines: r.lines + (r.resumed ?? 0),
          consumed: r.consumed,
        });
        this.#advance(f.time);
        return Promise.resolve();
      },
      nack: (e) => {
        if (nonRecoverable(e)) return done(0, 0);
        this.#inflight.delete(f.key); // listed again by the next scan
        this.#failed.set(f.key, f.time);
        return Promise.resolve();
      },
    };
  }

  /** The objects quarantined, as recorded in the checkpoint. */
  quarantined(): QuarantineRecord[] {
    return [...this.#store.quarantined()].map(([, r]) => r);
  }

  /** The oldest object listed and not yet delivered or quarantined (ms since epoch). */
  oldestPending(): number | undefined {
    let oldest: number | undefined;
    for (const pending of [this.#inflight, this.#failed]) {
      for (const t of pending.values()) if (oldest === undefined || t < oldest) oldest = t;
    }
    return oldest === undefined ? undefined : oldest * 1000;
  }

  /** Watermark = newest done object, never past one still in flight; forget old keys. */
  #advance(time: number): void {
    let newest = Math.max(this.#watermark, time);
    for (const pending of [this.#inflight, this.#failed]) {
      for (const t of pending.values()) if (t - 1 < newest) newest = t - 1;
    }
    if (newest > this.#watermark) this.#store.set("watermark", newest);
    const floorMs = (this.#watermark - Math.floor(this.#o.lateness / 1000)) * 1000;
    this.#store.prune((_, d) => d.at <= floorMs);
  }

  async close(): Promise<void> {
    await this.#store.close();
  }
}
