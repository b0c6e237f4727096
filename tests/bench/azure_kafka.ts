/**
 * Azurite → ingest → Kafka: one append blob of gzip members (~1 MB of log lines each) ingested
 * from offset 0 into a fresh topic on the local broker, in this process; and, to show what bounds
 * it, each stage alone: Azurite's ranged download, and the Kafka producer sending the same messages
 * (keys and headers included) with no Azure and no decoding.
 *
 * `deno task bench azure` (needs `bash tests/services/up.sh`). MB = 10^6 decoded bytes.
 * @module
 */

import { Buffer } from "node:buffer";
import zlib from "node:zlib";
import { parseValue } from "../../mod/config/spec.ts";
import { zscalerFile } from "../../mod/demo/zscaler.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { ingestMode } from "../../mod/modes/ingest.ts";
import { kafkaMessageSize, KafkaSink, kafkaSpec } from "../../mod/sinks/kafka.ts";
import { AzureBlobContainer } from "../../mod/sources/azure_blob.ts";
import { modeContext } from "../modes/_context.ts";
import {
  blobServiceClient,
  endpoints,
  freshContainer,
  freshTopic,
  unavailableReason,
} from "../services/mod.ts";
import type { BenchRow } from "./row.ts";

const BLOB = "kubernetes/20250606.bench-7d9f8b6c5-x2kqp_ns_app-1a2b3c4d5e6f7a8b.gz";

/** Options of {@link bench}. */
export interface AzureKafkaBenchOptions {
  /** Gzip members of ~1 MB decoded. @default 60 */
  members?: number;
  /** Ingest settings to compare, by name. */
  variants?: Record<string, Record<string, unknown>>;
}

const defaultVariants: Record<string, Record<string, unknown>> = {
  "no compression": { kafka: { compression: "none" } },
  "gzip": { kafka: { compression: "gzip" } },
  "no compression, not idempotent": { kafka: { compression: "none", idempotent: false } },
};

/**
 * Ingest a blob of `members` members into Kafka per variant, and time each stage alone.
 *
 * @returns one row per variant plus the download-only and producer-only rows.
 * @throws {Error} when the test services are not up, or a run lost lines.
 */
export async function bench(
  { members = 60, variants = defaultVariants }: AzureKafkaBenchOptions = {},
): Promise<BenchRow[]> {
  const why = unavailableReason("azurite") ?? unavailableReason("kafka");
  if (why) throw new Error(`Azure benchmark needs the test services: ${why}`);
  const container = await freshContainer("bench");
  const blob = blobServiceClient().getContainerClient(container).getAppendBlobClient(BLOB);
  await blob.create();
  let plain = 0, lines = 0, compressed = 0;
  const sample: Uint8Array[] = [];
  for (let i = 0; i < members; i++) {
    const text = zscalerFile(1 << 20, 500 + i);
    plain += text.length;
    let start = 0;
    for (let j = text.indexOf(10); j >= 0; j = text.indexOf(10, j + 1)) {
      lines++;
      if (i < 8) sample.push(text.subarray(start, j));
      start = j + 1;
    }
    const gz = zlib.gzipSync(text);
    compressed += gz.length;
    await blob.appendBlock(gz, gz.length);
  }
  const rows: BenchRow[] = [];
  const storage = { connection_string: endpoints.azuriteConnectionString };

  // Azurite alone: the blob's bytes downloaded in 4 MiB ranges, as ingest reads them.
  {
    const c = await AzureBlobContainer.open(storage, container);
    const t = performance.now();
    for (let at = 0; at < compressed; at += 4 << 20) {
      const body = await c.read(BLOB, at, Math.min(4 << 20, compressed - at));
      for await (const _ of body) { /* drain */ }
    }
    const s = (performance.now() - t) / 1000;
    rows.push({
      name: "Azurite ranged download alone",
      mbPerSec: plain / 1e6 / s,
      compressedMbPerSec: Math.round(compressed / 1e6 / s),
      note: `${
        (compressed / 1e6).toFixed(1)
      } MB of gzip in 4 MiB ranges (MB/s: the lines they hold)`,
    });
  }

  // The full path, per variant.
  const dir = await Deno.makeTempDir();
  for (const [label, v] of Object.entries(variants)) {
    const topic = await freshTopic(1, "bench");
    const { kafka: k = {}, ...rest } = v as { kafka?: Record<string, unknown> };
    const config = parseValue(ingestMode.spec, {
      kafka: { brokers: endpoints.kafka, topic, ...k },
      storage_account: storage,
      container,
      blob: BLOB,
      start_offset: 0,
      state_file: `${dir}/${crypto.randomUUID()}.json`,
      ...rest,
    });
    const metrics = new Registry();
    const cpu0 = cpuSeconds();
    const t = performance.now();
    const code = await ingestMode.run(modeContext(config, dir, { metrics }));
    if (code !== 0) throw new Error(`ingest exited ${code}`);
    const s = (performance.now() - t) / 1000;
    const cpu1 = cpuSeconds();
    const cpu = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
    const sent = metrics.counter("kafka_lines_sent_total", "").get();
    if (sent !== lines) throw new Error(`${label}: sent ${sent} of ${lines} lines`);
    rows.push({
      name: `Azurite → ingest → Kafka, ${label}`,
      mbPerSec: plain / 1e6 / s,
      linesPerSec: Math.round(lines / s),
      cpuSecPerGb: cpu === undefined ? "" : (cpu / (plain / 1e9)).toFixed(1),
      note: `${members} members of ~1 MB; batches ${config.batch_lines} lines / ${
        Math.round(config.batch_bytes / 1024)
      } KiB, ${config.workers} in flight, ranges of ${config.range_bytes >> 20} MiB`,
    });
  }
  await Deno.remove(dir, { recursive: true });

  // The producer alone: the same lines as messages with the same key and headers, no Azure, no gzip.
  for (const idempotent of [true, false]) {
    const topic = await freshTopic(1, "bench");
    const sink = await KafkaSink.connect(parseValue(kafkaSpec(), {
      brokers: endpoints.kafka,
      topic,
      compression: "none",
      idempotent,
    }));
    const key = Buffer.from(BLOB);
    const headers = Object.fromEntries(
      Object.entries({
        subscription: "cp2",
        environment: "P1",
        blob: BLOB,
        service: "bench",
        member_offset: "0",
      }).map(([k, v]) => [k, Buffer.from(v)]),
    );
    const batches = [];
    let batch: { key: Uint8Array; value: Uint8Array; headers: Record<string, Uint8Array> }[] = [];
    let bytes = 0, sentBytes = 0;
    for (const value of sample) {
      const m = { key, value, headers };
      const size = kafkaMessageSize(m);
      if (batch.length === 2000 || bytes + size > 900 * 1024) {
        batches.push({ items: batch, bytes });
        [batch, bytes] = [[], 0];
      }
      batch.push(m);
      bytes += size;
      sentBytes += value.length + 1;
    }
    batches.push({ items: batch, bytes });
    const t = performance.now();
    const inflight = new Set<Promise<void>>();
    for (const b of batches) {
      const p = sink.write(b).finally(() => inflight.delete(p));
      inflight.add(p);
      while (inflight.size >= 4) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    const s = (performance.now() - t) / 1000;
    await sink.close();
    rows.push({
      name: `Kafka producer alone${idempotent ? "" : ", not idempotent"}`,
      mbPerSec: sentBytes / 1e6 / s,
      linesPerSec: Math.round(sample.length / s),
      note: `${sample.length} of the same lines, key and headers; no compression, 4 in flight`,
    });
  }
  return rows;
}

/** This process's user + system CPU seconds (Linux), or undefined. */
function cpuSeconds(): number | undefined {
  try {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

/** The name tests/bench/main.ts imports. */
export const azureKafkaBench = bench;

if (import.meta.main) {
  for (const r of await bench()) console.log(JSON.stringify(r));
}
