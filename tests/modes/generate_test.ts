import assert from "node:assert/strict";
import { settleReceiver, threadCount } from "../../mod/modes/generate.ts";
import { Dashboard } from "../../mod/syslog/dashboard.ts";
import { assertExact, datagrams, freePort, generateTo, start, startReceiver } from "./_syslog.ts";

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
  // The run's schedule: rate × duration, less what a stall of over catch_up (1 s) gave up.
  assert.equal(sent + g.summary.given_up, 20000 * 1.5, `${sent} sent in 1.5 s at 20000/s`);
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
  // A mode run's config error is a JSON log line; its msg is validate's line.
  const msgs = g.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l).msg);
  assert.ok(
    msgs.some((m) =>
      m === "--port-end: generate.port_end: must not be below port_start (600): got 599"
    ),
    g.stderr,
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

/** `Mmm dd hh:mm:ss` of `ms` in `timeZone`, by Intl. */
function rfc3164Stamp(ms: number, timeZone: string): string {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone,
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    }).formatToParts(ms).map((x) => [x.type, x.value]),
  );
  return `${p.month} ${p.day!.padStart(2, " ")} ${p.hour}:${p.minute}:${p.second}`;
}

for (
  const [how, flags, zone] of [
    ["in the host's local time (TZ=Asia/Kolkata)", [], "Asia/Kolkata"],
    ["in UTC with --timezone UTC", ["--timezone", "UTC"], "UTC"],
    ["in an IANA zone with --timezone America/New_York", [
      "--timezone",
      "America/New_York",
    ], "America/New_York"],
  ] as const
) {
  Deno.test(`generate writes RFC 3164 timestamps ${how}, and short host names`, async () => {
    const sock = await datagrams();
    const before = Date.now();
    const g = await start(
      generateTo(sock.port, { workers: 1, rate: 20, duration: "500ms", extra: [...flags] }),
      { TZ: "Asia/Kolkata" },
    ).done();
    const after = Date.now();
    sock.close();
    assert.equal(g.code, 0, g.stderr);
    assert.ok(sock.got.length > 0 && sock.got.length <= g.summary.sent);
    // Every second of the run, as the zone's wall clock reads it.
    const stamps = new Set<string>();
    for (let t = before - 1000; t <= after + 1000; t += 500) stamps.add(rfc3164Stamp(t, zone));
    for (const m of sock.got) {
      const x = /^<\d+>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) /.exec(m);
      assert.ok(x, m);
      assert.ok(stamps.has(x[1]!), `${x[1]} not among ${[...stamps].join(", ")}`);
      assert.match(x[2]!, /^[a-z]+-\d\d$/, "the HOSTNAME without its domain");
    }
  });
}

Deno.test("generate --format rfc5424 keeps the FQDN as HOSTNAME", async () => {
  const sock = await datagrams();
  const g = await start(
    generateTo(sock.port, {
      workers: 1,
      rate: 20,
      duration: "500ms",
      extra: ["--format", "rfc5424"],
    }),
  ).done();
  sock.close();
  assert.equal(g.code, 0, g.stderr);
  assert.ok(sock.got.length > 0);
  for (const m of sock.got) assert.match(m, /^<\d+>1 \S+Z [a-z]+-\d\d\.prod\.example\.net /);
});

Deno.test("generate rejects an unknown --timezone with the name", async () => {
  const g = await start(["generate", "--timezone", "Mars/Olympus", "--no-status"]).done();
  assert.equal(g.code, 1);
  assert.match(g.stderr, /timezone.*Mars\/Olympus/);
});

Deno.test("generate --rate 1 --duration 1s sends exactly 1 message (2 workers by default), and it arrives", async () => {
  const r = await startReceiver(["--idle-timeout", "1s"]);
  const g = await start([
    "generate",
    "--port-start",
    String(r.port),
    "--port-end",
    String(r.port),
    "--rate",
    "1",
    "--duration",
    "1s",
    "--status-listen",
    `127.0.0.1:${freePort()}`,
  ]).done();
  assert.equal(g.code, 0, g.stderr);
  assert.equal(g.summary.sent, 1, JSON.stringify(g.summary));
  assert.equal(g.summary.threads, 1, "both workers on one thread by default (one isolate less)");
  const rec = await r.run.done();
  assertExact(g.summary, rec.summary);
});

Deno.test("generate --rate 3 --duration 2s --workers 1 sends rate × duration: 6", async () => {
  const sock = await datagrams();
  const g = await start(generateTo(sock.port, { workers: 1, rate: 3, duration: "2s" })).done();
  assert.equal(g.code, 0, g.stderr);
  assert.equal(g.summary.sent, 6, JSON.stringify(g.summary));
  // Datagrams on loopback arrive at once; wait for the last one before closing.
  for (let i = 0; i < 50 && sock.got.length < 6; i++) await new Promise((r) => setTimeout(r, 20));
  sock.close();
  assert.equal(sock.got.length, 6);
});

Deno.test("generate stalled over its end: what did not go by the end of catch_up is given up, so sent + given_up = rate × duration", async () => {
  const sock = await datagrams();
  const run = start(
    generateTo(sock.port, {
      workers: 1,
      rate: 1000,
      duration: "1s",
      extra: ["--catch-up", "200ms"],
    }),
  );
  await run.logged("generating");
  // Stall the whole process across the end of its duration (and its 200 ms of grace).
  await new Promise((r) => setTimeout(r, 300));
  run.child.kill("SIGSTOP");
  await new Promise((r) => setTimeout(r, 1500));
  run.child.kill("SIGCONT");
  const g = await run.done();
  sock.close();
  assert.equal(g.code, 0, g.stderr);
  assert.equal(g.summary.sent + g.summary.given_up, 1000, JSON.stringify(g.summary));
});

Deno.test("generate stalled mid-run makes the stall up afterwards: rate × duration sent, and all arrive", async () => {
  const r = await startReceiver(["--idle-timeout", "1s"]);
  const run = start(generateTo(r.port, { workers: 2, rate: 2000, duration: "2s" }));
  await run.logged("generating");
  await new Promise((res) => setTimeout(res, 500));
  run.child.kill("SIGSTOP"); // 400 ms without a send: 800 messages owed
  await new Promise((res) => setTimeout(res, 400));
  run.child.kill("SIGCONT");
  const g = await run.done();
  assert.equal(g.code, 0, g.stderr);
  // Nothing given up unless a stall went past catch_up (1 s); what was owed went afterwards.
  assert.equal(g.summary.sent + g.summary.given_up, 4000, JSON.stringify(g.summary));
  const rec = await r.run.done();
  assertExact(g.summary, rec.summary);
});
