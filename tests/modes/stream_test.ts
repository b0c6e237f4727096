// Mode stream against the real S3 API (moto) and real local HTTP receivers.
import assert from "node:assert/strict";
import { agentCommand } from "../_agent.ts";
import zlib from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { parseValue } from "../../mod/config/spec.ts";
import { startReceiver } from "../../mod/demo/receiver.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { streamMode } from "../../mod/modes/stream.ts";
import { modeContext } from "./_context.ts";
import { awsTestConfig, freshBucket, s3Client, serviceTest } from "../services/mod.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function run(
  bucket: string,
  dir: string,
  endpoints: string[],
  extra: Record<string, unknown> = {},
) {
  const metrics = new Registry();
  const config = parseValue(streamMode.spec, {
    s3: { bucket, prefix: "feed/", ...awsTestConfig() },
    http: {
      endpoints,
      batch_lines: 50,
      flush_interval: "50ms",
      retry: { initial_backoff: "10ms", max_backoff: "50ms", max_retries: -1 },
    },
    processing: { once: true, plain: "allow" },
    state_file: `${dir}/state.json`,
    ...extra,
  });
  await streamMode.run(modeContext(config, dir, { metrics }));
  return metrics;
}

serviceTest("stream: S3 → two endpoints, one failing, 500s: exact multiset", [
  "aws",
], async () => {
  const bucket = await freshBucket();
  const dir = await Deno.makeTempDir();
  const s3 = s3Client();
  const now = Math.floor(Date.now() / 1000);
  const expected: string[] = [];
  const put = async (t: number, seq: number, body: Uint8Array, ext = ".gz") => {
    const d = new Date(t * 1000);
    const key = `feed/year=${d.getUTCFullYear()}/month=${
      d.getUTCMonth() + 1
    }/day=${d.getUTCDate()}/${t}_9_9_${seq}${ext}`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  };
  const lines = (tag: string, n: number) => {
    const l = Array.from(
      { length: n },
      (_, i) => `{"sourcetype":"zscalernss-web","event":{"f":"${tag}","i":${i}}}`,
    );
    expected.push(...l);
    return l.join("\n") + "\n";
  };
  await put(now - 300, 1, zlib.gzipSync(enc(lines("gz", 400))));
  await put(now - 290, 2, zlib.gzipSync(enc(lines("noext", 120))), "");
  await put(now - 280, 3, enc(lines("plain", 30)));
  await put(
    now - 270,
    4,
    Buffer.concat([zlib.gzipSync(enc(lines("m1", 40))), zlib.gzipSync(enc(lines("m2", 40)))]),
  );
  const corrupt = zlib.gzipSync(enc("lost\n"));
  corrupt[corrupt.length - 6]! ^= 0xff;
  await put(now - 260, 5, corrupt);

  let bFailures = 0;
  const a = startReceiver({ keepLines: true, status: (n) => (n % 4 === 0 ? 500 : 200) });
  const b = startReceiver({ keepLines: true, status: () => (++bFailures <= 5 ? 503 : 200) }); // back in rotation: tests/sinks/http_test.ts
  const m = await run(bucket, dir, [a.url, b.url]);
  assert.deepEqual([...a.lines, ...b.lines].toSorted(), expected.toSorted());
  assert.ok(a.stats.rejected > 0 && b.stats.rejected > 0, "both endpoints failed at times");
  assert.equal(m.counter("s3_files_processed_total", "").get(), 4);
  assert.equal(m.counter("s3_files_errored_total", "").get(), 0);
  assert.equal(m.counter("s3_units_quarantined_total", "").get({ reason: "corrupt_gzip" }), 1);
  assert.equal(m.counter("http_lines_sent_total", "").get(), expected.length);
  assert.ok(m.counter("http_errors_total", "").total() >= 5);

  // Restart: nothing is sent again, and the quarantined corrupt file is not retried.
  const before = a.lines.length + b.lines.length;
  const again = await run(bucket, dir, [a.url, b.url]);
  assert.equal(a.lines.length + b.lines.length, before);
  assert.equal(again.counter("s3_files_errored_total", "").get(), 0);
  assert.equal(again.counter("s3_units_quarantined_total", "").total(), 0);
  await a.close();
  await b.close();
  await Deno.remove(dir, { recursive: true });
});

serviceTest(
  "stream discovery: sqs: direct and SNS-wrapped events, test event, malformed; messages deleted after delivery",
  ["aws"],
  async () => {
    const { SendMessageCommand, GetQueueAttributesCommand } = await import("@aws-sdk/client-sqs");
    const { freshQueue, sqsClient } = await import("../services/mod.ts");
    const bucket = await freshBucket();
    const queue = await freshQueue();
    const dir = await Deno.makeTempDir();
    const s3 = s3Client();
    const sqs = sqsClient();
    const expected: string[] = [];
    const object = async (key: string, n: number) => {
      const l = Array.from({ length: n }, (_, i) => `${key} ${i}`);
      expected.push(...l);
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: zlib.gzipSync(l.join("\n") + "\n"),
        }),
      );
    };
    await object("feed/a file.gz", 10);
    await object("feed/b.gz", 20);
    await object("feed/c", 5);
    const record = (key: string) => ({
      eventName: "ObjectCreated:Put",
      eventTime: new Date().toISOString(),
      s3: {
        bucket: { name: bucket },
        object: { key: encodeURIComponent(key).replace(/%20/g, "+"), size: 1 },
      },
    });
    const send = (body: string) =>
      sqs.send(new SendMessageCommand({ QueueUrl: queue, MessageBody: body }));
    await send(JSON.stringify({ Records: [record("feed/a file.gz"), record("feed/b.gz")] }));
    await send(
      JSON.stringify({
        Type: "Notification",
        Message: JSON.stringify({ Records: [record("feed/c")] }),
      }),
    );
    await send(JSON.stringify({ Service: "Amazon S3", Event: "s3:TestEvent", Bucket: bucket }));
    await send("this is not json");

    const r = startReceiver({ keepLines: true });
    const m = await run(bucket, dir, [r.url], {
      discovery: "sqs",
      sqs: { queue_url: queue, wait_time: "1s", visibility_timeout: "10s" },
    });
    assert.deepEqual(r.lines.toSorted(), expected.toSorted());
    assert.equal(m.counter("sqs_messages_malformed_total", "").get(), 1);
    const attrs = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: queue,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    assert.equal(attrs.Attributes?.ApproximateNumberOfMessages, "0");
    assert.equal(attrs.Attributes?.ApproximateNumberOfMessagesNotVisible, "0");
    await r.close();
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest(
  "stream: kill -9 mid-run and restart: no loss, duplicates only of unacknowledged batches",
  ["aws"],
  async () => {
    const bucket = await freshBucket();
    const dir = await Deno.makeTempDir();
    const s3 = s3Client();
    const now = Math.floor(Date.now() / 1000);
    const expected: string[] = [];
    for (let f = 0; f < 12; f++) {
      const t = now - 600 + f;
      const d = new Date(t * 1000);
      const l = Array.from({ length: 300 }, (_, i) => `{"file":${f},"i":${i}}`);
      expected.push(...l);
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `feed/year=${d.getUTCFullYear()}/month=${
            d.getUTCMonth() + 1
          }/day=${d.getUTCDate()}/${t}_1_1_${f}.gz`,
          Body: zlib.gzipSync(l.join("\n") + "\n"),
        }),
      );
    }
    // A slow intake: 30 ms per batch of 50 lines, so the kill lands mid-run.
    const got: string[] = [];
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const body = await req.text();
        await new Promise((r) => setTimeout(r, 30));
        got.push(...body.split("\n").filter(Boolean));
        return new Response(null, { status: 204 });
      },
    );
    const { endpoint } = awsTestConfig();
    await Deno.writeTextFile(
      `${dir}/agent.yaml`,
      `status: {enabled: false}\nlog: {level: warn}\nstream:\n` +
        `  s3: {bucket: ${bucket}, prefix: feed/, endpoint: "${endpoint}", region: us-east-1, force_path_style: true}\n` +
        `  http: {endpoints: ["http://127.0.0.1:${server.addr.port}"], batch_lines: 50, workers: 2}\n` +
        `  processing: {once: true, worker_count: 2}\n  state_file: state.json\n`,
    );
    const agent = () =>
      agentCommand(["stream", "--config", `${dir}/agent.yaml`], {
        stdout: "null",
        stderr: "piped",
      }).spawn();
    const first = agent();
    while (got.length < 1000) await new Promise((r) => setTimeout(r, 10));
    first.kill("SIGKILL");
    await first.status;
    await first.stderr.cancel();
    const atKill = got.length;
    assert.ok(atKill < expected.length, "killed mid-run");
    const second = agent();
    const status = await second.status;
    const err = await new Response(second.stderr).text();
    assert.equal(status.code, 0, err);
    await server.shutdown();
    // Nothing lost: every line arrived at least once.
    const seen = new Map<string, number>();
    for (const l of got) seen.set(l, (seen.get(l) ?? 0) + 1);
    for (const l of expected) assert.ok(seen.has(l), `lost: ${l}`);
    // Duplicates only from files not checkpointed at the kill (at most worker_count files in flight
    // plus those delivered but not yet saved): far fewer than the run.
    const dups = got.length - expected.length;
    assert.ok(dups >= 0 && dups <= atKill, `duplicates ${dups}`);
    assert.equal(new Set(got).size, expected.length);
    await Deno.remove(dir, { recursive: true });
  },
);
