/**
 * The delivering half of mode `stream`: a source's files → lines → batched HTTP POSTs, with the
 * OTLP metrics export alongside. The mode picks the source (S3 scan, SQS or a directory); the
 * demo calls this with its directory source and so loads no cloud SDK.
 * @module
 */

import { resolve } from "node:path";
import type { Logger } from "../log/logger.ts";
import { runOtlpExport } from "../metrics/otlp.ts";
import type { Registry } from "../metrics/registry.ts";
import { DeadLetter } from "../pipeline/dead_letter.ts";
import { type PipelineOptions, runPipeline } from "../pipeline/run.ts";
import type { Source } from "../pipeline/types.ts";
import { HttpSink } from "../sinks/http.ts";
import type { Health } from "../status/health.ts";
import type { StreamConfig } from "./stream_spec.ts";

/** What {@link deliverStream} runs with, besides the source and the config. */
export interface DeliverStreamOptions {
  metrics: Registry;
  log: Logger;
  health: Health;
  /** Aborted to drain and stop. */
  signal: AbortSignal;
  /** What `dead_letter.path` is relative to. @default the working directory */
  configDir?: string;
  /** Frame records other than lines (the tail source's multi-line records). @default lines */
  frame?: PipelineOptions<Uint8Array>["frame"];
}

/**
 * Deliver every line of `source`'s files to `config.http`'s endpoints until the source ends or
 * `signal` aborts.
 *
 * @returns the pipeline's counts.
 */
export async function deliverStream(
  source: Source,
  config: Pick<StreamConfig, "http" | "processing" | "otlp" | "dead_letter">,
  { metrics, log, health, signal, configDir = ".", frame }: DeliverStreamOptions,
) {
  const p = config.processing;
  const sink = new HttpSink(config.http, { metrics, log, health });
  const stopExport = new AbortController();
  const exporting = runOtlpExport(metrics, config.otlp, log, stopExport.signal);
  const stats = await runPipeline({
    source,
    sink,
    metrics,
    log,
    health,
    signal,
    processing: { worker_count: p.worker_count, max_line_bytes: p.max_line_bytes },
    batch: config.http,
    // A corrupt member is dropped and the decoder resyncs on the next one; the file is then
    // quarantined with its skipped bytes. Holding each member's first MiB until its CRC checks
    // out keeps a small corrupt member from delivering anything, at a quarter of the default
    // hold's memory per file in flight.
    decode: { holdMemberBytes: 1 << 20, resync: true, resyncWindow: 256 << 10, plain: p.plain },
    maxAttempts: p.max_attempts,
    deadLetter: new DeadLetter(resolve(configDir, config.dead_letter.path)),
    mode: "stream",
    ...(frame && { frame }),
  });
  stopExport.abort();
  await exporting;
  log.info("stream finished", { ...stats });
  return stats;
}
