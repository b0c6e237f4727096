/**
 * Azurite → ingest → Kafka: one append blob of gzip members (~1 MB of lines each) ingested from
 * offset 0 into a fresh topic on the local broker, in this process.
 * @module
 */

import zlib from "node:zlib";
import { parseValue } from "../../mod/config/spec.ts";
import { zscalerFile } from "../../mod/demo/zscaler.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { ingestMode } from "../../mod/modes/ingest.ts";
import { modeContext } from "../modes/_context.ts";
import {
  blobServiceClient,
  endpoints,
  freshContainer,
  freshTopic,
  unavailableReason,
} from "../services/mod.ts";
import type { BenchRow } from "./row.ts";

/** Ingest `members` members of ~1 MB into Kafka and time it. */
export async function azureKafkaBench({ members = 60 } = {}): Promise<BenchRow[]> {
  const why = unavailableReason("azurite") ?? unavailableReason("kafka");
  if (why) throw new Error(`Azure benchmark needs the test services: ${why}`);
  const container = await freshContainer("bench");
  const name = "kubernetes/20250606.bench-5f7c9d-abcde_ns_app-1.gz";
  const blob = blobServiceClient().getContainerClient(container).getAppendBlobClient(name);
  await blob.create();
  let plain = 0;
  let lines = 0;
  for (let i = 0; i < members; i++) {
    const text = zscalerFile(1 << 20, 500 + i);
    plain += text.length;
    for (const b of text) if (b === 10) lines++;
    const gz = zlib.gzipSync(text);
    await blob.appendBlock(gz, gz.length);
  }
  const topic = await freshTopic(1, "bench");
  const dir = await Deno.makeTempDir();
  const rows: BenchRow[] = [];
  for (const compression of ["none", "gzip"] as const) {
    const config = parseValue(ingestMode.spec, {
      brokers: endpoints.kafka,
      topic,
      compression,
      connection_string: endpoints.azuriteConnectionString,
      container,
      blob: name,
      start_offset: 0,
      batch_lines: 2000,
      batch_bytes: "900KiB",
      workers: 4,
      state_file: `${dir}/${compression}.json`,
    });
    const metrics = new Registry();
    const t = performance.now();
    const code = await ingestMode.run(modeContext(config, dir, { metrics }));
    if (code !== 0) throw new Error(`ingest exited ${code}`);
    const s = (performance.now() - t) / 1000;
    const sent = metrics.counter("kafka_lines_sent_total", "").get();
    if (sent !== lines) throw new Error(`sent ${sent} of ${lines} lines`);
    rows.push({
      name: `Azurite → ingest → Kafka (${compression})`,
      mbPerSec: plain / 1e6 / s,
      linesPerSec: Math.round(lines / s),
      note: `${members} members of ~1 MB, batch 2000 lines / 900 KiB, 4 in flight`,
    });
  }
  await Deno.remove(dir, { recursive: true });
  return rows;
}
