import assert from "node:assert/strict";
import dgram from "node:dgram";
import { freePort, start, startReceiver, type Summary } from "./_syslog.ts";

/**
 * A UDP relay for the test: forwards every datagram to `to`, except every `nth`, which it drops
 * (and counts): loss the receiver must find exactly.
 */
async function lossyRelay(to: number, nth: number) {
  const out = dgram.createSocket("udp4");
  const inp = dgram.createSocket("udp4");
  let seen = 0, dropped = 0, forwarded = 0;
  inp.on("message", (msg: Uint8Array) => {
    if (++seen % nth === 0) {
      dropped++;
      return;
    }
    forwarded++;
    out.send(msg, to, "127.0.0.1");
  });
  await new Promise<void>((r) => inp.bind(0, "127.0.0.1", () => r()));
  return {
    port: inp.address().port,
    counts: () => ({ seen, dropped, forwarded }),
    close: () => {
      inp.close();
      out.close();
    },
  };
}

Deno.test("receive reports loss injected by a relay that drops every 7th datagram, exactly", async () => {
  const r = await startReceiver(["--idle-timeout", "1s"]);
  const relay = await lossyRelay(r.port, 7);
  const g = await start([
    "generate",
    "--port-start",
    String(relay.port),
    "--port-end",
    String(relay.port),
    "--workers",
    "1",
    "--rate",
    "3000",
    "--duration",
    "1s",
    "--status-listen",
    `127.0.0.1:${freePort()}`,
  ]).done();
  assert.equal(g.code, 0, g.stderr);
  const rec = await r.run.done();
  relay.close();
  const { seen, dropped, forwarded } = relay.counts();
  assert.equal(seen, g.summary.sent, "the relay saw every datagram (loopback)");
  assert.equal(rec.summary.messages, forwarded);
  // The gaps are the dropped numbers; a drop at the very end is a gap only if a later one came.
  const sent = g.summary.sent as number;
  const tailDropped = sent % 7 === 0 ? 1 : 0;
  assert.equal(rec.summary.total.lost, dropped - tailDropped);
  assert.equal(rec.summary.total.duplicated, 0);
  assert.ok(
    Math.abs(rec.summary.total.lossPercent - 100 * (dropped - tailDropped) / (sent - tailDropped)) <
      1e-9,
  );
});

Deno.test("receive counts messages per port over a port range, and untagged messages apart", async () => {
  const base = 20000 + Math.floor(Math.random() * 30000);
  const status = freePort();
  const run = start([
    "receive",
    "--port-start",
    String(base),
    "--port-end",
    String(base + 2),
    "--idle-timeout",
    "700ms",
    "--status-listen",
    `127.0.0.1:${status}`,
  ]);
  await run.logged("receiving");
  const s = dgram.createSocket("udp4");
  const send = (port: number, text: string) =>
    new Promise<void>((r) => s.send(new TextEncoder().encode(text), port, "127.0.0.1", () => r()));
  for (let i = 0; i < 5; i++) await send(base, `<13>Nov 23 01:02:03 h app[1]: x seq=0:${i}`);
  for (let i = 0; i < 3; i++) await send(base + 2, `<13>Nov 23 01:02:03 h app[1]: y seq=1:${i}`);
  await send(base + 1, "<13>Nov 23 01:02:03 h app[1]: no tag here");
  const rec = await run.done();
  s.close();
  assert.equal(rec.code, 0, rec.stderr);
  assert.deepEqual(
    Object.fromEntries(
      Object.entries(rec.summary.ports as Record<string, Summary>).map(([p, c]) => [p, c.messages]),
    ),
    { [base]: 5, [base + 1]: 1, [base + 2]: 3 },
  );
  assert.equal(rec.summary.untagged, 1);
  assert.equal(rec.summary.workers["0"].distinct, 5);
  assert.equal(rec.summary.workers["1"].distinct, 3);
  assert.equal(rec.summary.total.lost, 0);
});

Deno.test("generate → receive without FFI (node:dgram on both sides) counts every message", async () => {
  const r = await startReceiver(["--no-ffi", "--idle-timeout", "1s"]);
  const g = await start([
    "generate",
    "--no-ffi",
    "--port-start",
    String(r.port),
    "--port-end",
    String(r.port),
    "--workers",
    "2",
    "--rate",
    "2000",
    "--duration",
    "1s",
    "--status-listen",
    `127.0.0.1:${freePort()}`,
  ]).done();
  assert.equal(g.code, 0, g.stderr);
  const rec = await r.run.done();
  assert.equal(rec.code, 0, rec.stderr);
  assert.equal(g.summary.sendmmsg, false);
  assert.equal(rec.summary.recvmmsg, false);
  assert.ok(g.summary.sent > 0);
  assert.equal(rec.summary.messages, g.summary.sent);
  assert.equal(rec.summary.bytes, g.summary.bytes);
  assert.deepEqual([rec.summary.total.lost, rec.summary.total.duplicated], [0, 0]);
});
