import assert from "node:assert/strict";
import { withChromium } from "../_cdp.ts";
import { freePort, start, startReceiver } from "../modes/_syslog.ts";

/** A generator with its dashboard on a free port, and a receiver reporting loss to it. */
async function run(seconds: number) {
  const dash = freePort();
  const r = await startReceiver([
    "--report-to",
    `http://127.0.0.1:${dash}`,
    "--idle-timeout",
    "1s",
  ]);
  const g = start([
    "generate",
    "--port-start",
    String(r.port),
    "--port-end",
    String(r.port),
    "--workers",
    "2",
    "--rate",
    "4000",
    "--duration",
    `${seconds}s`,
    "--status-listen",
    `127.0.0.1:${dash}`,
  ]);
  await g.logged("status endpoint listening");
  return { base: `http://127.0.0.1:${dash}`, g, r };
}

Deno.test("dashboard: page, /api/metrics, /api/summary, /ws every second, receiver's loss, /metrics", async () => {
  const { base, g, r } = await run(5);
  const page = await fetch(`${base}/`);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  assert.match(await page.text(), /new WebSocket/);

  const ws = new WebSocket(`${base.replace("http", "ws")}/ws`);
  const pushes: { messages_total: number; eps: number; workers: unknown[] }[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.onmessage = (e) => {
      pushes.push(JSON.parse(e.data));
      if (pushes.length === 4) resolve();
    };
    ws.onerror = () => reject(new Error("WebSocket failed"));
  });
  ws.close();
  assert.ok(pushes.at(-1)!.messages_total > pushes[1]!.messages_total, "the counts move");
  assert.ok(pushes.at(-1)!.eps > 0);
  assert.equal(pushes.at(-1)!.workers.length, 2);

  const m = await (await fetch(`${base}/api/metrics`)).json();
  assert.equal(m.mode, "generate");
  assert.equal(m.target_eps, 4000);
  assert.ok(m.rss_bytes > 0);
  assert.equal(typeof m.cpu_percent, "number");
  assert.ok(m.loss, "the receiver reported its counts");
  assert.equal(m.loss.lost, 0);
  const s = await (await fetch(`${base}/api/summary`)).json();
  assert.equal(s.loss_reported_by, "receiver");
  assert.ok(s.messages_total > 0 && s.average_eps > 0);
  const prom = await (await fetch(`${base}/metrics`)).text();
  assert.match(prom, /^generator_messages_sent_total \d+/m);
  const bad = await fetch(`${base}/api/receiver`, { method: "POST", body: "{" });
  assert.equal(bad.status, 400);
  await bad.body?.cancel();

  const gen = await g.done();
  const rec = await r.run.done();
  assert.equal(gen.code, 0, gen.stderr);
  assert.equal(rec.summary.messages, gen.summary.sent);
  // The generator waited for the receiver's final counts: its account is exact.
  assert.deepEqual(gen.summary.receiver, {
    received: gen.summary.sent,
    distinct: gen.summary.sent,
    lost: 0,
    duplicated: 0,
    reordered: 0,
    loss_percent: 0,
    settled: true,
  });
});

Deno.test("dashboard page in headless Chromium: the WebSocket pushes and the numbers move", async () => {
  const { base, g, r } = await run(6);
  await withChromium(async (page) => {
    await page.goto(`${base}/`);
    const read = () =>
      page.evaluate<{ updates: string; total: string; eps: string; workers: number }>(
        `({ updates: document.getElementById("status").textContent,
            total: document.getElementById("total").textContent,
            eps: document.getElementById("eps").textContent,
            workers: document.querySelectorAll("#workers .w").length })`,
      );
    let first = await read();
    for (let i = 0; i < 50 && !/updates\)/.test(first.updates); i++) {
      await new Promise((res) => setTimeout(res, 100));
      first = await read();
    }
    assert.match(first.updates, /\(\d+ updates\)/, "a WebSocket push arrived");
    await new Promise((res) => setTimeout(res, 2200));
    const later = await read();
    const n = (s: string) => Number(s.replace(/[^\d.]/g, ""));
    assert.ok(n(later.total) > n(first.total), `${first.total} → ${later.total}`);
    assert.ok(n(later.eps) > 0);
    assert.equal(later.workers, 2);
    const png = await page.screenshot();
    assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "a PNG");
    assert.ok(png.length > 10_000);
    await Deno.writeFile(
      `${Deno.env.get("SCREENSHOT_DIR") ?? Deno.makeTempDirSync()}/dashboard.png`,
      png,
    );
  });
  assert.equal((await g.done()).code, 0);
  await r.run.done();
});
