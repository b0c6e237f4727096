/**
 * `deno task bench tail`: the agent tailing files (stream mode, `source: tail`) into an HTTP
 * receiver, side by side with `tail -q -F FILES | curl -T -` (one chunked POST streaming stdin)
 * into the same receiver. A writer process appends lines that start with their write time, the
 * receiver (in this process) reads request bodies as they stream in and notes each line's delay.
 *
 * Rows: one file written as fast as the writer can; 100 files written at once; one file paced
 * (TAIL_RATE lines/s) for the delay a steady application sees. Lines/s and MB/s are over the time
 * from the writer's start to the last line's delivery; CPU s/GB and peak RSS are the shipper's
 * (the agent process; tail and curl together), from /proc. Knobs: TAIL_LINES (1000000),
 * TAIL_RATE (10000), TAIL_PACED_SECONDS (10), TAIL_LINE_BYTES (100), TAIL_BATCH_LINES (the
 * agent's http.batch_lines), TAIL_ONLY (scenario indexes, e.g. 0,1).
 * @module
 */

import { join } from "node:path";
import { agentCommand, COMPILED_FLAGS, freePort, ROOT } from "../_agent.ts";
import { procUsage } from "./pipeline.ts";
import type { BenchRow } from "./row.ts";

const LINES = Number(Deno.env.get("TAIL_LINES") ?? 1_000_000);
const RATE = Number(Deno.env.get("TAIL_RATE") ?? 10_000);
const PACED_SECONDS = Number(Deno.env.get("TAIL_PACED_SECONDS") ?? 10);
const LINE_BYTES = Number(Deno.env.get("TAIL_LINE_BYTES") ?? 100);
/** The agent's http.batch_lines; unset: the default (1000). */
const BATCH_LINES = Deno.env.get("TAIL_BATCH_LINES");
/** Only these scenarios (comma-separated indexes 0, 1, 2); unset: all. */
const ONLY = Deno.env.get("TAIL_ONLY")?.split(",").map(Number);

/** A receiver that reads bodies as they stream and keeps each line's write→delivery delay. */
function delayReceiver() {
  const s = { lines: 0, bytes: 0, delays: [] as number[], last: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (!req.body) return new Response(null, { status: 204 });
    let rest = "";
    const chunks = req.body.pipeThrough(new TextDecoderStream());
    // A peer killed at the end cuts its body short: what arrived before counts.
    try {
      for await (const chunk of chunks) {
        const now = performance.timeOrigin + performance.now();
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        for (const l of parts) {
          if (!l) continue;
          s.lines++;
          s.bytes += l.length + 1;
          const t = parseFloat(l);
          if (t > 0) s.delays.push(now - t);
        }
        s.last = now;
      }
    } catch { /* cut short */ }
    return new Response(null, { status: 204 });
  });
  return { url: `http://127.0.0.1:${server.addr.port}/`, s, close: () => server.shutdown() };
}

/** CPU seconds and peak RSS (sum over the processes) sampled from /proc. */
function sampler(pids: () => number[]) {
  const last = new Map<number, { cpu: number; peakKb: number }>();
  const tick = async () => {
    for (const pid of pids()) {
      try {
        const u = await procUsage(pid);
        last.set(pid, { cpu: u.userSeconds + u.sysSeconds, peakKb: u.peakKb });
      } catch { /* exited */ }
    }
  };
  const timer = setInterval(tick, 100);
  return {
    tick,
    stop: () => clearInterval(timer),
    get cpu() {
      return [...last.values()].reduce((n, u) => n + u.cpu, 0);
    },
    get peakMb() {
      return [...last.values()].reduce((n, u) => n + u.peakKb, 0) / 1024;
    },
  };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

async function until(cond: () => boolean, what: () => string, ms = 300_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`bench tail: gave up waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Shipper {
  name: string;
  start(
    dir: string,
    files: number,
    url: string,
  ): Promise<{ pids: () => number[]; stop(): Promise<void> }>;
}

/** The agent: stream mode with the tail source, as a user would run it. */
const agent: Shipper = {
  name: "edge-agent",
  async start(dir, _files, url) {
    const status = freePort();
    await Deno.writeTextFile(
      join(dir, "agent.yaml"),
      `status: {listen: "127.0.0.1:${status}"}\nlog: {level: warn}\nstream:\n  source: tail\n` +
        `  tail: {include: ["${dir}/*.log"]}\n` +
        `  http: {endpoints: ["${url}"], workers: 4, flush_interval: 200ms${
          BATCH_LINES ? `, batch_lines: ${BATCH_LINES}` : ""
        }}\n` +
        `  state_file: state.json\n`,
    );
    const child = agentCommand(["stream", "--config", join(dir, "agent.yaml")], {
      denoFlags: COMPILED_FLAGS,
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    for (let i = 0; i < 600; i++) {
      const ok = await fetch(`http://127.0.0.1:${status}/healthz`).then(
        async (r) => (await r.body?.cancel(), r.ok),
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      pids: () => [child.pid],
      async stop() {
        child.kill("SIGTERM");
        await child.status;
      },
    };
  },
};

/** The peer: `tail -q -n +1 -F FILES | curl -T -` (no batching, retries or checkpoints). */
const tailCurl: Shipper = {
  name: "tail -F | curl",
  async start(dir, files, url) {
    const names = Array.from({ length: files }, (_, i) => `f${i}.log`).join(" ");
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        `tail -q -n +1 -F ${names} | curl -sS -T - -X POST -H 'Transfer-Encoding: chunked' ${url}`,
      ],
      cwd: dir,
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const children = () => {
      try {
        return Deno.readTextFileSync(`/proc/${child.pid}/task/${child.pid}/children`).trim()
          .split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    };
    await until(() => children().length === 2, () => "tail and curl did not start", 10_000);
    const pids = children();
    return {
      pids: () => pids,
      async stop() {
        for (const pid of pids) {
          try {
            Deno.kill(pid, "SIGTERM");
          } catch { /* gone */ }
        }
        await child.status;
      },
    };
  },
};

async function run(
  shipper: Shipper,
  { files, lines, rate, label }: { files: number; lines: number; rate: number; label: string },
): Promise<BenchRow> {
  const dir = await Deno.makeTempDir({ prefix: "edge-agent-bench-tail-" });
  for (let i = 0; i < files; i++) await Deno.writeFile(join(dir, `f${i}.log`), new Uint8Array());
  const receiver = delayReceiver();
  const shipping = await shipper.start(dir, files, receiver.url);
  const usage = sampler(shipping.pids);
  await usage.tick();
  const startupCpu = usage.cpu; // start-up is not part of the work measured
  const began = performance.timeOrigin + performance.now();
  const writer = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "tests/bench/tail_writer_main.ts",
      dir,
      String(files),
      String(lines),
      String(rate),
      String(LINE_BYTES),
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  await until(() => receiver.s.lines >= lines, () => `${receiver.s.lines}/${lines} lines`);
  const written = await writer;
  await usage.tick();
  usage.stop();
  const seconds = (receiver.s.last - began) / 1000;
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
  await shipping.stop();
  await receiver.close();
  await Deno.remove(dir, { recursive: true });
  const delays = Float64Array.from(receiver.s.delays).sort();
  const mb = receiver.s.bytes / 1e6;
  return {
    name: `tail: ${shipper.name}, ${label}`,
    mbPerSec: mb / seconds,
    linesPerSec: Math.round(receiver.s.lines / seconds),
    cpuSecondsPerGB: Number(((usage.cpu - startupCpu) / (mb / 1000)).toFixed(2)),
    peakRssMB: Math.round(usage.peakMb),
    delayP50ms: Math.round(percentile(delays, 0.5)),
    delayP99ms: Math.round(percentile(delays, 0.99)),
    note: `${receiver.s.lines} lines of ${LINE_BYTES} B; writer ${
      new TextDecoder().decode(written.stdout).trim()
    } s; load ${load}${receiver.s.lines > lines ? `; ${receiver.s.lines - lines} extra` : ""}`,
  };
}

/** The tail benchmark rows: the agent and `tail -F | curl`, each scenario side by side. */
export async function tailBench(): Promise<BenchRow[]> {
  const scenarios = [
    { files: 1, lines: LINES, rate: 0, label: "1 file, writer flat out" },
    { files: 100, lines: LINES, rate: 0, label: "100 files, writer flat out" },
    { files: 1, lines: RATE * PACED_SECONDS, rate: RATE, label: `1 file at ${RATE} lines/s` },
  ];
  const rows: BenchRow[] = [];
  for (const [i, s] of scenarios.entries()) {
    if (ONLY && !ONLY.includes(i)) continue;
    for (const shipper of [agent, tailCurl]) {
      console.error(`bench tail: ${shipper.name}, ${s.label} ...`);
      rows.push(await run(shipper, s));
    }
  }
  return rows;
}
