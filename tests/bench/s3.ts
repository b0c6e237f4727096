/**
 * S3 server (moto, from tests/services) → agent process (mode stream) → HTTP receiver process.
 * @module
 */

import zlib from "node:zlib";
import { join } from "node:path";
import { agentArgs, agentCommand, COMPILED_FLAGS, ROOT } from "../_agent.ts";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { zscalerFile } from "../../mod/demo/zscaler.ts";
import { endpoints, freshBucket, s3Client, unavailableReason } from "../services/mod.ts";
import { measured, startReceiverProcess } from "./pipeline.ts";
import type { BenchRow } from "./row.ts";

/**
 * End to end from the local S3 server. Environment knobs, for the memory figures in README:
 * `S3_WORKERS` (worker_count and http.workers, default 4), `S3_HTTP_WORKERS` (http.workers
 * alone), `S3_V8_FLAGS` (more V8 flags,
 * comma-separated), `S3_MEMORY=1` (the agent reports its peak heap and ArrayBuffer memory, see
 * memory_main.ts) and `S3_GC_EVERY_MS` (with S3_MEMORY: a forced full GC that often).
 */
export async function s3Bench(
  { files = 50, fileBytes = 10 * 1024 * 1024 } = {},
): Promise<BenchRow[]> {
  const why = unavailableReason("aws");
  if (why) {
    throw new Error(`S3 benchmark needs the test services (bash tests/services/up.sh): ${why}`);
  }
  const workers = Number(Deno.env.get("S3_WORKERS") ?? 4);
  const httpWorkers = Number(Deno.env.get("S3_HTTP_WORKERS") ?? workers);
  const v8 = Deno.env.get("S3_V8_FLAGS") ?? "";
  const memory = Deno.env.get("S3_MEMORY") === "1";
  const gcEvery = memory ? Number(Deno.env.get("S3_GC_EVERY_MS") ?? 0) : 0;
  const bucket = await freshBucket("bench");
  const s3 = s3Client();
  const now = Math.floor(Date.now() / 1000);
  let plainBytes = 0;
  let lines = 0;
  for (let i = 0; i < files; i++) {
    const t = now - 600 + i;
    const d = new Date(t * 1000);
    const text = zscalerFile(fileBytes, 1000 + i);
    plainBytes += text.length;
    for (const b of text) if (b === 10) lines++;
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `feed/year=${d.getUTCFullYear()}/month=${
          d.getUTCMonth() + 1
        }/day=${d.getUTCDate()}/${t}_1_1_${i}.gz`,
        Body: zlib.gzipSync(text),
      }),
    );
  }
  const dir = await Deno.makeTempDir();
  const receiver = await startReceiverProcess();
  await Deno.writeTextFile(
    join(dir, "agent.yaml"),
    `status: {enabled: false}\nlog: {level: warn}\nstream:\n  s3: {bucket: ${bucket}, prefix: feed/, endpoint: "${endpoints.aws}", region: us-east-1, force_path_style: true}\n` +
      `  http: {endpoints: ["${receiver.url}"], workers: ${httpWorkers}}\n  processing: {once: true, worker_count: ${workers}}\n  state_file: state.json\n`,
  );
  const t = performance.now();
  const run = await measured(
    [
      Deno.execPath(),
      ...agentArgs(
        ["stream", "--config", join(dir, "agent.yaml")],
        [
          `${COMPILED_FLAGS[0]}${v8 ? "," + v8 : ""}${gcEvery ? ",--expose-gc" : ""}`,
          ...COMPILED_FLAGS.slice(1),
        ],
        memory ? "tests/bench/memory_main.ts" : "main.ts",
      ),
    ],
    ROOT,
    gcEvery ? { GC_EVERY_MS: String(gcEvery) } : {},
  );
  const seconds = (performance.now() - t) / 1000;
  const got = await receiver.stop();
  await Deno.remove(dir, { recursive: true });
  if (run.code !== 0 || got.lines !== lines) {
    throw new Error(`S3 run failed (exit ${run.code}, ${got.lines}/${lines} lines): ${run.stderr}`);
  }
  const mb = plainBytes / 1e6;
  return [{
    name: "end-to-end from S3 (moto)",
    mbPerSec: mb / seconds,
    note:
      `${files} files, moto server → agent → HTTP receiver, nothing lost; ${workers} download and ${httpWorkers} HTTP workers${
        v8 ? `, ${v8}` : ""
      }${gcEvery ? `, full GC every ${gcEvery} ms` : ""}${
        memory ? `; peaks (MiB) ${/memory (\{.*\})/.exec(run.stderr)?.[1] ?? "?"}` : ""
      }`,
    linesPerSec: Math.round(lines / seconds),
    peakRssMB: Math.round(run.usage.maxRssKb / 1024),
    cpuSecondsPerGB: Number((run.usage.cpuSeconds / (mb / 1000)).toFixed(2)),
    seconds: Number(seconds.toFixed(2)),
  }];
}

/**
 * Lag at the reference's rate: 28 files of ~2 MB every 15 s land in S3 while the agent runs
 * continuously (scan_interval 5s, delay_window 5s); `processing_delivered_lag_seconds` (the lag at
 * each delivery, what `processing_lag_seconds` meant before it became the age of the oldest file not
 * yet delivered) is sampled from the agent's /metrics every 250 ms.
 */
export async function lagBench(
  { rounds = 3, perRound = 28, fileBytes = 2 * 1024 * 1024 } = {},
): Promise<BenchRow[]> {
  const why = unavailableReason("aws");
  if (why) throw new Error(`lag benchmark needs the test services: ${why}`);
  const bucket = await freshBucket("lag");
  const s3 = s3Client();
  const dir = await Deno.makeTempDir();
  const receiver = await startReceiverProcess();
  const port = 20000 + Math.floor(Math.random() * 20000);
  await Deno.writeTextFile(
    join(dir, "agent.yaml"),
    `status: {listen: "127.0.0.1:${port}"}\nlog: {level: warn}\nstream:\n  s3: {bucket: ${bucket}, prefix: feed/, endpoint: "${endpoints.aws}", region: us-east-1, force_path_style: true}\n` +
      `  http: {endpoints: ["${receiver.url}"]}\n  processing: {scan_interval: 5s, delay_window: 5s}\n  state_file: state.json\n`,
  );
  const bodies = Array.from(
    { length: perRound },
    (_, i) => zlib.gzipSync(zscalerFile(fileBytes, 7000 + i)),
  );
  const agent = agentCommand(["stream", "--config", join(dir, "agent.yaml")], {
    denoFlags: COMPILED_FLAGS,
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const samples: number[] = [];
  let peakRss = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await new Promise((r) => setTimeout(r, 250));
      try {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const lag = /^processing_delivered_lag_seconds (\S+)$/m.exec(text);
        const files = /^s3_files_processed_total (\S+)$/m.exec(text);
        if (lag && files && Number(files[1]) > 0) samples.push(Number(lag[1]));
        const st = await Deno.readTextFile(`/proc/${agent.pid}/status`);
        peakRss = Math.max(peakRss, Number(/VmHWM:\s+(\d+)/.exec(st)?.[1] ?? 0));
      } catch { /* starting */ }
    }
  })();
  let seq = 0;
  for (let r = 0; r < rounds; r++) {
    const started = Date.now();
    for (const body of bodies) {
      const t = Math.floor(Date.now() / 1000);
      const d = new Date(t * 1000);
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `feed/year=${d.getUTCFullYear()}/month=${
            d.getUTCMonth() + 1
          }/day=${d.getUTCDate()}/${t}_1_1_${seq++}.gz`,
          Body: body,
        }),
      );
    }
    await new Promise((res) => setTimeout(res, Math.max(0, 15_000 - (Date.now() - started))));
  }
  await new Promise((r) => setTimeout(r, 12_000)); // the last round's delay window and scan
  sampling = false;
  await sampler;
  agent.kill("SIGTERM");
  await agent.status;
  const got = await receiver.stop();
  await Deno.remove(dir, { recursive: true });
  const avg = samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length);
  return [{
    name: "lag at 28 files / 15 s (S3)",
    mbPerSec: (rounds * perRound * fileBytes) / 1e6 / (rounds * 15),
    note: `scan_interval 5s + delay_window 5s; ${
      rounds * perRound
    } files, ${got.lines} lines delivered`,
    lagAvgSeconds: Number(avg.toFixed(1)),
    lagMaxSeconds: Number(Math.max(...samples).toFixed(1)),
    peakRssMB: Math.round(peakRss / 1024),
  }];
}
