/**
 * `generate` → `receive` on loopback, side by side with syslog-ng's `loggen` against the same
 * receiver process, in the same run: 300-byte messages over UDP, two senders to one port each, as
 * fast as each can (`loggen --dgram -r 100000000 -s 300 -I 10 --active-connections=2`), one
 * after the other so they do not share the 2 cores. The receiver listens on two ports (one per
 * sender) and counts per port; generate's loss is its sent count minus the distinct sequence
 * numbers that arrived (the tail included), loggen's is its own count minus what arrived.
 * Peak RSS is each process's VmHWM (`/usr/bin/time`'s maximum resident set where installed).
 *
 * `deno task bench syslog` (needs Debian's syslog-ng-core for loggen). SYSLOG_SECONDS=10 by
 * default.
 * @module
 */

import { agentArgs, agentCommand, freePort, ROOT } from "../_agent.ts";
import { measured, procUsage } from "./pipeline.ts";
import type { BenchRow } from "./row.ts";

const dec = new TextDecoder();

/** One `receive` on ports `port` and `port + 1`, with its status endpoint to watch the counts. */
async function receiver(port: number) {
  const status = freePort();
  const child = agentCommand([
    "receive",
    "--port-start",
    `${port}`,
    "--port-end",
    `${port + 1}`,
    "--status-listen",
    `127.0.0.1:${status}`,
    "--log-level",
    "info",
  ], { stdout: "piped", stderr: "piped" }).spawn();
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
  const stdout = new Response(child.stdout).text();
  const messages = async () =>
    (await (await fetch(`http://127.0.0.1:${status}/api/metrics`)).json()).messages_total as number;
  return {
    /** Wait until the count stops moving (the kernel buffers are drained). */
    async settle(): Promise<void> {
      let before = -1;
      for (let now = await messages(); now !== before; now = await messages()) {
        before = now;
        await new Promise((r) => setTimeout(r, 1200)); // snapshots come every second
      }
    },
    async stop() {
      const u = await procUsage(child.pid);
      const peakKb = u.peakKb;
      const cpu = { user: u.userSeconds, sys: u.sysSeconds };
      child.kill("SIGINT");
      await child.status;
      // deno-lint-ignore no-explicit-any
      const s: any = JSON.parse((await stdout).trim().split("\n").at(-1)!);
      return { summary: s, peakKb, cpu };
    },
  };
}

/** Both senders, one after the other, against one receiver (one port each). */
export async function syslogBench(
  seconds = Number(Deno.env.get("SYSLOG_SECONDS") ?? 10),
): Promise<BenchRow[]> {
  const hasLoggen = await new Deno.Command("sh", { args: ["-c", "command -v loggen"] }).output();
  if (!hasLoggen.success) throw new Error("loggen is missing: apt-get install syslog-ng-core");
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const genPort = 30000 + 2 * Math.floor(Math.random() * 10000), loggenPort = genPort + 1;
  const r = await receiver(genPort);

  const g = await measured([
    Deno.execPath(),
    ...agentArgs([
      "generate",
      "--port-start",
      `${genPort}`,
      "--port-end",
      `${genPort}`,
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
    ]),
  ], ROOT);
  if (g.code !== 0) throw new Error(`generate failed: ${g.stderr.slice(-500)}`);
  const gen = JSON.parse(g.stdout.trim().split("\n").at(-1)!);
  await r.settle();

  const l = await measured([
    "loggen",
    "--dgram",
    "-r",
    "100000000",
    "-s",
    "300",
    "-I",
    `${seconds}`,
    "--active-connections=2",
    "127.0.0.1",
    `${loggenPort}`,
  ], ROOT);
  const text = l.stderr + l.stdout;
  const m = /average rate = ([\d.]+) msg\/sec, count=(\d+), time=([\d.]+)/.exec(text);
  if (!m) throw new Error(`cannot read loggen's output: ${text.slice(-500)}`);
  const loggenSent = Number(m[2]), loggenTime = Number(m[3]);
  await r.settle();
  const { summary: rs, peakKb, cpu } = await r.stop();

  const genReceived = rs.ports[genPort].messages as number;
  const genDistinct = (Object.values(rs.workers) as { distinct: number }[])
    .reduce((a, w) => a + w.distinct, 0);
  const genLost = gen.sent - genDistinct;
  const genRate = genDistinct / gen.seconds;
  const loggenReceived = rs.ports[loggenPort].messages as number;
  const loggenRate = loggenReceived / loggenTime;
  const rows: BenchRow[] = [
    {
      name: "generate → receive, UDP, 300 B",
      mbPerSec: Number((genRate * 300 / 1e6).toFixed(1)),
      msgsPerSec: Math.round(genRate),
      lossPercent: Number((100 * genLost / gen.sent).toFixed(3)),
      peakRssMB: Math.round(g.usage.maxRssKb / 1024),
      cpuSeconds: Number(g.usage.cpuSeconds.toFixed(2)),
      note: `2 workers, sendmmsg ${gen.sendmmsg}, ${gen.seconds} s; sent ${gen.sent}, ` +
        `received ${genReceived} (${genDistinct} distinct); user ${g.usage.userSeconds} s; ` +
        `load before ${load}`,
    },
    {
      name: "loggen → receive, UDP, 300 B",
      mbPerSec: Number((loggenRate * 300 / 1e6).toFixed(1)),
      msgsPerSec: Math.round(loggenRate),
      lossPercent: Number((100 * (loggenSent - loggenReceived) / loggenSent).toFixed(3)),
      peakRssMB: Math.round(l.usage.maxRssKb / 1024),
      cpuSeconds: Number(l.usage.cpuSeconds.toFixed(2)),
      note: `--active-connections=2, ${loggenTime.toFixed(1)} s; sent ${loggenSent}, ` +
        `received ${loggenReceived}; user ${l.usage.userSeconds} s`,
    },
    {
      name: "receive (both runs)",
      mbPerSec: 0,
      peakRssMB: Math.round(peakKb / 1024),
      cpuSeconds: Number((cpu.user + cpu.sys).toFixed(2)),
      note: `recvmmsg ${rs.recvmmsg}, rcvbuf ${rs.rcvbuf} B, ${rs.messages} messages; ` +
        `user ${cpu.user} s`,
    },
    {
      name: "generate / loggen (messages received per second)",
      mbPerSec: 0,
      ratio: Number((genRate / loggenRate).toFixed(2)),
    },
  ];
  return rows;
}
