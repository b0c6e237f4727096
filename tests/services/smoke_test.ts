// One smoke test per service, through the SDKs the agent uses, against the real local servers
// that tests/services/up.sh started.
import assert from "node:assert/strict";
import { ListMetricsCommand, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import {
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  GetLogEventsCommand,
  PutLogEventsCommand,
} from "@aws-sdk/client-cloudwatch-logs";
import { GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { DescribeDBInstancesCommand } from "@aws-sdk/client-rds";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import {
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { CreateTopicCommand, PublishCommand, SubscribeCommand } from "@aws-sdk/client-sns";
import { AssumeRoleCommand } from "@aws-sdk/client-sts";
import {
  blobServiceClient,
  cloudwatchClient,
  dynamoClient,
  freshBucket,
  freshContainer,
  freshQueue,
  freshTable,
  freshTopic,
  kafka,
  logsClient,
  produceTo,
  rdsClient,
  s3Client,
  serviceTest,
  snsClient,
  sqsClient,
  stsClient,
  uniqueName,
} from "./mod.ts";

serviceTest("moto S3: put, get, list with a prefix", "aws", async () => {
  const s3 = s3Client();
  const Bucket = await freshBucket();
  await s3.send(new PutObjectCommand({ Bucket, Key: "logs/year=2025/a.gz", Body: "hello" }));
  await s3.send(new PutObjectCommand({ Bucket, Key: "other/b", Body: "x" }));
  const got = await s3.send(new GetObjectCommand({ Bucket, Key: "logs/year=2025/a.gz" }));
  assert.equal(await got.Body!.transformToString(), "hello");
  const list = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: "logs/" }));
  assert.deepEqual(list.Contents?.map((o) => o.Key), ["logs/year=2025/a.gz"]);
});

serviceTest("moto SQS: send, receive, delete", "aws", async () => {
  const sqs = sqsClient();
  const QueueUrl = await freshQueue();
  await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: "m1" }));
  const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 1 }));
  assert.equal(r.Messages?.[0]?.Body, "m1");
  await sqs.send(
    new DeleteMessageCommand({ QueueUrl, ReceiptHandle: r.Messages![0]!.ReceiptHandle }),
  );
  const empty = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 0 }));
  assert.equal(empty.Messages?.length ?? 0, 0);
});

serviceTest("moto DynamoDB: put and get an item", "aws", async () => {
  const ddb = dynamoClient();
  const TableName = await freshTable("tenant");
  await ddb.send(new PutItemCommand({ TableName, Item: { tenant: { S: "acme" }, n: { N: "1" } } }));
  const got = await ddb.send(new GetItemCommand({ TableName, Key: { tenant: { S: "acme" } } }));
  assert.equal(got.Item?.n?.N, "1");
});

serviceTest("moto CloudWatch Logs: group, stream, PutLogEvents, read back", "aws", async () => {
  const logs = logsClient();
  const logGroupName = uniqueName("/edge-agent/test");
  await logs.send(new CreateLogGroupCommand({ logGroupName }));
  await logs.send(new CreateLogStreamCommand({ logGroupName, logStreamName: "s" }));
  const now = Date.now();
  await logs.send(
    new PutLogEventsCommand({
      logGroupName,
      logStreamName: "s",
      logEvents: [{ timestamp: now, message: "one" }, { timestamp: now + 1, message: "two" }],
    }),
  );
  const got = await logs.send(
    new GetLogEventsCommand({ logGroupName, logStreamName: "s", startFromHead: true }),
  );
  assert.deepEqual(got.events?.map((e) => e.message), ["one", "two"]);
});

serviceTest("moto SNS: publish to a topic with an SQS subscription", "aws", async () => {
  const sns = snsClient();
  const sqs = sqsClient();
  const QueueUrl = await freshQueue();
  const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: uniqueName("topic") }));
  const QueueArn = `arn:aws:sqs:us-east-1:123456789012:${QueueUrl.split("/").at(-1)}`;
  await sns.send(
    new SubscribeCommand({
      TopicArn,
      Protocol: "sqs",
      Endpoint: QueueArn,
      Attributes: { RawMessageDelivery: "true" },
    }),
  );
  await sns.send(new PublishCommand({ TopicArn, Message: "note" }));
  const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 2 }));
  assert.equal(r.Messages?.[0]?.Body, "note");
});

serviceTest("moto CloudWatch: PutMetricData, then ListMetrics finds it", "aws", async () => {
  const cw = cloudwatchClient();
  const Namespace = uniqueName("EdgeAgent/Test");
  await cw.send(
    new PutMetricDataCommand({
      Namespace,
      MetricData: [{ MetricName: "lines", Value: 3, Unit: "Count", Timestamp: new Date() }],
    }),
  );
  const got = await cw.send(new ListMetricsCommand({ Namespace }));
  assert.deepEqual(got.Metrics?.map((m) => m.MetricName), ["lines"]);
});

serviceTest("moto RDS: DescribeDBInstances answers", "aws", async () => {
  const got = await rdsClient().send(new DescribeDBInstancesCommand({}));
  assert.ok(Array.isArray(got.DBInstances));
});

serviceTest("moto STS: AssumeRole returns credentials", "aws", async () => {
  const r = await stsClient().send(
    new AssumeRoleCommand({
      RoleArn: "arn:aws:iam::123456789012:role/central-distribution",
      RoleSessionName: "edge-agent-test",
      ExternalId: "ext-1",
    }),
  );
  assert.ok(r.Credentials?.AccessKeyId);
  assert.ok(r.Credentials?.SessionToken);
  assert.ok(r.Credentials?.Expiration instanceof Date);
});

serviceTest("Kafka (KRaft): produce and read back with the agent's client", "kafka", async () => {
  const topic = await freshTopic();
  await produceTo(topic, [{ key: "k", value: "v1", headers: { h: "x" } }]);
  const client = kafka();
  const reader = client.reader([topic], { fromBeginning: true, maxWait: 100 });
  try {
    await reader.start();
    const got = await reader.fetch();
    assert.deepEqual(
      got.map((r) => ({
        key: new TextDecoder().decode(r.key!),
        value: new TextDecoder().decode(r.value!),
        header: r.headers.h,
      })),
      [{ key: "k", value: "v1", header: "x" }],
    );
  } finally {
    await reader.close();
    await client.close();
  }
});

serviceTest(
  "Azurite: append blob with two blocks, download a byte range",
  "azurite",
  async () => {
    const container = blobServiceClient().getContainerClient(await freshContainer());
    const blob = container.getAppendBlobClient("kubernetes/20250606.svc-pod_ns_c-1.gz");
    await blob.create();
    await blob.appendBlock("first-", 6);
    await blob.appendBlock("second", 6);
    const props = await blob.getProperties();
    assert.equal(props.contentLength, 12);
    const part = await blob.download(6, 6);
    assert.equal(
      await new Response(part.readableStreamBody as unknown as BodyInit).text(),
      "second",
    );
  },
);
