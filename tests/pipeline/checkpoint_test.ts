import assert from "node:assert/strict";
import { join } from "node:path";
import { Registry } from "../../mod/metrics/registry.ts";
import { CheckpointStore } from "../../mod/pipeline/checkpoint.ts";

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "checkpoint-test-" });
}

Deno.test("CheckpointStore.load() starts fresh when the file is missing", async () => {
  const dir = await tempDir();
  const store = new CheckpointStore(join(dir, "state.json"));
  await store.load();
  assert.equal(store.size, 0);
  assert.equal(store.isDone("a"), false);
  assert.equal(store.getOffset("a"), 0);
  assert.equal(store.get("watermark"), undefined);
  await store.close();
  await assert.rejects(
    Deno.stat(join(dir, "state.json")),
    Deno.errors.NotFound,
    "nothing to write",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore round-trips done units, offsets and source state", async () => {
  const dir = await tempDir();
  const path = join(dir, "state.json");
  const a = new CheckpointStore(path, { now: () => 1_760_305_353_000 });
  await a.load();
  a.markDone("year=2025/x.gz", { lines: 6554, consumed: 655_360 });
  a.setOffset("blob/b.log", 1024);
  a.setOffset("blob/c.log", 2048);
  a.markDone("blob/c.log", { lines: 3, consumed: 4096, at: 5 });
  a.set("watermark", 1_760_305_292);
  await a.close();

  const b = new CheckpointStore(path);
  await b.load();
  assert.deepEqual(b.getDone("year=2025/x.gz"), {
    at: 1_760_305_353_000,
    lines: 6554,
    consumed: 655_360,
  });
  assert.deepEqual(b.getDone("blob/c.log"), { at: 5, lines: 3, consumed: 4096 });
  assert.equal(b.getOffset("blob/b.log"), 1024);
  assert.equal(b.getOffset("blob/c.log"), 0, "markDone forgets the resume offset");
  assert.equal(b.get("watermark"), 1_760_305_292);
  assert.deepEqual([...b.ids()].toSorted(), ["blob/c.log", "year=2025/x.gz"]);
  const file = JSON.parse(await Deno.readTextFile(path));
  assert.equal(file.version, 1);
  assert.equal(typeof file.updated, "string");
  await b.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore coalesces many acks into one delayed write; flush() writes at once", async () => {
  const dir = await tempDir();
  const path = join(dir, "state.json");
  const store = new CheckpointStore(path, { flushInterval: 60_000 });
  await store.load();
  for (let i = 0; i < 1000; i++) store.markDone(`u${i}`, { lines: i, consumed: i });
  await new Promise((r) => setTimeout(r, 20));
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound, "not written per ack");
  await store.flush();
  assert.equal(Object.keys(JSON.parse(await Deno.readTextFile(path)).done).length, 1000);
  await store.close();
  await store.close(); // idempotent
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore writes in the background within flush_interval", async () => {
  const dir = await tempDir();
  const path = join(dir, "state.json");
  const store = new CheckpointStore(path, { flushInterval: 10 });
  store.markDone("a", { lines: 1, consumed: 1 });
  let text: string | undefined;
  for (let i = 0; i < 200 && text === undefined; i++) {
    await new Promise((r) => setTimeout(r, 10));
    text = await Deno.readTextFile(path).catch(() => undefined);
  }
  assert.ok(text, "written without flush()");
  assert.deepEqual(Object.keys(JSON.parse(text).done), ["a"]);
  await store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore.prune() drops selected entries and persists that", async () => {
  const dir = await tempDir();
  const path = join(dir, "state.json");
  const store = new CheckpointStore(path);
  for (const [id, at] of [["old1", 1], ["old2", 2], ["new", 10]] as const) {
    store.markDone(id, { lines: 0, consumed: 0, at });
  }
  assert.equal(store.prune((_id, d) => d.at < 5), 2);
  assert.equal(store.prune(() => false), 0);
  await store.close();
  const again = new CheckpointStore(path);
  await again.load();
  assert.deepEqual([...again.ids()], ["new"]);
  await again.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore.load() reads the first file source's format ({done: {path: size}})", async () => {
  const dir = await tempDir();
  const path = join(dir, "state.json");
  await Deno.writeTextFile(path, JSON.stringify({ done: { "a/b.gz": 1234 } }));
  const store = new CheckpointStore(path);
  await store.load();
  assert.deepEqual(store.getDone("a/b.gz"), { at: 0, lines: 0, consumed: 1234 });
  await store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore.load() rejects a corrupt file with an error naming it (no silent reset)", async () => {
  const dir = await tempDir();
  const path = join(dir, "state.json");
  const cases: [string, RegExp][] = [
    ['{"version":1,"done":{"a":{"at":1,"li', /is corrupt \(not JSON/],
    ["", /is corrupt \(not JSON/],
    ["\u0000\u0000\u0000", /is corrupt \(not JSON/],
    ["[1,2]", /not a valid checkpoint: not a JSON object/],
    ['{"version":2}', /version 2 is not supported/],
    ['{"done":{"a":{"at":"x"}}}', /done\["a"\] must be \{at, lines, consumed\} numbers/],
    ['{"offsets":{"a":-1}}', /offsets\["a"\] must be a number ≥ 0/],
    ['{"state":[]}', /"state" must be an object/],
  ];
  for (const [text, want] of cases) {
    await Deno.writeTextFile(path, text);
    const store = new CheckpointStore(path);
    await assert.rejects(store.load(), (e: Error) => {
      assert.ok(e.message.includes(path), e.message);
      assert.match(e.message, want);
      assert.match(e.message, /move it away to start fresh/);
      return true;
    });
    assert.equal(await Deno.readTextFile(path), text, "the file is left as it was");
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore reports a failed write, keeps the state and writes it once it can", async () => {
  const dir = await tempDir();
  const path = join(dir, "missing-dir", "state.json");
  const metrics = new Registry();
  const store = new CheckpointStore(path, { metrics, flushInterval: 60_000 });
  store.markDone("a", { lines: 1, consumed: 1 });
  await assert.rejects(store.flush(), (e: Error) => e.message.includes(path));
  assert.equal(metrics.counter("checkpoint_write_errors_total", "").get(), 1);
  await Deno.mkdir(join(dir, "missing-dir"));
  await store.close();
  assert.deepEqual(Object.keys(JSON.parse(await Deno.readTextFile(path)).done), ["a"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore survives kill -9 at any point: the file is always the old or the new state", async () => {
  const dir = await tempDir();
  const path = join(dir, "state.json");
  const mod = new URL("../../mod/pipeline/checkpoint.ts", import.meta.url).href;
  // Each state is self-checking: n units done, payload of a length derived from n.
  const writer = `
    import { CheckpointStore } from ${JSON.stringify(mod)};
    const store = new CheckpointStore(${JSON.stringify(path)}, { flushInterval: 0 });
    await store.load();
    let n = store.get("n") ?? 0;
    const enc = new TextEncoder();
    for (;;) {
      n++;
      store.markDone("unit-" + n, { lines: n, consumed: n * 10 });
      store.set("n", n);
      store.set("payload", "x".repeat(100_000 + (n % 7) * 10_000));
      await store.flush();
      await Deno.stdout.write(enc.encode(n + "\\n"));
    }
  `;
  let lastFlushed = 0;
  for (let round = 0; round < 6; round++) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", writer],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 60));
    child.kill("SIGKILL");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    await child.status;
    await child.stderr.cancel();
    const flushed = seen.split("\n").filter(Boolean).map(Number);
    lastFlushed = Math.max(lastFlushed, ...flushed);

    const state = JSON.parse(await Deno.readTextFile(path)); // never garbage
    const n = state.state.n as number;
    assert.ok(n >= lastFlushed, `every flush reported done is in the file: ${n} < ${lastFlushed}`);
    assert.equal(Object.keys(state.done).length, n);
    assert.deepEqual(state.done[`unit-${n}`], {
      at: state.done[`unit-${n}`].at,
      lines: n,
      consumed: n * 10,
    });
    assert.equal(state.state.payload.length, 100_000 + (n % 7) * 10_000);
  }
  // A later load cleans the temp files a killed writer left behind.
  const store = new CheckpointStore(path);
  await store.load();
  await store.close();
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  assert.deepEqual(names, ["state.json"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore keeps progress of units in flight and quarantine records; requeue forgets both", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/state.json`;
  const s = new CheckpointStore(path, { flushInterval: 0 });
  await s.load();
  s.setProgress("a.gz", 3000);
  s.markQuarantined("bad.gz", {
    id: "file:///in/bad.gz",
    reason: "corrupt_gzip",
    message: "corrupt",
    offset: 10,
    at: 1,
    attempts: 1,
    lines: 5,
  }, { lines: 5, consumed: 10 });
  await s.close();
  const t = new CheckpointStore(path);
  await t.load();
  assert.equal(t.getProgress("a.gz"), 3000);
  assert.equal(t.isDone("bad.gz"), true);
  assert.equal(t.getQuarantined("bad.gz")?.reason, "corrupt_gzip");
  t.markDone("a.gz", { lines: 4000, consumed: 1 });
  // Its progress goes once the checkpoint that records it as done is written.
  assert.equal(t.getProgress("a.gz"), 3000);
  await t.flush();
  assert.equal(t.getProgress("a.gz"), 0);
  assert.equal(t.requeue("bad.gz"), true);
  assert.equal(t.isDone("bad.gz"), false);
  assert.equal(t.requeue("bad.gz"), false);
  await t.close();
  const file = JSON.parse(await Deno.readTextFile(path));
  assert.equal(file.quarantined, undefined);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(`${path}.progress`)).progress, {});
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CheckpointStore.load() creates a missing state directory, so the first write does not fail after delivery", async () => {
  const dir = await Deno.makeTempDir();
  const s = new CheckpointStore(`${dir}/not/yet/state.json`, { flushInterval: 0 });
  await s.load();
  s.markDone("a", { lines: 1, consumed: 1 });
  await s.close();
  assert.ok(JSON.parse(await Deno.readTextFile(`${dir}/not/yet/state.json`)).done.a);
  await Deno.remove(dir, { recursive: true });
});
