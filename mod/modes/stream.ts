/**
 * Mode `stream`: new gzip JSONL files in an S3 prefix (or a local directory laid out like one)
 * → lines → batched HTTP POSTs round-robin over several endpoints, near real time.
 *
 * The config is the reference streamer's config.yaml under `stream:` (sections s3, http,
 * processing, otlp) with our keys beside theirs.
 * @module
 */

import { resolve } from "node:path";
import { f } from "../config/spec.ts";
import { defineMode } from "./mode.ts";
import { otlpSpec, runOtlpExport } from "../metrics/otlp.ts";
import { runPipeline } from "../pipeline/run.ts";
import { HttpSink, httpSinkSpec } from "../sinks/http.ts";
import { awsClientConfig, awsFields, s3DownloadConfig } from "../sources/aws.ts";
import { FileSource } from "../sources/file.ts";
import { sqsSpec } from "../sources/s3_sqs_spec.ts";
import type { Source } from "../pipeline/types.ts";

/** The `stream:` config section. */
export const streamSpec = f.object({
  source: f.enum(["s3", "file"] as const, {
    description:
      "Where files come from: s3 (a bucket prefix) or file (a local directory laid out like one)",
    default: "s3",
  }),
  s3: f.object({
    bucket: f.string({
      description: 'Bucket name, without "s3://"',
      example: "my-log-bucket",
      default: "",
      allowEmpty: true,
      check: (v) =>
        v.startsWith("s3://")
          ? `drop the "s3://" prefix: write bucket: ${
            v.slice(5).split("/")[0]
          } (S3 rejects it as InvalidBucketName)`
          : undefined,
    }),
    prefix: f.string({
      description: "Key prefix above the year=/month=/day= partitions",
      default: "",
      allowEmpty: true,
    }),
    ...awsFields,
  }, { description: "S3 source (source: s3)" }),
  file: f.object({
    path: f.string({
      description: "Directory treated like a bucket (source: file)",
      default: "/var/log/edge-agent/incoming",
    }),
  }, { description: "Local directory source (source: file)" }),
  discovery: f.enum(["scan", "sqs"] as const, {
    description:
      "scan: list the day partitions every scan_interval. sqs: read ObjectCreated notifications from sqs.queue_url (several agents can share one queue)",
    default: "scan",
  }),
  sqs: sqsSpec,
  http: httpSinkSpec,
  processing: f.object({
    worker_count: f.int({
      description: "Files downloaded and decoded in parallel",
      default: 15,
      min: 1,
      max: 256,
    }),
    queue_size: f.int({
      description:
        "Accepted for compatibility with the reference; files are pulled as workers free up",
      default: 1000,
      min: 1,
    }),
    scan_interval: f.duration({ description: "How often to list for new files", default: "15s" }),
    delay_window: f.duration({
      description: "Only files at least this old (by the timestamp in their name) are read",
      default: "60s",
    }),
    lateness: f.duration({
      description:
        "Files landing late with a timestamp up to this far behind the watermark are still read, once",
      default: "10m",
    }),
    max_line_bytes: f.size({
      description: "Longer lines are cut here and counted in lines_truncated_total",
      default: "1MiB",
      min: 64,
    }),
    once: f.bool({
      description: "Process what is there now, then exit (backfills)",
      default: false,
    }),
  }, { description: "How files are found and read" }),
  otlp: otlpSpec,
  state_file: f.string({
    description:
      "Watermark and recently delivered keys. Relative to the config file. Delete it to start at now - delay_window; lower last_processed_timestamp to reprocess",
    default: "/var/lib/edge-agent/stream-state.json",
  }),
}, { description: "Mode stream: S3 (or a directory) → HTTP endpoints" });

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
  async run({ config, configDir, metrics, log, health, signal }) {
    const stateFile = resolve(configDir, config.state_file);
    const p = config.processing;
    let source: Source;
    if (config.source === "s3" && config.discovery === "sqs") {
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
      if (!config.s3.bucket) throw new Error("stream.s3.bucket is required when source is s3");
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
        stateFile,
        scanInterval: p.scan_interval,
        delayWindow: p.delay_window,
        once: p.once,
        log,
      });
    }
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
      // A file is one unit: a corrupt file fails whole and is retried. Holding each member's
      // first MiB until its CRC checks out keeps a small corrupt file from delivering anything,
      // at a quarter of the default hold's memory per file in flight.
      decode: { holdMemberBytes: 1 << 20 },
    });
    stopExport.abort();
    await exporting;
    log.info("stream finished", { ...stats });
    return stats.unitsFailed > 0 && p.once ? 1 : 0;
  },
});
