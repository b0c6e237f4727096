/**
 * Mode `route`'s parts, built from its config: AWS clients (one endpoint override for all,
 * SDK retries off so that retry.ts decides), the tenant step (tenant directory and S3 copier),
 * the parser, the sink (CloudWatch Logs), the inputs and the CloudWatch metrics publisher. Loaded when the mode
 * runs, so that the AWS SDK stays out of start-up.
 * @module
 */

import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { Infer } from "../config/spec.ts";
import type { Logger } from "../log/logger.ts";
import { CloudWatchMetricsPublisher } from "../metrics/cloudwatch_publisher.ts";
import type { Registry } from "../metrics/registry.ts";
import type { PipelineStats } from "../pipeline/run.ts";
import type { Unit } from "../pipeline/types.ts";
import { AssumedRoles } from "../sinks/assumed_roles.ts";
import { CloudWatchLogsSink } from "../sinks/cloudwatch_logs.ts";
import { S3Copier } from "../sinks/s3_copy.ts";
import { awsClientConfig, s3DownloadConfig } from "../sources/aws.ts";
import { serveLambda } from "../sources/lambda.ts";
import { S3BucketScanSource } from "../sources/s3_bucket_scan.ts";
import { eventMessages, S3EventBatch, sqsRequeue } from "../sources/s3_event_batch.ts";
import type { S3ObjectSource } from "../sources/s3_object.ts";
import { SqsS3Source } from "../sources/s3_sqs.ts";
import { readEventMessages } from "../sources/stdin_events.ts";
import type { routeSpec } from "./route.ts";
import { routeEventSize, RouteEventStream } from "./route_events.ts";
import { RouteMetrics } from "./route_metrics.ts";
import { RouteSink } from "./route_sink.ts";
import { type RoutedUnit, TenantStep } from "./route_tenant_step.ts";
import { TenantDirectory } from "./route_tenants.ts";

/** The `route:` config. */
export type RouteConfig = Infer<typeof routeSpec>;

/** Runs the data path over a source (given by route.ts). */
export type Pipe = (source: S3ObjectSource, signal?: AbortSignal) => Promise<PipelineStats>;

/** Build the route's parts. */
export async function buildRoute(config: RouteConfig, metrics: Registry, log: Logger) {
  const s3Aws = await awsClientConfig(config.aws);
  const { forcePathStyle: _, ...aws } = s3Aws;
  const retry = config.retry;
  const s3 = new S3Client(await s3DownloadConfig(config.aws));
  const sqs = new SQSClient(aws);
  const roles = new AssumedRoles({
    aws,
    centralRoleArn: config.central_role_arn,
    sessionName: config.role_session_name,
    retry,
  });
  const routeMetrics = new RouteMetrics(metrics);
  const cloudwatch = new CloudWatchLogsSink({
    aws,
    roles,
    metrics,
    log,
    createLogGroup: config.cloudwatch.create_log_group,
    createLogStream: config.cloudwatch.create_log_stream,
    maxBatchSize: config.cloudwatch.max_batch_size,
    maxEventBytes: config.cloudwatch.max_event_bytes,
    retry,
  });
  const copier = new S3Copier({ aws: s3Aws, roles, source: s3, acl: config.s3.acl, retry });
  const tenantStep = new TenantStep({
    s3,
    tenants: new TenantDirectory({
      client: new DynamoDBClient({ ...aws, maxAttempts: 1 }),
      table: config.tenant_config_table,
      ttl: config.tenant_cache_ttl,
      retry,
      metrics,
      log,
    }),
    copier,
    metrics: routeMetrics,
    log,
    ...(config.aws.region && { region: config.aws.region }),
    defaultPrefix: config.s3.default_prefix,
  });
  const truncated = metrics.counter("lines_truncated_total", "Lines cut at max_line_bytes");
  const publisher = config.metrics.publish
    ? new CloudWatchMetricsPublisher({
      client: new CloudWatchClient(aws),
      namespace: config.metrics.namespace,
      collect: () => routeMetrics.toCloudWatch(),
      log,
    })
    : undefined;

  return {
    /** Each object's tenant and deliveries; S3 copies. */
    tenantStep,
    /** A routed unit's bytes → its CloudWatch events. */
    parse: (unit: Unit) =>
      new RouteEventStream(unit as RoutedUnit, {
        metrics: routeMetrics,
        truncated,
        log,
        maxLineBytes: config.processing.max_line_bytes,
      }),
    /** An event's size as PutLogEvents counts it (for batching). */
    sizeOf: routeEventSize,
    /** CloudWatch Logs, counted per tenant. */
    sink: new RouteSink(cloudwatch, routeMetrics),
    publisher,

    /** Publish metrics every interval until `signal` aborts (nothing when publishing is off). */
    publish: (signal: AbortSignal): Promise<void> =>
      publisher?.run(config.metrics.interval, signal) ?? Promise.resolve(),

    /** Serve Lambda invocations (SQS batches) until `signal` aborts. */
    async serveLambda(pipe: Pipe, signal: AbortSignal): Promise<void> {
      const requeue = sqsRequeue(sqs, config.queue_url || undefined);
      await serveLambda(async (event, inv) => {
        const cut = new AbortController();
        const timer = setTimeout(
          () => cut.abort(),
          Math.max(0, inv.deadline - config.lambda.deadline_margin - Date.now()),
        );
        const batch = new S3EventBatch({
          messages: eventMessages(event, inv.requestId),
          s3,
          log,
          metrics,
          cut: cut.signal,
          requeue,
        });
        try {
          await pipe(batch);
        } finally {
          clearTimeout(timer);
        }
        await publisher?.flush(); // Lambda may freeze the process once answered
        return {
          batchItemFailures: batch.failedIds().map((itemIdentifier) => ({ itemIdentifier })),
        };
      }, {
        api: config.lambda.runtime_api || (Deno.env.get("AWS_LAMBDA_RUNTIME_API") ?? ""),
        log,
        signal,
      });
    },

    /** The events in `files` (or stdin) as one batch. */
    async manual(files: string[]): Promise<S3EventBatch> {
      const messages = [];
      for (const file of files.length > 0 ? files : ["-"]) {
        const input = file === "-" ? Deno.stdin.readable : (await Deno.open(file)).readable;
        messages.push(...await readEventMessages(input, file === "-" ? "stdin" : file));
      }
      return new S3EventBatch({ messages, s3, log, metrics });
    },

    /** Long-poll `queue_url`. */
    sqs(untilEmpty: boolean): S3ObjectSource {
      return new SqsS3Source({ sqs, s3, config, log, metrics, untilEmpty });
    },

    /** Poll `source_bucket`. */
    scan(stateFile: string): S3ObjectSource {
      return new S3BucketScanSource({
        client: s3,
        bucket: config.source_bucket,
        prefix: config.source_prefix,
        stateFile,
        scanInterval: config.scan_interval,
        once: config.once,
        log,
      });
    },

    /** Flush metrics, release clients. */
    async close(): Promise<void> {
      await publisher?.flush();
      await cloudwatch.close();
      copier.close();
    },
  };
}
