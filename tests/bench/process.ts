/**
 * Mode `process` end to end: one change event (from a real `discover --once`) for a PostgreSQL
 * log file of realistic records (a third with DETAIL/STATEMENT continuation lines) → the agent
 * process reads it in DownloadDBLogFilePortion portions (at most 10000 lines, cut at 1 MiB as RDS
 * does; a cut portion is asked again with fewer lines) from the fake RDS Query API
 * (tests/sources/_fake_rds.ts; moto has no such action), parses it and posts the records to the
 * OpenObserve-faithful receiver (tests/sinks/_fake_openobserve.ts), which parses every body.
 * Tracking in moto's DynamoDB, events in the local Kafka.
 *
 * `deno task bench process` (needs `bash tests/services/up.sh`). MB = 10^6 bytes of log text.
 * @module
 */

import { agentCommand } from "../_agent.ts";
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

/** Run the bench. */
export async function processBench({ mb = 40 } = {}): Promise<BenchRow[]> {
  const why = unavailableReason("aws") ?? unavailableReason("kafka");
  if (why) throw new Error(`process benchmark needs the test services: ${why}`);
  const fake = new FakeRds(); // RDS's portions: up to 10000 lines, cut at 1 MiB
  const oo = new FakeOpenObserve();
  try {
    const { text, records } = pgLog(mb * 1e6);
    fake.addInstance("bench1", "aurora-postgresql");
    fake.append("bench1", "error/postgresql.log.2026-11-23-10", text);
    const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
    const topic = await freshTopic();
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
        `--v8-flags=--max-semi-space-size=${Deno.env.get("SEMI") ?? 2}`,
      ],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    let peak = 0;
    const total = () => [...oo.streams.values()].reduce((n, l) => n + l.length, 0);
    while (total() < records && performance.now() - t0 < 300_000) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        const st = await Deno.readTextFile(`/proc/${child.pid}/status`);
        peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(st)?.[1] ?? 0));
      } catch { /* starting */ }
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = await Deno.readTextFile(`/proc/${child.pid}/stat`).then((s) => {
      const f = s.split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) / 100;
    });
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(dir, { recursive: true });
    if (total() !== records) throw new Error(`OpenObserve got ${total()} of ${records} records`);
    return [{
      name: "process: RDS portions → parse → OpenObserve",
      mbPerSec: text.length / 1e6 / seconds,
      recordsPerSec: Math.round(records / seconds),
      peakRssMB: Math.round(peak / 1024),
      cpuSecondsPerGB: Number((cpu / (text.length / 1e9)).toFixed(1)),
      note: `${(text.length / 1e6).toFixed(0)} MB, ${records} records (a third multi-line), ${
        fake.calls.get("DownloadDBLogFilePortion") ?? 0
      } DownloadDBLogFilePortion calls (${fake.cuts} cut at 1 MiB and asked again) to a fake RDS, from process start (includes start-up and the group join)`,
    }];
  } finally {
    await fake.close();
    await oo.close();
  }
}
