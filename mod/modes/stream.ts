/**
 * Mode `stream`: new gzip JSONL files in an S3 prefix (or a local directory laid out like one)
 * → lines → batched HTTP POSTs round-robin over several endpoints, near real time.
 *
 * The config is the reference streamer's config.yaml under `stream:` (sections s3, http,
 * processing, otlp) with our keys beside theirs.
 *
 * Failures follow the pipeline's one policy (pipeline/failure_policy.ts): a file whose delivery
 * failed is read again, resuming after its delivered lines, and holds the watermark back; a
 * corrupt, unreadable or non-gzip file is quarantined (its good gzip members delivered once);
 * lines an intake refused for good go to `dead_letter.path`. `edge-agent stream requeue ID`
 * reads a quarantined file again.
 * @module
 */

import { resolve } from "node:path";
import { defineMode } from "./mode.ts";
import { awsClientConfig, s3DownloadConfig } from "../sources/aws.ts";
import { FileSource } from "../sources/file.ts";
import { TailSource } from "../sources/file_tail.ts";
import type { Source } from "../pipeline/types.ts";
import { deliverStream } from "./stream_deliver.ts";
import { streamSpec } from "./stream_spec.ts";

export { streamSpec };

/** Mode `stream`. */
export const streamMode = defineMode({
  name: "stream",
  summary: "New gzip JSONL files in an S3 prefix → batched HTTP POSTs, near real time",
  spec: streamSpec,
  flags: {
    "once": {
      key: "processing.once",
      description: "Process what is there now, then exit",
      boolean: true,
    },
    "bucket": { key: "s3.bucket", description: "S3 bucket" },
    "prefix": { key: "s3.prefix", description: "S3 key prefix" },
    "endpoints": {
      key: "http.endpoints",
      description: "HTTP endpoints, comma-separated",
      list: true,
    },
    "state-file": { key: "state_file", description: "State file" },
  },
  stateFile: (config, configDir) => resolve(configDir, config.state_file),
  async run({ config, configDir, metrics, log, health, signal }) {
    const stateFile = resolve(configDir, config.state_file);
    const p = config.processing;
    let source: Source;
    let tail: TailSource | undefined;
    if (config.source === "tail") {
      source = tail = new TailSource(config.tail, {
        stateFile,
        baseDir: configDir,
        log,
        metrics,
        maxLineBytes: p.max_line_bytes,
      });
    } else if (config.source === "s3" && config.discovery === "sqs") {
      const [{ S3Client }, { SQSClient }, { SqsS3Source }] = await Promise.all([
        import("@aws-sdk/client-s3"),
        import("@aws-sdk/client-sqs"),
        import("../sources/s3_sqs.ts"),
      ]);
      const { forcePathStyle: _, ...aws } = await awsClientConfig(config.s3);
      source = new SqsS3Source({
        sqs: new SQSClient(aws),
        s3: new S3Client(await s3DownloadConfig(config.s3)),
        config: config.sqs,
        log,
        metrics,
        untilEmpty: p.once,
      });
    } else if (config.source === "s3") {
      // The AWS SDK is loaded only when S3 is used (it costs start-up time and memory).
      const [{ S3Client }, { S3ScanSource }] = await Promise.all([
        import("@aws-sdk/client-s3"),
        import("../sources/s3_scan.ts"),
      ]);
      source = new S3ScanSource({
        client: new S3Client(await s3DownloadConfig(config.s3)),
        bucket: config.s3.bucket,
        prefix: config.s3.prefix,
        stateFile,
        scanInterval: p.scan_interval,
        delayWindow: p.delay_window,
        lateness: p.lateness,
        once: p.once,
        log,
      });
    } else {
      source = new FileSource({
        root: resolve(configDir, config.file.path),
        // The bucket's layout, nothing else (a stray manifest.json at the root is not data).
        pattern: "year=*/month=*/day=*/*",
        metrics,
        stateFile,
        scanInterval: p.scan_interval,
        delayWindow: p.delay_window,
        once: p.once,
        log,
      });
    }
    // Tailed files are plain text (a gzip rotation is told by its magic bytes): not_gzip would
    // quarantine them all.
    const delivered = tail ? { ...config, processing: { ...p, plain: "allow" as const } } : config;
    const stats = await deliverStream(source, delivered, {
      metrics,
      log,
      health,
      signal,
      configDir,
      ...(tail?.frame && { frame: tail.frame }),
    });
    return stats.unitsFailed > 0 && p.once ? 1 : 0;
  },
});
