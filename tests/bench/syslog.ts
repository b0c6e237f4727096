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
 * Last, generate at its own defaults (2 workers, 100,000 msg/s, one thread) for the peak RSS
 * users get. generate and receive run with the compiled binary's flags (COMPILED_FLAGS). Peak RSS
 * is each process's VmHWM (`/usr/bin/time`'s maximum resident set where installed), in MB of
 * 10^6 bytes.
 *
 * Every row carries the 1-minute load average before and after its run (`load1`), since the
 * figures depend on how busy the 2 cores are, and says what the limit was (`limit`): the
 * receiver when messages were lost (sent but never received), else the sender (as fast as
 * possible: it could not send more), or neither when a paced run sent its target.
 *
 * `SYSLOG_CONTENTION=1 deno task bench syslog` runs, instead, the pacing comparison under CPU
 * contention: four busy loops (`sh -c 'while :; do :; done'`) on the cores, then in turn, for
 * SYSLOG_ROUNDS (3) rounds, `generate --workers 4 --rate 20000 --duration 5s` and
 * `loggen --dgram -r 5000 -s 300 -I 5 --active-connections=4` (the same total rate) into one
 * receiver: the share of its target each sent, with the load average before each run
 * (generate on SYSLOG_THREADS threads if set).
 *
 * `deno task bench syslog` (needs Debian's syslog-ng-core for loggen). SYSLOG_SECONDS=10,
 * SYSLOG_RATE_FACTOR=1.2, SYSLOG_THREADS (generate's threads for its 2 workers; unset: its
 * default, 1), SYSLOG_MAX=1 (0: skip the as-fast-as-possible run), SYSLOG_DEFAULTS=1 (0: skip
 * the run at generate's defaults), SYSLOG_GSO=1 (0: generate --no-gso) by default.
 * @module
 */

import { agentArgs, agentCommand, COMPILED_FLAGS, freePort, ROOT } from "../_agent.ts";
import { measured, procUsage } from "./pipeline.ts";
import type { BenchRow } from "./row.ts";

const dec = new TextDecoder();

/** The 1-minute load average now. */
async function load1(): Promise<number> {
  return Number((await Deno.readTextFile("/proc/loadavg")).split(" ")[0]);
}

/** Peak RSS in MB (10^6 bytes) from kB (KiB, as /usr/bin/time and VmHWM give it). */
function mb(kb: number): number {
  return Number((kb * 1024 / 1e6).toFixed(1));
}

/**
 * What held a run back: the sender when it ran as fast as it could or sent less than 99% of its
 * target (`sentPercent`, null: as fast as possible), the receiver when it lost messages (both
 * when both), else neither (paced, target sent, nothing lost).
 */
function limitOf(lossPercent: number, sentPercent: number | null): string {
  const limits = [];
  if (sentPercent !== null && sentPercent < 99) {
    limits.push(`sender (${sentPercent.toFixed(1)}% sent)`);
  }
  if (lossPercent > 0) limits.push("receiver (lost some)");
  else if (sentPercent === null) limits.push("sender");
  return limits.join(", ") || "neither (paced)";
}

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
  ], { denoFlags: COMPILED_FLAGS, stdout: "piped", stderr: "piped" }).spawn();
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

/**
 * One `generate` run of `seconds` to `port` at `rate` (0: as fast as possible), measured, with
 * the 1-minute load average before and after it. `threads` unset: generate's default.
 */
async function generate(
  port: number,
  rate: number,
  seconds: number,
  threads: string | undefined,
  extra = ["--message-size", "300"],
  workers = 2,
) {
  const before = await load1();
  const g = await measured([
    Deno.execPath(),
    ...agentArgs([
      "generate",
      "--port-start",
      `${port}`,
      "--port-end",
      `${port}`,
      "--workers",
      `${workers}`,
      ...(threads ? ["--threads", threads] : []),
      "--rate",
      `${rate}`,
      "--duration",
      `${seconds}s`,
      ...extra,
      ...(Deno.env.get("SYSLOG_GSO") === "0" ? ["--no-gso"] : []),
      "--no-status",
      "--log-level",
      "warn",
    ], COMPILED_FLAGS),
  ], ROOT);
  if (g.code !== 0) throw new Error(`generate failed: ${g.stderr.slice(-500)}`);
  // deno-lint-ignore no-explicit-any
  const summary: any = JSON.parse(g.stdout.trim().split("\n").at(-1)!);
  return { summary, usage: g.usage, load: `${before}→${await load1()}` };
}

/** generate's row from its summary and the receiver's account of its worker numbers. */
function generateRow(
  name: string,
  run: {
    // deno-lint-ignore no-explicit-any
    summary: any;
    usage: { maxRssKb: number; cpuSeconds: number; userSeconds: number };
    load: string;
  },
  // deno-lint-ignore no-explicit-any
  rs: any,
  port: number,
  seconds: number,
  extra: string,
) {
  const gen = run.summary;
  const received = rs.ports[port].messages as number;
  const distinct = (Object.values(rs.workers) as { distinct: number }[])
    .reduce((a, w) => a + w.distinct, 0);
  const lost = gen.sent - distinct;
  const rate = distinct / gen.seconds;
  const lossPercent = 100 * lost / gen.sent;
  const row: BenchRow = {
    name,
    mbPerSec: Number((rate * 300 / 1e6).toFixed(1)),
    msgsPerSec: Math.round(rate),
    lossPercent: Number(lossPercent.toFixed(3)),
    peakRssMB: mb(run.usage.maxRssKb),
    cpuSeconds: Number(run.usage.cpuSeconds.toFixed(2)),
    load1: run.load,
    limit: limitOf(
      lossPercent,
      gen.target_eps ? 100 * gen.sent / (gen.target_eps * seconds) : null,
    ),
    note: `${extra}2 workers on ${gen.threads} thread(s), sendmmsg ${gen.sendmmsg}, ` +
      `gso ${gen.gso}, ${gen.seconds} s; sent ${gen.sent} (${gen.achieved_eps}/s` +
      `${gen.target_eps ? `, given up ${gen.given_up}` : ""}), ` +
      `received ${received} (${distinct} distinct); user ${run.usage.userSeconds} s`,
  };
  return { row, rate, lossPercent };
}

/**
 * loggen, then generate paced at SYSLOG_RATE_FACTOR (1.2) × the rate loggen got through, against
 * one receiver (a port each); then generate as fast as possible against a second receiver
 * (its numbers restart at 0, so it needs its own), unless SYSLOG_MAX=0. generate runs its two
 * workers on SYSLOG_THREADS (1) threads.
 */
/** loggen comes with Debian's syslog-ng-core: installed (and said so) when missing. */
async function ensureLoggen(): Promise<void> {
  const has = () => new Deno.Command("sh", { args: ["-c", "command -v loggen"] }).output();
  if ((await has()).success) return;
  console.error("bench syslog: loggen is missing: installing Debian's syslog-ng-core");
  const sudo = Deno.uid() === 0 ? "" : "sudo -n ";
  const install = await new Deno.Command("sh", {
    args: [
      "-c",
      `${sudo}apt-get update -qq && ${sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq syslog-ng-core >/dev/null`,
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!install.success || !(await has()).success) {
    throw new Error("loggen is missing and could not be installed: apt-get install syslog-ng-core");
  }
}

export async function syslogBench(
  seconds = Number(Deno.env.get("SYSLOG_SECONDS") ?? 10),
): Promise<BenchRow[]> {
  await ensureLoggen();
  if (Deno.env.get("SYSLOG_CONTENTION") === "1") {
    return await contentionBench(Number(Deno.env.get("SYSLOG_ROUNDS") ?? 3));
  }
  const factor = Number(Deno.env.get("SYSLOG_RATE_FACTOR") ?? 1.2);
  const threads = Deno.env.get("SYSLOG_THREADS") || undefined;
  const max = Deno.env.get("SYSLOG_MAX") !== "0";
  const defaults = Deno.env.get("SYSLOG_DEFAULTS") !== "0";
  const genPort = 30000 + 4 * Math.floor(Math.random() * 5000), loggenPort = genPort + 1;
  const r = await receiver(genPort);

  const loggenLoad = await load1();
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
  const loggenLoadAfter = await load1();
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
    seconds,
    "",
  );
  const loggenLoss = 100 * (loggenSent - loggenReceived) / loggenSent;
  const rows: BenchRow[] = [
    {
      name: "loggen → receive, UDP, 300 B",
      mbPerSec: Number((loggenRate * 300 / 1e6).toFixed(1)),
      msgsPerSec: Math.round(loggenRate),
      lossPercent: Number(loggenLoss.toFixed(3)),
      peakRssMB: mb(l.usage.maxRssKb),
      cpuSeconds: Number(l.usage.cpuSeconds.toFixed(2)),
      load1: `${loggenLoad}→${loggenLoadAfter}`,
      limit: limitOf(loggenLoss, null),
      note: `--active-connections=2, ${loggenTime.toFixed(1)} s; sent ${loggenSent}, ` +
        `received ${loggenReceived}; user ${l.usage.userSeconds} s`,
    },
    p.row,
    {
      name: "receive (loggen, then generate)",
      mbPerSec: 0,
      peakRssMB: mb(peakKb),
      cpuSeconds: Number((cpu.user + cpu.sys).toFixed(2)),
      load1: `${loggenLoad}→${paced.load.split("→")[1]}`,
      note: `recvmmsg ${rs.recvmmsg}, rcvbuf ${rs.rcvbuf} B, ${rs.messages} messages; ` +
        `user ${cpu.user} s`,
    },
    {
      name: "generate / loggen (messages received per second)",
      mbPerSec: 0,
      ratio: Number((p.rate / loggenRate).toFixed(2)),
      lossPercent: Number(p.lossPercent.toFixed(3)),
      load1: `${loggenLoad}→${paced.load.split("→")[1]}`,
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
        seconds,
        "own receiver; ",
      ).row,
    );
  }
  if (defaults) {
    // generate as a user starts it: 2 workers, 100,000 msg/s, natural sizes, default threads.
    const r3 = await receiver(genPort + 3);
    const d = await generate(genPort + 3, 100_000, seconds, undefined, []);
    await r3.settle();
    const s3 = await r3.stop();
    const row = generateRow(
      "generate at its defaults (--rate 100000, 2 workers) → receive, UDP, natural sizes",
      d,
      s3.summary,
      genPort + 3,
      seconds,
      "own receiver; ",
    ).row;
    // Natural sizes (~120–200 B): MB/s from the bytes generate sent, not 300 B a message.
    row.mbPerSec = Number((d.summary.bytes / d.summary.seconds / 1e6).toFixed(1));
    rows.push(row);
  }
  return rows;
}

/**
 * Pacing under CPU contention: four busy loops, then `rounds` times generate and loggen in turn
 * at 20,000 msg/s in total over 4 senders for 5 s into one receiver (a port each; its counts
 * are not used: sequence numbers restart every run). Each sent share of its target is its own
 * count over rate × 5 s.
 */
async function contentionBench(rounds: number): Promise<BenchRow[]> {
  const port = 30000 + 4 * Math.floor(Math.random() * 5000);
  const r = await receiver(port);
  const busy = Array.from(
    { length: 4 },
    () => new Deno.Command("sh", { args: ["-c", "while :; do :; done"], stdout: "null" }).spawn(),
  );
  const runs: { gen: [number, number][]; loggen: [number, number][] } = { gen: [], loggen: [] };
  const givenUp: number[] = [];
  try {
    await new Promise((res) => setTimeout(res, 2000));
    for (let i = 0; i < rounds; i++) {
      const before = await load1();
      const g = await generate(port, 20_000, 5, Deno.env.get("SYSLOG_THREADS") || undefined, [], 4);
      runs.gen.push([100 * g.summary.sent / 100_000, before]);
      givenUp.push(g.summary.given_up);
      const lBefore = await load1();
      const l = await measured([
        "loggen",
        "--dgram",
        "-r",
        "5000",
        "-s",
        "300",
        "-I",
        "5",
        "--active-connections=4",
        "127.0.0.1",
        `${port + 1}`,
      ], ROOT);
      const m = /average rate = [\d.]+ msg\/sec, count=(\d+)/.exec(l.stderr + l.stdout);
      if (!m) throw new Error(`cannot read loggen's output: ${(l.stderr + l.stdout).slice(-500)}`);
      runs.loggen.push([100 * Number(m[1]) / 100_000, lBefore]);
    }
  } finally {
    for (const b of busy) b.kill("SIGKILL");
    await Promise.all(busy.map((b) => b.status));
    await r.stop();
  }
  const row = (name: string, xs: [number, number][]): BenchRow => ({
    name,
    mbPerSec: 0,
    sentPercent: xs.map(([p]) => p.toFixed(2)).join(", "),
    load1: xs.map(([, l]) => l).join(", "),
    note: "4 busy loops on the cores; % of rate × 5 s sent, per round (generate: natural " +
      "sizes, loggen: 300 B); load before each",
  });
  const gen = row("generate --workers 4 --rate 20000 --duration 5s (contended)", runs.gen);
  gen.note += `; given up ${givenUp.join(", ")}`;
  return [
    gen,
    row("loggen --dgram -r 5000 -I 5 --active-connections=4 (contended)", runs.loggen),
  ];
}
