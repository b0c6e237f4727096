/**
 * `generate` → `receive` on loopback, side by side with syslog-ng's `loggen` against the same
 * receiver, in the same run: 300-byte messages over UDP, two senders to one port, as fast as
 * each can (`loggen --dgram -r 100000000 -s 300 -I 10 --active-connections=2`). The receiver
 * counts what arrived; generate's loss is from its sequence tags, loggen's from its own count.
 *
 * `deno task bench syslog` (needs Debian's syslog-ng-core for loggen). SECONDS=10 by default.
 * @module
 */

import { fileURLToPath } from "node:url";
import { measured } from "./pipeline.ts";
import type { BenchRow } from "./row.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const agent = ["run", "-P=agent", "--quiet", "main.ts"];

async function receiver(port: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...agent,
      "receive",
      "--port-start",
      `${port}`,
      "--port-end",
      `${port}`,
      "--idle-timeout",
      "1500ms",
      "--no-status",
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Wait until it listens (its log line), keep draining stderr.
  const dec = new TextDecoder();
  const reader = child.stderr.getReader();
  let err = "";
  while (!err.includes('"msg":"receiving"')) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`receiver did not start: ${err}`);
    err += dec.decode(value);
  }
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  return {
    async summary(): Promise<{ messages: number; lost: number; distinct: number }> {
      const out = await new Response(child.stdout).text();
      await child.status;
      const s = JSON.parse(out.trim().split("\n").at(-1)!);
      return { messages: s.messages, lost: s.total.lost, distinct: s.total.distinct };
    },
  };
}

const port = () => 30000 + Math.floor(Math.random() * 20000);

/** Both senders, one after the other, against a fresh receiver each. */
export async function syslogBench(
  seconds = Number(Deno.env.get("SECONDS") ?? 10),
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  // generate
  let p = port();
  let r = await receiver(p);
  const g = await measured([
    Deno.execPath(),
    ...agent,
    "generate",
    "--port-start",
    `${p}`,
    "--port-end",
    `${p}`,
    "--workers",
    "2",
    "--rate",
    "0",
    "--duration",
    `${seconds}s`,
    "--message-size",
    "300",
    "--no-status",
    "--log-level",
    "warn",
  ], root);
  const gs = await r.summary();
  if (g.code !== 0) throw new Error(`generate failed: ${g.stderr.slice(-500)}`);
  const genRate = gs.distinct / seconds;
  // loggen
  const hasLoggen = await new Deno.Command("sh", { args: ["-c", "command -v loggen"] }).output();
  if (!hasLoggen.success) throw new Error("loggen is missing: apt-get install syslog-ng-core");
  p = port();
  r = await receiver(p);
  const l = await new Deno.Command("loggen", {
    args: [
      "--dgram",
      "-r",
      "100000000",
      "-s",
      "300",
      "-I",
      `${seconds}`,
      "--active-connections=2",
      "127.0.0.1",
      `${p}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(l.stderr) + new TextDecoder().decode(l.stdout);
  const m = /average rate = ([\d.]+) msg\/sec, count=(\d+), time=([\d.]+)/.exec(text);
  if (!m) throw new Error(`cannot read loggen's output: ${text.slice(-500)}`);
  const loggenSent = Number(m[2]), loggenTime = Number(m[3]);
  const ls = await r.summary();
  const loggenRate = ls.messages / loggenTime;
  const genLoss = gs.distinct + gs.lost > 0 ? (100 * gs.lost) / (gs.distinct + gs.lost) : 0;
  rows.push({
    name: "generate → receive, UDP, 300 B",
    mbPerSec: (genRate * 300) / 1e6,
    msgsPerSec: Math.round(genRate),
    lossPercent: Number(genLoss.toFixed(3)),
    peakRssMB: Math.round(g.usage.maxRssKb / 1024),
    cpuSeconds: Number(g.usage.cpuSeconds.toFixed(2)),
    note: `2 workers, sendmmsg 256/call, ${seconds} s; received ${gs.messages}`,
  });
  rows.push({
    name: "loggen → receive, UDP, 300 B",
    mbPerSec: (loggenRate * 300) / 1e6,
    msgsPerSec: Math.round(loggenRate),
    lossPercent: Number((100 * (loggenSent - ls.messages) / loggenSent).toFixed(3)),
    note: `--active-connections=2, ${
      loggenTime.toFixed(1)
    } s; sent ${loggenSent}, received ${ls.messages}`,
  });
  rows.push({
    name: "generate / loggen (messages received per second)",
    mbPerSec: 0,
    ratio: Number((genRate / loggenRate).toFixed(2)),
  });
  return rows;
}
