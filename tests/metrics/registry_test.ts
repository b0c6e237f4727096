import assert from "node:assert/strict";
import { Registry } from "../../mod/metrics/registry.ts";

Deno.test("Registry.render() writes Prometheus 0.0.4 with HELP and TYPE", () => {
  const r = new Registry();
  r.counter("s3_files_processed_total", "Files processed").inc();
  r.counter("http_lines_sent_total", "Lines sent").inc(5, { endpoint: 'http://a"b' });
  r.gauge("processing_lag_seconds", "Lag").set(31.5);
  const h = r.histogram("s3_processing_latency_seconds", "Latency", [0.1, 1]);
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  assert.equal(
    r.render(),
    [
      "# HELP s3_files_processed_total Files processed",
      "# TYPE s3_files_processed_total counter",
      "s3_files_processed_total 1",
      "# HELP http_lines_sent_total Lines sent",
      "# TYPE http_lines_sent_total counter",
      'http_lines_sent_total{endpoint="http://a\\"b"} 5',
      "# HELP processing_lag_seconds Lag",
      "# TYPE processing_lag_seconds gauge",
      "processing_lag_seconds 31.5",
      "# HELP s3_processing_latency_seconds Latency",
      "# TYPE s3_processing_latency_seconds histogram",
      's3_processing_latency_seconds_bucket{le="0.1"} 1',
      's3_processing_latency_seconds_bucket{le="1"} 2',
      's3_processing_latency_seconds_bucket{le="+Inf"} 3',
      "s3_processing_latency_seconds_sum 5.55",
      "s3_processing_latency_seconds_count 3",
      "",
    ].join("\n"),
  );
});

Deno.test("Registry returns the same metric for the same name and rejects a type clash", () => {
  const r = new Registry();
  const a = r.counter("x_total", "x");
  assert.equal(r.counter("x_total", "x"), a);
  assert.throws(() => r.gauge("x_total", "x"), /is a counter, not a gauge/);
  assert.throws(() => r.counter("bad name", "x"), /invalid metric name/);
});

Deno.test("Registry.snapshot() gives plain and per-label values", () => {
  const r = new Registry();
  r.counter("a_total", "a").inc(2);
  const b = r.counter("b_total", "b");
  b.inc(1, { tenant: "t1" });
  b.inc(3, { tenant: "t2" });
  r.counter("c_total", "c");
  assert.deepEqual(r.snapshot(), {
    a_total: 2,
    b_total: { 'tenant="t1"': 1, 'tenant="t2"': 3 },
    c_total: 0,
  });
  assert.equal(b.total(), 4);
});
