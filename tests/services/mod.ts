/**
 * The test side of the services harness: reads the env file tests/services/up.sh wrote, gives
 * tests SDK clients pointed at the local servers and fresh, uniquely named resources, and turns
 * an unavailable service into an ignored test (with a printed reason) outside CI and into a
 * failing one in CI.
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
import { Kafka, logLevel } from "kafkajs";

/** Which server a test needs. */
export type Service = "aws" | "kafka" | "azurite";

const DIR = Deno.env.get("EDGE_AGENT_SERVICES_DIR") ?? "/tmp/edge-agent-services";

function readEnv(): Record<string, string> {
  try {
    const text = Deno.readTextFileSync(`${DIR}/env`);
    return Object.fromEntries(
      text.split("\n").filter((l) => l.includes("=")).map((l) => {
        const i = l.indexOf("=");
        return [l.slice(0, i), l.slice(i + 1)];
      }),
    );
  } catch {
    return {};
  }
}

const env = readEnv();
const unavailable = env.SERVICES_UNAVAILABLE ?? "";
const LOG: Record<Service, string> = { aws: "moto", kafka: "kafka", azurite: "azurite" };

/** Endpoints of the running services. */
export const endpoints = {
  aws: env.AWS_ENDPOINT_URL ?? "http://127.0.0.1:5000",
  kafka: (env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(","),
  azuriteConnectionString: env.AZURE_STORAGE_CONNECTION_STRING ?? "",
  azuriteBlobUrl: env.AZURITE_BLOB_URL ?? "http://127.0.0.1:10000/devstoreaccount1",
};

/** Why a service cannot be used, or undefined when it can. */
export function unavailableReason(s: Service): string | undefined {
  if (!env.AWS_ENDPOINT_URL) return "tests/services/up.sh has not run (no env file)";
  const entry = unavailable.split(";").find((u) => u.startsWith(LOG[s]));
  return entry || undefined;
}

// Agent code under test uses the SDK's default credential chain: give it moto's dummy keys.
for (
  const [k, v] of [["AWS_ACCESS_KEY_ID", "test"], ["AWS_SECRET_ACCESS_KEY", "test"], [
    "AWS_REGION",
    "us-east-1",
  ]]
) {
  if (!Deno.env.get(k!)) Deno.env.set(k!, v!);
}

/** The last lines of a service's log, for a failing test's output. */
export function serviceLogTail(s: Service, lines = 30): string {
  try {
    const text = Deno.readTextFileSync(`${DIR}/${LOG[s]}.log`);
    return text.split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * A Deno test that needs `services`: ignored with a printed reason when one is unavailable
 * outside CI; failing (with the reason) in CI.
 */
export function serviceTest(
  name: string,
  services: Service[],
  fn: (t: Deno.TestContext) => Promise<void>,
): void {
  const why = services.map(unavailableReason).find((r) => r !== undefined);
  const ci = Deno.env.get("CI") === "true";
  if (why && !ci) {
    console.error(`ignored: ${name}: ${why}`);
    Deno.test({ name, ignore: true, fn: () => {} });
    return;
  }
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      if (why) throw new Error(`service unavailable in CI: ${why}`);
      try {
        await fn(t);
      } catch (e) {
        for (const s of services) console.error(`--- ${LOG[s]} log tail ---\n${serviceLogTail(s)}`);
        throw e;
      }
    },
  });
}

/** A short unique name: `prefix-<random>`. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 12)}`;
}

const creds = { accessKeyId: "test", secretAccessKey: "test" };

/** The agent's AWS config keys (mod/sources/aws.ts) for moto. */
export function awsTestConfig(): { region: string; endpoint: string; force_path_style: boolean } {
  return { region: "us-east-1", endpoint: endpoints.aws, force_path_style: true };
}

const aws = () => ({ endpoint: endpoints.aws, region: "us-east-1", credentials: creds });
export const s3Client = (): S3Client => new S3Client({ ...aws(), forcePathStyle: true });
export const sqsClient = (): SQSClient => new SQSClient(aws());
export const snsClient = (): SNSClient => new SNSClient(aws());
export const dynamoClient = (): DynamoDBClient => new DynamoDBClient(aws());
export const logsClient = (): CloudWatchLogsClient => new CloudWatchLogsClient(aws());
export const cloudwatchClient = (): CloudWatchClient => new CloudWatchClient(aws());
export const stsClient = (): STSClient => new STSClient(aws());
export const rdsClient = (): RDSClient => new RDSClient(aws());

/** A new, empty bucket. */
export async function freshBucket(prefix = "test"): Promise<string> {
  const name = uniqueName(prefix).toLowerCase();
  await s3Client().send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

/** A new SQS queue; returns its URL. */
export async function freshQueue(prefix = "test"): Promise<string> {
  const out = await sqsClient().send(new CreateQueueCommand({ QueueName: uniqueName(prefix) }));
  return out.QueueUrl!;
}

/** A new DynamoDB table with a string hash key (and optional string range key). */
export async function freshTable(hashKey = "pk", rangeKey?: string): Promise<string> {
  const TableName = uniqueName("table");
  await dynamoClient().send(
    new CreateTableCommand({
      TableName,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [
        { AttributeName: hashKey, AttributeType: "S" },
        ...(rangeKey ? [{ AttributeName: rangeKey, AttributeType: "S" as const }] : []),
      ],
      KeySchema: [
        { AttributeName: hashKey, KeyType: "HASH" },
        ...(rangeKey ? [{ AttributeName: rangeKey, KeyType: "RANGE" as const }] : []),
      ],
    }),
  );
  return TableName;
}

/** A kafkajs client for the local broker. */
export function kafka(clientId = "edge-agent-tests"): Kafka {
  return new Kafka({ clientId, brokers: endpoints.kafka, logLevel: logLevel.NOTHING });
}

/** A new topic (auto-creation is off on the test broker). */
export async function freshTopic(partitions = 1, prefix = "test"): Promise<string> {
  const topic = uniqueName(prefix);
  const admin = kafka().admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  return topic;
}

/** An Azure blob client for Azurite's well-known account. */
export function blobServiceClient(): BlobServiceClient {
  return BlobServiceClient.fromConnectionString(endpoints.azuriteConnectionString);
}

/** A new blob container; returns its name. */
export async function freshContainer(prefix = "test"): Promise<string> {
  const name = uniqueName(prefix).toLowerCase();
  await blobServiceClient().getContainerClient(name).create();
  return name;
}
