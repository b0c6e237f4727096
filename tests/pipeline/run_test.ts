import assert from "node:assert/strict";
import zlib from "node:zlib";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { runPipeline } from "../../mod/pipeline/run.ts";
import { DeadLetter } from "../../mod/pipeline/dead_letter.ts";
import {
  type Batch,
  BatchError,
  type QuarantineRecord,
  type Sink,
  SinkError,
  type Source,
  type Unit,
} from "../../mod/pipeline/types.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const quiet = new Logger({ write: () => {} });

interface Outcome {
  acked: Map<string, number>;
  nacked: Map<string, string>;
}

/** An in-memory source over fixed byte contents (the pipeline's own Source contract). */
function memorySource(files: Record<string, Uint8Array>, chunk = 1000): Source & Outcome {
  const acked = new Map<string, number>();
  const nacked = new Map<string, string>();
  return {
    kind: "mem",
    acked,
    nacked,
    async *units() {
      for (const [id, bytes] of Object.entries(files)) {
        const unit: Unit = {
          id,
          time: Date.now() - 5000,
          open: () => {
            const parts: Uint8Array[] = [];
            for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
            return Promise.resolve(ReadableStream.from(parts));
          },
          ack: (r) => {
            acked.set(id, r.lines);
            return Promise.resolve();
          },
          nack: (e) => {
            nacked.set(id, e.message);
            return Promise.resolve();
          },
        };
        yield unit;
      }
    },
  };
}

/** A sink that records what it got (optionally failing or slow). */
class MemorySink implements Sink<Uint8Array> {
  readonly kind = "mem";
  lines: string[] = [];
  batches = 0;
  maxConcurrent = 0;
  #active = 0;
  constructor(readonly opts: { failWhen?: (b: Batch) => boolean; delayMs?: number } = {}) {}
  async write(batch: Batch): Promise<void> {
    this.#active++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.#active);
    try {
      if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
      if (this.opts.failWhen?.(batch)) throw new SinkError("endpoint gave up", { retryable: true });
      this.batches++;
      for (const l of batch.items) this.lines.push(dec(l));
    } finally {
      this.#active--;
    }
  }
  close() {
    return Promise.resolve();
  }
}

const gz = (lines: string[]) => new Uint8Array(zlib.gzipSync(enc(lines.join("\n") + "\n")));

Deno.test("runPipeline() delivers every line of mixed units and acks each after delivery", async () => {
  const a = Array.from({ length: 2500 }, (_, i) => `{"file":"a","n":${i}}`);
  const b = Array.from({ length: 10 }, (_, i) => `{"file":"b","n":${i}}`);
  const c = ["plain 1", "plain 2"];
  const source = memorySource({
    "a.gz": gz(a),
    "b-no-extension": new Uint8Array(Buffer.concat([gz(b.slice(0, 5)), gz(b.slice(5))])),
    "c.gz": enc(c.join("\r\n")),
  }, 333);
  const sink = new MemorySink();
  const metrics = new Registry();
  const stats = await runPipeline({
    source,
    sink,
    metrics,
    log: quiet,
    signal: new AbortController().signal,
    batch: { batch_lines: 100, flush_interval: 50 },
  });
  assert.deepEqual(sink.lines.toSorted(), [...a, ...b, ...c].toSorted());
  assert.deepEqual(Object.fromEntries(source.acked), {
    "a.gz": 2500,
    "b-no-extension": 10,
    "c.gz": 2,
  });
  assert.equal(source.nacked.size, 0);
  assert.equal(stats.lines, 2512);
  assert.equal(metrics.counter("mem_files_processed_total", "").get(), 3);
  assert.equal(metrics.counter("mem_lines_sent_total", "").get(), 2512);
});

Deno.test("runPipeline() keeps order within a unit", async () => {
  const a = Array.from({ length: 5000 }, (_, i) => `line ${i}`);
  const sink = new MemorySink();
  await runPipeline({
    source: memorySource({ a: gz(a) }, 4096),
    sink,
    metrics: new Registry(),
    log: quiet,
    signal: new AbortController().signal,
    batch: { batch_lines: 64, workers: 1 },
  });
  assert.deepEqual(sink.lines, a);
});

Deno.test("runPipeline() gives up on a corrupt unit for good (nack, not retryable, when the source cannot quarantine), counts it, and delivers the others", async () => {
  const bad = gz(["x", "y"]);
  bad[bad.length - 6]! ^= 0xff;
  const source = memorySource({
    good: gz(["g1", "g2"]),
    bad,
    truncated: gz(["t"]).subarray(0, 12),
  });
  const metrics = new Registry();
  const sink = new MemorySink();
  await runPipeline({ source, sink, metrics, log: quiet, signal: new AbortController().signal });
  assert.deepEqual([...source.acked.keys()], ["good"]);
  assert.match(source.nacked.get("bad")!, /corrupt gzip member at byte 0: CRC32 mismatch/);
  assert.match(source.nacked.get("truncated")!, /truncated gzip member at byte 0/);
  assert.equal(metrics.counter("mem_files_errored_total", "").get(), 0);
  const q = metrics.counter("mem_units_quarantined_total", "");
  assert.equal(q.get({ reason: "corrupt_gzip" }), 1);
  assert.equal(q.get({ reason: "truncated_gzip" }), 1);
  assert.ok(sink.lines.includes("g1") && sink.lines.includes("g2"));
});

Deno.test("runPipeline() nacks a unit whose batch the sink gave up on (never acked)", async () => {
  // 50 doomed lines fill exactly 5 batches, so "fine" travels in a batch of its own. (A batch
  // mixing units fails them all: each is nacked and retried; duplicates, never loss.)
  const source = memorySource({
    doomed: gz(Array.from({ length: 50 }, (_, i) => `doomed ${i}`)),
    ok: gz(["fine"]),
  });
  const sink = new MemorySink({
    failWhen: (b) => b.items.some((l) => dec(l).startsWith("doomed")),
  });
  await runPipeline({
    source,
    sink,
    metrics: new Registry(),
    log: quiet,
    signal: new AbortController().signal,
    batch: { batch_lines: 10, flush_interval: 20 },
    processing: { worker_count: 1 },
  });
  assert.deepEqual([...source.acked.keys()], ["ok"]);
  assert.match(source.nacked.get("doomed")!, /endpoint gave up/);
});

Deno.test("runPipeline() runs at most `workers` sink writes at once (backpressure)", async () => {
  const files: Record<string, Uint8Array> = {};
  for (let f = 0; f < 8; f++) {
    files[`f${f}`] = gz(Array.from({ length: 200 }, (_, i) => `${f}:${i}`));
  }
  const sink = new MemorySink({ delayMs: 5 });
  await runPipeline({
    source: memorySource(files),
    sink,
    metrics: new Registry(),
    log: quiet,
    signal: new AbortController().signal,
    batch: { batch_lines: 50, workers: 3 },
    processing: { worker_count: 4 },
  });
  assert.equal(sink.lines.length, 1600);
  assert.ok(sink.maxConcurrent <= 3, `max concurrent writes ${sink.maxConcurrent}`);
});

Deno.test("runPipeline() counts lines dropped with drop_when_full and acks their units", async () => {
  const sink = new MemorySink({ delayMs: 20 });
  const metrics = new Registry();
  const source = memorySource({ a: gz(Array.from({ length: 100 }, (_, i) => `${i}`)) });
  const stats = await runPipeline({
    source,
    sink,
    metrics,
    log: quiet,
    signal: new AbortController().signal,
    batch: { batch_lines: 10, workers: 1, drop_when_full: true },
  });
  assert.equal(stats.dropped + sink.lines.length, 100);
  assert.ok(stats.dropped > 0);
  assert.equal(metrics.counter("mem_buffer_drops_total", "").get(), stats.dropped);
  assert.equal(source.acked.get("a"), 100);
});

Deno.test("runPipeline() dead-letters the items of a BatchError with their own unit, delivers the rest, and quarantines the unit once", async () => {
  const dir = await Deno.makeTempDir();
  const a = Array.from({ length: 30 }, (_, i) => `a ${i}`);
  const b = Array.from({ length: 30 }, (_, i) => `b ${i}`);
  a[7] = "a TOO LARGE";
  const quarantined: QuarantineRecord[] = [];
  const source = memorySource({ a: gz(a), b: gz(b) }, 50);
  const units = source.units.bind(source);
  source.units = async function* (signal) {
    for await (const u of units(signal)) {
      yield {
        ...u,
        quarantine: (r) => {
          quarantined.push(r);
          return Promise.resolve();
        },
      };
    }
  };
  // A sink that refuses one line for good (as the HTTP sink does for a line too large for a 413).
  const got: string[] = [];
  const sink: Sink<Uint8Array> = {
    kind: "mem",
    write(batch) {
      const failed = batch.items.flatMap((l, index) =>
        dec(l).includes("TOO LARGE") ? [{ index, reason: "too_large", message: "413" }] : []
      );
      for (const [i, l] of batch.items.entries()) {
        if (!failed.some((f) => f.index === i)) got.push(dec(l));
      }
      if (failed.length) return Promise.reject(new BatchError("1 line too large", failed));
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
  const metrics = new Registry();
  const deadLetter = new DeadLetter(`${dir}/dead.ndjson`);
  const stats = await runPipeline({
    source,
    sink,
    metrics,
    log: quiet,
    signal: new AbortController().signal,
    batch: { batch_lines: 8 },
    deadLetter,
  });
  assert.deepEqual(got.toSorted(), [...a.filter((l) => l !== "a TOO LARGE"), ...b].toSorted());
  const dead = (await Deno.readTextFile(`${dir}/dead.ndjson`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(dead.length, 1);
  assert.equal(dead[0].unit, "a");
  assert.equal(dead[0].reason, "too_large");
  assert.equal(dead[0].item, "a TOO LARGE");
  assert.deepEqual(quarantined.map((q) => [q.id, q.reason, q.rejected]), [["a", "too_large", 1]]);
  assert.deepEqual([...source.acked.keys()], ["b"]);
  assert.equal(stats.rejected, 1);
  assert.equal(metrics.counter("mem_items_rejected_total", "").get({ reason: "too_large" }), 1);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runPipeline() retries only the units of a BatchError's retryable items, settles the others, and dead-letters nothing", async () => {
  const dir = await Deno.makeTempDir();
  const a = Array.from({ length: 30 }, (_, i) => `a ${i}`);
  const b = Array.from({ length: 30 }, (_, i) => `b ${i}`);
  const source = memorySource({ a: gz(a), b: gz(b) }, 50);
  // A sink with two destinations, as CloudWatch Logs has streams: a's is down, b's is up.
  const got: string[] = [];
  const sink: Sink<Uint8Array> = {
    kind: "mem",
    write(batch) {
      const failed = batch.items.flatMap((l, index) =>
        dec(l).startsWith("a ") ? [{ index, reason: "retryable", retryable: true }] : []
      );
      for (const l of batch.items) if (!dec(l).startsWith("a ")) got.push(dec(l));
      if (failed.length) return Promise.reject(new BatchError("stream a is down", failed));
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
  const metrics = new Registry();
  const stats = await runPipeline({
    source,
    sink,
    metrics,
    log: quiet,
    signal: new AbortController().signal,
    batch: { batch_lines: 8 },
    deadLetter: new DeadLetter(`${dir}/dead.ndjson`),
  });
  assert.deepEqual(got, b);
  assert.deepEqual([...source.acked.keys()], ["b"]);
  assert.match(source.nacked.get("a") ?? "", /stream a is down/);
  assert.equal(stats.rejected, 0);
  assert.equal(metrics.counter("mem_lines_sent_total", "").get(), 30);
  await assert.rejects(Deno.stat(`${dir}/dead.ndjson`), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runPipeline() resumes a unit after the items an earlier attempt delivered and reports progress contiguously", async () => {
  const a = Array.from({ length: 100 }, (_, i) => `a ${i}`);
  const progress: number[] = [];
  const source = memorySource({ a: gz(a) });
  const units = source.units.bind(source);
  source.units = async function* (signal) {
    for await (const u of units(signal)) {
      yield { ...u, resumeItems: 35, progress: (n) => void progress.push(n) };
    }
  };
  const sink = new MemorySink({ delayMs: 1 });
  const stats = await runPipeline({
    source,
    sink,
    metrics: new Registry(),
    log: quiet,
    signal: new AbortController().signal,
    batch: { batch_lines: 10, workers: 3 },
  });
  assert.deepEqual(sink.lines, a.slice(35));
  assert.equal(stats.lines, 65);
  // Never decreasing, ending at the unit's last item.
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i]! > progress[i - 1]!);
  assert.equal(progress.at(-1), 100);
  assert.equal(progress[0]! >= 45, true);
});
