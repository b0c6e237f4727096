import assert from "node:assert/strict";
import { Registry } from "../../mod/metrics/registry.ts";
import { Health } from "../../mod/status/health.ts";
import { serveStatus, statusHandler } from "../../mod/status/server.ts";

function setup() {
  const registry = new Registry();
  const health = new Health();
  registry.counter("s3_files_processed_total", "Files processed").inc(3);
  registry.gauge("processing_lag_seconds", "Lag").set(12);
  const handler = statusHandler({ mode: "stream", version: "1.2.3", registry, health });
  return { registry, health, handler };
}

const get = (path: string) => new Request(`http://127.0.0.1${path}`);

Deno.test("statusHandler() answers /healthz", async () => {
  const { handler } = setup();
  const res = await handler(get("/healthz"));
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "ok\n");
});

Deno.test("statusHandler() /readyz is 503 with reasons until every component is ready", async () => {
  const { handler, health } = setup();
  let res = await handler(get("/readyz"));
  assert.equal(res.status, 503);
  assert.deepEqual((await res.json()).reasons, ["starting: no source or sink connected yet"]);
  health.set("source", true);
  health.set("sink", false, "connection refused");
  res = await handler(get("/readyz"));
  assert.equal(res.status, 503);
  assert.deepEqual((await res.json()).reasons, ["sink: connection refused"]);
  health.set("sink", true);
  res = await handler(get("/readyz"));
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("statusHandler() /metrics is Prometheus text", async () => {
  const { handler } = setup();
  const res = await handler(get("/metrics"));
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const text = await res.text();
  assert.match(text, /# TYPE s3_files_processed_total counter\ns3_files_processed_total 3\n/);
});

Deno.test("statusHandler() /status is JSON with mode, version, counters, lag and errors", async () => {
  const { handler, health } = setup();
  health.recordError("failed to fetch s3://b/k", { offset: 10 });
  const body = await (await handler(get("/status"))).json();
  assert.equal(body.mode, "stream");
  assert.equal(body.version, "1.2.3");
  assert.equal(typeof body.uptime_seconds, "number");
  assert.equal(body.counters.s3_files_processed_total, 3);
  assert.equal(body.lag_seconds, 12);
  assert.equal(body.last_errors[0].msg, "failed to fetch s3://b/k");
});

Deno.test("statusHandler() rejects other methods and paths", async () => {
  const { handler } = setup();
  assert.equal((await handler(new Request("http://x/healthz", { method: "POST" }))).status, 405);
  assert.equal((await handler(get("/nope"))).status, 404);
});

Deno.test("serveStatus() answers all four endpoints over a real socket on 127.0.0.1", async () => {
  const { handler, health } = setup();
  health.set("sink", true);
  const ac = new AbortController();
  const server = serveStatus({ enabled: true, listen: "127.0.0.1:0" }, handler, ac.signal);
  const base = `http://127.0.0.1:${server.addr.port}`;
  assert.equal(server.addr.hostname, "127.0.0.1");
  for (
    const [path, status] of [["/healthz", 200], ["/readyz", 200], ["/metrics", 200], [
      "/status",
      200,
    ]] as const
  ) {
    const res = await fetch(base + path);
    assert.equal(res.status, status, path);
    await res.body?.cancel();
  }
  ac.abort();
  await server.finished;
});

Deno.test("statusHandler() redacts URL credentials in /status, /readyz and /metrics", async () => {
  const { handler, health, registry } = setup();
  const url = "http://user:pw1@127.0.0.1:9/in?api_key=k1";
  health.set("sink", false, `error sending request for url (${url})`);
  health.recordError("failed", { endpoint: url });
  registry.counter("odd_total", "odd").inc(1, { endpoint: url });
  for (const path of ["/status", "/readyz", "/metrics"]) {
    const body = await (await handler(get(path))).text();
    assert.ok(!body.includes("pw1") && !body.includes("api_key=k1"), `${path}: ${body}`);
    assert.match(body, /http:\/\/\*\*\*@127\.0\.0\.1:9\/in\?api_key=\*\*\*/, path);
  }
});

Deno.test("statusHandler() /status lists the most recently quarantined units", async () => {
  const { handler, health } = setup();
  health.recordQuarantine({
    id: "s3://b/k.gz",
    reason: "corrupt_gzip",
    message: "corrupt gzip member at byte 10",
    offset: 10,
    at: Date.UTC(2026, 0, 1),
  });
  const body = await (await handler(get("/status"))).json();
  assert.deepEqual(body.quarantined, [{
    id: "s3://b/k.gz",
    reason: "corrupt_gzip",
    message: "corrupt gzip member at byte 10",
    offset: 10,
    at: "2026-01-01T00:00:00.000Z",
  }]);
});
