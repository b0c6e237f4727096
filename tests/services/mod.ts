/**
 * The test side of the services harness. It reads the env file tests/services/up.sh wrote (it
 * starts nothing itself), gives tests SDK clients pointed at the local servers and fresh, uniquely
 * named resources, and turns an unavailable service into an ignored test with a printed reason
 * outside CI and into a failing test in CI (`CI=true`).
 *
 * @example
 * ```ts
 * import { freshBucket, s3Client, serviceTest } from "../services/mod.ts";
 *
 * serviceTest("S3ScanSource() lists a fresh bucket", "aws", async () => {
 *   const bucket = await freshBucket();
 *   // ... s3Client(), the code under test, asserts
 * });
 * ```
 * @module
 */

import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { RDSClient } from "@aws-sdk/client-rds";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { SNSClient } from "@aws-sdk/client-sns";
import { CreateQueueCommand, SQSClient } from "@aws-sdk/client-sqs";
import { STSClient } from "@aws-sdk/client-sts";
import { BlobServiceClient } from "@azure/storage-blob";
import { retry } from "../../mod/pipeline/retry.ts";
import { KafkaClient, kafkaRetryable } from "../../mod/sources/kafka_client.ts";

/** A server the tests can need: "aws" is moto (S3, SQS, SNS, DynamoDB, Logs, STS, CloudWatch, RDS). */
export type Service = "aws" | "kafka" | "azurite";

/** What tests/services/up.sh wrote: where each service answers and which ones cannot be used. */
export interface Services {
  /** The run dir holding the env file, pid files and logs. */
  dir: string;
  /** moto's endpoint, e.g. `http://127.0.0.1:5000`. */
  awsEndpoint: string;
  /** Kafka bootstrap brokers, e.g. `["127.0.0.1:9092"]`. */
  kafkaBrokers: string[];
  /** Azurite's blob endpoint for the dev account, e.g. `http://127.0.0.1:10000/devstoreaccount1`. */
  azuriteBlobUrl: string;
  /** Connection string for Azurite's well-known account `devstoreaccount1`. */
  azureConnectionString: string;
  /** Whether `name` can be used. */
  available(name: Service): boolean;
  /** Why `name` cannot be used, or undefined when it can. */
  reason(name: Service): string | undefined;
  /** The path of `name`'s log. */
  logPath(name: Service): string;
}

const DIR = Deno.env.get("EDGE_AGENT_SERVICES_DIR") ?? "/tmp/edge-agent-services";
const PROCESS: Record<Service, string> = { aws: "moto", kafka: "kafka", azurite: "azurite" };
const LOG_KEY: Record<Service, string> = {
  aws: "MOTO_LOG",
  kafka: "KAFKA_LOG",
  azurite: "AZURITE_LOG",
};
const DEV_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

let cached: Services | undefined;

/**
 * The services as tests/services/up.sh left them, read once from
 * `$EDGE_AGENT_SERVICES_DIR/env` (default /tmp/edge-agent-services/env). Brings nothing up.
 * @returns endpoints and availability; without an env file every service is unavailable.
 */
export function services(): Services {
  if (cached) return cached;
  let text: string | undefined;
  try {
    text = Deno.readTextFileSync(`${DIR}/env`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const env = new Map<string, string>();
  for (const line of (text ?? "").split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) env.set(line.slice(0, i), line.slice(i + 1));
  }
  const missing = (env.get("SERVICES_UNAVAILABLE") ?? "").split(";").filter((s) => s !== "");
  const reason = (name: Service): string | undefined => {
    if (text === undefined) return `tests/services/up.sh has not run (no ${DIR}/env)`;
    return missing.find((m) => m.startsWith(`${PROCESS[name]}:`));
  };
  const blob = env.get("AZURITE_BLOB_URL") ?? "http://127.0.0.1:10000/devstoreaccount1";
  cached = {
    dir: DIR,
    awsEndpoint: env.get("AWS_ENDPOINT_URL") ?? "http://127.0.0.1:5000",
    kafkaBrokers: (env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(","),
    azuriteBlobUrl: blob,
    azureConnectionString: env.get("AZURE_STORAGE_CONNECTION_STRING") ??
      `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${DEV_KEY};BlobEndpoint=${blob};`,
    available: (name) => reason(name) === undefined,
    reason,
    logPath: (name) => env.get(LOG_KEY[name]) ?? `${DIR}/${PROCESS[name]}.log`,
  };
  return cached;
}

/** Endpoints of the services (the same as {@linkcode services}, in the shape older tests use). */
export const endpoints = {
  aws: services().awsEndpoint,
  kafka: services().kafkaBrokers,
  azuriteConnectionString: services().azureConnectionString,
  azuriteBlobUrl: services().azuriteBlobUrl,
};

/**
 * Why a service cannot be used.
 * @param name the service
 * @returns the reason, or undefined when it can be used
 */
export function unavailableReason(name: Service): string | undefined {
  return services().reason(name);
}

// Agent code under test takes AWS credentials from the SDK's default chain: moto's dummy keys.
for (const [k, v] of [["AWS_ACCESS_KEY_ID", "test"], ["AWS_SECRET_ACCESS_KEY", "test"]] as const) {
  if (!Deno.env.get(k)) Deno.env.set(k, v);
}
if (!Deno.env.get("AWS_REGION")) Deno.env.set("AWS_REGION", "us-east-1");

/**
 * The last lines of a service's log, for a failing test's output.
 * @param name the service
 * @param lines how many lines
 * @returns the lines, or a note that there is no log
 */
export function serviceLogTail(name: Service, lines = 30): string {
  const path = services().logPath(name);
  try {
    return Deno.readTextFileSync(path).split("\n").slice(-lines - 1).join("\n");
  } catch (e) {
    return `(no log at ${path}: ${e instanceof Error ? e.message : e})`;
  }
}

/**
 * A Deno test that needs one or more services. When one is unavailable it is ignored, with the
 * reason printed on one line, or, in CI (`CI=true`), it fails with that reason. When `fn` throws,
 * the tail of each needed service's log is printed before the error.
 * @param name the test name
 * @param need the service or services the test talks to
 * @param fn the test body
 */
export function serviceTest(
  name: string,
  need: Service | Service[],
  fn: (t: Deno.TestContext) => Promise<void>,
): void {
  const needs = Array.isArray(need) ? need : [need];
  const why = needs.map(unavailableReason).find((r) => r !== undefined);
  const ci = ["true", "1"].includes(Deno.env.get("CI") ?? "");
  if (why !== undefined && !ci) {
    console.error(`ignored: ${name}: ${why}`);
    Deno.test({ name, ignore: true, fn: () => {} });
    return;
  }
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      if (why !== undefined) throw new Error(`test service unavailable in CI: ${why}`);
      try {
        await fn(t);
      } catch (e) {
        for (const s of needs) {
          console.error(`--- ${services().logPath(s)} (last lines) ---\n${serviceLogTail(s)}`);
        }
        throw e;
      }
    },
  });
}

/**
 * A short unique name, `prefix-<12 hex digits>`.
 * @param prefix the start of the name
 * @returns the name
 */
export function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** moto's dummy credentials, passed explicitly to every client. */
export const testCredentials = { accessKeyId: "test", secretAccessKey: "test" };

/**
 * The agent's AWS config keys (mod/sources/aws.ts) pointed at moto.
 * @returns region, endpoint and path-style addressing for moto
 */
export function awsTestConfig(): { region: string; endpoint: string; force_path_style: boolean } {
  return { region: "us-east-1", endpoint: services().awsEndpoint, force_path_style: true };
}

const aws = () => ({
  endpoint: services().awsEndpoint,
  region: "us-east-1",
  credentials: testCredentials,
});
/** An S3 client for moto (path-style addressing). */
export const s3Client = (): S3Client => new S3Client({ ...aws(), forcePathStyle: true });
/** An SQS client for moto. */
export const sqsClient = (): SQSClient => new SQSClient(aws());
/** An SNS client for moto. */
export const snsClient = (): SNSClient => new SNSClient(aws());
/** A DynamoDB client for moto. */
export const dynamoClient = (): DynamoDBClient => new DynamoDBClient(aws());
/** A CloudWatch Logs client for moto. */
export const logsClient = (): CloudWatchLogsClient => new CloudWatchLogsClient(aws());
/** A CloudWatch (metrics) client for moto. */
export const cloudwatchClient = (): CloudWatchClient => new CloudWatchClient(aws());
/** An STS client for moto. */
export const stsClient = (): STSClient => new STSClient(aws());
/** An RDS client for moto. */
export const rdsClient = (): RDSClient => new RDSClient(aws());

/**
 * A new, empty S3 bucket.
 * @param prefix the start of its name
 * @returns the bucket name
 */
export async function freshBucket(prefix = "test"): Promise<string> {
  const name = uniqueName(prefix).toLowerCase();
  await s3Client().send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

/**
 * A new, empty SQS queue.
 * @param prefix the start of its name
 * @returns the queue URL
 */
export async function freshQueue(prefix = "test"): Promise<string> {
  const out = await sqsClient().send(new CreateQueueCommand({ QueueName: uniqueName(prefix) }));
  if (!out.QueueUrl) throw new Error(`CreateQueue at ${services().awsEndpoint} gave no QueueUrl`);
  return out.QueueUrl;
}

/** A DynamoDB key attribute: a name (a string attribute), or a name and its type. */
export type KeyAttribute = string | { name: string; type: "S" | "N" | "B" };

/**
 * A new, empty DynamoDB table (on-demand billing).
 * @param hash the partition key, e.g. `"tenant"` or `{ name: "n", type: "N" }`
 * @param range the sort key, if any
 * @returns the table name
 */
export async function freshTable(hash: KeyAttribute = "pk", range?: KeyAttribute): Promise<string> {
  const TableName = uniqueName("table");
  const keys = [
    { ...attr(hash), KeyType: "HASH" as const },
    ...(range === undefined ? [] : [{ ...attr(range), KeyType: "RANGE" as const }]),
  ];
  await dynamoClient().send(
    new CreateTableCommand({
      TableName,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: keys.map((k) => ({
        AttributeName: k.AttributeName,
        AttributeType: k.AttributeType,
      })),
      KeySchema: keys.map((k) => ({ AttributeName: k.AttributeName, KeyType: k.KeyType })),
    }),
  );
  return TableName;
}

function attr(k: KeyAttribute): { AttributeName: string; AttributeType: "S" | "N" | "B" } {
  return typeof k === "string"
    ? { AttributeName: k, AttributeType: "S" }
    : { AttributeName: k.name, AttributeType: k.type };
}

/**
 * The agent's Kafka client for the local broker.
 * @param clientId the client id the broker sees
 * @returns the client (close it when done)
 */
export function kafka(clientId = "edge-agent-tests"): KafkaClient {
  return new KafkaClient({
    brokers: services().kafkaBrokers,
    client_id: clientId,
    ssl: false,
    sasl: undefined,
    connection_timeout: 5_000,
    request_timeout: 30_000,
  });
}

/**
 * Produce messages to a topic of the local broker (acks=all), then close the producer.
 * @param topic the topic
 * @param messages values, or messages with key, headers, partition
 */
export async function produceTo(
  topic: string,
  messages: (string | {
    key?: string;
    value: string | Uint8Array;
    headers?: Record<string, string>;
    partition?: number;
  })[],
): Promise<void> {
  const client = kafka();
  const producer = client.producer();
  try {
    // Retried as the agent's sink retries (same batch, same sequence numbers: written once): a
    // fresh topic's leader may still answer NOT_LEADER_OR_FOLLOWER to the first produce.
    const batch = producer.batch(
      topic,
      messages.map((m) => typeof m === "string" ? { value: m } : m),
    );
    await retry(() => batch.send(), {
      max_retries: 20,
      initial_backoff: 100,
      max_backoff: 200,
      retryable: kafkaRetryable,
    });
  } finally {
    await producer.close();
    await client.close();
  }
}

/**
 * A new, empty topic (the test broker does not create topics on use), with its partition leaders
 * elected.
 * @param partitions how many partitions
 * @param prefix the start of its name
 * @returns the topic name
 */
export async function freshTopic(partitions = 1, prefix = "test"): Promise<string> {
  const topic = uniqueName(prefix);
  const client = kafka();
  try {
    await client.createTopic(topic, { partitions, replicationFactor: 1 });
  } finally {
    await client.close();
  }
  return topic;
}

/**
 * An Azure blob service client for Azurite's well-known account `devstoreaccount1`.
 * @returns the client
 */
export function blobServiceClient(): BlobServiceClient {
  return BlobServiceClient.fromConnectionString(services().azureConnectionString);
}

/**
 * A new, empty blob container in Azurite.
 * @param prefix the start of its name
 * @returns the container name
 */
export async function freshContainer(prefix = "test"): Promise<string> {
  const name = uniqueName(prefix).toLowerCase();
  await blobServiceClient().getContainerClient(name).create();
  return name;
}
