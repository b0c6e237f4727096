import assert from "node:assert/strict";
import { TokenBucket } from "../../mod/pipeline/token_bucket.ts";

/**
 * A sender loop on a simulated monotonic clock: it takes what the bucket allows, "spends" a
 * jittered time sending, and sleeps as told, for 10 simulated seconds.
 */
function simulate(rate: number, batch: number, seed: number): number {
  let now = 0;
  let x = seed;
  const jitter = () => ((x = (x * 1103515245 + 12345) >>> 0) % 1000) / 1000; // 0..1
  const b = new TokenBucket(rate, Math.max(batch, rate / 100), () => now);
  const step = Math.max(1, Math.min(batch, Math.ceil(rate / 500)));
  let sent = 0;
  while (now < 10_000) {
    const n = b.take(batch);
    if (n > 0) {
      sent += n;
      now += n * 0.002 * (0.5 + jitter()); // ~2 µs a message
    } else now += b.msUntil(step) + jitter() * 0.3; // a sleep oversleeps by up to 0.3 ms
  }
  return sent;
}

for (const rate of [1000, 50_000]) {
  Deno.test(`TokenBucket keeps a sender within ±1% of ${rate} EPS over 10 s (simulated clock)`, () => {
    for (const seed of [1, 2, 3]) {
      const sent = simulate(rate, 256, seed);
      const expected = rate * 10;
      assert.ok(
        Math.abs(sent - expected) / expected <= 0.01,
        `seed ${seed}: ${sent} vs ${expected}`,
      );
    }
  });
}

Deno.test("TokenBucket caps a backlog at its burst: a stalled sender does not flood afterwards", () => {
  let now = 0;
  const b = new TokenBucket(1000, 50, () => now);
  now = 5000; // stalled for 5 s
  assert.equal(b.take(10_000), 50);
  assert.equal(b.take(10_000), 0);
  assert.ok(Math.abs(b.msUntil(10) - 10) < 1e-9);
  now += 10;
  assert.equal(b.take(100), 10);
});

Deno.test("TokenBucket rejects a non-positive rate", () => {
  assert.throws(() => new TokenBucket(0, 1, () => 0), /rate must be positive/);
});
