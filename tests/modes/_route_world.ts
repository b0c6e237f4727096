// Fixtures for mode route's tests against moto: buckets, a tenant table, a queue, S3 events
// (direct and through a real SNS topic), and reading CloudWatch Logs back.
import zlib from "node:zlib";
import {
  type CloudWatchLogsClient,
  GetLogEventsCommand,
  type OutputLogEvent,
} from "@aws-sdk/client-cloudwatch-logs";
import { PutItemCommand } from "@aws-sdk/client-dynamodb";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { CreateTopicCommand, PublishCommand, SubscribeCommand } from "@aws-sdk/client-sns";
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { parseValue } from "../../mod/config/spec.ts";
import { routeMode } from "../../mod/modes/route.ts";
import {
  awsTestConfig,
  dynamoClient,
  freshBucket,
  freshQueue,
  freshTable,
  s3Client,
  snsClient,
  sqsClient,
  uniqueName,
} from "../services/mod.ts";

export const gz = (s: string) => zlib.gzipSync(new TextEncoder().encode(s));
export const CENTRAL = "arn:aws:iam::123456789012:role/central";
export const roleOf = (tenant: string) => `arn:aws:iam::123456789012:role/${tenant}-logs`;

/** An S3 ObjectCreated event for one object, as S3 sends it (key URL-encoded, `+` for space). */
export function s3Event(bucket: string, key: string, size = 1) {
  return {
    Records: [{
      eventVersion: "2.1",
      eventSource: "aws:s3",
      eventName: "ObjectCreated:Put",
      eventTime: new Date().toISOString(),
      s3: {
        bucket: { name: bucket },
        object: { key: encodeURIComponent(key).replace(/%2F/g, "/").replace(/%20/g, "+"), size },
      },
    }],
  };
}

/** Fresh resources for one test. */
export async function routeWorld() {
  const [bucket, dest, table, queue] = await Promise.all([
    freshBucket("src"),
    freshBucket("dst"),
    freshTable("tenant_id", "type"),
    freshQueue("route"),
  ]);
  const id = uniqueName("w");
  const S = (s: string) => ({ S: s });
  return {
    bucket,
    dest,
    table,
    queue,
    /** A log group name unique to this test. */
    group: (name: string) => `/${id}/${name}`,
    async cloudwatch(tenant: string, group: string, desired: string[] = [], extra = {}) {
      await dynamoClient().send(
        new PutItemCommand({
          TableName: table,
          Item: {
            tenant_id: S(tenant),
            type: S("cloudwatch"),
            log_group_name: S(group),
            log_distribution_role_arn: S(roleOf(tenant)),
            enabled: { BOOL: true },
            ...(desired.length && { desired_logs: { L: desired.map(S) } }),
            ...extra,
          },
        }),
      );
    },
    async s3(tenant: string, bucket: string, prefix: string, desired: string[] = []) {
      await dynamoClient().send(
        new PutItemCommand({
          TableName: table,
          Item: {
            tenant_id: S(tenant),
            type: S("s3"),
            bucket_name: S(bucket),
            bucket_prefix: S(prefix),
            ...(desired.length && { desired_logs: { SS: desired } }),
          },
        }),
      );
    },
    async put(key: string, body: Uint8Array | string) {
      await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    /** Send a message body to the queue. */
    async send(body: unknown) {
      await sqsClient().send(
        new SendMessageCommand({
          QueueUrl: queue,
          MessageBody: typeof body === "string" ? body : JSON.stringify(body),
        }),
      );
    },
    /** Publish an S3 event through a real SNS topic subscribed by the queue. */
    async viaSns(event: unknown) {
      const topic = await topicFor(queue);
      await snsClient().send(
        new PublishCommand({ TopicArn: topic, Message: JSON.stringify(event) }),
      );
    },
    async queueDepth(): Promise<number> {
      const a = await sqsClient().send(
        new GetQueueAttributesCommand({
          QueueUrl: queue,
          AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        }),
      );
      return Number(a.Attributes?.ApproximateNumberOfMessages) +
        Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible);
    },
    async receive() {
      const out = await sqsClient().send(
        new ReceiveMessageCommand({ QueueUrl: queue, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
      );
      return out.Messages ?? [];
    },
    /** The route config for this world, with `extra` on top. */
    config(extra: Record<string, unknown> = {}) {
      return parseValue(routeMode.spec, {
        input: "sqs",
        queue_url: queue,
        wait_time: "1s",
        once: true,
        tenant_config_table: table,
        central_role_arn: CENTRAL,
        retry: { initial_backoff: "1ms", max_backoff: "5ms", max_retries: 3 },
        processing: { flush_interval: "20ms" },
        aws: awsTestConfig(),
        ...extra,
      });
    },
  };
}

const topics = new Map<string, Promise<string>>();
function topicFor(queueUrl: string): Promise<string> {
  let t = topics.get(queueUrl);
  if (!t) {
    t = (async () => {
      const { TopicArn } = await snsClient().send(
        new CreateTopicCommand({ Name: uniqueName("s3-events") }),
      );
      const a = await sqsClient().send(
        new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }),
      );
      await snsClient().send(
        new SubscribeCommand({
          TopicArn,
          Protocol: "sqs",
          Endpoint: a.Attributes!.QueueArn!,
        }),
      );
      return TopicArn!;
    })();
    topics.set(queueUrl, t);
  }
  return t;
}

/** Every event of a log stream, oldest first ([] when the stream does not exist). */
export async function readBack(
  client: CloudWatchLogsClient,
  group: string,
  stream: string,
): Promise<OutputLogEvent[]> {
  const out: OutputLogEvent[] = [];
  let token: string | undefined;
  for (;;) {
    let page;
    try {
      page = await client.send(
        new GetLogEventsCommand({
          logGroupName: group,
          logStreamName: stream,
          startFromHead: true,
          limit: 10_000,
          ...(token && { nextToken: token }),
        }),
      );
    } catch (e) {
      if ((e as Error).name === "ResourceNotFoundException") return out;
      throw e;
    }
    out.push(...page.events ?? []);
    if (!page.events?.length || page.nextForwardToken === token) return out;
    token = page.nextForwardToken;
  }
}
