import assert from "node:assert/strict";
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from "@aws-sdk/client-sqs";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { NonRecoverableError } from "../../mod/pipeline/non_recoverable_error.ts";
import type { S3ObjectUnit } from "../../mod/sources/s3_object.ts";
import { parseS3Event, SqsS3Source } from "../../mod/sources/s3_sqs.ts";
import { freshQueue, s3Client, serviceTest, sqsClient } from "../services/mod.ts";

const event = {
  Records: [{
    eventName: "ObjectCreated:Put",
    eventTime: "2025-10-12T21:41:32.000Z",
    s3: { bucket: { name: "logs" }, object: { key: "feed/Threat+Team+-+Web/a%2Bb.gz", size: 42 } },
  }],
};

Deno.test("parseS3Event() reads a direct S3 event, URL-decoding the key", () => {
  assert.deepEqual(parseS3Event(JSON.stringify(event)), {
    kind: "objects",
    objects: [{
      bucket: "logs",
      key: "feed/Threat Team - Web/a+b.gz",
      size: 42,
      time: 1760305292000,
    }],
  });
});

Deno.test("parseS3Event() unwraps an SNS notification", () => {
  const sns = { Type: "Notification", Message: JSON.stringify(event) };
  const out = parseS3Event(JSON.stringify(sns));
  assert.equal(out.kind, "objects");
});

Deno.test("parseS3Event() recognises the test event and malformed bodies", () => {
  assert.deepEqual(parseS3Event('{"Event":"s3:TestEvent"}'), { kind: "test" });
  assert.equal(parseS3Event("nope").kind, "malformed");
  assert.match((parseS3Event('{"foo":1}') as { reason: string }).reason, /no Records array/);
  assert.match(
    (parseS3Event('{"Records":[{"s3":{}}]}') as { reason: string }).reason,
    /Records\[0\] has no s3\.bucket\.name/,
  );
});

Deno.test("parseS3Event() skips records that are not ObjectCreated", () => {
  const del = { Records: [{ ...event.Records[0], eventName: "ObjectRemoved:Delete" }] };
  assert.deepEqual(parseS3Event(JSON.stringify(del)), { kind: "objects", objects: [] });
});

Deno.test("parseS3Event() reads processing_metadata of a re-queued message, direct or SNS", () => {
  const requeued = {
    ...event,
    processing_metadata: { offset: 1200, retry_count: 2, completed_deliveries: ["s3:b"] },
  };
  const resume = { offset: 1200, completed: ["s3:b"], requeues: 2 };
  const direct = parseS3Event(JSON.stringify(requeued));
  assert.ok(direct.kind === "objects");
  assert.deepEqual(direct.objects[0]!.resume, resume);
  const sns = parseS3Event(
    JSON.stringify({
      Message: JSON.stringify(event),
      processing_metadata: requeued.processing_metadata,
    }),
  );
  assert.ok(sns.kind === "objects");
  assert.deepEqual(sns.objects[0]!.resume, resume);
});

serviceTest(
  "SqsS3Source() deletes a message whose object cannot be delivered, keeps one worth retrying, extends visibility",
  ["aws"],
  async () => {
    const queue = await freshQueue();
    const send = (key: string) =>
      sqsClient().send(
        new SendMessageCommand({
          QueueUrl: queue,
          MessageBody: JSON.stringify({
            Records: [{
              eventName: "ObjectCreated:Put",
              s3: { bucket: { name: "b" }, object: { key } },
            }],
          }),
        }),
      );
    await send("gone");
    await send("retry");
    await send("slow");
    const metrics = new Registry();
    const src = new SqsS3Source({
      sqs: sqsClient(),
      s3: s3Client(),
      config: { queue_url: queue, wait_time: 1000, max_messages: 10, visibility_timeout: 2000 },
      log: new Logger({ write: () => {} }),
      metrics,
      untilEmpty: true,
    });
    const units = new Map<string, S3ObjectUnit>();
    for await (const u of src.units(new AbortController().signal)) {
      units.set(u.key, u);
      if (units.size === 3) break;
    }
    assert.equal(units.get("slow")!.bucket, "b");
    await units.get("gone")!.nack(new NonRecoverableError("gone", { reason: "object_gone" }));
    await units.get("retry")!.nack(new Error("throttled"));
    // "slow" stays in flight past its 2 s visibility timeout: extended, so nobody else gets it.
    await new Promise((r) => setTimeout(r, 3_500));
    const seen = await sqsClient().send(
      new ReceiveMessageCommand({ QueueUrl: queue, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    const keys = (seen.Messages ?? []).map((m) => JSON.parse(m.Body!).Records[0].s3.object.key);
    assert.deepEqual(keys, ["retry"], "only the failed one came back");
    await units.get("slow")!.ack({ lines: 1, bytes: 1, consumed: 1, truncated: 0 });
    assert.equal(
      metrics.counter("sqs_objects_undeliverable_total", "").get({ reason: "object_gone" }),
      1,
    );
    const attrs = await sqsClient().send(
      new GetQueueAttributesCommand({
        QueueUrl: queue,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    assert.equal(attrs.Attributes?.ApproximateNumberOfMessagesNotVisible, "1", "only 'retry' left");
    assert.equal(attrs.Attributes?.ApproximateNumberOfMessages, "0");
  },
);
