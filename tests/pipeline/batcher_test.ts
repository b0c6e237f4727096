import assert from "node:assert/strict";
import { Batcher, type TaggedBatch } from "../../mod/pipeline/batcher.ts";

const line = (n: number) => new Uint8Array(n);

function collect(opts: { batchLines?: number; batchBytes?: number; flushInterval?: number }) {
  const batches: TaggedBatch<Uint8Array, string>[] = [];
  const b = new Batcher<Uint8Array, string>({
    ...opts,
    onBatch: (batch) => {
      batches.push(batch);
      return Promise.resolve();
    },
  });
  return { b, batches };
}

Deno.test("Batcher closes a batch at batchLines", async () => {
  const { b, batches } = collect({ batchLines: 3, flushInterval: 60_000 });
  for (let i = 0; i < 7; i++) await b.add(line(1), "u");
  assert.deepEqual(batches.map((x) => x.items.length), [3, 3]);
  await b.close();
  assert.deepEqual(batches.map((x) => x.items.length), [3, 3, 1]);
});

Deno.test("Batcher never exceeds batchBytes unless one line alone is larger", async () => {
  const { b, batches } = collect({ batchBytes: 10, flushInterval: 60_000 });
  for (const n of [3, 3, 3, 20, 1, 8]) await b.add(line(n), "u"); // sizes +1 for the newline
  await b.close();
  assert.deepEqual(batches.map((x) => x.bytes), [8, 4, 21, 2, 9]);
  for (const x of batches) assert.ok(x.bytes <= 10 || x.items.length === 1);
});

Deno.test("Batcher flushes an open batch after flushInterval", async () => {
  const { b, batches } = collect({ flushInterval: 30 });
  await b.add(line(5), "u");
  assert.equal(batches.length, 0);
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(batches.length, 1);
  await b.close();
});

Deno.test("Batcher counts items per tag across units", async () => {
  const { b, batches } = collect({ batchLines: 4, flushInterval: 60_000 });
  for (const tag of ["a", "a", "b", "a", "b"]) await b.add(line(1), tag);
  await b.close();
  assert.deepEqual([...batches[0]!.tags], [["a", 3], ["b", 1]]);
  assert.deepEqual([...batches[1]!.tags], [["b", 1]]);
});

Deno.test("Batcher applies backpressure: add waits until onBatch resolves", async () => {
  let release!: () => void;
  const b = new Batcher<Uint8Array, string>({
    batchLines: 1,
    onBatch: () => new Promise<void>((r) => release = r),
  });
  let done = false;
  const p = b.add(line(1), "u")!.then(() => done = true);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(done, false);
  release();
  await p;
  assert.equal(done, true);
});

Deno.test("Batcher validates its options", () => {
  const onBatch = () => Promise.resolve();
  assert.throws(
    () => new Batcher({ batchLines: 0, onBatch }),
    /batch_lines must be a positive integer: got 0/,
  );
  assert.throws(() => new Batcher({ batchBytes: -1, onBatch }), /batch_bytes/);
});

Deno.test("Batcher with copyLines: one newline-joined body per batch, items as views into it", async () => {
  const batches: TaggedBatch<Uint8Array, string>[] = [];
  const b = new Batcher<Uint8Array, string>({
    batchBytes: 11,
    flushInterval: 60_000,
    copyLines: true,
    onBatch: (batch) => {
      batches.push(batch);
      return Promise.resolve();
    },
  });
  const src = new TextEncoder().encode("aaa bb cccc dd");
  for (const [s, e] of [[0, 3], [4, 6], [7, 11], [12, 14]]) {
    await b.add(src.subarray(s, e), "u");
  }
  // The input may be overwritten once add() returned: the batches hold copies.
  src.fill(0);
  await b.close();
  const text = (u: Uint8Array) => new TextDecoder().decode(u);
  assert.deepEqual(batches.map((x) => text(x.body!)), ["aaa\nbb\n", "cccc\ndd\n"]);
  assert.deepEqual(batches.map((x) => x.items.map(text)), [["aaa", "bb"], ["cccc", "dd"]]);
  assert.deepEqual(batches.map((x) => x.count), [2, 2]);
  for (const x of batches) assert.equal(x.items[0]!.buffer, x.body!.buffer);
});

Deno.test("Batcher with copyLines reuses a recycled batch's buffer; a line larger than a batch gets its own", async () => {
  const batches: TaggedBatch<Uint8Array, string>[] = [];
  const b = new Batcher<Uint8Array, string>({
    batchBytes: 8,
    batchLines: 1,
    flushInterval: 60_000,
    copyLines: true,
    onBatch: (batch) => {
      batches.push(batch);
      return Promise.resolve();
    },
  });
  await b.add(line(3), "u");
  const first = batches[0]!.body!.buffer;
  b.recycle(batches[0]!);
  await b.add(line(5), "u");
  assert.equal(batches[1]!.body!.buffer, first);
  await b.add(line(20), "u");
  assert.equal(batches[2]!.body!.length, 21);
  b.recycle(batches[2]!); // not batch-sized: not kept
  b.recycle(batches[1]!);
  await b.add(line(1), "u");
  assert.equal(batches[3]!.body!.buffer, first);
  await b.close();
});
