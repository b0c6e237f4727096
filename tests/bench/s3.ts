/**
 * S3 server (moto, from tests/services) → agent process (mode stream) → HTTP receiver process.
 * @module
 */

import zlib from "node:zlib";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { zscalerFile } from "../../mod/demo/zscaler.ts";
import { endpoints, freshBucket, s3Client, unavailableReason } from "../services/mod.ts";
import { measured, startReceiverProcess } from "./pipeline.ts";
import type { BenchRow } from "./row.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** End to end from the local S3 server. */
export async function s3Bench(
  { files = 50, fileBytes = 10 * 1024 * 1024 } = {},
): Promise<BenchRow[]> {
  const why = unavailableReason("aws");
  if (why) {
    throw new Error(`S3 benchmark needs the test services (bash tests/services/up.sh): ${why}`);
  }
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
      `  http: {endpoints: ["${receiver.url}"], workers: 4}\n  processing: {once: true, worker_count: 4}\n  state_file: state.json\n`,
  );
  const t = performance.now();
  const run = await measured(
    [
      Deno.execPath(),
      "run",
      "-P=agent",
      "--quiet",
      "--v8-flags=--max-semi-space-size=2",
      join(root, "main.ts"),
      "stream",
      "--config",
      join(dir, "agent.yaml"),
    ],
    root,
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
    note: `${files} files, moto server → agent → HTTP receiver, nothing lost`,
    linesPerSec: Math.round(lines / seconds),
    peakRssMB: Math.round(run.usage.maxRssKb / 1024),
    cpuSecondsPerGB: Number((run.usage.cpuSeconds / (mb / 1000)).toFixed(2)),
    seconds: Number(seconds.toFixed(2)),
  }];
}
