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
