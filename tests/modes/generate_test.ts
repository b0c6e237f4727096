import assert from "node:assert/strict";
import { settleReceiver, threadCount } from "../../mod/modes/generate.ts";
import { Dashboard } from "../../mod/syslog/dashboard.ts";
import { assertExact, freePort, generateTo, start, startReceiver } from "./_syslog.ts";

Deno.test("generate → receive over UDP (sendmmsg/recvmmsg): every sequence tag arrives once, nothing lost", async () => {
  const r = await startReceiver(["--idle-timeout", "1s"]);
  const g = await start(
    generateTo(r.port, {
      workers: 3,
      rate: 20000,
      duration: "1500ms",
      extra: ["--message-size", "300"],
    }),
  ).done();
  assert.equal(g.code, 0, g.stderr);
  const rec = await r.run.done();
  assert.equal(rec.code, 0, rec.stderr);
  const sent = g.summary.sent as number;
  assert.ok(sent > 0);
  assert.equal(g.summary.sendmmsg, true);
  assert.equal(g.summary.gso, true, "every message is 300 bytes: UDP GSO");
  assert.equal(rec.summary.recvmmsg, true);
  assert.equal(rec.summary.bytes, sent * 300, "every message padded to 300 bytes");
  assertExact(g.summary, rec.summary);
  for (const w of g.summary.workers) assert.equal(rec.summary.workers[w.id].highest, w.sent - 1);
  // The duration bounds what was sent: at most rate × duration plus one burst a worker.
  assert.ok(sent <= 20000 * 1.5 + 3 * 256, `${sent} sent in 1.5 s at 20000/s`);
});

Deno.test("generate with UDP GSO: /api/metrics says so, and receive counts separate 300-byte datagrams, none lost", async () => {
  const r = await startReceiver(["--idle-timeout", "1s"]);
  const dash = freePort();
  const run = start(
    generateTo(r.port, {
      workers: 2,
      rate: 40000,
      duration: "2s",
      extra: ["--message-size", "300", "--status-listen", `127.0.0.1:${dash}`],
    }),
  );
  await run.logged("status endpoint listening");
  // The dashboard samples every second: wait for a sample taken once the senders set up.
  let metrics: Record<string, unknown> = {};
  for (let i = 0; i < 40 && metrics.gso !== true; i++) {
    await new Promise((res) => setTimeout(res, 100));
    metrics = await (await fetch(`http://127.0.0.1:${dash}/api/metrics`)).json();
  }
  assert.equal(metrics.gso, true, JSON.stringify(metrics));
  assert.equal(metrics.sendmmsg, true);
  const g = await run.done();
  assert.equal(g.code, 0, g.stderr);
  const rec = await r.run.done();
  const sent = g.summary.sent as number;
  assert.equal(g.summary.gso, true);
  assert.ok(sent > 40000, `${sent} sent`);
  assert.equal(rec.summary.messages, sent, "one datagram a message: the receiver took no GRO");
  assert.equal(rec.summary.bytes, sent * 300);
  assert.equal(rec.summary.truncated, 0);
  assertExact(g.summary, rec.summary);
});

Deno.test("generate runs several workers on one thread: each keeps its socket and numbers, none lost", async () => {
  const r = await startReceiver(["--idle-timeout", "1s"]);
  const g = await start(
    generateTo(r.port, {
      workers: 3,
      rate: 30000,
      duration: "1500ms",
      extra: ["--threads", "2", "--message-size", "300"],
    }),
  ).done();
  assert.equal(g.code, 0, g.stderr);
  const rec = await r.run.done();
  assert.equal(g.summary.threads, 2);
  assert.equal(g.summary.gso, true);
  assertExact(g.summary, rec.summary);
  for (const w of g.summary.workers) {
    // Pacing holds per worker when workers share a thread: 10,000/s each, ±5%.
    assert.ok(Math.abs(w.achieved_eps - 10000) < 500, `worker ${w.id}: ${w.achieved_eps}/s`);
  }
});

for (
  const [why, flags] of [
    ["sizes vary (no message_size)", []],
    ["message_size below header and tag", ["--message-size", "60"]],
    ["--no-gso", ["--message-size", "300", "--no-gso"]],
  ] as const
) {
  Deno.test(`generate without GSO when ${why}: one datagram per slot, exact counts`, async () => {
    const r = await startReceiver(["--idle-timeout", "1s"]);
    const g = await start(
      generateTo(r.port, { workers: 2, rate: 20000, duration: "1s", extra: [...flags] }),
    ).done();
    assert.equal(g.code, 0, g.stderr);
    const rec = await r.run.done();
    assert.equal(g.summary.sendmmsg, true);
    assert.equal(g.summary.gso, false);
    assert.ok(g.summary.sent > 10000);
    assertExact(g.summary, rec.summary);
  });
}

Deno.test("generate over TCP frames messages with RFC 6587 octet counting; receive counts them exactly", async () => {
  const r = await startReceiver(["--protocol", "tcp", "--idle-timeout", "1s"]);
  const g = await start(
    generateTo(r.port, {
      workers: 2,
      rate: 5000,
      duration: "1s",
      extra: ["--protocol", "tcp", "--format", "rfc5424", "--threads", "1"],
    }),
  ).done();
  assert.equal(g.code, 0, g.stderr);
  const rec = await r.run.done();
  assert.equal(rec.summary.messages, g.summary.sent);
  assert.equal(rec.summary.bytes, g.summary.bytes);
  assert.equal(rec.summary.total.lost, 0);
  assert.equal(rec.summary.untagged, 0);
});

Deno.test("generate over TCP reconnects until a receiver listens, then loses nothing", async () => {
  const port = freePort();
  const dash = freePort();
  const g = start([
    "generate",
    "--protocol",
    "tcp",
    "--port-start",
    String(port),
    "--port-end",
    String(port),
    "--workers",
    "1",
    "--rate",
    "2000",
    "--status-listen",
    `127.0.0.1:${dash}`,
  ]);
  await g.logged("status endpoint listening");
  // Wait until the dashboard shows refused connections (by count, not by time).
  for (let errors = 0; errors === 0;) {
    await new Promise((r) => setTimeout(r, 100));
    errors = (await (await fetch(`http://127.0.0.1:${dash}/api/metrics`)).json()).errors_total;
  }
  const recStatus = freePort();
  const rec = start([
    "receive",
    "--protocol",
    "tcp",
    "--port-start",
    String(port),
    "--port-end",
    String(port),
    "--idle-timeout",
    "1s",
    "--status-listen",
    `127.0.0.1:${recStatus}`,
  ]);
  await rec.logged("receiving");
  // Once messages arrive, the generator reconnected: stop it (SIGTERM drains, exits 0).
  for (let got = 0; got === 0;) {
    await new Promise((r) => setTimeout(r, 100));
    got = (await (await fetch(`http://127.0.0.1:${recStatus}/api/metrics`)).json()).messages_total;
  }
  g.child.kill("SIGTERM");
  const gen = await g.done();
  const r = await rec.done();
  assert.equal(gen.code, 0, gen.stderr);
  assert.ok(gen.summary.errors > 0);
  assert.ok(gen.summary.sent > 0, "it connected once the receiver listened");
  assert.equal(r.summary.messages, gen.summary.sent);
  assert.equal(r.summary.workers["0"].distinct, gen.summary.sent);
  assert.equal(r.summary.total.lost, 0);
});

for (const [how, flags] of [["", []], [" (UDP GSO)", ["--message-size", "300"]]] as const) {
  Deno.test(`generate stops by itself at the end of its duration, and counts a refused port as errors${how}`, async () => {
    // Nobody listens on this UDP port: sends are refused (ICMP), counted, retried.
    const port = freePort();
    const g = await start(
      generateTo(port, { workers: 1, rate: 1000, duration: "1s", extra: [...flags] }),
    ).done();
    assert.equal(g.code, 0, g.stderr);
    assert.equal(g.summary.gso, flags.length > 0);
    assert.ok(g.summary.sent <= 1000 + 256);
    assert.ok(g.summary.errors > 0, "refused sends are counted");
  });
}

Deno.test("generate rejects port_end below port_start with both keys named", async () => {
  const g = await start(["generate", "--port-start", "600", "--port-end", "599", "--no-status"])
    .done();
  assert.equal(g.code, 1);
  assert.match(
    g.stderr,
    /^--port-end: generate\.port_end: must not be below port_start \(600\): got 599$/m,
  );
});

/** A receiver's report of `distinct` numbers per worker, posted to the dashboard's handler. */
async function post(d: Dashboard, distinct: number[]) {
  const counts = (n: number) => ({
    received: n,
    distinct: n,
    duplicated: 0,
    reordered: 0,
    highest: n - 1,
    lost: 0,
    lossPercent: 0,
  });
  const total = counts(distinct.reduce((a, n) => a + n, 0));
  const res = await d.routes(
    new Request("http://dashboard/api/receiver", {
      method: "POST",
      body: JSON.stringify({
        total,
        workers: Object.fromEntries(distinct.map((n, i) => [i, counts(n)])),
      }),
    }),
  )!;
  assert.equal(res.status, 200);
}

Deno.test("settleReceiver() counts the tail each worker sent that never arrived, once two reports agree", async () => {
  const d = new Dashboard("generate", 0);
  assert.equal(await settleReceiver(d, [10, 5], 50), null, "no receiver reported: none");
  await post(d, [4, 2]); // during the run
  const settling = settleReceiver(d, [10, 5], 10_000);
  await post(d, [8, 5]); // after the end: still short
  await post(d, [8, 5]); // the same again: settled, 2 lost at worker 0's tail
  assert.deepEqual(await settling, {
    received: 13,
    distinct: 13,
    lost: 2,
    duplicated: 0,
    reordered: 0,
    loss_percent: 13.3333,
    settled: true,
  });
  const complete = settleReceiver(d, [8, 6], 10_000);
  await post(d, [8, 6]); // everything arrived: settled at once
  assert.equal((await complete)!.lost, 0);
  const silent = await settleReceiver(d, [9, 6], 30); // the receiver went away
  assert.equal(silent!.settled, false);
  assert.equal(silent!.lost, 1);
});

Deno.test("threadCount(): threads as asked (at most one per worker); 0 is one per worker up to the cores", () => {
  assert.equal(threadCount(2, 1, 2), 1);
  assert.equal(threadCount(2, 5, 2), 2);
  assert.equal(threadCount(2, 0, 2), 2);
  assert.equal(threadCount(40, 0, 16), 16); // the reference's 40 workers: 16 isolates, not 40
  assert.equal(threadCount(3, 0, 0), 1);
});
