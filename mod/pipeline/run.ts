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
import { BufferPool, type DecodeOptions, type Decoder, decodeStream, readPooled } from "./gzip.ts";
import { LineStream } from "./line_stream.ts";
import { type Sink, SinkError, type Source, type Unit } from "./types.ts";

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
  /** Decoder options (e.g. `allowTruncatedTail` for append blobs). */
  decode?: DecodeOptions;
  /** Encoded size of an item. @default byte length + 1 (the newline) */
  sizeOf?: (item: T) => number;
}

/** Totals of one run. */
export interface PipelineStats {
  units: number;
  unitsFailed: number;
  lines: number;
  bytes: number;
  compressedBytes: number;
  truncated: number;
  dropped: number;
}

/** Counts one unit's items in flight; acks or nacks the unit once all have settled. */
class UnitTracker {
  readonly unit: Unit;
  readonly started = performance.now();
  pending = 0;
  items = 0;
  bytes = 0;
  failure: Error | undefined;
  #inputDone = false;
  #consumed = 0;
  #truncated = 0;
  #truncatedAt: number | undefined;
  #settled: Promise<"acked" | "nacked">;
  #resolve!: (v: "acked" | "nacked") => void;
  readonly abort = new AbortController();

  constructor(unit: Unit) {
    this.unit = unit;
    this.#settled = new Promise((r) => this.#resolve = r);
  }

  get settled(): Promise<"acked" | "nacked"> {
    return this.#settled;
  }

  added(n: number, bytes: number): void {
    this.pending += n;
    this.items += n;
    this.bytes += bytes;
  }

  delivered(n: number): void {
    this.pending -= n;
    this.#maybeSettle();
  }

  fail(e: Error): void {
    this.failure ??= e;
    this.abort.abort(e);
  }

  inputDone(consumed: number, truncated: number, truncatedAt?: number): void {
    this.#inputDone = true;
    this.#consumed = consumed;
    this.#truncated = truncated;
    this.#truncatedAt = truncatedAt;
    this.#maybeSettle();
  }

  #maybeSettle(): void {
    if (!this.#inputDone || this.pending > 0) return;
    if (this.failure) {
      this.unit.nack(this.failure).then(
        () => this.#resolve("nacked"),
        () => this.#resolve("nacked"),
      );
    } else {
      this.unit.ack({
        lines: this.items,
        bytes: this.bytes,
        consumed: this.#consumed,
        truncated: this.#truncated,
        ...(this.#truncatedAt !== undefined && { truncatedAt: this.#truncatedAt }),
      }).then(() => this.#resolve("acked"), (e) => {
        this.failure = new Error(`ack of ${this.unit.id} failed`, { cause: e });
        this.#resolve("nacked");
      });
    }
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
  const { source, sink, metrics, log, signal, health } = opts;
  const processing = { worker_count: 15, max_line_bytes: 1 << 20, ...opts.processing };
  const batch: BatchConfig = {
    batch_lines: 1000,
    batch_bytes: 1 << 20,
    flush_interval: 1000,
    workers: 10,
    drop_when_full: false,
    ...opts.batch,
  };
  const sizeOf = opts.sizeOf ?? lineSize;
  const src = source.kind;
  const snk = sink.kind;
  const m = {
    processed: metrics.counter(`${src}_files_processed_total`, `Units (files) fully delivered`),
    bytesIn: metrics.counter(`${src}_bytes_processed_total`, `Input bytes read (compressed)`),
    errored: metrics.counter(`${src}_files_errored_total`, `Units that failed (not checkpointed)`),
    latency: metrics.histogram(
      `${src}_processing_latency_seconds`,
      `Time from starting a unit to its last batch acknowledged`,
    ),
    lag: metrics.gauge(
      "processing_lag_seconds",
      "Now minus the delivered unit's timestamp, at delivery",
    ),
    truncated: metrics.counter("lines_truncated_total", "Lines cut at max_line_bytes"),
    batches: metrics.counter(`${snk}_batches_sent_total`, `Batches delivered`),
    lines: metrics.counter(`${snk}_lines_sent_total`, `Lines delivered`),
    bytesOut: metrics.counter(`${snk}_bytes_sent_total`, `Bytes delivered`),
    drops: metrics.counter(`${snk}_buffer_drops_total`, `Lines dropped (drop_when_full)`),
    inflight: metrics.gauge("units_in_flight", "Units being read or awaiting delivery"),
  };
  const stats: PipelineStats = {
    units: 0,
    unitsFailed: 0,
    lines: 0,
    bytes: 0,
    compressedBytes: 0,
    truncated: 0,
    dropped: 0,
  };

  // Sink side: up to `workers` writes at once; `submit` waits for a free worker.
  const inflight = new Set<Promise<void>>();
  const sinkAbort = new AbortController();
  const deliver = (b: TaggedBatch<T, UnitTracker>, tags: Map<UnitTracker, number>) => {
    const p = sink.write(b, sinkAbort.signal).then(() => {
      m.batches.inc();
      m.lines.inc(b.count);
      m.bytesOut.inc(b.bytes);
      health?.set(`sink:${snk}`, true);
      for (const [t, n] of tags) t.delivered(n);
    }, (e) => {
      const err = e instanceof SinkError ? e : new SinkError(errorChain(e), { cause: e });
      health?.set(`sink:${snk}`, false, errorChain(err));
      for (const [t, n] of tags) {
        t.fail(err);
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
      if (inflight.size >= batch.workers && batch.drop_when_full) {
        m.drops.inc(b.count);
        stats.dropped += b.count;
        log.warn("sink busy: batch dropped (drop_when_full)", { lines: b.count });
        for (const [t, n] of b.tags) t.delivered(n);
        batcher.recycle(b);
        return;
      }
      while (inflight.size >= batch.workers) await Promise.race(inflight);
      deliver(b, b.tags);
    },
  });

  // Source side: up to worker_count units piped at once.
  let sourceDone = false;
  const running = new Set<Promise<void>>();
  const settling = new Set<Promise<void>>();
  const readUnit = async (unit: Unit) => {
    const t = new UnitTracker(unit);
    m.inflight.inc();
    let decoder: ReturnType<typeof decodeStream> | undefined;
    let framer: LineStream | undefined;
    try {
      // Downloads are read into pooled buffers that the decoder gives back when done with them.
      const body = readPooled(await unit.open(t.abort.signal), inputPool);
      decoder = decodeStream({ ...opts.decode, recycleInput: recycle });
      let counted = 0;
      const counter = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          counted += chunk.byteLength;
          c.enqueue(chunk);
        },
      });
      const add = (item: T) => {
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
      const truncated = framer?.linesTruncated ?? 0;
      m.bytesIn.inc(counted);
      m.truncated.inc(truncated);
      stats.compressedBytes += counted;
      stats.truncated += truncated;
      t.inputDone(decoder.consumed, truncated, framer?.firstTruncatedAt);
      if (sourceDone) await batcher.flush();
    } catch (e) {
      const err = t.failure ?? (e instanceof Error ? e : new Error(String(e)));
      t.fail(err);
      t.inputDone(decoder?.consumed ?? 0, 0);
    }
    // The worker slot is free once the unit's input is read; its ack follows its last batch.
    const settle = t.settled.then((outcome) => record(t, outcome));
    settling.add(settle);
    settle.finally(() => settling.delete(settle));
  };

  const record = (t: UnitTracker, outcome: "acked" | "nacked") => {
    const unit = t.unit;
    m.inflight.dec();
    if (outcome === "acked") {
      stats.units++;
      stats.lines += t.items;
      stats.bytes += t.bytes;
      m.processed.inc();
      m.latency.observe((performance.now() - t.started) / 1000);
      if (unit.time !== undefined) m.lag.set(Math.max(0, (Date.now() - unit.time) / 1000));
    } else {
      stats.unitsFailed++;
      m.errored.inc();
      log.error("unit failed: not checkpointed, will be retried", {
        unit: unit.id,
        error: t.failure,
        lines_delivered_before_failure: t.items - t.pending,
      });
    }
  };

  health?.set(`source:${src}`, true);
  try {
    for await (const unit of source.units(signal)) {
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
    sourceDone = true;
    await batcher.flush();
    await Promise.all(running);
    await batcher.flush();
    await Promise.all(settling);
    await batcher.close();
    await Promise.all(inflight);
    await sink.close();
    await source.close?.();
  }
  return stats;
}
