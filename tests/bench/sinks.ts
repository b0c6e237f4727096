// Sink throughput: HttpSink to a local receiver in its own process (plain and gzip bodies) and
// FileSink (with and without fdatasync), on Zscaler-like 1 MiB batches. `bench()` returns rows.
import zlib from "node:zlib";
import { join } from "node:path";
import { parseValue } from "../../mod/config/spec.ts";
import { zscalerLines } from "../../mod/demo/zscaler.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import type { Batch, Sink } from "../../mod/pipeline/types.ts";
import { FileSink } from "../../mod/sinks/file.ts";
import { HttpSink, httpSinkSpec, joinLines } from "../../mod/sinks/http.ts";
import { startReceiverProcess } from "./pipeline.ts";
import type { BenchRow } from "./row.ts";

/** Batches of at most 1 MiB of Zscaler-like lines. */
function batches(count: number): Batch<Uint8Array>[] {
  const enc = new TextEncoder();
  const lines = zscalerLines(4000, 7).map((l) => enc.encode(l));
  const out: Batch<Uint8Array>[] = [];
  let i = 0;
  while (out.length < count) {
    const items: Uint8Array[] = [];
    let bytes = 0;
    for (;;) {
      const l = lines[i % lines.length]!;
      if (bytes + l.length + 1 > 1 << 20 || items.length === 1000) break;
      items.push(l);
      bytes += l.length + 1;
      i++;
    }
    out.push({ items, bytes });
  }
  return out;
}

/** Send every batch with `workers` writes in flight; seconds taken. */
async function drive(sink: Sink<Uint8Array>, all: Batch<Uint8Array>[], workers: number) {
  const signal = new AbortController().signal;
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < all.length) await sink.write(all[next++]!, signal);
    }),
  );
  return (performance.now() - t) / 1000;
}

function row(name: string, all: Batch<Uint8Array>[], seconds: number, note: string): BenchRow {
  const bytes = all.reduce((n, b) => n + b.bytes, 0);
  const lines = all.reduce((n, b) => n + b.items.length, 0);
  return {
    name,
    mbPerSec: bytes / 1e6 / seconds,
    batchesPerSec: Math.round(all.length / seconds),
    linesPerSec: Math.round(lines / seconds),
    note,
  };
}

/** The sink benchmarks. */
export async function bench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const all = batches(300);
  const log = new Logger({ level: "error" });
  for (const gzip of [false, true]) {
    const receiver = await startReceiverProcess();
    const sink = new HttpSink(
      parseValue(httpSinkSpec, { endpoints: [receiver.url], gzip }),
      { metrics: new Registry(), log },
    );
    await drive(sink, all.slice(0, 20), 10); // warm-up: connections, JIT
    const seconds = await drive(sink, all, 10);
    await sink.close();
    await receiver.stop();
    rows.push(
      row(
        `http sink${gzip ? " gzip" : ""}`,
        all,
        seconds,
        "10 workers, 1 MiB batches, receiver in its own process",
      ),
    );
  }
  const body = joinLines(all[0]!.items, all[0]!.bytes);
  const t = performance.now();
  for (let i = 0; i < 30; i++) zlib.gzipSync(body, { level: 1 });
  const gz = (performance.now() - t) / 1000;
  rows.push({ name: "gzip request body: zlib level 1", mbPerSec: 30 * body.length / 1e6 / gz });
  const t2 = performance.now();
  for (let i = 0; i < 30; i++) {
    const s = new Blob([body as Uint8Array<ArrayBuffer>]).stream()
      .pipeThrough(new CompressionStream("gzip"));
    await new Response(s).arrayBuffer();
  }
  const cs = (performance.now() - t2) / 1000;
  rows.push({
    name: "gzip request body: CompressionStream",
    mbPerSec: 30 * body.length / 1e6 / cs,
  });
  const dir = await Deno.makeTempDir({ prefix: "edge-agent-bench-" });
  for (const sync of [true, false]) {
    const sink = new FileSink({ path: join(dir, `out-${sync}.ndjson`), sync });
    const seconds = await drive(sink, all, 10);
    await sink.close();
    rows.push(
      row(`file sink${sync ? " fdatasync" : ""}`, all, seconds, "10 writers, group commit"),
    );
  }
  await Deno.remove(dir, { recursive: true });
  return rows;
}

if (import.meta.main) console.table(await bench());
