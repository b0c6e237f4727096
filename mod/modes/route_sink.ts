/**
 * Mode `route`'s sink: the CloudWatch Logs sink, with what it reports counted per tenant and
 * destination on the way back (route_metrics.ts). It adds no policy of its own: a BatchError
 * (events refused for good) and a retryable SinkError go on to the pipeline unchanged, which
 * dead-letters the former and retries the units of the latter.
 * @module
 */

import type { Batch, FailedItem, Sink } from "../pipeline/types.ts";
import { BatchError } from "../pipeline/types.ts";
import type { CloudWatchLogsSink } from "../sinks/cloudwatch_logs.ts";
import type { RouteEvent } from "./route_events.ts";
import type { RouteMetrics } from "./route_metrics.ts";
import type { Target } from "./route_tenant_step.ts";

/** Reasons of events CloudWatch Logs refuses (counted as rejected, not as failed deliveries). */
const REFUSALS = new Set(["too_old", "too_new", "expired", "empty"]);

/** Delivers route events to CloudWatch Logs and counts the outcome per tenant. */
export class RouteSink implements Sink<RouteEvent> {
  readonly kind: string;
  readonly #cw: CloudWatchLogsSink;
  readonly #m: RouteMetrics;

  /**
   * @param cloudwatch the CloudWatch Logs sink, kept open across runs (its owner closes it).
   * @param metrics the route's counters.
   */
  constructor(cloudwatch: CloudWatchLogsSink, metrics: RouteMetrics) {
    this.kind = cloudwatch.kind;
    this.#cw = cloudwatch;
    this.#m = metrics;
  }

  /**
   * Deliver a batch of events.
   *
   * @throws {BatchError} events refused for good (the rest delivered), as the CloudWatch sink
   *   reports them; {SinkError} when a later try may succeed.
   */
  async write(batch: Batch<RouteEvent>, signal: AbortSignal): Promise<void> {
    try {
      await this.#cw.write(batch, signal);
      this.#count(batch.items, []);
    } catch (e) {
      if (e instanceof BatchError) this.#count(batch.items, e.failed);
      else if (!signal.aborted) this.#countFailed(batch.items);
      throw e;
    }
  }

  /** The CloudWatch sink outlives one run: its owner closes it. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Count a delivered batch: its events, less `failed` (refused for good, by reason; or, marked
   * `retryable`, of a stream that failed in a way worth retrying while others went through).
   */
  #count(items: readonly RouteEvent[], failed: readonly FailedItem[]): void {
    const m = this.#m;
    const refused = new Set<number>();
    const streams = new Set<Target>();
    const retried = new Set<Target>();
    for (const f of failed) {
      refused.add(f.index);
      const t = items[f.index]!.target;
      const labels = { tenant: t.tenant, destination: t.destination };
      if (f.retryable) {
        m.failedRecords.inc(1, labels);
        if (!retried.has(t)) m.failures.inc(1, { ...labels, recoverable: "true" });
        retried.add(t);
      } else if (REFUSALS.has(f.reason)) m.rejected.inc(1, { ...labels, reason: f.reason });
      else {
        // The stream failed for good (bad parameters, a missing group that may not be created).
        m.failedRecords.inc(1, labels);
        if (!streams.has(t)) m.failures.inc(1, { ...labels, recoverable: "false" });
        streams.add(t);
      }
    }
    const delivered = new Map<Target, { n: number; bytes: number }>();
    for (const [i, e] of items.entries()) {
      if (refused.has(i)) continue;
      const d = delivered.get(e.target) ?? { n: 0, bytes: 0 };
      d.n++;
      d.bytes += e.bytes;
      delivered.set(e.target, d);
    }
    for (const [t, d] of delivered) {
      const labels = { tenant: t.tenant, destination: t.destination };
      m.delivered.inc(d.n, labels);
      m.bytes.inc(d.bytes, labels);
    }
  }

  /** Count a batch that failed in a way worth retrying (its units are retried). */
  #countFailed(items: readonly RouteEvent[]): void {
    const m = this.#m;
    const per = new Map<Target, number>();
    for (const e of items) per.set(e.target, (per.get(e.target) ?? 0) + 1);
    for (const [t, n] of per) {
      const labels = { tenant: t.tenant, destination: t.destination };
      m.failedRecords.inc(n, labels);
      m.failures.inc(1, { ...labels, recoverable: "true" });
    }
  }
}
