// End to end: a directory laid out like a bucket → the stream mode → a real local HTTP receiver.
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { join } from "node:path";
import { parseValue } from "../../mod/config/spec.ts";
import { startReceiver } from "../../mod/demo/receiver.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { streamMode } from "../../mod/modes/stream.ts";
import { modeContext } from "../modes/_context.ts";

const enc = (s: string) => new TextEncoder().encode(s);

async function runStream(root: string, endpoints: string[], metrics = new Registry()) {
  const config = parseValue(streamMode.spec, {
    source: "file",
    file: { path: join(root, "bucket") },
    http: { endpoints, flush_interval: "50ms", batch_lines: 7 },
    processing: { once: true, delay_window: "0s", max_line_bytes: 4096, plain: "allow" },
    state_file: "state.json",
  });
  await streamMode.run(modeContext(config, root, { metrics }));
  return metrics;
}

Deno.test("stream (file source) delivers exactly the input's line multiset, once across restarts", async () => {
  const root = await Deno.makeTempDir();
  const day = join(root, "bucket", "year=2025", "month=1", "day=9");
  const day2 = join(root, "bucket", "year=2025", "month=01", "day=10");
  await Deno.mkdir(day, { recursive: true });
  await Deno.mkdir(day2, { recursive: true });
  const expected: string[] = [];
  const lines = (tag: string, n: number) => {
    const out = Array.from({ length: n }, (_, i) => `{"f":"${tag}","i":${i},"msg":"dup"}`);
    expected.push(...out);
    return out.join("\n") + "\n";
  };
  // gz with extension; gz without; plain named .gz; multi-member; CRLF; duplicate lines across files
  await Deno.writeFile(join(day, "1736400000_1_1_1.gz"), zlib.gzipSync(enc(lines("a", 100))));
  await Deno.writeFile(join(day, "1736400001_1_1_2"), zlib.gzipSync(enc(lines("b", 33))));
  await Deno.writeTextFile(join(day, "1736400002_1_1_3.gz"), lines("c", 5));
  await Deno.writeFile(
    join(day2, "1736480000_1_1_4.gz"),
    Buffer.concat([zlib.gzipSync(enc(lines("d", 10))), zlib.gzipSync(enc(lines("e", 11)))]),
  );
  await Deno.writeTextFile(join(day2, "1736480001_1_1_5"), lines("f", 3).replaceAll("\n", "\r\n"));
  await Deno.writeTextFile(join(day2, "1736480002_1_1_6"), lines("same", 2) + lines("same", 2));
  // A corrupt file: quarantined (counted, not delivered, not retried), others continue.
  const corrupt = zlib.gzipSync(enc("never\n"));
  corrupt[corrupt.length - 5]! ^= 0xff;
  await Deno.writeFile(join(day2, "1736480003_1_1_7.gz"), corrupt);

  const r = startReceiver({ keepLines: true });
  const m = await runStream(root, [r.url]);
  assert.deepEqual(r.lines.toSorted(), expected.toSorted());
  assert.equal(m.counter("file_files_processed_total", "").get(), 6);
  assert.equal(m.counter("file_files_errored_total", "").get(), 0);
  assert.equal(m.counter("file_units_quarantined_total", "").get({ reason: "corrupt_gzip" }), 1);

  // Restart: the state file remembers what was delivered and quarantined; only the new file is read.
  await Deno.writeFile(join(day2, "1736480009_1_1_8.gz"), zlib.gzipSync(enc(lines("late", 4))));
  const again = await runStream(root, [r.url]);
  assert.equal(again.counter("file_files_processed_total", "").get(), 1);
  assert.equal(again.counter("file_units_quarantined_total", "").total(), 0);
  assert.deepEqual(r.lines.toSorted(), expected.toSorted());
  await r.close();
  await Deno.remove(root, { recursive: true });
});
