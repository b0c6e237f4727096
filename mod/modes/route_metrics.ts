/**
 * Mode `route`'s metrics, per tenant and destination (`cloudwatch:<log group>`, `s3:<bucket>`),
 * served at /metrics and, when enabled, published to CloudWatch under the reference's names
 * (`LogCount/<cloudwatch|s3>/<successful_events|failed_events|successful_delivery|failed_delivery>`,
 * dimension `Tenant`) so existing dashboards keep working.
 * @module
 */

import type { CumulativeMetric } from "../metrics/cloudwatch_publisher.ts";
import type { Counter, Registry } from "../metrics/registry.ts";

/** The route's counters. */
export class RouteMetrics {
  /** Records accepted by a CloudWatch Logs destination. */
  readonly delivered: Counter;
  /** Message bytes accepted (CloudWatch) or object bytes copied (S3). */
  readonly bytes: Counter;
  /** Records refused (too_old, too_new, expired, empty), by reason. */
  readonly rejected: Counter;
  /** Records of a failed delivery attempt (retried later when recoverable). */
  readonly failedRecords: Counter;
  /** Failed deliveries (a stream's events or an object copy), by `recoverable`. */
  readonly failures: Counter;
  /** Objects fully delivered to a destination. */
  readonly objects: Counter;
  /** Objects no enabled config of their tenant wants (desired_logs), by tenant. */
  readonly filtered: Counter;
  /** Objects that cannot be delivered (invalid key, unknown tenant, gone), by reason. */
  readonly undeliverable: Counter;
  /** Lines that were not JSON records, by tenant. */
  readonly malformed: Counter;

  constructor(m: Registry) {
    // Every series is labelled (an unused counter then shows no unlabelled 0).
    const c = (name: string, help: string, labels = ["tenant", "destination"]) =>
      m.counter(name, help, labels);
    this.delivered = c(
      "route_records_delivered_total",
      "Records delivered, by tenant, destination",
    );
    this.bytes = c("route_bytes_delivered_total", "Bytes delivered, by tenant, destination");
    this.rejected = c(
      "route_records_rejected_total",
      "Records CloudWatch Logs refuses (too_old, too_new, expired, empty), by tenant, destination, reason",
      ["tenant", "destination", "reason"],
    );
    this.failedRecords = c(
      "route_records_failed_total",
      "Records of failed delivery attempts, by tenant, destination",
    );
    this.failures = c(
      "route_delivery_failures_total",
      "Failed deliveries, by tenant, destination, recoverable (true: left for redelivery)",
      ["tenant", "destination", "recoverable"],
    );
    this.objects = c(
      "route_objects_delivered_total",
      "Objects fully delivered, by tenant, destination",
    );
    this.filtered = c(
      "route_objects_filtered_total",
      "Objects no enabled delivery config wants (desired_logs), by tenant",
      ["tenant"],
    );
    this.undeliverable = c(
      "route_objects_undeliverable_total",
      "Objects that cannot be delivered (invalid_key, unknown_tenant, object_gone), by reason",
      ["reason"],
    );
    this.malformed = c(
      "route_records_malformed_total",
      "Lines that are not JSON records, by tenant",
      ["tenant"],
    );
  }

  /** The totals under the reference's CloudWatch metric names. */
  toCloudWatch(): CumulativeMetric[] {
    const out: CumulativeMetric[] = [];
    const add = (counter: Counter, metric: string) => {
      for (const { labels, value } of counter.points()) {
        const method = (labels.destination ?? "").split(":")[0];
        if (!labels.tenant || !method) continue;
        out.push({
          name: `LogCount/${method}/${metric}`,
          dimensions: { Tenant: labels.tenant },
          value,
        });
      }
    };
    add(this.delivered, "successful_events");
    add(this.failedRecords, "failed_events");
    add(this.rejected, "failed_events");
    add(this.objects, "successful_delivery");
    add(this.failures, "failed_delivery");
    // Several series may map to one name and tenant: sum them.
    const sums = new Map<string, CumulativeMetric>();
    for (const m of out) {
      const key = `${m.name}|${m.dimensions.Tenant}`;
      const prev = sums.get(key);
      if (prev) prev.value += m.value;
      else sums.set(key, { ...m });
    }
    return [...sums.values()];
  }
}
