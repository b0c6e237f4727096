/**
 * The data path, built once: source units → decode (gzip by magic bytes) → frame (lines or
 * records) → batch → sink, with acknowledgements flowing back so a unit is acked (checkpointed,
 * its message deleted) only after the last batch carrying its data was delivered.
 *
 * Each unit is a Web Streams pipe (`open() → DecodeStream → frame → WritableStream`) into one
 * shared batcher; full batches go to a sink pool that runs up to `workers` writes at once. When
 * every worker is busy the batcher's `add` waits, the unit's WritableStream stops pulling, and
 * the source stops reading: backpressure from the sink to the source, nothing dropped (unless
 * `drop_when_full` is set, and then every dropped line is counted).
 *
 * Failures follow one policy (failure_policy.ts): a retryable one nacks the unit (read again
 * later, resuming after the items already delivered), a permanent one quarantines it, items a
 * sink refused for good go to the dead letter.
 *
 * @example
 * ```ts
 * const stats = await runPipeline({ source, sink, metrics, log, signal });
 * ```
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import type { Health } from "../status/health.ts";
import { Batcher, type TaggedBatch } from "./batcher.ts";
import type { DeadLetter, DeadLetterEntry } from "./dead_letter.ts";
import { classifyReadError, DEFAULT_MAX_ATTEMPTS, type Verdict } from "./failure_policy.ts";
import { BufferPool, type DecodeOptions, type Decoder, decodeStream, readPooled } from "./gzip.ts";
import { LineStream } from "./line_stream.ts";
import { nonRecoverable, NonRecoverableError } from "./non_recoverable_error.ts";
import {
  BatchError,
  type QuarantineRecord,
  type Sink,
  SinkError,
  type Source,
  type Unit,
  type UnitResult,
} from "./types.ts";

/** The `processing:` settings every mode's data path shares. */
export const processingSpec = f.object({
  worker_count: f.int({
    description: "Units (files, blobs, messages) read and decoded in parallel",
    default: 15,
    min: 1,
    max: 1024,
  }),
  max_line_bytes: f.size({
    description: "Longer lines are cut here and counted in lines_truncated_total",
    default: "1MiB",
    min: 64,
  }),
}, { description: "How units are read" });

/** The batching settings, shared by every sink (the reference's http: keys). */
export const batchSpec = {
  batch_lines: f.int({
    description: "A batch is sent when it holds this many lines",
    default: 1000,
    min: 1,
  }),
  batch_bytes: f.size({
    description: "... or this many bytes (never exceeded unless one line is larger)",
    default: "1MiB",
    min: 1,
  }),
  flush_interval: f.duration({
    description: "... or when its oldest line has waited this long",
    default: "1s",
    min: "1ms",
  }),
  workers: f.int({ description: "Batches in flight at once", default: 10, min: 1, max: 1024 }),
  drop_when_full: f.bool({
    description:
      "Drop a batch (counted in <sink>_buffer_drops_total) instead of waiting when every worker is busy. Off: backpressure, nothing lost",
    default: false,
  }),
};

/** The `max_attempts` setting of a mode whose units can fail on their own. */
export const maxAttemptsField = f.int({
  description:
    "A unit whose own reading fails this many times (a download cut short, not a destination outage) is quarantined",
  default: DEFAULT_MAX_ATTEMPTS,
  min: 1,
});

/** The batching config type. */
export type BatchConfig = { [K in keyof typeof batchSpec]: Infer<(typeof batchSpec)[K]> };

/** Options for {@link runPipeline}. */
export interface PipelineOptions<T> {
  source: Source;
  sink: Sink<T>;
  metrics: Registry;
  log: Logger;
  /** Aborting stops taking new units; units in flight are drained and acked. */
  signal: AbortSignal;
  health?: Health;
  /** Unit reading settings. @default processingSpec defaults */
  processing?: Partial<Infer<typeof processingSpec>>;
  /** Batching settings. @default batchSpec defaults */
  batch?: Partial<BatchConfig>;
  /**
   * Turn a unit's decoded bytes into items; defaults to byte lines (LineStream). Parsers that
   * make records pass their own TransformStream.
   */
  frame?: (unit: Unit, decoder: Decoder) => ReadableWritablePair<T | T[], Uint8Array>;
  /** Decoder options (e.g. `allowTruncatedTail` for append blobs, `resync`). */
  decode?: DecodeOptions;
  /** Encoded size of an item. @default byte length + 1 (the newline) */
  sizeOf?: (item: T) => number;
  /** Unit-level failures before a unit is quarantined. @default 5 */
  maxAttempts?: number;
  /** Where items a sink refused for good are written; without it they are counted and logged. */
  deadLetter?: DeadLetter;
  /** The mode's name, for the requeue command in logs. */
  mode?: string;
}

/** Totals of one run. */
export interface PipelineStats {
  units: number;
  unitsFailed: number;
  unitsQuarantined: number;
  lines: number;
  bytes: number;
  compressedBytes: number;
  truncated: number;
  dropped: number;
  /** Items a sink refused for good (dead letter). */
  rejected: number;
  /** Input bytes passed over as corrupt. */
  skipped: number;
}

/** Items of one unit in one batch: its `end` (count from the unit's start) and whether settled. */
interface Range {
  end: number;
  done: boolean;
}

type Outcome = "acked" | "nacked" | "quarantined";

/**
 * One unit's attempt: counts its items in flight, knows how far it was delivered contiguously,
 * and settles the unit (ack, nack or quarantine) once its input is read and every batch
 * carrying its items has settled.
 */
class UnitTracker {
  readonly unit: Unit;
  readonly started = performance.now();
  /** Items skipped at the start: delivered by an earlier attempt. */
  readonly resumed: number;
  pending = 0;
  items = 0;
  bytes = 0;
  rejected = 0;
  rejection: { reason: string; message: string } | undefined;
  /** Why this attempt failed; `sink` failures are retried without counting an attempt. */
  failure: Error | undefined;
  failedBy: "sink" | "read" | undefined;
  verdict: Verdict | undefined;
  decoder: Decoder | undefined;
  inputDone = false;
  consumed = 0;
  truncated = 0;
  /** Where the first cut line starts (decoded bytes), when one was cut. */
  truncatedAt: number | undefined;
  #sealed: number;
  #acked: number;
  #ranges: Range[] = [];
  #settled: Promise<Outcome>;
  #resolve!: (v: Outcome) => void;
  #settle: () => Promise<Outcome>;
  #settling = false;
  readonly abort = new AbortController();

  constructor(unit: Unit, settle: (t: UnitTracker) => Promise<Outcome>) {
    this.unit = unit;
    this.resumed = Math.max(0, unit.resumeItems ?? 0);
    this.#sealed = this.#acked = this.resumed;
    this.#settled = new Promise((r) => this.#resolve = r);
    this.#settle = () => settle(this);
  }

  get settled(): Promise<Outcome> {
    return this.#settled;
  }

  added(n: number, bytes: number): void {
    this.pending += n;
    this.items += n;
    this.bytes += bytes;
  }

  /** `n` of the unit's items went into a closed batch (batches close in item order). */
  seal(n: number): Range {
    this.#sealed += n;
    const r = { end: this.#sealed, done: false };
    this.#ranges.push(r);
    return r;
  }

  /** A batch's items of this unit settled (delivered, refused for good, or dropped). */
  settle(r: Range): void {
    r.done = true;
    const before = this.#acked;
    while (this.#ranges[0]?.done) this.#acked = this.#ranges.shift()!.end;
    if (this.#acked > before) this.unit.progress?.(this.#acked);
  }

  delivered(n: number): void {
    this.pending -= n;
    this.#maybeSettle();
  }

  fail(e: Error, by: "sink" | "read"): void {
    if (!this.failure || (by === "sink" && this.failedBy === "read")) {
      // A destination outage wins over a read failure: retried later, not held against the unit.
      this.failure = e;
      this.failedBy = by;
    }
    this.abort.abort(e);
  }

  reject(n: number, reason: string, message: string): void {
    this.rejected += n;
    this.rejection ??= { reason, message };
  }

  done(consumed: number, truncated: number, truncatedAt?: number): void {
    if (this.inputDone) return;
    this.inputDone = true;
    this.consumed = consumed;
    this.truncated = truncated;
    this.truncatedAt = truncatedAt;
    this.#maybeSettle();
  }

  result(): UnitResult {
    const skipped = this.decoder?.skipped ?? 0;
    return {
      lines: this.items,
      bytes: this.bytes,
      consumed: this.consumed,
      truncated: this.truncated,
      ...(this.truncatedAt !== undefined && { truncatedAt: this.truncatedAt }),
      ...(skipped > 0 && { skipped }),
      ...(this.rejected > 0 && { rejected: this.rejected }),
      ...(this.resumed > 0 && { resumed: this.resumed }),
    };
  }

  #maybeSettle(): void {
    if (!this.inputDone || this.pending > 0 || this.#settling) return;
    this.#settling = true;
    this.#settle().then(this.#resolve, () => this.#resolve("nacked"));
  }
}

const lineSize = (item: unknown) => (item as Uint8Array).byteLength + 1;

/** Read buffers for units' bodies, shared by every pipeline of the process. */
const inputPool = new BufferPool(64 * 1024, 64);
const recycle = (chunk: Uint8Array) => inputPool.give(new Uint8Array(chunk.buffer));

/**
 * Run the data path until the source ends or `signal` aborts and in-flight units are drained.
 *
 * @returns totals of the run.
 */
export async function runPipeline<T = Uint8Array>(
  opts: PipelineOptions<T>,
): Promise<PipelineStats> {
  const { source, sink, metrics, log, signal, health, deadLetter } = opts;
  const processing = { worker_count: 15, max_line_bytes: 1 << 20, ...opts.processing };
  const batch: BatchConfig = {
    batch_lines: 1000,
    batch_bytes: 1 << 20,
    flush_interval: 1000,
    workers: 10,
    drop_when_full: false,
    ...opts.batch,
  };
  const maxAttempts = opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const sizeOf = opts.sizeOf ?? lineSize;
  const src = source.kind;
  const snk = sink.kind;
  const m = {
    processed: metrics.counter(`${src}_files_processed_total`, `Units (files) fully delivered`),
    bytesIn: metrics.counter(`${src}_bytes_processed_total`, `Input bytes read (compressed)`),
    errored: metrics.counter(
      `${src}_files_errored_total`,
      `Unit attempts that failed and will be retried (not checkpointed)`,
    ),
    quarantined: metrics.counter(
      `${src}_units_quarantined_total`,
      `Units that failed for good: recorded, not read again until re-queued`,
      ["reason"],
    ),
    skipped: metrics.counter(
      `${src}_bytes_skipped_total`,
      `Input bytes passed over as corrupt (the gzip members around them were delivered)`,
    ),
    latency: metrics.histogram(
      `${src}_processing_latency_seconds`,
      `Time from starting a unit to its last batch acknowledged`,
    ),
    lag: metrics.gauge(
      "processing_lag_seconds",
      "Now minus the time of the oldest unit not yet acked or quarantined (updated every second); grows while a destination is down",
    ),
    deliveredLag: metrics.gauge(
      "processing_delivered_lag_seconds",
      "Now minus the last delivered unit's timestamp, at its delivery",
    ),
    truncated: metrics.counter("lines_truncated_total", "Lines cut at max_line_bytes"),
    batches: metrics.counter(`${snk}_batches_sent_total`, `Batches delivered`),
    lines: metrics.counter(`${snk}_lines_sent_total`, `Lines delivered`),
    bytesOut: metrics.counter(`${snk}_bytes_sent_total`, `Bytes delivered`),
    drops: metrics.counter(`${snk}_buffer_drops_total`, `Lines dropped (drop_when_full)`),
    rejected: metrics.counter(
      `${snk}_items_rejected_total`,
      `Items the destination refused for good, written to the dead letter`,
      ["reason"],
    ),
    inflight: metrics.gauge("units_in_flight", "Units being read or awaiting delivery"),
  };
  const stats: PipelineStats = {
    units: 0,
    unitsFailed: 0,
    unitsQuarantined: 0,
    lines: 0,
    bytes: 0,
    compressedBytes: 0,
    truncated: 0,
    dropped: 0,
    rejected: 0,
    skipped: 0,
  };
  /** Unit-level failed attempts by unit id (destination outages are not counted). */
  const attempts = new Map<string, number>();
  const trackers = new Set<UnitTracker>();
  /** When each failing unit was last warned about. */
  const warned = new Map<string, number>();

  // Lag: the oldest unit not yet acked, the source's waiting ones included.
  const updateLag = () => {
    let oldest = source.oldestPending?.();
    for (const t of trackers) {
      const time = t.unit.time;
      if (time !== undefined && (oldest === undefined || time < oldest)) oldest = time;
    }
    m.lag.set(oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000));
  };
  const lagTimer = setInterval(updateLag, 1000);
  Deno.unrefTimer(lagTimer);

  // Sink side: up to `workers` writes at once; `submit` waits for a free worker.
  const inflight = new Set<Promise<void>>();
  const sinkAbort = new AbortController();
  const refused = (
    b: TaggedBatch<T, UnitTracker>,
    err: Error & { reason?: string },
    owner: readonly UnitTracker[],
    retrying: ReadonlySet<UnitTracker>,
  ): Map<UnitTracker, number> => {
    // Items refused for good: the failed ones of a BatchError, else the whole batch.
    const reason = err.reason ?? "rejected";
    const failed = err instanceof BatchError
      ? err.failed
      : Array.from({ length: b.count }, (_, index) => ({ index, reason, message: undefined }));
    const items = b.items;
    const per = new Map<UnitTracker, number>();
    const entries: DeadLetterEntry[] = [];
    for (const f of failed) {
      const t = owner[f.index];
      // A unit retried (see `retrying`) sends its refused items again and judges them then.
      if (!t || retrying.has(t)) continue;
      per.set(t, (per.get(t) ?? 0) + 1);
      t.reject(1, f.reason, f.message ?? err.message);
      m.rejected.inc(1, { reason: f.reason });
      entries.push({
        unit: t.unit.id,
        reason: f.reason,
        message: f.message ?? err.message,
        item: items[f.index],
      });
    }
    stats.rejected += entries.length;
    deadLetter?.write(entries).catch((e) => {
      log.error("dead letter write failed: refused items only counted", {
        dead_letter: deadLetter.path,
        items: entries.length,
        error: e,
      });
    });
    return per;
  };
  const deliver = (b: TaggedBatch<T, UnitTracker>, ranges: Map<UnitTracker, Range>) => {
    const p = sink.write(b, sinkAbort.signal).then(() => {
      m.batches.inc();
      m.lines.inc(b.count);
      m.bytesOut.inc(b.bytes);
      health?.set(`sink:${snk}`, true);
      for (const [t, n] of b.tags) {
        t.settle(ranges.get(t)!);
        t.delivered(n);
      }
    }, (e) => {
      const permanent = e instanceof SinkError ? (e.retryable ? undefined : e) : nonRecoverable(e);
      if (permanent) {
        // Units with an item that may go through later are retried; the others are settled.
        const owner: UnitTracker[] = [];
        for (const [t, n] of b.runs) for (let i = 0; i < n; i++) owner.push(t);
        const retrying = new Set<UnitTracker>();
        if (permanent instanceof BatchError) {
          for (const f of permanent.failed) {
            const t = owner[f.index];
            if (f.retryable && t) retrying.add(t);
          }
        }
        const per = refused(b, permanent, owner, retrying);
        let retried = 0;
        for (const [t, n] of b.tags) if (retrying.has(t)) retried += n;
        m.lines.inc(b.count - retried - [...per.values()].reduce((a, n) => a + n, 0));
        if (retrying.size === 0) health?.set(`sink:${snk}`, true);
        else health?.set(`sink:${snk}`, false, errorChain(permanent));
        const retry = new SinkError(errorChain(permanent), { cause: permanent, retryable: true });
        for (const [t, n] of b.tags) {
          if (retrying.has(t)) t.fail(retry, "sink");
          else t.settle(ranges.get(t)!);
          t.delivered(n);
        }
        return;
      }
      const err = e instanceof SinkError ? e : new SinkError(errorChain(e), { cause: e });
      health?.set(`sink:${snk}`, false, errorChain(err));
      for (const [t, n] of b.tags) {
        t.fail(err, "sink");
        t.delivered(n);
      }
    }).finally(() => {
      inflight.delete(p);
      batcher.recycle(b);
    });
    inflight.add(p);
  };
  const batcher = new Batcher<T, UnitTracker>({
    batchLines: batch.batch_lines,
    batchBytes: batch.batch_bytes,
    flushInterval: batch.flush_interval,
    sizeOf,
    // Byte lines are copied into the batch's own reused buffer (its body): decoded chunks are
    // then free for the decoder to reuse as soon as their lines are added.
    copyLines: !opts.frame,
    keepBuffers: batch.workers + 2,
    onBatch: async (b) => {
      // Batches close in order: each unit's items in this one follow those in the last one.
      const ranges = new Map<UnitTracker, Range>();
      for (const [t, n] of b.tags) ranges.set(t, t.seal(n));
      if (inflight.size >= batch.workers && batch.drop_when_full) {
        m.drops.inc(b.count);
        stats.dropped += b.count;
        log.warn("sink busy: batch dropped (drop_when_full)", { lines: b.count });
        for (const [t, n] of b.tags) {
          t.settle(ranges.get(t)!);
          t.delivered(n);
        }
        batcher.recycle(b);
        return;
      }
      while (inflight.size >= batch.workers) await Promise.race(inflight);
      deliver(b, ranges);
    },
  });

  /** Quarantine: one record, one error log, one count; the source stops reading the unit. */
  const quarantine = async (
    t: UnitTracker,
    reason: string,
    message: string,
    offset: number | undefined,
    tries: number,
  ): Promise<Outcome> => {
    const unit = t.unit;
    const result = t.result();
    const record: QuarantineRecord = {
      id: unit.id,
      reason,
      message,
      ...(offset !== undefined && { offset }),
      at: Date.now(),
      attempts: tries,
      lines: t.resumed + t.items,
      ...(result.skipped !== undefined && { skipped: result.skipped }),
      ...(result.rejected !== undefined && { rejected: result.rejected }),
    };
    m.quarantined.inc(1, { reason });
    stats.unitsQuarantined++;
    attempts.delete(unit.id);
    health?.recordQuarantine(record);
    const fields = {
      unit: unit.id,
      reason,
      ...(offset !== undefined && { offset }),
      error: message,
      lines_delivered: record.lines,
      ...(result.skipped !== undefined && { bytes_skipped: result.skipped }),
      ...(result.rejected !== undefined && { items_dead_lettered: result.rejected }),
      attempts: tries,
    };
    if (unit.quarantine) {
      log.error("unit quarantined: not read again until re-queued", {
        ...fields,
        requeue: `edge-agent ${opts.mode ?? "<mode>"} requeue ${unit.id}`,
      });
    } else log.error("unit failed for good: its source is told not to retry it", fields);
    if (unit.quarantine) await unit.quarantine(record, result);
    else if (t.failure) {
      await unit.nack(new NonRecoverableError(message, { reason, cause: t.failure }));
    } else await unit.ack(result);
    return "quarantined";
  };

  /** The policy: decide how a unit whose attempt is over settles. */
  const settle = async (t: UnitTracker): Promise<Outcome> => {
    const unit = t.unit;
    if (t.failure && t.failedBy === "sink") {
      await unit.nack(t.failure);
      return "nacked";
    }
    if (t.failure) {
      const v = t.verdict ?? classifyReadError(t.failure);
      const tries = (attempts.get(unit.id) ?? 0) + 1;
      if (v.kind === "permanent") {
        return await quarantine(t, v.reason, errorChain(t.failure), v.offset, tries);
      }
      // A source that cannot record a quarantine (SQS, Kafka) keeps its own redelivery limits.
      if (tries >= maxAttempts && unit.quarantine) {
        return await quarantine(
          t,
          "max_attempts",
          `${unit.id} failed ${tries} times (max_attempts ${maxAttempts}); last: ${
            errorChain(t.failure)
          }`,
          undefined,
          tries,
        );
      }
      attempts.set(unit.id, tries);
      await unit.nack(t.failure);
      return "nacked";
    }
    const fault = t.decoder?.faults[0];
    if (fault) {
      const more = t.decoder!.faults.length - 1;
      return await quarantine(
        t,
        fault.reason,
        `${unit.id}: ${fault.message}; ${t.decoder!.skipped} bytes skipped${
          more > 0 ? ` in ${more + 1} places` : ""
        }, the members around them delivered`,
        fault.offset,
        (attempts.get(unit.id) ?? 0) + 1,
      );
    }
    if (t.rejection) {
      return await quarantine(
        t,
        t.rejection.reason,
        `${unit.id}: ${t.rejected} item(s) refused by the destination, written to the dead letter: ${t.rejection.message}`,
        undefined,
        (attempts.get(unit.id) ?? 0) + 1,
      );
    }
    attempts.delete(unit.id);
    await unit.ack(t.result());
    return "acked";
  };

  // Source side: up to worker_count units piped at once.
  let sourceDone = false;
  const running = new Set<Promise<void>>();
  const settling = new Set<Promise<void>>();
  const readUnit = async (unit: Unit) => {
    const t = new UnitTracker(unit, settle);
    trackers.add(t);
    m.inflight.inc();
    let decoder: ReturnType<typeof decodeStream> | undefined;
    let framer: LineStream | undefined;
    try {
      // Downloads are read into pooled buffers that the decoder gives back when done with them.
      const body = readPooled(await unit.open(t.abort.signal), inputPool);
      decoder = t.decoder = decodeStream({ ...opts.decode, recycleInput: recycle });
      let counted = 0;
      const counter = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          counted += chunk.byteLength;
          c.enqueue(chunk);
        },
      });
      // A retried unit skips the items an earlier attempt delivered.
      let skip = t.resumed;
      const add = (item: T) => {
        if (skip > 0) {
          skip--;
          return;
        }
        t.added(1, sizeOf(item) - 1);
        return batcher.add(item, t);
      };
      const addAll = async (items: T[]) => {
        for (const item of items) {
          const wait = add(item);
          if (wait) await wait;
        }
      };
      const decoded = body.pipeThrough(counter).pipeThrough(decoder);
      try {
        if (opts.frame) {
          await decoded.pipeThrough(opts.frame(unit, decoder)).pipeTo(
            new WritableStream<T | T[]>({
              // Framers may emit one item or an array of items per chunk.
              write: (chunk) => Array.isArray(chunk) ? addAll(chunk) : add(chunk),
            }),
            { signal: t.abort.signal },
          );
        } else {
          // Byte lines: framed right here, chunk by chunk, so that once a chunk's lines are in
          // their batches (copied) the decoder may reuse the chunk's buffer.
          const lines = framer = new LineStream({ maxLineBytes: processing.max_line_bytes });
          const dec = decoder;
          await decoded.pipeTo(
            new WritableStream<Uint8Array>({
              async write(chunk) {
                await addAll(lines.split(chunk) as T[]);
                dec.release(chunk);
              },
              close: () => addAll(lines.end() as T[]),
            }),
            { signal: t.abort.signal },
          );
        }
      } finally {
        m.bytesIn.inc(counted);
        stats.compressedBytes += counted;
      }
      const truncated = framer?.linesTruncated ?? 0;
      m.truncated.inc(truncated);
      stats.truncated += truncated;
      if (decoder.skipped > 0) {
        m.skipped.inc(decoder.skipped);
        stats.skipped += decoder.skipped;
      }
      t.done(decoder.consumed, truncated, framer?.firstTruncatedAt);
      if (sourceDone) await batcher.flush();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (!t.failure) {
        const v = t.verdict = classifyReadError(err);
        const at = v.kind === "permanent" && v.offset !== undefined
          ? v.offset
          : decoder?.consumed ?? 0;
        t.fail(new Error(`failed to read ${unit.id} at byte ${at}`, { cause: err }), "read");
      }
      t.done(decoder?.consumed ?? 0, 0);
    }
    // The worker slot is free once the unit's input is read; its ack follows its last batch.
    const settled = t.settled.then((outcome) => record(t, outcome));
    settling.add(settled);
    settled.finally(() => settling.delete(settled));
  };

  const record = (t: UnitTracker, outcome: Outcome) => {
    const unit = t.unit;
    trackers.delete(t);
    m.inflight.dec();
    if (outcome === "nacked") {
      stats.unitsFailed++;
      m.errored.inc();
      // One warning per unit a minute: an outage retries every unit at every scan.
      const now = Date.now();
      if (now - (warned.get(unit.id) ?? -Infinity) < 60_000) return;
      warned.set(unit.id, now);
      log.warn("unit failed: not checkpointed, will be retried", {
        unit: unit.id,
        error: t.failure,
        by: t.failedBy,
        lines_delivered: t.resumed + t.items - t.pending,
        ...(t.failedBy === "read" && { attempts: attempts.get(unit.id) ?? 0 }),
      });
      return;
    }
    warned.delete(unit.id);
    if (outcome === "acked") stats.units++;
    stats.lines += t.items - t.rejected;
    stats.bytes += t.bytes;
    if (outcome === "acked") m.processed.inc();
    m.latency.observe((performance.now() - t.started) / 1000);
    if (unit.time !== undefined) {
      m.deliveredLag.set(Math.max(0, (Date.now() - unit.time) / 1000));
    }
    updateLag();
  };

  // /status lists the units quarantined before this run too (the source's state is loaded by
  // the time it yields a unit or ends).
  let listed = false;
  const listQuarantined = () => {
    if (listed || !health) return;
    listed = true;
    const known = source.quarantined?.() ?? [];
    for (const r of known.toSorted((a, b) => a.at - b.at)) health.recordQuarantine(r);
  };
  health?.set(`source:${src}`, true);
  try {
    for await (const unit of source.units(signal)) {
      listQuarantined();
      const p = readUnit(unit).finally(() => running.delete(p));
      running.add(p);
      while (running.size >= processing.worker_count) await Promise.race(running);
      if (signal.aborted) break;
    }
  } catch (e) {
    health?.set(`source:${src}`, false, errorChain(e));
    throw e;
  } finally {
    // Drain: no more units come; flush the open batch so the last units can be acked, wait for
    // units still reading (each flushes on its end now), then for the last deliveries.
    listQuarantined();
    sourceDone = true;
    await batcher.flush();
    await Promise.all(running);
    await batcher.flush();
    await Promise.all(settling);
    await batcher.close();
    await Promise.all(inflight);
    await deadLetter?.flush();
    clearInterval(lagTimer);
    await sink.close();
    await source.close?.();
  }
  return stats;
}
