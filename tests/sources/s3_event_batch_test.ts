import assert from "node:assert/strict";
import { S3Client } from "@aws-sdk/client-s3";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { NonRecoverableError } from "../../mod/pipeline/non_recoverable_error.ts";
import { eventMessages, S3EventBatch } from "../../mod/sources/s3_event_batch.ts";
import type { ObjectResume, S3ObjectUnit } from "../../mod/sources/s3_object.ts";
import type { S3EventObject } from "../../mod/sources/s3_sqs.ts";

const quiet = new Logger({ write: () => {} });
// Never used to open anything here: these tests settle units by hand.
const s3 = new S3Client({ region: "us-east-1", endpoint: "http://127.0.0.1:9" });

const event = (...keys: string[]) => ({
  Records: keys.map((key) => ({
    eventName: "ObjectCreated:Put",
    s3: { bucket: { name: "src" }, object: { key } },
  })),
});

const msg = (id: string, body: unknown) => ({
  id,
  body: typeof body === "string" ? body : JSON.stringify(body),
});

async function unitsOf(batch: S3EventBatch): Promise<S3ObjectUnit[]> {
  return await Array.fromAsync(batch.units(new AbortController().signal));
}

Deno.test("eventMessages() splits a Lambda SQS event; anything else is one message", () => {
  const lambda = {
    Records: [
      { eventSource: "aws:sqs", messageId: "m1", body: "{}", eventSourceARN: "arn:aws:sqs:r:1:q" },
      { eventSource: "aws:sqs", messageId: "m2", body: "x" },
    ],
  };
  assert.deepEqual(eventMessages(lambda, "req"), [
    { id: "m1", body: "{}", sourceArn: "arn:aws:sqs:r:1:q" },
    { id: "m2", body: "x" },
  ]);
  const direct = event("a/b/c/d/e");
  assert.deepEqual(eventMessages(direct, "req"), [{ id: "req", body: JSON.stringify(direct) }]);
});

Deno.test("S3EventBatch() fails exactly the messages with an object worth retrying", async () => {
  const metrics = new Registry();
  const batch = new S3EventBatch({
    messages: [
      msg("two-objects", event("c/t/a/p/1", "c/t/a/p/2")),
      msg("retry-me", event("c/t/a/p/3")),
      msg("garbage", "{"),
      msg("test-event", { Event: "s3:TestEvent" }),
    ],
    s3,
    log: quiet,
    metrics,
  });
  const [u1, u2, u3] = await unitsOf(batch);
  await u1!.ack({ lines: 1, bytes: 1, consumed: 1, truncated: 0 });
  await u2!.nack(new NonRecoverableError("unknown tenant", { reason: "unknown_tenant" }));
  await u3!.nack(new Error("throttled"));
  assert.deepEqual(batch.outcomes(), [
    { id: "two-objects", outcome: "delivered" },
    { id: "retry-me", outcome: "failed" },
    { id: "garbage", outcome: "undeliverable" },
    { id: "test-event", outcome: "delivered" },
  ]);
  assert.deepEqual(batch.failedIds(), ["retry-me"]);
  assert.equal(
    metrics.counter("sqs_objects_undeliverable_total", "").get({ reason: "unknown_tenant" }),
    1,
  );
  assert.equal(metrics.counter("sqs_messages_malformed_total", "").get(), 1);
});

Deno.test("S3EventBatch() counts a message whose objects were never settled as failed", async () => {
  const batch = new S3EventBatch({
    messages: [msg("m", event("c/t/a/p/1", "c/t/a/p/2"))],
    s3,
    log: quiet,
    metrics: new Registry(),
  });
  for await (const u of batch.units(new AbortController().signal)) {
    await u.ack({ lines: 0, bytes: 0, consumed: 0, truncated: 0 });
    break; // shutdown after the first object
  }
  assert.deepEqual(batch.failedIds(), ["m"]);
});

Deno.test("S3EventBatch() re-queues cut objects with their offset; a cut without progress fails", async () => {
  const requeued: [string, string, ObjectResume][] = [];
  const cut = new AbortController();
  const batch = new S3EventBatch({
    messages: [
      msg("progress", event("c/t/a/p/1")),
      msg("stuck", {
        ...event("c/t/a/p/2"),
        processing_metadata: { offset: 500, retry_count: 2, completed_deliveries: ["s3:b"] },
      }),
      msg("not-started", event("c/t/a/p/3", "c/t/a/p/4")),
    ],
    s3,
    log: quiet,
    metrics: new Registry(),
    cut: cut.signal,
    requeue: (m, o: S3EventObject, r) => {
      requeued.push([m.id, o.key, r]);
      return Promise.resolve();
    },
  });
  const it = batch.units(new AbortController().signal)[Symbol.asyncIterator]();
  const first = (await it.next()).value as S3ObjectUnit;
  const second = (await it.next()).value as S3ObjectUnit;
  assert.equal(first.cut, cut.signal);
  assert.deepEqual(second.resume, { offset: 500, completed: ["s3:b"], requeues: 2 });
  cut.abort();
  assert.equal((await it.next()).done, true, "nothing starts after the cut");
  await first.requeue!({ offset: 1200, completed: [] });
  await second.requeue!({ offset: 500, completed: ["s3:b"] });
  assert.deepEqual(requeued, [
    ["not-started", "c/t/a/p/3", { offset: 0, completed: [], requeues: 1 }],
    ["not-started", "c/t/a/p/4", { offset: 0, completed: [], requeues: 1 }],
    ["progress", "c/t/a/p/1", { offset: 1200, completed: [], requeues: 1 }],
  ]);
  assert.deepEqual(batch.failedIds(), ["stuck"]);
});
