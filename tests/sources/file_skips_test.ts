// What the file source does not read is logged and counted; cut lines are logged once per file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseValue } from "../../mod/config/spec.ts";
import { startReceiver } from "../../mod/demo/receiver.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { streamMode } from "../../mod/modes/stream.ts";
import { FileSource } from "../../mod/sources/file.ts";
import { modeContext } from "../modes/_context.ts";

function collect() {
  const lines: Record<string, unknown>[] = [];
  const log = new Logger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  return { lines, log };
}

Deno.test("FileSource logs (debug) and counts FIFOs, symlink loops and other entries it does not read, once each", async () => {
  const root = await Deno.makeTempDir();
  const day = join(root, "year=2025", "month=1", "day=9");
  await Deno.mkdir(day, { recursive: true });
  await Deno.writeTextFile(join(day, "1736400000_1_1_1"), "a\n");
  const fifo = await new Deno.Command("mkfifo", { args: [join(day, "pipe")] }).output();
  assert.equal(fifo.code, 0);
  await Deno.symlink(join(day, "loop-b"), join(day, "loop-a"));
  await Deno.symlink(join(day, "loop-a"), join(day, "loop-b"));
  await Deno.symlink(join(day, "missing"), join(day, "dangling"));
  await Deno.symlink(join(root, "year=2025"), join(day, "to-dir"));
  await Deno.writeTextFile(join(root, "manifest.json"), "{}\n");
  const { lines, log } = collect();
  const metrics = new Registry();
  const source = new FileSource({
    root,
    stateFile: join(root, ".state.json"),
    pattern: "year=*/month=*/day=*/*",
    delayWindow: 0,
    once: true,
    log,
    metrics,
  });
  for (let i = 0; i < 2; i++) {
    const found = await source.scan();
    assert.deepEqual(found.map((f) => f.rel), ["year=2025/month=1/day=9/1736400000_1_1_1"]);
  }
  const skipped = metrics.counter("file_entries_skipped_total", "");
  const by = (reason: string) => skipped.get({ reason });
  assert.equal(by("special_file"), 1);
  assert.equal(by("symlink_loop"), 2);
  assert.equal(by("broken_symlink"), 1);
  assert.equal(by("symlink_to_directory"), 1);
  assert.equal(by("outside_layout"), 1);
  const logged = lines.filter((l) => l.msg === "entry skipped");
  assert.equal(logged.length, 6, "once each, over two scans");
  assert.ok(logged.every((l) => l.level === "debug"));
  assert.deepEqual(
    logged.map((l) => `${l.reason} ${l.path}`).toSorted(),
    [
      "broken_symlink year=2025/month=1/day=9/dangling",
      "outside_layout manifest.json",
      "special_file year=2025/month=1/day=9/pipe",
      "symlink_loop year=2025/month=1/day=9/loop-a",
      "symlink_loop year=2025/month=1/day=9/loop-b",
      "symlink_to_directory year=2025/month=1/day=9/to-dir",
    ],
  );
  await source.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("stream (file source) sends only the layout's files, and logs a file's cut lines once with the offset", async () => {
  const root = await Deno.makeTempDir();
  const day = join(root, "bucket", "year=2025", "month=1", "day=9");
  await Deno.mkdir(day, { recursive: true });
  const long = "x".repeat(300);
  // Two over-long lines; the first starts at byte 6 ("short\n" before it).
  await Deno.writeTextFile(join(day, "1736400000_1_1_1"), `short\n${long}\nok\n${long}\n`);
  await Deno.writeTextFile(join(root, "bucket", "manifest.json"), '{"not":"data"}\n');
  const r = startReceiver({ keepLines: true });
  const { lines, log } = collect();
  const config = parseValue(streamMode.spec, {
    source: "file",
    file: { path: join(root, "bucket") },
    http: { endpoints: [r.url], flush_interval: "20ms" },
    processing: { once: true, delay_window: "0s", max_line_bytes: 100, plain: "allow" },
    state_file: "state.json",
  });
  const ctx = modeContext(config, root);
  ctx.log = log;
  await streamMode.run(ctx);
  await r.close();
  assert.deepEqual(r.lines.toSorted(), ["ok", "short", "x".repeat(100), "x".repeat(100)]);
  const cut = lines.filter((l) => l.msg === "lines longer than max_line_bytes were cut");
  assert.equal(cut.length, 1);
  assert.equal(cut[0]!.level, "warn");
  assert.equal(cut[0]!.file, "year=2025/month=1/day=9/1736400000_1_1_1");
  assert.equal(cut[0]!.offset, 6);
  assert.equal(cut[0]!.lines_cut, 2);
  await Deno.remove(root, { recursive: true });
});
