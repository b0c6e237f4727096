// `deno task bench`: every benchmark, printed as a table and written to dist/bench.json.
// Pass names to run a subset: `deno task bench pipeline e2e`.
import { endToEndBench, microBench } from "./pipeline.ts";
import { lagBench, s3Bench } from "./s3.ts";
import { azureKafkaBench } from "./azure_kafka.ts";
import { kafkaBench } from "./kafka.ts";
import { bench as sinksBench } from "./sinks.ts";
import { bench as routeBench } from "./route.ts";
import { processBench } from "./process.ts";
import { syslogBench } from "./syslog.ts";
import { tailBench } from "./tail.ts";
import type { BenchRow } from "./row.ts";

const suites: Record<string, () => Promise<BenchRow[]>> = {
  pipeline: microBench,
  sinks: sinksBench,
  e2e: () => endToEndBench(),
  s3: () => s3Bench(),
  lag: () => lagBench(),
  azure: () => azureKafkaBench(),
  kafka: () => kafkaBench(),
  route: routeBench,
  syslog: () => syslogBench(),
  process: () => processBench(),
  tail: () => tailBench(),
};

const wanted = Deno.args.length ? Deno.args : Object.keys(suites);
const rows: BenchRow[] = [];
for (const name of wanted) {
  const suite = suites[name];
  if (!suite) {
    throw new Error(`unknown benchmark ${name}: one of ${Object.keys(suites).join(", ")}`);
  }
  console.error(`bench: ${name} ...`);
  rows.push(...await suite());
}

const extraKeys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) =>
  !["name", "mbPerSec", "note"].includes(k)
);
const header = ["benchmark", "MB/s", ...extraKeys, "note"];
const table = [
  header,
  ...rows.map((r) => [
    r.name,
    r.mbPerSec.toFixed(0),
    ...extraKeys.map((k) => String(r[k] ?? "")),
    r.note ?? "",
  ]),
];
const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
for (const [i, row] of table.entries()) {
  console.log("| " + row.map((c, j) => c.padEnd(widths[j]!)).join(" | ") + " |");
  if (i === 0) console.log("| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |");
}
await Deno.mkdir("dist", { recursive: true });
const meta = {
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  cpus: navigator.hardwareConcurrency,
};
await Deno.writeTextFile("dist/bench.json", JSON.stringify({ ...meta, rows }, null, 2) + "\n");
console.error("bench: wrote dist/bench.json");
