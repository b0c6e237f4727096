import assert from "node:assert/strict";
import { planPutLogEvents, PUT_LOG_EVENTS, refusal } from "../../mod/sinks/cloudwatch_batches.ts";

const ev = (timestamp: number, bytes = 10, i = 0) => ({
  timestamp,
  message: `m${i}`,
  bytes,
  i,
});

Deno.test("planPutLogEvents() cuts at 10,000 events", () => {
  const events = Array.from({ length: 25_000 }, (_, i) => ev(1_000 + i, 10, i));
  const plan = planPutLogEvents(events);
  assert.deepEqual(plan.map((r) => r.length), [10_000, 10_000, 5_000]);
  assert.deepEqual(plan.flat().map((e) => e.i), events.map((e) => e.i));
});

Deno.test("planPutLogEvents() cuts before 1,048,576 bytes, counting 26 bytes per event", () => {
  // 10 events of 100,000 bytes: 1,000,260 bytes; an 11th would make 1,100,286.
  const plan = planPutLogEvents(Array.from({ length: 25 }, (_, i) => ev(i, 100_000, i)));
  assert.deepEqual(plan.map((r) => r.length), [10, 10, 5]);
  for (const r of plan) {
    const size = r.reduce((n, e) => n + e.bytes + PUT_LOG_EVENTS.eventOverhead, 0);
    assert.ok(size <= PUT_LOG_EVENTS.maxBytes, `${size} bytes`);
  }
  // Exactly at the limit is allowed: 1,048,576 = 2 × (524,262 + 26).
  assert.deepEqual(planPutLogEvents([ev(1, 524_262), ev(2, 524_262)]).map((r) => r.length), [2]);
  assert.deepEqual(planPutLogEvents([ev(1, 524_262), ev(2, 524_263)]).map((r) => r.length), [1, 1]);
});

Deno.test("planPutLogEvents() keeps each request's span under 24 hours", () => {
  const h = 3600_000;
  const times = [0, 1 * h, 23 * h, 24 * h - 1, 24 * h, 30 * h, 47 * h, 49 * h];
  const plan = planPutLogEvents(times.map((t, i) => ev(t, 10, i)));
  assert.deepEqual(plan.map((r) => r.map((e) => e.timestamp)), [
    [0, 1 * h, 23 * h, 24 * h - 1],
    [24 * h, 30 * h, 47 * h],
    [49 * h],
  ]);
});

Deno.test("planPutLogEvents() sorts chronologically, keeping the order of equal timestamps", () => {
  const events = [ev(30, 1, 0), ev(10, 1, 1), ev(20, 1, 2), ev(10, 1, 3), ev(30, 1, 4)];
  assert.deepEqual(planPutLogEvents(events)[0]!.map((e) => e.i), [1, 3, 2, 0, 4]);
});

Deno.test("planPutLogEvents() honours a smaller max_batch_size and rejects a larger one", () => {
  const events = Array.from({ length: 2_500 }, (_, i) => ev(i, 10, i));
  assert.deepEqual(planPutLogEvents(events, { maxEvents: 1_000 }).map((r) => r.length), [
    1_000,
    1_000,
    500,
  ]);
  assert.throws(() => planPutLogEvents(events, { maxEvents: 10_001 }), /within 1\.\.10000/);
});

Deno.test("refusal() sets aside events older than 14 days or over 2 hours ahead", () => {
  const now = Date.UTC(2025, 5, 15);
  const day = 86_400_000;
  assert.equal(refusal(now - 14 * day - 1, now), "too_old");
  assert.equal(refusal(now - 14 * day, now), undefined);
  assert.equal(refusal(now + 2 * 3600_000, now), undefined);
  assert.equal(refusal(now + 2 * 3600_000 + 1, now), "too_new");
});
