/**
 * Data path benchmarks: gunzip (node:zlib vs DecompressionStream), line framing, and end to end
 * from a local directory source to a local HTTP receiver in a separate process, with the agent
 * in its own process (peak RSS and CPU measured by /usr/bin/time, or /proc polling without it).
 * @module
 */

import zlib from "node:zlib";
import { join } from "node:path";
import { agentArgs, COMPILED_FLAGS, ROOT } from "../_agent.ts";
import { zscalerFile } from "../../mod/demo/zscaler.ts";
import { decodeStream } from "../../mod/pipeline/gzip.ts";
import { LineStream } from "../../mod/pipeline/line_stream.ts";
import type { BenchRow } from "./row.ts";

function chunks(data: Uint8Array, size = 64 * 1024): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

async function drain(s: ReadableStream<unknown>): Promise<void> {
  for await (const _ of s) { /* consume */ }
}

async function best(runs: number, fn: () => Promise<void>): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    min = Math.min(min, performance.now() - t);
  }
  return min / 1000;
}

/** Micro benchmarks of the hot path pieces on one ~10 MB Zscaler-like file. */
export async function microBench(): Promise<BenchRow[]> {
  const plain = zscalerFile(10 * 1024 * 1024, 42);
  const gz = new Uint8Array(zlib.gzipSync(plain));
  const multi = new Uint8Array(
    Buffer.concat(chunks(plain, 256 * 1024).map((c) => zlib.gzipSync(c))),
  );
  const mb = plain.length / 1e6;
  const ratio = (plain.length / gz.length).toFixed(1);
  const rows: BenchRow[] = [];
  const zs = await best(
    5,
    () => drain(ReadableStream.from(chunks(gz)).pipeThrough(decodeStream())),
  );
  rows.push({
    name: "gunzip node:zlib (default)",
    mbPerSec: mb / zs,
    note: `1 member, ratio ${ratio}:1`,
  });
  const zm = await best(
    5,
    () => drain(ReadableStream.from(chunks(multi)).pipeThrough(decodeStream())),
  );
  rows.push({
    name: "gunzip node:zlib multi-member",
    mbPerSec: mb / zm,
    note: "40 members of 256 KiB",
  });
  const ws = await best(
    5,
    () => drain(ReadableStream.from(chunks(gz)).pipeThrough(decodeStream({ impl: "web" }))),
  );
  rows.push({
    name: "gunzip DecompressionStream",
    mbPerSec: mb / ws,
    note: "1 member only (fails on 2+)",
  });
  const ls = await best(
    5,
    () => drain(ReadableStream.from(chunks(plain)).pipeThrough(new LineStream())),
  );
  rows.push({
    name: "line framing (LineStream)",
    mbPerSec: mb / ls,
    note: `${(plain.length / 1300).toFixed(0)} lines`,
  });
  return rows;
}

interface Usage {
  maxRssKb: number;
  cpuSeconds: number;
  userSeconds: number;
}

/** A running process's peak RSS (VmHWM) and CPU seconds so far, from /proc. */
export async function procUsage(
  pid: number,
): Promise<{ peakKb: number; userSeconds: number; sysSeconds: number }> {
  const st = await Deno.readTextFile(`/proc/${pid}/status`);
  const f = (await Deno.readTextFile(`/proc/${pid}/stat`)).split(") ")[1]!.split(" ");
  return {
    peakKb: Number(/VmHWM:\s+(\d+)/.exec(st)?.[1] ?? 0),
    userSeconds: Number(f[11]) / 100, // USER_HZ
    sysSeconds: Number(f[12]) / 100,
  };
}

/** Run a command, measuring peak RSS and CPU time of the child; its output is collected. */
export async function measured(
  cmd: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ code: number; usage: Usage; stdout: string; stderr: string }> {
  const hasTime = await Deno.stat("/usr/bin/time").then(() => true, () => false);
  const report = await Deno.makeTempFile();
  const args = hasTime ? ["-f", "%M %U %S", "-o", report, ...cmd] : cmd.slice(1);
  const child = new Deno.Command(hasTime ? "/usr/bin/time" : cmd[0]!, {
    args,
    cwd,
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peak = 0;
  let cpu = 0;
  let userCpu = 0;
  const poll = hasTime ? undefined : setInterval(async () => {
    try {
      const u = await procUsage(child.pid);
      peak = Math.max(peak, u.peakKb);
      cpu = u.userSeconds + u.sysSeconds;
      userCpu = u.userSeconds;
    } catch { /* exited */ }
  }, 50);
  const [status, out, err] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  clearInterval(poll);
  if (hasTime) {
    const [rss, user, sys] = (await Deno.readTextFile(report)).trim().split(/\s+/).slice(-3).map(
      Number,
    );
    peak = rss!;
    cpu = user! + sys!;
    userCpu = user!;
  }
  await Deno.remove(report);
  return {
    code: status.code,
    usage: { maxRssKb: peak, cpuSeconds: cpu, userSeconds: userCpu },
    stdout: out,
    stderr: err,
  };
}

/** The HTTP receiver in its own process (tests/bench/receiver_main.ts). */
export async function startReceiverProcess(): Promise<
  { url: string; stop: () => Promise<{ lines: number; bytes: number }> }
> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "tests/bench/receiver_main.ts"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) text += (await out.read()).value ?? "";
  return {
    url: text.trim(),
    async stop() {
      await child.stdin.close();
      let rest = "";
      for (;;) {
        const { value, done } = await out.read();
        if (done) break;
        rest += value;
      }
      await child.status;
      return JSON.parse(rest.trim().split("\n").pop()!);
    },
  };
}

/** End to end: directory (like a bucket) → agent process → HTTP receiver process. */
export async function endToEndBench(
  { files = 40, fileBytes = 10 * 1024 * 1024 } = {},
): Promise<BenchRow[]> {
  const dir = await Deno.makeTempDir({ prefix: "edge-agent-bench-" });
  const bucket = join(dir, "bucket", "year=2025", "month=10", "day=12");
  await Deno.mkdir(bucket, { recursive: true });
  let lines = 0;
  let plainBytes = 0;
  for (let i = 0; i < files; i++) {
    const text = zscalerFile(fileBytes, i);
    for (const b of text) if (b === 10) lines++;
    plainBytes += text.length;
    await Deno.writeFile(join(bucket, `${1760305292 + i}_56442_130_${i}.gz`), zlib.gzipSync(text));
  }
  const receiver = await startReceiverProcess();
  const url = receiver.url;
  await Deno.writeTextFile(
    join(dir, "agent.yaml"),
    `status: {enabled: false}\nlog: {level: warn}\nstream:\n  source: file\n  file: {path: bucket}\n` +
      `  http: {endpoints: ["${url}"], workers: 4}\n  processing: {once: true, delay_window: 0s, worker_count: 2}\n` +
      `  state_file: state.json\n`,
  );
  const t = performance.now();
  const run = await measured(
    [
      Deno.execPath(),
      ...agentArgs([
        "stream",
        "--config",
        join(dir, "agent.yaml"),
      ], COMPILED_FLAGS),
    ],
    ROOT,
  );
  const seconds = (performance.now() - t) / 1000;
  const got = await receiver.stop();
  await Deno.remove(dir, { recursive: true });
  if (run.code !== 0 || got.lines !== lines) {
    throw new Error(
      `end-to-end run failed (exit ${run.code}, ${got.lines}/${lines} lines): ${run.stderr}`,
    );
  }
  const mb = plainBytes / 1e6;
  return [{
    name: "end-to-end",
    mbPerSec: mb / seconds,
    note: `${files} files, directory → agent → HTTP receiver (separate processes), nothing lost`,
    linesPerSec: Math.round(lines / seconds),
    peakRssMB: Math.round(run.usage.maxRssKb / 1024),
    cpuSecondsPerGB: Number((run.usage.cpuSeconds / (mb / 1000)).toFixed(2)),
    seconds: Number(seconds.toFixed(2)),
  }];
}
