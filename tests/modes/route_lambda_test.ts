// Mode route, input lambda: the agent as a Lambda custom runtime against a fake Runtime API
// endpoint (tests/sources/_fake_lambda_runtime.ts), with moto behind a recording proxy
// (tests/sinks/_aws_proxy.ts) that can make STS fail or slow CloudWatch Logs down.
import assert from "node:assert/strict";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { parseValue } from "../../mod/config/spec.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { deadLetterPath, LAMBDA_DEAD_LETTER, routeMode, routeSpec } from "../../mod/modes/route.ts";
import { logsClient, serviceTest, sqsClient } from "../services/mod.ts";
import { startAwsProxy } from "../sinks/_aws_proxy.ts";
import { sqsEvent, startFakeRuntime } from "../sources/_fake_lambda_runtime.ts";
import { modeContext } from "./_context.ts";
import { readBack, roleOf, routeWorld, s3Event } from "./_route_world.ts";

const T0 = Date.now() - 3600_000;

async function queueArn(url: string): Promise<string> {
  const a = await sqsClient().send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }),
  );
  return a.Attributes!.QueueArn!;
}

/** Run the mode as a Lambda runtime until `stop` aborts. */
function serve(config: Parameters<typeof routeMode.run>[0]["config"], stop: AbortSignal) {
  const metrics = new Registry();
  const running = Deno.makeTempDir().then((dir) =>
    routeMode.run(modeContext(config, dir, { metrics, signal: stop }))
  );
  return { metrics, running };
}

serviceTest(
  "route (lambda): partial batch failure names exactly the messages to retry",
  ["aws"],
  async () => {
    const w = await routeWorld();
    let stsDown = true;
    const proxy = startAwsProxy({
      fail: (c) =>
        stsDown && c.action === "AssumeRole" &&
          new URLSearchParams(c.body).get("RoleArn") === roleOf("tenant-c")
          ? { type: "ServiceUnavailable", status: 503 }
          : undefined,
    });
    const rt = startFakeRuntime();
    const stop = new AbortController();
    const groupA = w.group("a");
    const groupC = w.group("c");
    await w.cloudwatch("tenant-a", groupA);
    await w.cloudwatch("tenant-c", groupC);
    await w.put("mc/tenant-a/app/pod-a/1.json", `{"message":"to a","timestamp":${T0}}`);
    await w.put("mc/tenant-c/app/pod-c/1.json", `{"message":"to c","timestamp":${T0}}`);
    await w.put("mc/nobody/app/pod/1.json", `{"message":"unknown"}`);
    const config = w.config({
      input: "lambda",
      lambda: { runtime_api: rt.api },
      aws: { region: "us-east-1", endpoint: proxy.url, force_path_style: true },
      // One event per batch: a batch that fails for a reason worth retrying fails the units of
      // all its events (the sink contract has no retryable partial failure), so tenant-a's event
      // must not share tenant-c's batch for its message to count as delivered.
      cloudwatch: { max_batch_size: 1 },
    });
    const { metrics, running } = serve(config, stop.signal);
    try {
      const arn = await queueArn(w.queue);
      const event = sqsEvent(arn, [
        {
          messageId: "m-a",
          body: JSON.stringify(s3Event(w.bucket, "mc/tenant-a/app/pod-a/1.json")),
        },
        {
          messageId: "m-c",
          body: JSON.stringify({
            Type: "Notification",
            Message: JSON.stringify(s3Event(w.bucket, "mc/tenant-c/app/pod-c/1.json")),
          }),
        },
        {
          messageId: "m-unknown",
          body: JSON.stringify(s3Event(w.bucket, "mc/nobody/app/pod/1.json")),
        },
        { messageId: "m-garbage", body: "{" },
      ]);
      const first = await rt.invoke(event);
      assert.deepEqual(first, {
        kind: "response",
        body: { batchItemFailures: [{ itemIdentifier: "m-c" }] },
      });
      assert.deepEqual((await readBack(logsClient(), groupA, "pod-a")).map((e) => e.message), [
        "to a",
      ]);
      assert.deepEqual(await readBack(logsClient(), groupC, "pod-c"), []);
      assert.equal(
        metrics.counter("route_objects_undeliverable_total", "").get({ reason: "unknown_tenant" }),
        1,
      );
      assert.equal(metrics.counter("sqs_messages_malformed_total", "").get(), 1);

      // STS is back: SQS redelivers m-c alone, and it goes through.
      stsDown = false;
      const second = await rt.invoke(sqsEvent(arn, [event.Records[1]!]));
      assert.deepEqual(second, { kind: "response", body: { batchItemFailures: [] } });
      assert.deepEqual((await readBack(logsClient(), groupC, "pod-c")).map((e) => e.message), [
        "to c",
      ]);
    } finally {
      stop.abort();
      assert.equal(await running, 0);
      await rt.close();
      await proxy.close();
    }
  },
);

serviceTest(
  "route (lambda): an object cut short by the deadline is re-queued with its record offset and resumes without loss or duplicates",
  ["aws"],
  async () => {
    const w = await routeWorld();
    // CloudWatch Logs made slow (250 ms per PutLogEvents) so that the deadline falls mid-object.
    const proxy = startAwsProxy({ delay: (a) => a === "PutLogEvents" ? 250 : 0 });
    const rt = startFakeRuntime();
    const stop = new AbortController();
    const group = w.group("big");
    await w.cloudwatch("tenant-big", group);
    const n = 6_000;
    const lines = Array.from(
      { length: n },
      (_, i) => JSON.stringify({ message: `r${i}`, timestamp: T0 + i }),
    );
    await w.put("mc/tenant-big/app/pod-big/huge.json", lines.join("\n"));
    const config = w.config({
      input: "lambda",
      queue_url: "", // re-queued to the queue the message came from (its eventSourceARN)
      lambda: { runtime_api: rt.api, deadline_margin: "1s" },
      cloudwatch: { max_batch_size: 500 },
      processing: { workers: 1, flush_interval: "20ms" },
      aws: { region: "us-east-1", endpoint: proxy.url, force_path_style: true },
    });
    const { metrics, running } = serve(config, stop.signal);
    try {
      const arn = await queueArn(w.queue);
      const body = JSON.stringify(s3Event(w.bucket, "mc/tenant-big/app/pod-big/huge.json"));
      const first = await rt.invoke(sqsEvent(arn, [{ messageId: "m-1", body }]), {
        deadlineIn: 2_500,
      });
      assert.deepEqual(first.body, { batchItemFailures: [] }, "re-queued, so not a failure");
      assert.equal(metrics.counter("sqs_objects_requeued_total", "").get(), 1);
      const [requeued, ...more] = await w.receive();
      assert.equal(more.length, 0);
      const meta = JSON.parse(requeued!.Body!).processing_metadata;
      assert.ok(meta.offset > 0 && meta.offset < n, `offset ${meta.offset} is mid-object`);
      assert.equal(meta.retry_count, 1);
      const partial = await readBack(logsClient(), group, "pod-big");
      assert.equal(partial.length, meta.offset, "exactly the records before the offset");

      const second = await rt.invoke(
        sqsEvent(arn, [{ messageId: requeued!.MessageId!, body: requeued!.Body! }]),
      );
      assert.deepEqual(second.body, { batchItemFailures: [] });
      const all = await readBack(logsClient(), group, "pod-big");
      assert.equal(all.length, n);
      assert.deepEqual(all.map((e) => e.message), lines.map((_, i) => `r${i}`));
      assert.equal(metrics.counter("sqs_objects_requeued_total", "").get(), 1);
    } finally {
      stop.abort();
      await running;
      await rt.close();
      await proxy.close();
    }
  },
);

Deno.test("route (lambda): the default dead letter is written under /tmp, the only writable path in Lambda; a set path is kept", () => {
  const config = (value: Record<string, unknown>) => parseValue(routeSpec, value);
  assert.equal(deadLetterPath(config({ input: "lambda" }), "/etc/agent"), LAMBDA_DEAD_LETTER);
  assert.equal(
    deadLetterPath(config({ input: "lambda", dead_letter: { path: "dl.ndjson" } }), "/etc/agent"),
    "/etc/agent/dl.ndjson",
  );
  assert.equal(
    deadLetterPath(config({ input: "sqs", queue_url: "http://q" }), "/etc/agent"),
    "/var/lib/edge-agent/dead-letter.ndjson",
  );
});
