// Mode route end to end against moto (S3, SQS, SNS, DynamoDB, STS, CloudWatch Logs, CloudWatch):
// inputs sqs, manual and scan, and the CLI under the agent permission set. Input lambda in
// depth: tests/modes/route_lambda_test.ts.
import assert from "node:assert/strict";
import { agentCommand } from "../_agent.ts";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { GetMetricStatisticsCommand } from "@aws-sdk/client-cloudwatch";
import { Registry } from "../../mod/metrics/registry.ts";
import { routeMode } from "../../mod/modes/route.ts";
import {
  awsTestConfig,
  cloudwatchClient,
  logsClient,
  s3Client,
  serviceTest,
  uniqueName,
} from "../services/mod.ts";
import { sqsEvent, startFakeRuntime } from "../sources/_fake_lambda_runtime.ts";
import { modeContext } from "./_context.ts";
import { gz, readBack, routeWorld, s3Event } from "./_route_world.ts";

const T0 = Date.now() - 3600_000; // an hour ago: within what CloudWatch Logs accepts

async function run(
  config: ReturnType<Awaited<ReturnType<typeof routeWorld>>["config"]>,
  args: string[] = [],
) {
  const metrics = new Registry();
  const dir = await Deno.makeTempDir();
  const ctx = modeContext(config, dir, { metrics });
  ctx.args = args;
  const code = await routeMode.run(ctx);
  return { metrics, code, dir };
}

const count = (m: Registry, name: string, labels?: Record<string, string>) =>
  m.counter(name, "").get(labels);

serviceTest(
  "route (sqs): two tenants, different destinations; NDJSON, array, malformed; filtering; bad messages deleted and counted",
  ["aws"],
  async () => {
    const w = await routeWorld();
    const groupA = w.group("tenant-a");
    const groupB = w.group("tenant-b");
    await w.cloudwatch("tenant-a", groupA);
    await w.s3("tenant-b", w.dest, "/b//logs", ["api"]);
    await w.cloudwatch("tenant-b", groupB, ["api", "worker"]);

    // tenant-a: NDJSON (gzip) with every timestamp form and one malformed line...
    const iso = (ms: number) => new Date(ms).toISOString();
    await w.put(
      "mc-1/tenant-a/web/web-1/1.json.gz",
      gz(
        [
          JSON.stringify({ message: "a1", timestamp: iso(T0 + 1000) }),
          JSON.stringify({ message: "a3", "@timestamp": iso(T0 + 3000) }),
          "{not json",
          JSON.stringify({ message: "a5", ts: (T0 + 5000) / 1000 }),
          JSON.stringify({ message: { nested: true }, time: T0 + 4000 }),
          JSON.stringify({ log: "no message field", namespace: "tenant-a", timestamp: T0 + 2000 }),
        ].join("\n") + "\n",
      ),
    );
    // ...and a pretty-printed JSON array (plain text).
    await w.put(
      "mc-1/tenant-a/web/web-1/2.json",
      JSON.stringify(
        [{ message: "a6", timestamp: T0 + 6000 }, {
          message: "a7",
          timestamp: T0 + 7000,
        }],
        null,
        2,
      ),
    );
    // tenant-b: api goes to S3 and CloudWatch, worker to CloudWatch only, batch nowhere.
    await w.put(
      "mc-1/tenant-b/api/api-1/3.json.gz",
      gz(`{"message":"b1","timestamp":${T0 + 100}}\n{"message":"b2","timestamp":${T0 + 200}}\n`),
    );
    await w.put("mc-1/tenant-b/worker/worker-1/4.json", `{"message":"w1","timestamp":${T0}}`);
    await w.put("mc-1/tenant-b/batch/batch-1/5.json", `{"message":"never"}`);
    await w.put("mc-1/nobody/app/pod/6.json", `{"message":"unknown tenant"}`);
    await w.put("stray.json", `{"message":"bad key"}`);

    await w.viaSns(s3Event(w.bucket, "mc-1/tenant-a/web/web-1/1.json.gz"));
    await w.send(s3Event(w.bucket, "mc-1/tenant-a/web/web-1/2.json"));
    await w.viaSns(s3Event(w.bucket, "mc-1/tenant-b/api/api-1/3.json.gz"));
    await w.send(s3Event(w.bucket, "mc-1/tenant-b/worker/worker-1/4.json"));
    await w.send(s3Event(w.bucket, "mc-1/tenant-b/batch/batch-1/5.json"));
    await w.send(s3Event(w.bucket, "mc-1/nobody/app/pod/6.json"));
    await w.send(s3Event(w.bucket, "stray.json"));
    await w.send({ Service: "Amazon S3", Event: "s3:TestEvent", Bucket: w.bucket });
    await w.send("this is not an S3 event");

    const { metrics: m, code } = await run(w.config());
    assert.equal(code, 0);

    const a = await readBack(logsClient(), groupA, "web-1");
    assert.deepEqual(a.map((e) => e.message), [
      "a1",
      '{"log":"no message field"}',
      "a3",
      '{"nested":true}',
      "a5",
      "a6",
      "a7",
    ]);
    assert.deepEqual(a.map((e) => e.timestamp! - T0), [1000, 2000, 3000, 4000, 5000, 6000, 7000]);
    assert.deepEqual((await readBack(logsClient(), groupB, "api-1")).map((e) => e.message), [
      "b1",
      "b2",
    ]);
    assert.deepEqual((await readBack(logsClient(), groupB, "worker-1")).map((e) => e.message), [
      "w1",
    ]);
    assert.deepEqual(await readBack(logsClient(), groupB, "batch-1"), []);

    const copy = await s3Client().send(
      new HeadObjectCommand({ Bucket: w.dest, Key: "b/logs/tenant-b/api/api-1/3.json.gz" }),
    );
    assert.equal(copy.Metadata?.["source-bucket"], w.bucket);
    assert.equal(copy.Metadata?.["source-key"], "mc-1/tenant-b/api/api-1/3.json.gz");
    assert.equal(copy.Metadata?.["tenant-id"], "tenant-b");
    assert.equal(copy.Metadata?.["application"], "api");
    assert.equal(copy.Metadata?.["pod-name"], "api-1");

    const A = { tenant: "tenant-a", destination: `cloudwatch:${groupA}` };
    const B3 = { tenant: "tenant-b", destination: `s3:${w.dest}` };
    assert.equal(count(m, "route_records_delivered_total", A), 7);
    assert.equal(count(m, "route_objects_delivered_total", A), 2);
    assert.equal(count(m, "route_objects_delivered_total", B3), 1);
    assert.equal(count(m, "route_records_malformed_total", { tenant: "tenant-a" }), 1);
    assert.equal(count(m, "route_objects_filtered_total", { tenant: "tenant-b" }), 1);
    assert.equal(count(m, "route_objects_undeliverable_total", { reason: "unknown_tenant" }), 1);
    assert.equal(count(m, "route_objects_undeliverable_total", { reason: "invalid_key" }), 1);
    assert.equal(count(m, "sqs_messages_malformed_total"), 1);
    assert.equal(await w.queueDepth(), 0, "every message deleted");
  },
);

serviceTest("route (sqs): a recoverable failure leaves the message for redelivery", [
  "aws",
], async () => {
  const w = await routeWorld();
  // The tenant table does not exist: DynamoDB's ResourceNotFound is not the tenant's fault and
  // may be fixed (the table being created), so the message must stay for redelivery.
  await w.put("mc/t/app/pod/1.json", `{"message":"x"}`);
  await w.send(s3Event(w.bucket, "mc/t/app/pod/1.json"));
  const { metrics: m, code } = await run(
    w.config({ tenant_config_table: uniqueName("missing-table"), visibility_timeout: "2s" }),
  );
  assert.equal(code, 1);
  assert.equal(count(m, "s3_files_errored_total"), 1);
  assert.equal(await w.queueDepth(), 1, "left in the queue");
});

serviceTest("route (manual): events from a file, NDJSON of SNS and direct events", [
  "aws",
], async () => {
  const w = await routeWorld();
  const group = w.group("manual");
  await w.cloudwatch("tenant-m", group);
  await w.put("c/tenant-m/app/pod-1/1.json", `{"message":"one","timestamp":${T0 + 1}}`);
  await w.put("c/tenant-m/app/pod-1/2.json", `{"message":"two","timestamp":${T0 + 2}}`);
  const file = await Deno.makeTempFile({ suffix: ".ndjson" });
  await Deno.writeTextFile(
    file,
    [
      JSON.stringify({
        Type: "Notification",
        Message: JSON.stringify(s3Event(w.bucket, "c/tenant-m/app/pod-1/1.json")),
      }),
      JSON.stringify(s3Event(w.bucket, "c/tenant-m/app/pod-1/2.json")),
      "garbage",
    ].join("\n"),
  );
  const { metrics: m, code } = await run(w.config({ input: "manual" }), [file]);
  assert.equal(code, 0);
  assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), [
    "one",
    "two",
  ]);
  assert.equal(count(m, "sqs_messages_malformed_total"), 1);
});

serviceTest("route (scan): new objects of a bucket once, state kept across runs", [
  "aws",
], async () => {
  const w = await routeWorld();
  const group = w.group("scan");
  await w.cloudwatch("tenant-s", group);
  await w.put("c/tenant-s/app/pod-1/1.json", `{"message":"one","timestamp":${T0 + 1}}`);
  await w.put("c/tenant-s/app/pod-1/2.json", `{"message":"two","timestamp":${T0 + 2}}`);
  const dir = await Deno.makeTempDir();
  const config = w.config({
    input: "scan",
    source_bucket: w.bucket,
    state_file: `${dir}/route-state.json`,
  });
  const first = await run(config);
  assert.equal(count(first.metrics, "s3_files_processed_total"), 2);
  const second = await run(config);
  assert.equal(count(second.metrics, "s3_files_processed_total"), 0, "nothing new");
  await w.put("c/tenant-s/app/pod-1/3.json", `{"message":"three","timestamp":${T0 + 3}}`);
  const third = await run(config);
  assert.equal(count(third.metrics, "s3_files_processed_total"), 1);
  assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), [
    "one",
    "two",
    "three",
  ]);
  const state = JSON.parse(await Deno.readTextFile(`${dir}/route-state.json`));
  assert.equal(typeof state.state.watermark, "number");
  assert.equal(Object.keys(state.done).length, 3);
});

serviceTest("route: per-tenant metrics published to CloudWatch under the reference's names", [
  "aws",
], async () => {
  const w = await routeWorld();
  const group = w.group("metrics");
  await w.cloudwatch("tenant-p", group);
  await w.put("c/tenant-p/app/pod-1/1.json", `{"message":"one"}\n{"message":"two"}`);
  await w.send(s3Event(w.bucket, "c/tenant-p/app/pod-1/1.json"));
  const namespace = uniqueName("Test/LogForwarding");
  await run(w.config({ metrics: { publish: true, namespace } }));
  const stat = await cloudwatchClient().send(
    new GetMetricStatisticsCommand({
      Namespace: namespace,
      MetricName: "LogCount/cloudwatch/successful_events",
      Dimensions: [{ Name: "Tenant", Value: "tenant-p" }],
      StartTime: new Date(Date.now() - 600_000),
      EndTime: new Date(Date.now() + 600_000),
      Period: 60,
      Statistics: ["Sum"],
    }),
  );
  assert.equal(stat.Datapoints?.reduce((n, d) => n + (d.Sum ?? 0), 0), 2);
});

serviceTest(
  "route (sqs): an object stored with Content-Encoding gzip and a CRC32 checksum is delivered once, its message deleted",
  ["aws"],
  async () => {
    const w = await routeWorld();
    const group = w.group("content-encoding");
    await w.cloudwatch("tenant-ce", group);
    const key = "c/tenant-ce/app/pod-1/1.json.gz";
    // As boto3 and Vector store it: fetch inflates the body, so the stored checksum (of the gzip
    // bytes) cannot match what the SDK sees.
    await s3Client().send(
      new PutObjectCommand({
        Bucket: w.bucket,
        Key: key,
        Body: gz(`{"message":"one","timestamp":${T0}}\n{"message":"two","timestamp":${T0 + 1}}\n`),
        ContentEncoding: "gzip",
        ChecksumAlgorithm: "CRC32",
      }),
    );
    await w.send(s3Event(w.bucket, key));
    const { metrics: m, code } = await run(w.config({ visibility_timeout: "2s" }));
    assert.equal(code, 0);
    assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), [
      "one",
      "two",
    ]);
    assert.equal(count(m, "s3_files_processed_total"), 1);
    assert.equal(await w.queueDepth(), 0, "message deleted");
  },
);

serviceTest("route (scan): a state_file in a directory that does not exist is created there", [
  "aws",
], async () => {
  const w = await routeWorld();
  const group = w.group("scan-dir");
  await w.cloudwatch("tenant-d", group);
  await w.put("c/tenant-d/app/pod-1/1.json", `{"message":"one","timestamp":${T0 + 1}}`);
  const dir = await Deno.makeTempDir();
  const config = w.config({
    input: "scan",
    source_bucket: w.bucket,
    state_file: `${dir}/not/yet/route-state.json`,
  });
  const first = await run(config);
  assert.equal(first.code, 0);
  assert.equal(count(first.metrics, "s3_files_processed_total"), 1);
  const second = await run(config);
  assert.equal(second.code, 0);
  assert.equal(count(second.metrics, "s3_files_processed_total"), 0, "nothing sent twice");
  assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), ["one"]);
  const state = JSON.parse(await Deno.readTextFile(`${dir}/not/yet/route-state.json`));
  assert.equal(Object.keys(state.done).length, 1);
});

serviceTest(
  "route (sqs): events CloudWatch Logs refuses (too old, too new, empty) are counted by reason and dead-lettered, the rest delivered once, the message deleted",
  ["aws"],
  async () => {
    const w = await routeWorld();
    const group = w.group("partial");
    await w.cloudwatch("tenant-r", group);
    const day = 86_400_000;
    await w.put(
      "c/tenant-r/app/pod-1/1.json",
      [
        { message: "good 1", timestamp: T0 + 1 },
        { message: "way too old", timestamp: Date.now() - 20 * day },
        { message: "good 2", timestamp: T0 + 2 },
        { message: "from the future", timestamp: Date.now() + 5 * 3600_000 },
        { message: "", timestamp: T0 + 3 },
        { message: "good 3", timestamp: T0 + 4 },
      ].map((r) => JSON.stringify(r)).join("\n"),
    );
    await w.send(s3Event(w.bucket, "c/tenant-r/app/pod-1/1.json"));
    const dir = await Deno.makeTempDir();
    const { metrics: m, code } = await run(
      w.config({ visibility_timeout: "2s", dead_letter: { path: `${dir}/dead.ndjson` } }),
    );
    assert.equal(code, 0);
    assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), [
      "good 1",
      "good 2",
      "good 3",
    ]);
    const labels = { tenant: "tenant-r", destination: `cloudwatch:${group}` };
    assert.equal(count(m, "route_records_delivered_total", labels), 3);
    for (const reason of ["too_old", "too_new", "empty"]) {
      assert.equal(count(m, "route_records_rejected_total", { ...labels, reason }), 1, reason);
    }
    assert.equal(await w.queueDepth(), 0, "message deleted: nothing to retry");
    // The refused events are in the dead letter, with their destination, not their role.
    const dead = (await Deno.readTextFile(`${dir}/dead.ndjson`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      dead.map((d) => [d.unit, d.reason, d.item.message, d.item.log_group, d.item.log_stream])
        .toSorted(),
      [
        [`s3://${w.bucket}/c/tenant-r/app/pod-1/1.json`, "empty", "", group, "pod-1"],
        [
          `s3://${w.bucket}/c/tenant-r/app/pod-1/1.json`,
          "too_new",
          "from the future",
          group,
          "pod-1",
        ],
        [`s3://${w.bucket}/c/tenant-r/app/pod-1/1.json`, "too_old", "way too old", group, "pod-1"],
      ],
    );
    assert.ok(dead.every((d) => !JSON.stringify(d).includes("role")));
  },
);

serviceTest(
  "route (sqs): a corrupt object is permanent: its good records delivered once, counted as corrupt_object, its message deleted",
  ["aws"],
  async () => {
    const w = await routeWorld();
    const group = w.group("corrupt");
    await w.cloudwatch("tenant-c", group);
    const good = gz(
      `{"message":"one","timestamp":${T0}}\n{"message":"two","timestamp":${T0 + 1}}\n`,
    );
    const cut = gz(`{"message":"lost","timestamp":${T0 + 2}}\n`.repeat(50));
    // A complete member, then a member cut short (an upload that broke off).
    const body = new Uint8Array(good.length + 20);
    body.set(good);
    body.set(cut.subarray(0, 20), good.length);
    await w.put("c/tenant-c/app/pod-1/1.json.gz", body);
    await w.send(s3Event(w.bucket, "c/tenant-c/app/pod-1/1.json.gz"));
    const { metrics: m, code } = await run(w.config({ visibility_timeout: "2s" }));
    assert.equal(code, 0);
    assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), [
      "one",
      "two",
    ]);
    assert.equal(
      count(m, "route_objects_undeliverable_total", { reason: "corrupt_object" }),
      1,
    );
    assert.equal(await w.queueDepth(), 0, "message deleted: retrying cannot help");
  },
);

/** `edge-agent route ...` as users run it: main.ts with the compiled binary's permission set. */
function cli(args: string[], env: Record<string, string> = {}) {
  return agentCommand(["route", "--no-status", ...args], {
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function yamlConfig(w: Awaited<ReturnType<typeof routeWorld>>, input: string) {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/route.yaml`;
  await Deno.writeTextFile(
    file,
    `route:
  input: ${input}
  tenant_config_table: ${w.table}
  central_role_arn: arn:aws:iam::123456789012:role/central
  aws: {region: us-east-1, endpoint: "${awsTestConfig().endpoint}", force_path_style: true}
`,
  );
  return { dir, file };
}

serviceTest("edge-agent route --input manual FILE runs under the agent permission set", [
  "aws",
], async () => {
  const w = await routeWorld();
  const group = w.group("cli");
  await w.cloudwatch("tenant-cli", group);
  await w.put("c/tenant-cli/app/pod-1/1.json", `{"message":"via cli","timestamp":${T0}}`);
  const { dir, file } = await yamlConfig(w, "manual");
  await Deno.writeTextFile(
    `${dir}/event.json`,
    JSON.stringify(s3Event(w.bucket, "c/tenant-cli/app/pod-1/1.json")),
  );
  const out = await cli(["--config", file, `${dir}/event.json`]).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.doesNotMatch(stderr, /PermissionDenied|NotCapable|Requires .* access/);
  assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), [
    "via cli",
  ]);
});

serviceTest(
  "edge-agent route as a Lambda runtime (AWS_LAMBDA_RUNTIME_API) answers, then stops on SIGTERM",
  ["aws"],
  async () => {
    const w = await routeWorld();
    const group = w.group("cli-lambda");
    await w.cloudwatch("tenant-l", group);
    await w.put("c/tenant-l/app/pod-1/1.json", `{"message":"via lambda","timestamp":${T0}}`);
    const { file } = await yamlConfig(w, "lambda");
    const rt = startFakeRuntime();
    const child = cli(["--config", file], { AWS_LAMBDA_RUNTIME_API: rt.api }).spawn();
    try {
      const answer = await rt.invoke(
        sqsEvent("arn:aws:sqs:us-east-1:123456789012:q", [{
          messageId: "m-1",
          body: JSON.stringify(s3Event(w.bucket, "c/tenant-l/app/pod-1/1.json")),
        }]),
      );
      assert.deepEqual(answer, { kind: "response", body: { batchItemFailures: [] } });
      assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), [
        "via lambda",
      ]);
      child.kill("SIGTERM");
      const out = await child.output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    } finally {
      await rt.close();
    }
  },
);
