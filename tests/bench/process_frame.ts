/**
 * `process`'s framing in one process, no network: 1 MB portions of the bench's PostgreSQL log (as
 * tests/bench/process.ts makes it) in 64 KiB slices through `TextLines.eachLine`, the PostgreSQL
 * parser writing the records' JSON, and `OpenObserveSink.encodeJson` every 256 lines or 40,000
 * characters, as the mode does.
 * Prints the wall time and the JSON bytes made (the same for any change that keeps the output).
 *
 * `deno run -A --v8-flags=--max-semi-space-size=2,--expose-gc tests/bench/process_frame.ts [MB]`
 * (the compiled binary's flags; add `--trace-gc-nvp` for the young generation's allocation).
 * @module
 */

import { parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { PostgresParser } from "../../mod/parsers/postgres.ts";
import { TextLines } from "../../mod/parsers/text_lines.ts";
import { OpenObserveSink, openobserveSpec } from "../../mod/sinks/openobserve.ts";

const mb = Number(Deno.args[0] ?? 100);
const parts: string[] = [];
let size = 0;
for (let i = 0; size < 1_000_000; i++) {
  const ts = `2026-11-23 10:${String(Math.floor(i / 60) % 60).padStart(2, "0")}:${
    String(i % 60).padStart(2, "0")
  } UTC`;
  const p = `${ts}:10.0.${i % 250}.${i % 200}(5${i % 9999}):app@orders:[${1000 + (i % 5000)}]:`;
  const rec = i % 3 === 0
    ? `${p}ERROR:  duplicate key value violates unique constraint "orders_pkey"\n` +
      `${p}DETAIL:  Key (id)=(${i}) already exists.\n` +
      `${p}STATEMENT:  INSERT INTO orders (id, customer, total) VALUES ($1, $2, $3)\n\tRETURNING id\n`
    : `${p}LOG:  duration: ${
      (i % 997) / 10
    } ms  statement: SELECT * FROM orders WHERE customer_id = ${i} ORDER BY created_at DESC LIMIT 50\n`;
  parts.push(rec);
  size += rec.length;
}
const portion = new TextEncoder().encode(parts.join(""));
const sink = new OpenObserveSink(
  parseValue(openobserveSpec, {}),
  new Logger({ level: "error" }),
  new Registry(),
);
const parser = new PostgresParser();
parser.recordSuffix = new TextEncoder().encode(
  ',"instance":"bench1","engine":"aurora-postgresql","log_file":"error/postgresql.log.2026-11-23-10"',
);
const lines = new TextLines();
let count = 0, chars = 0, jsonBytes = 0;
const take = (json: Uint8Array, n: number) => {
  jsonBytes += sink.encodeJson(json, n, "s").json.length;
};
const emit = () => {
  parser.takeJson(take);
  count = chars = 0;
};
const push = (text: string, from: number, to: number, ascii?: Uint8Array) => {
  parser.pushLine(text, from, to, ascii);
  chars += to - from;
  if (++count === 256 || chars >= 40_000) emit();
};
const t0 = performance.now();
for (let k = 0; k < mb * 1e6 / portion.length; k++) {
  for (let o = 0; o < portion.length; o += 64 << 10) {
    lines.eachLine(portion.subarray(o, o + (64 << 10)), push);
    emit();
  }
}
console.log(
  `${mb} MB of log: ${(performance.now() - t0).toFixed(0)} ms, ${jsonBytes} bytes of JSON`,
);
