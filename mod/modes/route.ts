/**
 * Mode `route`: the multi-tenant log router. S3 objects under
 * `cluster_id/namespace/application/pod_name/file` (announced by S3 events through SQS, SNS or
 * Lambda, given on stdin, or found by scanning a bucket) → the namespace's delivery configs in
 * DynamoDB → its records to CloudWatch Logs and/or the object copied to S3, in other accounts.
 *
 * Source: `input` (sqs, lambda, manual, scan). Tenant step: each object's deliveries, S3 copies
 * (route_tenant_step.ts). Parser: JSON records (NDJSON or an array) → CloudWatch events
 * (route_events.ts). Sink: CloudWatch Logs, counted per tenant (route_sink.ts).
 * @module
 */

import { dirname, resolve } from "node:path";
import { f, type Infer } from "../config/spec.ts";
import { DeadLetter, deadLetterSpec } from "../pipeline/dead_letter.ts";
import { runPipeline } from "../pipeline/run.ts";
import { retrySpec } from "../pipeline/retry.ts";
import { awsFields } from "../sources/aws.ts";
import { sqsSpec } from "../sources/s3_sqs_spec.ts";
import type { S3ObjectSource } from "../sources/s3_object.ts";
import { defineMode } from "./mode.ts";
import { routeEnvHelp, withRouteEnv } from "./route_env.ts";

/**
 * The `route:` config section (the reference's settings, as keys; its environment variables
 * fill the keys the file leaves out: route_env.ts).
 */
export const routeSpec = withRouteEnv(f.object({
  input: f.enum(["lambda", "sqs", "manual", "scan"] as const, {
    description:
      "lambda: AWS Lambda custom runtime (SQS batches, partial batch failure). sqs: long-poll queue_url. manual: events from the files given as arguments, or stdin. scan: poll source_bucket",
    default: "lambda",
  }),
  ...sqsSpec.shape,
  source_bucket: f.string({
    description: "Bucket polled by input scan",
    default: "",
    allowEmpty: true,
  }),
  source_prefix: f.string({
    description: "Only keys under this prefix (input scan)",
    default: "",
    allowEmpty: true,
  }),
  scan_interval: f.duration({ description: "How often input scan lists", default: "10s" }),
  state_file: f.string({
    description: "Input scan's checkpoint (watermark and recent keys). Relative to the config file",
    default: "/var/lib/edge-agent/route-state.json",
  }),
  once: f.bool({
    description: "sqs: stop when the queue is empty; scan: one scan. Then exit",
    default: false,
  }),
  tenant_config_table: f.string({
    description: "DynamoDB table of tenant delivery configs (hash key tenant_id)",
    default: "tenant-configurations",
  }),
  tenant_cache_ttl: f.duration({
    description: "How long a tenant's configs (or their absence) are reused",
    default: "60s",
  }),
  central_role_arn: f.string({
    description:
      "Central log distribution role, assumed first; tenant roles are assumed with its credentials, S3 copies made with them. Empty: the agent's own credentials",
    default: "",
    allowEmpty: true,
    example: "arn:aws:iam::123456789012:role/CentralLogDistributionRole",
  }),
  role_session_name: f.string({ description: "STS session name prefix", default: "edge-agent" }),
  cloudwatch: f.object({
    max_batch_size: f.int({
      description:
        "Events per PutLogEvents request (the service allows 10,000; the reference sent 1,000)",
      default: 10_000,
      min: 1,
      max: 10_000,
    }),
    create_log_group: f.bool({ description: "Create a missing log group", default: true }),
    create_log_stream: f.bool({
      description: "Create a missing log stream (named after the pod)",
      default: true,
    }),
    max_event_bytes: f.size({
      description:
        "Longer messages are cut (counted in cloudwatch_logs_events_truncated_total). 256 KiB is the long-standing limit; the service now documents 1 MB",
      default: 262_118,
      min: 1,
      max: 1_048_550,
    }),
  }, { description: "CloudWatch Logs destinations" }),
  s3: f.object({
    default_prefix: f.string({
      description: "Prefix of copies when a config has no bucket_prefix",
      default: "ROSA/cluster-logs/",
      allowEmpty: true,
    }),
    acl: f.string({
      description: "Canned ACL of copies; empty for none",
      default: "bucket-owner-full-control",
      allowEmpty: true,
    }),
  }, { description: "S3 destinations" }),
  metrics: f.object({
    publish: f.bool({
      description: "Publish per-tenant metrics with PutMetricData",
      default: false,
    }),
    namespace: f.string({ description: "CloudWatch namespace", default: "HCPLF/LogForwarding" }),
    interval: f.duration({
      description: "How often (and at each Lambda invocation's end)",
      default: "60s",
    }),
  }, { description: "CloudWatch metrics (always served at /metrics)" }),
  retry: retrySpec,
  processing: f.object({
    worker_count: f.int({ description: "Objects read at once", default: 8, min: 1, max: 256 }),
    workers: f.int({ description: "Batches in flight at once", default: 10, min: 1, max: 256 }),
    flush_interval: f.duration({
      description: "A partial batch is sent after this long",
      default: "1s",
    }),
    max_line_bytes: f.size({
      description: "Longest line (a one-line JSON array included); longer ones are cut and counted",
      default: "16MiB",
      min: 1024,
    }),
  }, { description: "How objects are read and batched" }),
  lambda: f.object({
    deadline_margin: f.duration({
      description:
        "Objects still being read this long before the invocation's deadline stop and are re-queued with their record offset",
      default: "20s",
    }),
    runtime_api: f.string({
      description: "Runtime API host:port (default: $AWS_LAMBDA_RUNTIME_API)",
      default: "",
      allowEmpty: true,
    }),
  }, { description: "input lambda" }),
  dead_letter: deadLetterSpec,
  aws: f.object(awsFields, {
    description: "AWS connection of every client (endpoint: moto, LocalStack)",
  }),
}, { description: "Mode route: S3 events → tenant configs (DynamoDB) → CloudWatch Logs / S3" }));

/** In Lambda only /tmp is writable: the default dead letter goes there (a set path is kept). */
export const LAMBDA_DEAD_LETTER = "/tmp/edge-agent/dead-letter.ndjson";

/** Where route's dead letter is written. */
export function deadLetterPath(config: Infer<typeof routeSpec>, configDir: string): string {
  const path = config.dead_letter.path;
  if (config.input === "lambda" && path === deadLetterSpec.shape.path.rawDefault) {
    return LAMBDA_DEAD_LETTER;
  }
  return resolve(configDir, path);
}

/** Mode `route`. */
export const routeMode = defineMode({
  name: "route",
  summary: "S3 events (SQS/SNS/Lambda) → tenant config in DynamoDB → CloudWatch Logs / S3",
  spec: routeSpec,
  flags: {
    input: { key: "input", description: "lambda | sqs | manual | scan" },
    "queue-url": { key: "queue_url", description: "SQS queue (input sqs)" },
    "source-bucket": { key: "source_bucket", description: "Bucket (input scan)" },
    once: {
      key: "once",
      description: "Stop when the queue is empty / after one scan",
      boolean: true,
    },
  },
  usage:
    "input manual reads the event files given as arguments (or stdin): route --input manual events.json\n" +
    routeEnvHelp(),
  async run({ config, configDir, metrics, log, health, signal, args }) {
    const { buildRoute } = await import("./route_build.ts");
    const r = await buildRoute(config, metrics, log);
    // Events CloudWatch Logs refuses for good (too old, too new, expired, empty, a stream that
    // fails for good), with their destination and record.
    const deadLetter = new DeadLetter(deadLetterPath(config, configDir));
    const pipe = (source: S3ObjectSource, stop = signal) =>
      runPipeline({
        source: r.tenantStep.source(source),
        frame: r.parse,
        sink: r.sink,
        sizeOf: r.sizeOf,
        deadLetter,
        metrics,
        log,
        health,
        signal: stop,
        processing: config.processing,
        batch: {
          batch_lines: config.cloudwatch.max_batch_size,
          batch_bytes: 1_048_576,
          flush_interval: config.processing.flush_interval,
          workers: config.processing.workers,
        },
      });
    const stopExport = new AbortController();
    const exporting = r.publish(AbortSignal.any([signal, stopExport.signal]));
    try {
      switch (config.input) {
        case "lambda":
          await r.serveLambda(pipe, signal);
          return 0;
        case "manual": {
          const batch = await r.manual(args);
          await pipe(batch);
          return batch.failedIds().length > 0 ? 1 : 0;
        }
        case "sqs":
          if (!config.queue_url) throw new Error("route.queue_url is required for input sqs");
          await pipe(r.sqs(config.once));
          return r.tenantStep.retryLater > 0 && config.once ? 1 : 0;
        case "scan":
          if (!config.source_bucket) {
            throw new Error("route.source_bucket is required for input scan");
          }
          await pipe(r.scan(await stateFileIn(resolve(configDir, config.state_file))));
          return r.tenantStep.retryLater > 0 && config.once ? 1 : 0;
      }
    } finally {
      stopExport.abort();
      await exporting;
      await r.close();
    }
  },
});

/**
 * `path`, once its directory exists: created when missing, so that a first run does not deliver
 * everything and then fail to save what it did (the next run would deliver it all again).
 *
 * @throws {Error} naming the directory when it cannot be created.
 */
async function stateFileIn(path: string): Promise<string> {
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
  } catch (e) {
    throw new Error(`route.state_file ${path}: cannot create its directory ${dirname(path)}`, {
      cause: e,
    });
  }
  return path;
}
