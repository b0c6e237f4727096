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
