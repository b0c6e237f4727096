/**
 * OTLP metrics export: every `export_interval`, the registry's counters, gauges and histograms
 * POSTed as OTLP/HTTP JSON (`/v1/metrics`, cumulative temporality) to a collector: Edge Delta's
 * OTLP input, an OpenTelemetry Collector, ... The reference exported over OTLP/gRPC on 4317;
 * this speaks OTLP/HTTP (usually port 4318), which every OTLP receiver also serves.
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import { errorChain, type Logger } from "../log/logger.ts";
import { sleep } from "../pipeline/retry.ts";
import {
  type Counter,
  type Gauge,
  type Histogram,
  type HistogramData,
  type Labels,
  type Registry,
} from "./registry.ts";

/** The `otlp:` config section (the reference's keys). */
export const otlpSpec = f.object({
  enabled: f.bool({ description: "Export metrics over OTLP/HTTP", default: false }),
  endpoint: f.string({
    description:
      "Collector: host:port (the scheme comes from `insecure`) or a URL; /v1/metrics is added when missing",
    default: "localhost:4318",
  }),
  export_interval: f.duration({ description: "How often to export", default: "10s", min: "1s" }),
  service_name: f.string({ description: "Resource attribute service.name", default: "edge-agent" }),
  service_version: f.string({
    description: "Resource attribute service.version",
    default: "1.0.0",
  }),
  insecure: f.bool({ description: "Plain HTTP instead of HTTPS", default: true }),
  headers: f.record(f.string({ description: "header value", allowEmpty: true }), {
    description: "Extra request headers (API keys: use ${ENV} or ${credential:NAME})",
    secret: true,
  }),
}, { description: "OTLP metrics export" });

/** The `otlp:` config. */
export type OtlpConfig = Infer<typeof otlpSpec>;

/** The URL metrics are POSTed to. */
export function otlpUrl(c: Pick<OtlpConfig, "endpoint" | "insecure">): string {
  const base = /^https?:\/\//.test(c.endpoint)
    ? c.endpoint
    : `${c.insecure ? "http" : "https"}://${c.endpoint}`;
  return /\/v1\/metrics$/.test(base) ? base : `${base.replace(/\/$/, "")}/v1/metrics`;
}

const attrs = (labels: Labels) =>
  Object.entries(labels).map(([key, v]) => ({ key, value: { stringValue: v } }));

/** The registry as an OTLP `ExportMetricsServiceRequest` (JSON encoding). */
export function toOtlp(
  registry: Registry,
  c: Pick<OtlpConfig, "service_name" | "service_version">,
  startMs: number,
  nowMs = Date.now(),
): unknown {
  const start = `${BigInt(Math.round(startMs)) * 1_000_000n}`;
  const time = `${BigInt(Math.round(nowMs)) * 1_000_000n}`;
  const metrics = registry.all().map((m) => {
    const base = { name: m.name, description: m.help };
    if (m.type === "histogram") {
      const h = m as Histogram;
      return {
        ...base,
        histogram: {
          aggregationTemporality: 2,
          dataPoints: h.points().map(
            ({ labels, value }: { labels: Labels; value: HistogramData }) => {
              // Registry buckets are cumulative; OTLP wants per-bucket counts plus the overflow.
              const counts = [...value.counts].map((c, i, a) => c - (i > 0 ? a[i - 1]! : 0));
              const last = value.counts.length ? value.counts[value.counts.length - 1]! : 0;
              return {
                attributes: attrs(labels),
                startTimeUnixNano: start,
                timeUnixNano: time,
                count: String(value.count),
                sum: value.sum,
                bucketCounts: [...counts, value.count - last].map(String),
                explicitBounds: h.buckets,
              };
            },
          ),
        },
      };
    }
    const points = (m as Counter | Gauge).points().map(({ labels, value }) => ({
      attributes: attrs(labels),
      startTimeUnixNano: start,
      timeUnixNano: time,
      asDouble: value,
    }));
    return m.type === "counter"
      ? { ...base, sum: { aggregationTemporality: 2, isMonotonic: true, dataPoints: points } }
      : { ...base, gauge: { dataPoints: points } };
  });
  return {
    resourceMetrics: [{
      resource: {
        attributes: attrs({ "service.name": c.service_name, "service.version": c.service_version }),
      },
      scopeMetrics: [{ scope: { name: "edge-agent" }, metrics }],
    }],
  };
}

/**
 * Export every `export_interval` until `signal` aborts, then once more (final counts).
 * Failures are logged and counted, never fatal.
 */
export async function runOtlpExport(
  registry: Registry,
  c: OtlpConfig,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  if (!c.enabled) return;
  const url = otlpUrl(c);
  const errors = registry.counter("otlp_export_errors_total", "Failed OTLP metric exports");
  const started = Date.now();
  const send = async () => {
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { ...c.headers, "content-type": "application/json" },
        body: JSON.stringify(toOtlp(registry, c, started)),
        signal: AbortSignal.timeout(10_000),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    } catch (e) {
      errors.inc();
      log.warn("OTLP export failed", { endpoint: url, error: errorChain(e) });
    }
  };
  for (;;) {
    await sleep(c.export_interval, signal);
    await send(); // after an abort: the final export
    if (signal.aborted) return;
  }
}
