/**
 * The `stream:` config section, apart from the mode so that the demo can use it without loading
 * the mode's S3 and SQS sources (and with them the AWS SDK).
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import { otlpSpec } from "../metrics/otlp.ts";
import { deadLetterSpec } from "../pipeline/dead_letter.ts";
import { maxAttemptsField } from "../pipeline/run.ts";
import { httpSinkSpec } from "../sinks/http.ts";
import { awsFields } from "../sources/aws_spec.ts";
import { tailSourceSpec } from "../sources/file_tail.ts";
import { sqsSpec } from "../sources/s3_sqs_spec.ts";

/** The `stream:` config section. */
export const streamSpec = f.object({
  source: f.enum(["s3", "file", "tail"] as const, {
    description:
      "Where files come from: s3 (a bucket prefix), file (a local directory laid out like one) or tail (follow growing, rotating files: tail:)",
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
      description:
        "Directory laid out like the bucket (source: file): only files under year=*/month=*/day=*/ are read",
      default: "/var/log/edge-agent/incoming",
    }),
  }, { description: "Local directory source (source: file)" }),
  tail: tailSourceSpec,
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
    max_attempts: maxAttemptsField,
    plain: f.enum(["reject", "allow"] as const, {
      description:
        "Files are gzip (the reference's layout): reject quarantines a file that is not (reason not_gzip); allow reads it as plain text",
      default: "reject",
    }),
  }, { description: "How files are found and read" }),
  dead_letter: deadLetterSpec,
  otlp: otlpSpec,
  state_file: f.string({
    description:
      "Watermark and recently delivered keys. Relative to the config file. Delete it to start at now - delay_window; lower last_processed_timestamp to reprocess",
    default: "/var/lib/edge-agent/stream-state.json",
  }),
}, {
  description: "Mode stream: S3 (or a directory) → HTTP endpoints",
  check: (c) => {
    if (c.source === "tail") {
      // A tail follows files for good (scan_interval, delay_window and lateness are the other
      // sources'; poll_interval, line_timeout and rotate_wait are the tail's).
      return c.processing.once
        ? [{ key: "processing.once", message: "does not apply to source: tail" }]
        : [];
    }
    if (c.source !== "s3") return [];
    if (c.discovery === "sqs") {
      return c.sqs.queue_url
        ? []
        : [{ key: "sqs.queue_url", message: "is required with discovery: sqs" }];
    }
    return c.s3.bucket ? [] : [{ key: "s3.bucket", message: "is required with source: s3" }];
  },
});

/** The validated `stream:` section. */
export type StreamConfig = Infer<typeof streamSpec>;
