import assert from "node:assert/strict";
import { join } from "node:path";
import { parseValue } from "../../mod/config/spec.ts";
import { SinkError } from "../../mod/pipeline/types.ts";
import { FileSink, fileSinkSpec } from "../../mod/sinks/file.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const batch = (lines: string[]) => {
  const items = lines.map(enc);
  return { items, bytes: items.reduce((n, l) => n + l.length + 1, 0) };
};
const signal = new AbortController().signal;

Deno.test("FileSink appends batches in call order, creating the directory", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "sub", "out.ndjson");
  for (const sync of [true, false]) {
    const sink = new FileSink({ path, sync });
    const expected: string[] = [];
    const writes = [];
    for (let i = 0; i < 50; i++) {
      const lines = [`${sync} ${i} a`, `${sync} ${i} b`];
      expected.push(...lines);
      writes.push(sink.write(batch(lines), signal));
    }
    await Promise.all(writes);
    await sink.close();
    const text = await Deno.readTextFile(path);
    assert.ok(text.endsWith(expected.join("\n") + "\n"));
  }
  const lines = (await Deno.readTextFile(path)).split("\n");
  assert.equal(lines.length, 201, "the second sink appended to the first's file");
  assert.equal((await Deno.stat(path)).mode! & 0o007, 0, "not world-readable");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("FileSink starts a new file when the old one was renamed away (rotation)", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "out.ndjson");
  const sink = new FileSink({ path });
  await sink.write(batch(["before"]), signal);
  await Deno.rename(path, `${path}.1`);
  await sink.write(batch(["after"]), signal);
  await sink.close();
  assert.equal(await Deno.readTextFile(`${path}.1`), "before\n");
  assert.equal(await Deno.readTextFile(path), "after\n");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("FileSink fails a batch with a retryable SinkError naming the path", async () => {
  const dir = await Deno.makeTempDir();
  const sink = new FileSink({ path: dir }); // a directory: cannot be opened for append
  await assert.rejects(sink.write(batch(["x"]), signal), (e: unknown) => {
    assert.ok(e instanceof SinkError);
    assert.equal(e.retryable, true);
    assert.ok(e.message.includes(`cannot append 1 batch(es), 1 lines, to ${dir}`), e.message);
    return true;
  });
  await sink.close();
  // Closed (shutting down): the lines were not refused, so not for the dead letter.
  await assert.rejects(sink.write(batch(["y"]), signal), (e: unknown) => {
    assert.ok(e instanceof SinkError && /is closed/.test(e.message));
    assert.equal(e.retryable, true);
    assert.equal(e.reason, "closed");
    return true;
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("fileSinkSpec requires a path and syncs by default", () => {
  assert.throws(() => parseValue(fileSinkSpec, {}), /path: is required/);
  const c = parseValue(fileSinkSpec, { path: "/tmp/x" });
  assert.equal(c.sync, true);
  assert.equal(c.batch_lines, 1000);
});
