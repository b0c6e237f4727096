/**
 * `generate` → `receive` on loopback, side by side with syslog-ng's `loggen` against the same
 * receiver process, in the same run: 300-byte messages over UDP, two senders each. loggen first,
 * as fast as it can (`loggen --dgram -r 100000000 -s 300 -I 10 --active-connections=2`); then
 * generate at a fixed rate, SYSLOG_RATE_FACTOR (1.2) × what loggen got through, so the row shows
 * whether generate sustains that rate without loss (as fast as possible, with UDP GSO it sends
 * more than the one receiving thread can take: that figure comes last, from its own receiver).
 * One after the other so they do not share the 2 cores. The receiver listens on two ports (one
 * per sender) and counts per port; generate's loss is its sent count minus the distinct sequence
 * numbers that arrived (the tail included), loggen's is its own count minus what arrived.
 * Peak RSS is each process's VmHWM (`/usr/bin/time`'s maximum resident set where installed).
 *
 * `deno task bench syslog` (needs Debian's syslog-ng-core for loggen). SYSLOG_SECONDS=10,
 * SYSLOG_RATE_FACTOR=1.2, SYSLOG_THREADS=1 (generate's threads for its 2 workers), SYSLOG_MAX=1
 * (0: skip the as-fast-as-possible run), SYSLOG_GSO=1 (0: generate --no-gso) by default.
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
    /** Messages received so far (every port), as of the last snapshot. */
    messages,
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

/** One `generate` run of `seconds` to `port` at `rate` (0: as fast as possible), measured. */
async function generate(port: number, rate: number, seconds: number, threads: string) {
  const g = await measured([
    Deno.execPath(),
    ...agentArgs([
      "generate",
      "--port-start",
      `${port}`,
      "--port-end",
      `${port}`,
      "--workers",
      "2",
      "--threads",
      threads,
      "--rate",
      `${rate}`,
      "--duration",
      `${seconds}s`,
      "--message-size",
      "300",
      ...(Deno.env.get("SYSLOG_GSO") === "0" ? ["--no-gso"] : []),
      "--no-status",
      "--log-level",
      "warn",
    ]),
  ], ROOT);
  if (g.code !== 0) throw new Error(`generate failed: ${g.stderr.slice(-500)}`);
  // deno-lint-ignore no-explicit-any
  const summary: any = JSON.parse(g.stdout.trim().split("\n").at(-1)!);
  return { summary, usage: g.usage };
}

/** generate's row from its summary and the receiver's account of its worker numbers. */
function generateRow(
  name: string,
  // deno-lint-ignore no-explicit-any
  run: { summary: any; usage: { maxRssKb: number; cpuSeconds: number; userSeconds: number } },
  // deno-lint-ignore no-explicit-any
  rs: any,
  port: number,
  extra: string,
) {
  const gen = run.summary;
  const received = rs.ports[port].messages as number;
  const distinct = (Object.values(rs.workers) as { distinct: number }[])
    .reduce((a, w) => a + w.distinct, 0);
  const lost = gen.sent - distinct;
  const rate = distinct / gen.seconds;
  const row: BenchRow = {
    name,
    mbPerSec: Number((rate * 300 / 1e6).toFixed(1)),
    msgsPerSec: Math.round(rate),
    lossPercent: Number((100 * lost / gen.sent).toFixed(3)),
    peakRssMB: Math.round(run.usage.maxRssKb / 1024),
    cpuSeconds: Number(run.usage.cpuSeconds.toFixed(2)),
    note: `${extra}2 workers on ${gen.threads} thread(s), sendmmsg ${gen.sendmmsg}, ` +
      `gso ${gen.gso}, ${gen.seconds} s; sent ${gen.sent} (${gen.achieved_eps}/s), ` +
      `received ${received} (${distinct} distinct); user ${run.usage.userSeconds} s`,
  };
  return { row, rate, lossPercent: 100 * lost / gen.sent };
}

/**
 * loggen, then generate paced at SYSLOG_RATE_FACTOR (1.2) × the rate loggen got through, against
 * one receiver (a port each); then generate as fast as possible against a second receiver
 * (its numbers restart at 0, so it needs its own), unless SYSLOG_MAX=0. generate runs its two
 * workers on SYSLOG_THREADS (1) threads.
 */
export async function syslogBench(
  seconds = Number(Deno.env.get("SYSLOG_SECONDS") ?? 10),
): Promise<BenchRow[]> {
  const hasLoggen = await new Deno.Command("sh", { args: ["-c", "command -v loggen"] }).output();
  if (!hasLoggen.success) throw new Error("loggen is missing: apt-get install syslog-ng-core");
  const factor = Number(Deno.env.get("SYSLOG_RATE_FACTOR") ?? 1.2);
  const threads = Deno.env.get("SYSLOG_THREADS") ?? "1";
  const max = Deno.env.get("SYSLOG_MAX") !== "0";
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const genPort = 30000 + 4 * Math.floor(Math.random() * 5000), loggenPort = genPort + 1;
  const r = await receiver(genPort);

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
  const loggenReceived = (await r.messages()) as number;
  const loggenRate = loggenReceived / loggenTime;

  const rate = Math.round(factor * loggenRate);
  const paced = await generate(genPort, rate, seconds, threads);
  await r.settle();
  const { summary: rs, peakKb, cpu } = await r.stop();
  if (rs.ports[loggenPort].messages !== loggenReceived) {
    throw new Error("loggen's datagrams still arrived after its count settled");
  }
  const p = generateRow(
    `generate --rate ${rate} (${factor} × loggen) → receive, UDP, 300 B`,
    paced,
    rs,
    genPort,
    "",
  );
  const rows: BenchRow[] = [
    {
      name: "loggen → receive, UDP, 300 B",
      mbPerSec: Number((loggenRate * 300 / 1e6).toFixed(1)),
      msgsPerSec: Math.round(loggenRate),
      lossPercent: Number((100 * (loggenSent - loggenReceived) / loggenSent).toFixed(3)),
      peakRssMB: Math.round(l.usage.maxRssKb / 1024),
      cpuSeconds: Number(l.usage.cpuSeconds.toFixed(2)),
      note: `--active-connections=2, ${loggenTime.toFixed(1)} s; sent ${loggenSent}, ` +
        `received ${loggenReceived}; user ${l.usage.userSeconds} s; load before ${load}`,
    },
    p.row,
    {
      name: "receive (loggen, then generate)",
      mbPerSec: 0,
      peakRssMB: Math.round(peakKb / 1024),
      cpuSeconds: Number((cpu.user + cpu.sys).toFixed(2)),
      note: `recvmmsg ${rs.recvmmsg}, rcvbuf ${rs.rcvbuf} B, ${rs.messages} messages; ` +
        `user ${cpu.user} s`,
    },
    {
      name: "generate / loggen (messages received per second)",
      mbPerSec: 0,
      ratio: Number((p.rate / loggenRate).toFixed(2)),
      lossPercent: Number(p.lossPercent.toFixed(3)),
    },
  ];
  if (max) {
    const r2 = await receiver(genPort + 2);
    const fast = await generate(genPort + 2, 0, seconds, threads);
    await r2.settle();
    const s2 = await r2.stop();
    rows.push(
      generateRow(
        "generate --rate 0 (as fast as possible) → receive, UDP, 300 B",
        fast,
        s2.summary,
        genPort + 2,
        "own receiver; ",
      ).row,
    );
  }
  return rows;
}
