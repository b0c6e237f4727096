import assert from "node:assert/strict";
import { SequenceTracker, WINDOW } from "../../mod/syslog/sequence.ts";

Deno.test("SequenceTracker: every number once, in order → nothing lost", () => {
  const t = new SequenceTracker();
  for (let w = 0; w < 3; w++) for (let i = 0; i < 10000; i++) t.see(w, i);
  const { total, workers } = t.summary();
  assert.deepEqual(
    { received: total.received, lost: total.lost, dup: total.duplicated, re: total.reordered },
    { received: 30000, lost: 0, dup: 0, re: 0 },
  );
  assert.equal(Object.keys(workers).length, 3);
});

Deno.test("SequenceTracker counts every Nth dropped exactly, duplicates and reordering apart", () => {
  const t = new SequenceTracker();
  let dropped = 0;
  for (let i = 0; i < 100000; i++) {
    if (i % 97 === 0) {
      dropped++;
      continue;
    }
    t.see(1, i);
  }
  t.see(1, 500); // a duplicate
  t.see(1, 500); // and another
  t.see(1, 97); // one that was "lost" arrives late
  const c = t.summary().total;
  assert.equal(c.lost, dropped - 1);
  assert.equal(c.duplicated, 2);
  assert.equal(c.reordered, 1);
  assert.equal(c.received, 100000 - dropped + 3);
  assert.ok(Math.abs(c.lossPercent - (100 * (dropped - 1)) / 100000) < 1e-9);
});

Deno.test("SequenceTracker: loss at the tail counts when the sender says what it sent", () => {
  const t = new SequenceTracker();
  for (let i = 0; i < 900; i++) t.see(2, i);
  assert.equal(t.summary().total.lost, 0);
  const s = t.summary(new Map([[2, 1000], [3, 50]]));
  assert.equal(s.workers["2"]!.lost, 100);
  assert.equal(s.workers["3"]!.lost, 50, "a sender heard nothing from");
  assert.equal(s.total.lost, 150);
  assert.ok(Math.abs(s.total.lossPercent - 150 / 1050 * 100) < 1e-9);
});

Deno.test("SequenceTracker slides its window: numbers far behind count as late, not lost", () => {
  const t = new SequenceTracker();
  for (let i = 1; i < WINDOW + 10; i++) t.see(0, i);
  t.see(0, 0); // left the window long ago
  const c = t.summary().total;
  assert.equal(c.lost, 0);
  assert.equal(c.reordered, 1);
  assert.equal(c.distinct, WINDOW + 10);
});
