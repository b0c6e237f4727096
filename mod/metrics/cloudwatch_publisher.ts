/**
 * Publishing metrics to Amazon CloudWatch (PutMetricData): every interval, and on demand (a
 * Lambda invocation's end, since Lambda freezes the process between invocations), the increase
 * of each cumulative value since the last successful publish. A failed publish is logged and its
 * increase is carried over to the next one.
 * @module
 */

import {
  type CloudWatchClient,
  type MetricDatum,
  PutMetricDataCommand,
  type StandardUnit,
} from "@aws-sdk/client-cloudwatch";
import { errorChain, type Logger } from "../log/logger.ts";
import { sleep } from "../pipeline/retry.ts";

/** A cumulative value to publish as its increase. */
export interface CumulativeMetric {
  name: string;
  dimensions: Record<string, string>;
  /** Total so far (a counter's value). */
  value: number;
  unit?: StandardUnit;
}

/** Options for {@link CloudWatchMetricsPublisher}. */
export interface CloudWatchMetricsPublisherOptions {
  client: CloudWatchClient;
  namespace: string;
  /** The current totals. */
  collect: () => CumulativeMetric[];
  log: Logger;
}

/** PutMetricData of counters' increases. */
export class CloudWatchMetricsPublisher {
  readonly #o: CloudWatchMetricsPublisherOptions;
  readonly #sent = new Map<string, number>();
  /** PutMetricData requests made. */
  requests = 0;

  constructor(o: CloudWatchMetricsPublisherOptions) {
    this.#o = o;
  }

  /** Publish the increases since the last publish; never throws (failures are logged). */
  async flush(): Promise<void> {
    const pending: { key: string; total: number; datum: MetricDatum }[] = [];
    const now = new Date();
    for (const m of this.#o.collect()) {
      const dims = Object.entries(m.dimensions).sort(([a], [b]) => a < b ? -1 : 1);
      const key = `${m.name}|${JSON.stringify(dims)}`;
      const delta = m.value - (this.#sent.get(key) ?? 0);
      if (delta <= 0) continue;
      pending.push({
        key,
        total: m.value,
        datum: {
          MetricName: m.name,
          Dimensions: dims.map(([Name, Value]) => ({ Name, Value })),
          Value: delta,
          Unit: m.unit ?? "Count",
          Timestamp: now,
        },
      });
    }
    // PutMetricData takes up to 1,000 datums per request.
    for (let i = 0; i < pending.length; i += 1000) {
      const chunk = pending.slice(i, i + 1000);
      try {
        this.requests++;
        await this.#o.client.send(
          new PutMetricDataCommand({
            Namespace: this.#o.namespace,
            MetricData: chunk.map((p) => p.datum),
          }),
        );
      } catch (e) {
        this.#o.log.error("PutMetricData failed: the increase is sent with the next publish", {
          namespace: this.#o.namespace,
          error: errorChain(e),
        });
        return;
      }
      for (const p of chunk) this.#sent.set(p.key, p.total);
    }
  }

  /** Publish every `interval` ms until `signal` aborts, then once more. */
  async run(interval: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(interval, signal);
      await this.flush();
    }
  }
}
