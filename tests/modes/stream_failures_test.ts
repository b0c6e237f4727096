// Mode stream under failure (issue #15), against the real S3 API (moto) and real HTTP intakes:
// nothing lost, nothing stuck.
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { streamMode } from "../../mod/modes/stream.ts";
import { Health } from "../../mod/status/health.ts";
import { run as runCli } from "../../main.ts";
import { agentCommand } from "../_agent.ts";
import { startAwsProxy } from "../sinks/_aws_proxy.ts";
import { awsTestConfig, freshBucket, s3Client, serviceTest } from "../services/mod.ts";
import { startIntake, tally, until } from "./_intake.ts";
import { modeContext } from "./_context.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const gz = (lines: string[]) =>
  new Uint8Array(zlib.gzipSync(enc(lines.map((l) => l + "\n").join(""))));
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const lines = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => `{"f":"${tag}","i":${i}}`);

function dayKey(prefix: string, t: number, name: string): string {
  const d = new Date(t * 1000);
  return `${prefix}year=${d.getUTCFullYear()}/month=${
    d.getUTCMonth() + 1
  }/day=${d.getUTCDate()}/${name}`;
}

/** Run mode stream in this process until `signal` aborts (or the source ends). */
function runStream(config: Record<string, unknown>, dir: string, signal: AbortSignal) {
  const metrics = new Registry();
  const health = new Health();
  const logs: Record<string, unknown>[] = [];
  const ctx = {
    ...modeContext(parseValue(streamMode.spec, config), dir, { metrics, signal }),
    health,
    log: new Logger({ level: "info", write: (l: string) => void logs.push(JSON.parse(l)) }),
  };
  const done = streamMode.run(ctx);
  return { metrics, health, logs, done };
}

serviceTest(
  "stream: a file whose batches failed until max_retries ran out is read again, never passed by the watermark (issue #15, failure 1)",
  ["aws"],
  async () => {
    const bucket = await freshBucket();
    const dir = await Deno.makeTempDir();
    const s3 = s3Client();
    const expected: string[] = [];
    // The intake answers 503 for 12 s to the batches of file 3, from the first one it sees.
    let outageFrom: number | undefined;
    const intake = startIntake((ls) => {
      if (!ls.some((l) => l.includes('"f":"file3"'))) return 204;
      outageFrom ??= Date.now();
      return Date.now() - outageFrom < 12_000 ? 503 : 204;
    });
    const stop = new AbortController();
    const agent = runStream(
      {
        s3: { bucket, prefix: "feed/", ...awsTestConfig() },
        http: {
          endpoints: [intake.url],
          batch_lines: 20,
          flush_interval: "50ms",
          retry: { max_retries: 1, initial_backoff: "10ms", max_backoff: "50ms" },
        },
        processing: { scan_interval: "1s", delay_window: "2s", lateness: "5s", worker_count: 2 },
        state_file: `${dir}/state.json`,
        dead_letter: { path: `${dir}/dead.ndjson` },
      },
      dir,
      stop.signal,
    );
    // A new file every 0.5 s for 10 s.
    for (let i = 0; i < 20; i++) {
      const t = Math.floor(Date.now() / 1000);
      const l = lines(`file${i}`, 30);
      expected.push(...l);
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: dayKey("feed/", t, `${t}_1_1_${i}.gz`),
          Body: gz(l),
        }),
      );
      await new Promise((r) => setTimeout(r, 500));
    }
    const all = await until(() => expected.every((l) => intake.got.includes(l)), 30_000, 200);
    stop.abort();
    await agent.done;
    await intake.close();
    const seen = tally(intake.got);
    const lost = expected.filter((l) => !seen.has(l));
    assert.ok(all && lost.length === 0, `lost ${lost.length} lines, e.g. ${lost[0]}`);
    assert.ok(outageFrom !== undefined && intake.refused > 0, "file 3's batches were refused");
    assert.equal(agent.metrics.counter("s3_units_quarantined_total", "").total(), 0);
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest(
  "stream: SIGTERM during a ListObjectsV2 drains and exits 0 (issue #15, failure 3)",
  ["aws"],
  async () => {
    const bucket = await freshBucket();
    const dir = await Deno.makeTempDir();
    let listing = 0;
    const proxy = startAwsProxy({
      delay: (action) => {
        if (action !== `GET /${bucket}/`) return 0;
        listing++;
        return 3000;
      },
    });
    const intake = startIntake();
    await Deno.writeTextFile(
      `${dir}/agent.yaml`,
      `status: {enabled: false}\nlog: {level: info}\nstream:\n` +
        `  s3: {bucket: ${bucket}, prefix: feed/, endpoint: "${proxy.url}", region: us-east-1, force_path_style: true}\n` +
        `  http: {endpoints: ["${intake.url}"]}\n` +
        `  processing: {scan_interval: 1s}\n  state_file: state.json\n`,
    );
    const child = agentCommand(["stream", "--config", `${dir}/agent.yaml`], {
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (!await until(() => listing > 0, 20_000)) {
      child.kill("SIGKILL");
      const err = await new Response(child.stderr).text();
      assert.fail(
        `the agent did not list: ${JSON.stringify(proxy.calls.map((c) => c.action))} ${err}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
    child.kill("SIGTERM");
    const [status, out, err] = await Promise.all([
      child.status,
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]);
    assert.equal(status.code, 0, out + err);
    await proxy.close();
    await intake.close();
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "stream: corrupt, non-gzip and unreadable files and refused lines are quarantined once and never retried; good members delivered once (issue #15, failure 4)",
  async () => {
    const dir = await Deno.makeTempDir();
    const day = join(dir, "in", "year=2025", "month=1", "day=9");
    await Deno.mkdir(day, { recursive: true });
    const once: string[] = []; // must arrive exactly once
    const file = async (name: string, bytes: Uint8Array) =>
      await Deno.writeFile(join(day, name), bytes);
    const good = lines("good", 50);
    once.push(...good);
    await file("1736400000_1_1_1.gz", gz(good));
    // A complete member, then a truncated one.
    const t1 = lines("trunc-ok", 40);
    once.push(...t1);
    const t2 = gz(lines("trunc-lost", 40));
    await file("1736400001_1_1_2.gz", cat(gz(t1), t2.subarray(0, t2.length - 20)));
    // Members 1 and 3 good, member 2 with a bad CRC: resync delivers 1 and 3.
    const c1 = lines("crc-1", 30), c3 = lines("crc-3", 30);
    once.push(...c1, ...c3);
    const bad = gz(lines("crc-lost", 30));
    bad[bad.length - 6]! ^= 0xff;
    await file("1736400002_1_1_3.gz", cat(gz(c1), bad, gz(c3)));
    // Garbage right after the gzip magic.
    await file(
      "1736400003_1_1_4.gz",
      cat(new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), enc("garbage".repeat(50))),
    );
    // Not gzip at all.
    await file("1736400004_1_1_5.gz", enc(lines("plain", 5).join("\n") + "\n"));
    // Unreadable: reading /proc/self/mem at offset 0 fails (EIO), also for root.
    await Deno.symlink("/proc/self/mem", join(day, "1736400005_1_1_6.gz"));
    // A file with one line the intake refuses (400) and one line too large for it (413).
    const r = lines("refused-file", 60);
    r[10] = `{"f":"REJECT-ME"}`;
    r[40] = `{"f":"HUGE","pad":"${"x".repeat(200_000)}"}`;
    await file("1736400006_1_1_7.gz", gz(r));

    const intake = startIntake((ls, body) => {
      if (body.length > 100_000) return 413;
      if (ls.some((l) => l.includes("REJECT-ME"))) return 400;
      return 204;
    });
    const stop = new AbortController();
    const agent = runStream(
      {
        source: "file",
        file: { path: join(dir, "in") },
        http: {
          endpoints: [intake.url],
          batch_lines: 10,
          flush_interval: "20ms",
          retry: { max_retries: 1, initial_backoff: "10ms", max_backoff: "20ms" },
        },
        processing: { scan_interval: "200ms", delay_window: "0s", worker_count: 2 },
        state_file: `${dir}/state.json`,
        dead_letter: { path: `${dir}/dead.ndjson` },
      },
      dir,
      stop.signal,
    );
    const q = agent.metrics.counter("file_units_quarantined_total", "");
    await until(() => q.total() >= 6, 20_000);
    // Many more scans: nothing is read again.
    await new Promise((r) => setTimeout(r, 2000));
    stop.abort();
    await agent.done;
    await intake.close();

    assert.equal(q.get({ reason: "truncated_gzip" }), 1);
    assert.equal(q.get({ reason: "corrupt_gzip" }), 2);
    assert.equal(q.get({ reason: "not_gzip" }), 1);
    assert.equal(q.get({ reason: "unreadable" }), 1);
    // The refused file: "rejected" (400), or "too_large" when the sink tells the 413's line apart.
    assert.equal(q.get({ reason: "rejected" }) + q.get({ reason: "too_large" }), 1);
    assert.equal(q.total(), 6, JSON.stringify(q.snapshot()));
    const quarantineLogs = agent.logs.filter((l) =>
      l.msg === "unit quarantined: not read again until re-queued"
    );
    assert.equal(quarantineLogs.length, 6);
    for (const l of quarantineLogs) {
      assert.ok(typeof l.unit === "string" && typeof l.reason === "string");
    }
    const crcLog = quarantineLogs.find((l) => String(l.unit).endsWith("_3.gz"))!;
    assert.equal(crcLog.offset, gz(c1).length);
    assert.equal(crcLog.bytes_skipped, bad.length);
    const seen = tally(intake.got);
    for (const l of once) assert.equal(seen.get(l), 1, l);
    for (const l of intake.got) assert.ok(!/trunc-lost|crc-lost|plain/.test(l), l);
    // The refused file: its other lines delivered, each once; the two refused lines in the dead
    // letter, each once; the file completed (the refused lines are not sent again).
    const dead = (await Deno.readTextFile(`${dir}/dead.ndjson`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const deadItems = tally(dead.map((d) => d.item));
    assert.equal(deadItems.get(r[10]!), 1);
    assert.equal(deadItems.get(r[40]!), 1);
    for (const d of dead) {
      assert.match(d.unit, /^file:\/\/.*_7\.gz$/);
      assert.ok(typeof d.reason === "string" && d.reason.length > 0);
    }
    for (const l of r) {
      assert.equal((seen.get(l) ?? 0) + (deadItems.get(l) ?? 0), 1, l.slice(0, 40));
    }
    assert.equal(agent.metrics.counter("file_files_errored_total", "").get(), 0);
    assert.ok(agent.metrics.counter("file_bytes_skipped_total", "").get() >= bad.length);
    // The state lists every quarantined file; /status too.
    const state = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
    assert.equal(Object.keys(state.quarantined).length, 6);
    assert.equal(agent.health.quarantined().length, 6);
    // A restart reads none of them again and lists them in /status.
    const again = startIntake();
    const stop2 = new AbortController();
    const second = runStream(
      {
        source: "file",
        file: { path: join(dir, "in") },
        http: { endpoints: [again.url], flush_interval: "20ms" },
        processing: { scan_interval: "200ms", delay_window: "0s" },
        state_file: `${dir}/state.json`,
        dead_letter: { path: `${dir}/dead.ndjson` },
      },
      dir,
      stop2.signal,
    );
    await new Promise((r) => setTimeout(r, 1000));
    stop2.abort();
    await second.done;
    await again.close();
    assert.deepEqual(again.got, []);
    assert.equal(second.metrics.counter("file_units_quarantined_total", "").total(), 0);
    assert.equal(second.health.quarantined().length, 6);
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest(
  "stream: kill -9 three times during a 40-file backlog: no loss, duplicates at most workers × batch_lines per kill, no temp files left (issue #15, failure 7)",
  ["aws"],
  async () => {
    const bucket = await freshBucket();
    const dir = await Deno.makeTempDir();
    const s3 = s3Client();
    const now = Math.floor(Date.now() / 1000);
    const expected: string[] = [];
    for (let f = 0; f < 40; f++) {
      const t = now - 600 + f;
      const l = lines(`k${f}`, 400);
      expected.push(...l);
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: dayKey("feed/", t, `${t}_1_1_${f}.gz`),
          Body: gz(l),
        }),
      );
    }
    const workers = 2, batchLines = 50;
    // A slow intake (20 ms a batch), so each kill lands mid-file.
    const intake = startIntake(() => 204, 20);
    const { endpoint } = awsTestConfig();
    await Deno.writeTextFile(
      `${dir}/agent.yaml`,
      `status: {enabled: false}\nlog: {level: warn}\nstream:\n` +
        `  s3: {bucket: ${bucket}, prefix: feed/, endpoint: "${endpoint}", region: us-east-1, force_path_style: true}\n` +
        `  http: {endpoints: ["${intake.url}"], batch_lines: ${batchLines}, workers: ${workers}}\n` +
        `  processing: {once: true, worker_count: 2}\n  state_file: state.json\n`,
    );
    const agent = () =>
      agentCommand(["stream", "--config", `${dir}/agent.yaml`], { stdout: "null", stderr: "piped" })
        .spawn();
    const kills = 3;
    for (let k = 1; k <= kills; k++) {
      const child = agent();
      const target = intake.got.length + 3000;
      await until(() => intake.got.length >= target, 60_000, 5);
      child.kill("SIGKILL");
      await child.status;
      await child.stderr.cancel();
    }
    assert.ok(intake.got.length < expected.length + kills * workers * batchLines, "killed mid-run");
    const last = agent();
    const status = await last.status;
    const err = await new Response(last.stderr).text();
    assert.equal(status.code, 0, err);
    await intake.close();
    const seen = tally(intake.got);
    for (const l of expected) assert.ok(seen.has(l), `lost: ${l}`);
    const dups = intake.got.length - expected.length;
    console.log(
      `kill -9 × ${kills}: ${dups} duplicated lines (bound ${kills * workers * batchLines})`,
    );
    // The batches in flight at each kill, and those acknowledged while the state write that
    // would have recorded them was under way (one write: about two batches at this pace).
    assert.ok(dups <= kills * (workers + 2) * batchLines, `duplicates ${dups}`);
    const temps = [...Deno.readDirSync(dir)].filter((e) => e.name.includes(".tmp-"));
    assert.deepEqual(temps, []);
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test("stream: processing_lag_seconds grows during a 10 s intake outage and falls once delivered", async () => {
  const dir = await Deno.makeTempDir();
  const day = join(dir, "in", "year=2025", "month=1", "day=9");
  await Deno.mkdir(day, { recursive: true });
  const t = Math.floor(Date.now() / 1000) - 30;
  for (let i = 0; i < 3; i++) {
    await Deno.writeFile(join(day, `${t + i}_1_1_${i}.gz`), gz(lines(`lag${i}`, 40)));
  }
  let first: number | undefined;
  const intake = startIntake(() => {
    first ??= Date.now();
    return Date.now() - first < 10_000 ? 503 : 204;
  });
  const stop = new AbortController();
  const agent = runStream(
    {
      source: "file",
      file: { path: join(dir, "in") },
      http: {
        endpoints: [intake.url],
        batch_lines: 20,
        flush_interval: "20ms",
        retry: { max_retries: 1, initial_backoff: "10ms", max_backoff: "20ms" },
      },
      processing: { scan_interval: "300ms", delay_window: "0s", worker_count: 2 },
      state_file: `${dir}/state.json`,
      dead_letter: { path: `${dir}/dead.ndjson` },
    },
    dir,
    stop.signal,
  );
  const lag = agent.metrics.gauge("processing_lag_seconds", "");
  await until(() => first !== undefined, 10_000);
  const during: number[] = [];
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    during.push(lag.get());
  }
  await until(() => intake.got.length >= 120, 20_000);
  await new Promise((r) => setTimeout(r, 1500));
  const after = lag.get();
  stop.abort();
  await agent.done;
  await intake.close();
  console.log(`processing_lag_seconds during the outage: ${during.join(", ")}; after: ${after}`);
  assert.equal(intake.got.length, 120);
  // Each sample is at least the one before (the oldest file waits), and the last is larger.
  for (let i = 1; i < during.length; i++) assert.ok(during[i]! >= during[i - 1]!, `${during}`);
  assert.ok(during.at(-1)! > during[0]!, `${during}`);
  assert.ok(during[0]! >= 30, `${during}`);
  // Delivered: nothing is waiting, so no lag.
  assert.equal(after, 0);
  assert.ok(agent.metrics.gauge("processing_delivered_lag_seconds", "").get() > 0);
  await Deno.remove(dir, { recursive: true });
});

serviceTest(
  "stream: an object whose download keeps failing is quarantined after max_attempts; outages of the intake do not count",
  ["aws"],
  async () => {
    const bucket = await freshBucket();
    const dir = await Deno.makeTempDir();
    const s3 = s3Client();
    const t = Math.floor(Date.now() / 1000) - 100;
    const badKey = dayKey("feed/", t, `${t}_1_1_1.gz`);
    const goodKey = dayKey("feed/", t + 1, `${t + 1}_1_1_2.gz`);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: badKey, Body: gz(lines("bad", 5)) }));
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: goodKey, Body: gz(lines("good", 5)) }),
    );
    // S3 answers 500 to every GET of one object (the SDK retries, then gives up).
    let gets = 0;
    const proxy = startAwsProxy({
      fail: (call) => {
        if (decodeURIComponent(call.action) !== `GET /${bucket}/${badKey}`) return undefined;
        gets++;
        return { type: "InternalError", status: 500 };
      },
    });
    // The intake is down for the first 2 s: the good file fails several times, never quarantined.
    let first: number | undefined;
    const intake = startIntake(() => {
      first ??= Date.now();
      return Date.now() - first < 2000 ? 503 : 204;
    });
    const stop = new AbortController();
    const agent = runStream(
      {
        s3: { bucket, prefix: "feed/", ...awsTestConfig(), endpoint: proxy.url },
        http: {
          endpoints: [intake.url],
          flush_interval: "20ms",
          retry: { max_retries: 0, initial_backoff: "10ms", max_backoff: "20ms" },
        },
        processing: { scan_interval: "200ms", delay_window: "0s", max_attempts: 3 },
        state_file: `${dir}/state.json`,
        dead_letter: { path: `${dir}/dead.ndjson` },
      },
      dir,
      stop.signal,
    );
    const q = agent.metrics.counter("s3_units_quarantined_total", "");
    await until(() => q.total() >= 1 && intake.got.length >= 5, 30_000);
    const getsAtQuarantine = gets;
    await new Promise((r) => setTimeout(r, 1500));
    stop.abort();
    await agent.done;
    await proxy.close();
    await intake.close();
    assert.equal(q.get({ reason: "max_attempts" }), 1, JSON.stringify(q.snapshot()));
    assert.equal(gets, getsAtQuarantine, "not fetched again once quarantined");
    assert.deepEqual(intake.got.toSorted(), lines("good", 5).toSorted());
    // Failed attempts: the bad file's first two, and more of the good file's than max_attempts.
    const errored = agent.metrics.counter("s3_files_errored_total", "").get();
    assert.ok(errored - 2 > 3, `${errored} failed attempts`);
    // One warning per unit a minute, however often it fails.
    const warnings = agent.logs.filter((l) =>
      l.msg === "unit failed: not checkpointed, will be retried" && String(l.unit).endsWith(goodKey)
    );
    assert.equal(warnings.length, 1);
    const state = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
    assert.deepEqual(Object.keys(state.quarantined), [badKey]);
    assert.equal(state.quarantined[badKey].attempts, 3);
    assert.equal(state.quarantined[badKey].id, `s3://${bucket}/${badKey}`);
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test("stream requeue: a quarantined file is read again at the next scan", async () => {
  const dir = await Deno.makeTempDir();
  const day = join(dir, "in", "year=2025", "month=1", "day=9");
  await Deno.mkdir(day, { recursive: true });
  const path = join(day, "1736400000_1_1_1.gz");
  await Deno.writeFile(path, gz(lines("a", 5)).subarray(0, 15)); // truncated
  const intake = startIntake();
  const stop = new AbortController();
  const agent = runStream(
    {
      source: "file",
      file: { path: join(dir, "in") },
      http: { endpoints: [intake.url], flush_interval: "20ms" },
      processing: { scan_interval: "200ms", delay_window: "0s" },
      state_file: `${dir}/state.json`,
      dead_letter: { path: `${dir}/dead.ndjson` },
    },
    dir,
    stop.signal,
  );
  const q = agent.metrics.counter("file_units_quarantined_total", "");
  await until(() => q.total() === 1, 10_000);
  const id = agent.health.quarantined()[0]!.id as string;
  assert.equal(id, `file://${path}`);
  // The operator fixes the file and re-queues it.
  await Deno.writeFile(path, gz(lines("a", 5)));
  await Deno.writeTextFile(
    `${dir}/agent.yaml`,
    `stream:\n  source: file\n  file: {path: in}\n  state_file: state.json\n`,
  );
  assert.equal(await runCli(["stream", "requeue", id, "--config", `${dir}/agent.yaml`]), 0);
  await until(() => intake.got.length === 5, 10_000);
  await new Promise((r) => setTimeout(r, 600));
  stop.abort();
  await agent.done;
  await intake.close();
  assert.deepEqual(intake.got, lines("a", 5));
  assert.equal(q.total(), 1);
  const state = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
  assert.equal(state.quarantined, undefined);
  assert.ok(state.done["year=2025/month=1/day=9/1736400000_1_1_1.gz"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("stream requeue without an id is a usage error naming the form", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/agent.yaml`,
    `stream:\n  source: file\n  state_file: state.json\n`,
  );
  await assert.rejects(
    () => runCli(["stream", "requeue", "--config", `${dir}/agent.yaml`]),
    /usage: edge-agent stream requeue ID/,
  );
  await Deno.remove(dir, { recursive: true });
});
