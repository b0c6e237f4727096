import assert from "node:assert/strict";
import { Schedule } from "../../mod/syslog/schedule.ts";

/** A clock the test moves by hand (milliseconds). */
function clock(start = 0) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** Take until nothing more may go now; returns how many went. */
function drain(s: Schedule, max = 256): number {
  let n = 0;
  for (let k = s.take(max); k > 0; k = s.take(max)) n += k;
  return n;
}

Deno.test("Schedule() lets the first message go at the first take, whenever that is", () => {
  const c = clock(0);
  const s = new Schedule(1, c.now);
  c.t = 5000; // setup took 5 s: the schedule has not started, so nothing is owed for them
  assert.equal(s.take(256), 1);
  assert.equal(s.take(256), 0);
  assert.equal(s.startedAt, 5000);
  assert.equal(s.msUntil(1), 1000);
  c.t = 5999;
  assert.equal(s.take(256), 0);
  c.t = 6000;
  assert.equal(s.take(256), 1);
});

Deno.test("Schedule() keeps to the run's absolute schedule: sent so far = rate × elapsed + 1", () => {
  const c = clock(100);
  const s = new Schedule(1000, c.now);
  let sent = drain(s);
  assert.equal(sent, 1);
  for (let t = 0; t <= 2000; t += 7) {
    c.t = 100 + t;
    sent += drain(s, 3);
    assert.equal(sent, t + 1, `at ${t} ms`);
  }
});

Deno.test("Schedule() makes up a stall afterwards, in batches, up to catch_up's worth and no more", () => {
  const c = clock(0);
  const s = new Schedule(1000, c.now, { catchUpMs: 1000 });
  let sent = drain(s);
  c.t = 10;
  sent += drain(s);
  assert.equal(sent, 11);
  // A 500 ms stall: all 500 owed go at once (a bounded burst: at most `max` a take).
  c.t = 510;
  assert.equal(s.take(256), 256);
  assert.equal(s.take(256), 244);
  assert.equal(s.take(256), 0);
  sent += 500;
  assert.equal(s.owed, 0);
  // A 3 s stall: only catch_up's worth (1 s, 1,000 messages) is made up; 2,000 are given up.
  c.t = 3510;
  assert.equal(s.owed, 1000);
  assert.equal(drain(s), 1000);
  sent += 1000;
  assert.equal(s.givenUp, 2000);
  // Then on schedule again from there.
  c.t = 3520;
  sent += drain(s);
  assert.equal(sent, 3521 - 2000);
});

Deno.test("Schedule() with a phase interleaves senders: rate 1 over two of them sends 1 in the first second", () => {
  const c = clock(0);
  // Two senders at 0.5/s each; the second's first message is due 1 s after its start.
  const a = new Schedule(0.5, c.now), b = new Schedule(0.5, c.now, { phaseMs: 1000 });
  assert.equal(a.take(256) + b.take(256), 1);
  assert.equal(b.msUntil(1), 1000);
  c.t = 999;
  assert.equal(a.take(256) + b.take(256), 0);
  c.t = 1000;
  assert.equal(a.take(256) + b.take(256), 1);
  c.t = 2000;
  assert.equal(a.take(256) + b.take(256), 1);
});

Deno.test("Schedule() msUntil(n) is when n more are due (0 when they are)", () => {
  const c = clock(0);
  const s = new Schedule(500, c.now); // one every 2 ms
  assert.equal(s.msUntil(10), 0, "before the first take: at once");
  assert.equal(s.take(1), 1);
  assert.equal(s.msUntil(1), 2);
  assert.equal(s.msUntil(4), 8);
  c.t = 8;
  assert.equal(s.msUntil(4), 0);
  assert.equal(s.take(256), 4);
});

Deno.test("Schedule() rejects a rate or catch_up that is not positive", () => {
  assert.throws(() => new Schedule(0, () => 0), /rate must be positive: got 0/);
  assert.throws(() => new Schedule(1, () => 0, { catchUpMs: -1 }), /catchUpMs .*: got -1/);
});

Deno.test("Schedule() take(max, end) takes what was due before the run's end, even after it: rate × duration in all", () => {
  const c = clock(0);
  const s = new Schedule(3, c.now, { catchUpMs: 5000 });
  let sent = s.take(256, 2000);
  c.t = 1500;
  sent += s.take(256, 2000);
  // Stalled over the end: what was due before it (at 1667 ms) still goes, nothing due at or after it.
  c.t = 2400;
  assert.equal(s.owedBefore(2000), 1);
  sent += s.take(256, 2000);
  assert.equal(s.owedBefore(2000), 0);
  assert.equal(sent, 6);
  // Two interleaved senders at a total of 1/s over 1 s: the second one's first is due at the end.
  const b = new Schedule(0.5, c.now, { phaseMs: 1000 });
  assert.equal(b.take(256, c.t + 1000), 0);
  c.t += 1000;
  assert.equal(b.take(256, c.t), 0);
});

Deno.test("Schedule() start(at) starts the clock at a reading taken before: the end counts from the same instant", () => {
  const c = clock(1000);
  const s = new Schedule(50_000, c.now, { catchUpMs: 10_000 });
  s.start(999.9); // the caller's reading, 0.1 ms before the first take
  const end = 999.9 + 5000;
  c.t = end + 50;
  let sent = 0;
  for (let n = s.take(256, end); n > 0; n = s.take(256, end)) sent += n;
  assert.equal(sent, 250_000);
  s.start(2000); // started already: no effect
  assert.equal(s.startedAt, 999.9);
});

Deno.test("Schedule() take(max, end) counts no message due at the end itself, whatever the rounding of start + duration", () => {
  for (const start of [0.1, 2449.493181999063, 16019.009720803768, 3941.1201262830596]) {
    const c = clock(start);
    const s = new Schedule(1000, c.now, { catchUpMs: 10_000 });
    s.start(start);
    const end = start + 2000; // rounded: end - start may be 2000.0000000002
    c.t = end + 100;
    let sent = 0;
    for (let n = s.take(256, end); n > 0; n = s.take(256, end)) sent += n;
    assert.equal(sent, 2000, `start ${start}`);
  }
});
