/**
 * Mode `process` end to end: one change event (from a real `discover --once`) for a PostgreSQL
 * log file of realistic records (a third with DETAIL/STATEMENT continuation lines) → the agent
 * process reads it in DownloadDBLogFilePortion portions (at most 10000 lines, cut at 1 MiB as RDS
 * does; a cut portion is asked again with fewer lines) from the fake RDS Query API
 * (tests/sources/_fake_rds.ts; moto has no such action), parses it and posts the records to the
 * OpenObserve-faithful receiver (tests/sinks/_fake_openobserve.ts), which parses every body.
 * Tracking in moto's DynamoDB, events in the local Kafka.
 *
 * Each run of the agent is followed by one of a Python peer (process_peer.py: one thread folds and
 * JSON-encodes the same file, no network), `PROCESS_RUNS` (3) times.
 *
 * The agent's figures are its own process's: CPU from /proc/PID/stat (all its threads), peak RSS
 * from VmHWM. The fake RDS and OpenObserve run in the bench process and are not counted.
 *
 * `deno task bench process` (needs `bash tests/services/up.sh`). MB = 10^6 bytes (log text; peak
 * RSS).
 * @module
 */

import { agentCommand, COMPILED_FLAGS, compiledFlagsWithV8 } from "../_agent.ts";
import { FakeOpenObserve } from "../sinks/_fake_openobserve.ts";
import { FakeRds } from "../sources/_fake_rds.ts";
import { discoverConfig, discoverOnce } from "../modes/_rds.ts";
import { endpoints, freshTable, freshTopic, unavailableReason } from "../services/mod.ts";
import type { BenchRow } from "./row.ts";

/** A PostgreSQL stderr log of about `bytes`, and how many records it holds. */
function pgLog(bytes: number): { text: string; records: number } {
  const parts: string[] = [];
  let size = 0, records = 0, i = 0;
  while (size < bytes) {
    const ts = `2026-11-23 10:${String(Math.floor(i / 60) % 60).padStart(2, "0")}:${
      String(i % 60).padStart(2, "0")
    } UTC`;
    const p = `${ts}:10.0.${i % 250}.${i % 200}(5${i % 9999}):app@orders:[${1000 + (i % 5000)}]:`;
    let rec: string;
    if (i % 3 === 0) {
      rec = `${p}ERROR:  duplicate key value violates unique constraint "orders_pkey"\n` +
        `${p}DETAIL:  Key (id)=(${i}) already exists.\n` +
        `${p}STATEMENT:  INSERT INTO orders (id, customer, total) VALUES ($1, $2, $3)\n\tRETURNING id\n`;
    } else {
      rec = `${p}LOG:  duration: ${
        (i % 997) / 10
      } ms  statement: SELECT * FROM orders WHERE customer_id = ${i} ORDER BY created_at DESC LIMIT 50\n`;
    }
    parts.push(rec);
    size += rec.length;
    records++;
    i++;
  }
  return { text: parts.join(""), records };
}

/** One run of the agent over the file: a fresh table and topic, a `discover --once`, then `process`. */
async function agentRun(fake: FakeRds, oo: FakeOpenObserve, text: string, records: number) {
  oo.accepted.clear();
  const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
  const topic = await freshTopic();
  const calls = fake.calls.get("DownloadDBLogFilePortion") ?? 0;
  const cuts = fake.cuts;
  const d = await discoverOnce(discoverConfig(fake.url, table, topic));
  if (d.code !== 0) throw new Error(`discover failed: ${d.stderr}`);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${dir}/agent.yaml`,
    JSON.stringify({
      log: { level: "warn" },
      process: {
        kafka: { brokers: endpoints.kafka, topic, group_id: `bench-${crypto.randomUUID()}` },
        rds: { endpoint: fake.url, region: "us-east-1", rate_limit: 100 },
        dynamodb: { endpoint: endpoints.aws, region: "us-east-1" },
        tracking_table: table,
        openobserve: { url: oo.url, password: oo.password },
      },
    }),
  );
  const t0 = performance.now();
  const child = agentCommand(["process", "--no-status", "--config", `${dir}/agent.yaml`], {
    denoFlags: [
      // PROF=<dir>: write a CPU profile of the agent there.
      ...(Deno.env.get("PROF") ? ["--cpu-prof", `--cpu-prof-dir=${Deno.env.get("PROF")}`] : []),
      // The compiled binary's flags, or SEMI=N[,more V8 flags] in their place.
      ...(Deno.env.get("SEMI")
        ? compiledFlagsWithV8(`--max-semi-space-size=${Deno.env.get("SEMI")}`)
        : COMPILED_FLAGS),
    ],
    stdout: Deno.env.get("PROCESS_STDOUT") ? "inherit" : "null",
    stderr: "inherit",
  }).spawn();
  let peak = 0;
  const total = () => [...oo.accepted.values()].reduce((n, c) => n + c, 0);
  const cpuNow = () =>
    Deno.readTextFile(`/proc/${child.pid}/stat`).then((s) => {
      const f = s.split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) / 100;
    });
  // CPU until the first record arrived: start-up (module loading, clients, the group join).
  let startup: number | undefined;
  // Peak RSS (kB) by then: modules, clients and the first portion.
  let startupPeak = 0;
  while (total() < records && performance.now() - t0 < 300_000) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      const st = await Deno.readTextFile(`/proc/${child.pid}/status`);
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(st)?.[1] ?? 0));
    } catch { /* starting */ }
    if (startup === undefined && total() > 0) {
      startup = await cpuNow();
      startupPeak = peak;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = await cpuNow();
  if (Deno.env.get("PROCESS_THREADS")) {
    // CPU seconds by thread name (main, V8 GC helpers, the gzip worker, tokio, ...).
    const by = new Map<string, number>();
    for await (const t of Deno.readDir(`/proc/${child.pid}/task`)) {
      const stat = await Deno.readTextFile(`/proc/${child.pid}/task/${t.name}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
      by.set(name, (by.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
    }
    console.error("CPU s by thread:", JSON.stringify(Object.fromEntries(by)));
  }
  const load1 = Deno.loadavg()[0]!;
  child.kill("SIGTERM");
  await child.status;
  await Deno.remove(dir, { recursive: true });
  if (total() !== records) throw new Error(`OpenObserve got ${total()} of ${records} records`);
  const gb = new TextEncoder().encode(text).length / 1e9;
  return {
    name: "process: RDS portions → parse → OpenObserve",
    mbPerSec: gb * 1e3 / seconds,
    recordsPerSec: Math.round(records / seconds),
    peakRssMB: Math.round(peak * 1024 / 1e6),
    startupPeakRssMB: Math.round(startupPeak * 1024 / 1e6),
    cpuSecondsPerGB: Number((cpu / gb).toFixed(1)),
    startupCpuSeconds: Number((startup ?? 0).toFixed(2)),
    // From the first record on: without module loading, clients and the group join.
    cpuSecondsPerGBAfterStart: Number(((cpu - (startup ?? 0)) / gb).toFixed(1)),
    load1: Number(load1.toFixed(2)),
    note: `${(gb * 1e3).toFixed(0)} MB, ${records} records (a third multi-line), ${
      (fake.calls.get("DownloadDBLogFilePortion") ?? 0) - calls
    } DownloadDBLogFilePortion calls (${
      fake.cuts - cuts
    } cut at 1 MiB and asked again) to a fake RDS, from process start (includes start-up and the group join)`,
  };
}

/** The Python peer (tests/bench/process_peer.py) over the same file. */
async function peerRun(file: string, text: string, records: number): Promise<BenchRow> {
  const t0 = performance.now();
  const out = await new Deno.Command("python3", {
    args: [new URL("./process_peer.py", import.meta.url).pathname, file],
    stdout: "piped",
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  const load1 = Deno.loadavg()[0]!;
  if (!out.success) throw new Error("python3 process_peer.py failed");
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  if (r.records !== records) throw new Error(`the peer made ${r.records} of ${records} records`);
  const gb = new TextEncoder().encode(text).length / 1e9;
  return {
    name: "python3 peer: fold + JSON-encode the same file",
    mbPerSec: gb * 1e3 / seconds,
    recordsPerSec: Math.round(records / seconds),
    cpuSecondsPerGB: Number((r.cpu_s / gb).toFixed(1)),
    load1: Number(load1.toFixed(2)),
    note:
      "one thread, reads the file from disk, no network (its peak RSS is not comparable: ru_maxrss survives exec)",
  };
}

/**
 * Run the bench: `PROCESS_RUNS` (3) runs of the agent over `PROCESS_MB` (200) MB, each followed by
 * one of the Python peer, with the 1-minute load average beside each figure (the machine is
 * shared). `PROCESS_THREADS=1` prints the agent's CPU seconds by thread; `PROCESS_STDOUT=1` shows
 * the agent's stdout (with `SEMI=2,--trace-gc`: its garbage collections).
 */
export async function processBench(
  // 200 MB: start-up (about 0.7 CPU s) is a few CPU s/GB of it, not 20 as of 40 MB.
  { mb = Number(Deno.env.get("PROCESS_MB") ?? 200) } = {},
): Promise<BenchRow[]> {
  const why = unavailableReason("aws") ?? unavailableReason("kafka");
  if (why) throw new Error(`process benchmark needs the test services: ${why}`);
  const fake = new FakeRds(); // RDS's portions: up to 10000 lines, cut at 1 MiB
  const oo = new FakeOpenObserve();
  oo.keep = false; // counted (every body still parsed), not kept
  const file = await Deno.makeTempFile({ suffix: ".log" });
  try {
    const { text, records } = pgLog(mb * 1e6);
    await Deno.writeTextFile(file, text);
    fake.addInstance("bench1", "aurora-postgresql");
    fake.append("bench1", "error/postgresql.log.2026-11-23-10", text);
    const rows: BenchRow[] = [];
    const runs = Number(Deno.env.get("PROCESS_RUNS") ?? 3);
    for (let i = 0; i < runs; i++) {
      rows.push(await agentRun(fake, oo, text, records));
      rows.push(await peerRun(file, text, records));
    }
    return rows;
  } finally {
    await Deno.remove(file);
    await fake.close();
    await oo.close();
  }
}
