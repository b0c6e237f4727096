// deno-lint-ignore-file no-explicit-any -- OTLP JSON is checked by shape here
import assert from "node:assert/strict";
import { Logger } from "../../mod/log/logger.ts";
import { otlpUrl, runOtlpExport, toOtlp } from "../../mod/metrics/otlp.ts";
import { Registry } from "../../mod/metrics/registry.ts";

Deno.test("otlpUrl() builds the /v1/metrics URL from host:port or a URL", () => {
  assert.equal(
    otlpUrl({ endpoint: "localhost:4318", insecure: true }),
    "http://localhost:4318/v1/metrics",
  );
  assert.equal(
    otlpUrl({ endpoint: "collector:4318", insecure: false }),
    "https://collector:4318/v1/metrics",
  );
  assert.equal(otlpUrl({ endpoint: "http://x/v1/metrics", insecure: true }), "http://x/v1/metrics");
});

Deno.test("toOtlp() encodes counters as monotonic sums, gauges, and histograms per bucket", () => {
  const r = new Registry();
  r.counter("http_lines_sent_total", "Lines").inc(7, { endpoint: "a" });
  r.gauge("processing_lag_seconds", "Lag").set(31);
  const h = r.histogram("s3_processing_latency_seconds", "Latency", [1, 10]);
  h.observe(0.5);
  h.observe(5);
  h.observe(50);
  const req = toOtlp(r, { service_name: "s", service_version: "1" }, 1000, 2000) as {
    resourceMetrics: {
      resource: unknown;
      scopeMetrics: { metrics: Record<string, unknown>[] }[];
    }[];
  };
  const [counter, gauge, hist] = req.resourceMetrics[0]!.scopeMetrics[0]!.metrics as Record<
    string,
    any
  >[];
  assert.deepEqual(counter!.sum.dataPoints[0], {
    attributes: [{ key: "endpoint", value: { stringValue: "a" } }],
    startTimeUnixNano: "1000000000",
    timeUnixNano: "2000000000",
    asDouble: 7,
  });
  assert.equal(counter!.sum.isMonotonic, true);
  assert.equal(gauge!.gauge.dataPoints[0].asDouble, 31);
  assert.deepEqual(hist!.histogram.dataPoints[0].bucketCounts, ["1", "1", "1"]);
  assert.deepEqual(hist!.histogram.dataPoints[0].explicitBounds, [1, 10]);
  assert.equal(hist!.histogram.dataPoints[0].count, "3");
});

Deno.test("runOtlpExport() POSTs OTLP/HTTP JSON to a real receiver, and once more at shutdown", async () => {
  const bodies: { path: string; body: any; auth: string | null }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    bodies.push({
      path: new URL(req.url).pathname,
      body: await req.json(),
      auth: req.headers.get("x-api-key"),
    });
    return new Response("{}");
  });
  const r = new Registry();
  r.counter("s3_files_processed_total", "Files").inc(3);
  const stop = new AbortController();
  stop.abort();
  await runOtlpExport(
    r,
    {
      enabled: true,
      endpoint: `127.0.0.1:${server.addr.port}`,
      export_interval: 10_000,
      service_name: "s3-edgedelta-streamer",
      service_version: "1.0.0",
      insecure: true,
      headers: { "x-api-key": "k" },
    },
    new Logger({ write: () => {} }),
    stop.signal,
  );
  await server.shutdown();
  assert.equal(bodies.length, 1);
  assert.equal(bodies[0]!.path, "/v1/metrics");
  assert.equal(bodies[0]!.auth, "k");
  const res = bodies[0]!.body.resourceMetrics[0];
  assert.deepEqual(res.resource.attributes[0], {
    key: "service.name",
    value: { stringValue: "s3-edgedelta-streamer" },
  });
  assert.equal(res.scopeMetrics[0].metrics[0].name, "s3_files_processed_total");
});
