import assert from "node:assert/strict";
import { freePort, start, startReceiver } from "./_syslog.ts";

Deno.test("generate → receive over UDP (sendmmsg/recvmmsg): every sequence tag arrives once, nothing lost", async () => {
  const r = await startReceiver(["--idle-timeout", "1s"]);
  const g = await start([
    "generate",
    "--port-start",
    String(r.port),
    "--port-end",
    String(r.port),
    "--workers",
    "3",
    "--rate",
    "20000",
    "--duration",
    "1500ms",
    "--message-size",
    "300",
    "--status-listen",
    `127.0.0.1:${freePort()}`,
  ]).done();
  assert.equal(g.code, 0, g.stderr);
  const rec = await r.run.done();
  assert.equal(rec.code, 0, rec.stderr);
  const sent = g.summary.sent as number;
  assert.ok(sent > 0);
  assert.equal(g.summary.sendmmsg, true);
  assert.equal(rec.summary.recvmmsg, true);
  assert.equal(rec.summary.messages, sent);
  assert.equal(rec.summary.bytes, sent * 300, "every message padded to 300 bytes");
  assert.equal(rec.summary.bytes, g.summary.bytes);
  assert.deepEqual(
    [rec.summary.total.lost, rec.summary.total.duplicated, rec.summary.total.reordered],
    [0, 0, 0],
  );
  for (const w of g.summary.workers) {
    assert.equal(rec.summary.workers[w.id].distinct, w.sent, `worker ${w.id}`);
    assert.equal(rec.summary.workers[w.id].highest, w.sent - 1);
  }
  // The duration bounds what was sent: at most rate × duration plus one burst a worker.
  assert.ok(sent <= 20000 * 1.5 + 3 * 256, `${sent} sent in 1.5 s at 20000/s`);
});

Deno.test("generate over TCP frames messages with RFC 6587 octet counting; receive counts them exactly", async () => {
  const r = await startReceiver(["--protocol", "tcp", "--idle-timeout", "1s"]);
  const g = await start([
    "generate",
    "--protocol",
    "tcp",
    "--format",
    "rfc5424",
    "--port-start",
    String(r.port),
    "--port-end",
    String(r.port),
    "--workers",
    "2",
    "--rate",
    "5000",
    "--duration",
    "1s",
    "--status-listen",
    `127.0.0.1:${freePort()}`,
  ]).done();
  assert.equal(g.code, 0, g.stderr);
  const rec = await r.run.done();
  assert.equal(rec.summary.messages, g.summary.sent);
  assert.equal(rec.summary.bytes, g.summary.bytes);
  assert.equal(rec.summary.total.lost, 0);
  assert.equal(rec.summary.untagged, 0);
});

Deno.test("generate stops by itself at the end of its duration, and counts a refused port as errors", async () => {
  // Nobody listens on this UDP port: sends are refused (ICMP), counted, retried.
  const port = freePort();
  const g = await start([
    "generate",
    "--port-start",
    String(port),
    "--port-end",
    String(port),
    "--workers",
    "1",
    "--rate",
    "1000",
    "--duration",
    "1s",
    "--status-listen",
    `127.0.0.1:${freePort()}`,
  ]).done();
  assert.equal(g.code, 0, g.stderr);
  assert.ok(g.summary.sent <= 1000 + 256);
  assert.ok(g.summary.errors > 0, "refused sends are counted");
});

Deno.test("generate rejects port_end below port_start with both keys named", async () => {
  const g = await start(["generate", "--port-start", "600", "--port-end", "599", "--no-status"])
    .done();
  assert.equal(g.code, 1);
  assert.match(g.stderr, /generate\.port_end \(599\) is below generate\.port_start \(600\)/);
});
