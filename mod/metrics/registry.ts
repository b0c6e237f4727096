/**
 * The process's one metrics registry: counters, gauges and histograms with labels. It feeds
 * /metrics (Prometheus text format 0.0.4), /status (JSON) and OTLP export.
 *
 * @example
 * ```ts
 * const registry = new Registry();
 * const sent = registry.counter("http_lines_sent_total", "Log lines sent", ["endpoint"]);
 * sent.inc(1000, { endpoint: "http://127.0.0.1:8080" });
 * console.log(registry.render());
 * ```
 * @module
 */

/** Label values by label name. */
export type Labels = Record<string, string>;

/** What every metric shares. */
export interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  /** Prometheus exposition lines (without HELP/TYPE). */
  lines(): string[];
  /** A JSON-friendly value: a number, or per-label-set values. */
  snapshot(): unknown;
}

function key(labels: Labels | undefined): string {
  if (!labels) return "";
  const ks = Object.keys(labels);
  if (ks.length === 0) return "";
  ks.sort();
  return ks.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(",");
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function fmt(n: number): string {
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return Number.isNaN(n) ? "NaN" : String(n);
}

abstract class Series<V> implements Metric {
  abstract readonly type: "counter" | "gauge" | "histogram";
  protected readonly series = new Map<string, V>();
  /** The label set behind each series key. */
  protected readonly labelSets = new Map<string, Labels>();
  /** Every series with its labels (for exporters). */
  points(): { labels: Labels; value: V }[] {
    return [...this.series].map(([k, value]) => ({ labels: this.labelSets.get(k) ?? {}, value }));
  }
  protected keyOf(labels: Labels | undefined): string {
    const k = key(labels);
    if (k && !this.labelSets.has(k)) this.labelSets.set(k, { ...labels });
    return k;
  }
  /**
   * @param labelNames the labels its series carry. A labelled metric with no series yet shows no
   * sample (not an unlabelled 0 that would change its labels once the first series comes).
   */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {}
  /** The exposition line of an unused metric: `name 0`, none when it is labelled. */
  protected emptyLines(): string[] {
    return this.labelNames.length ? [] : [`${this.name} 0`];
  }
  abstract lines(): string[];
  abstract snapshot(): unknown;
  protected snap(value: (v: V) => unknown): unknown {
    if (this.series.size === 1 && this.series.has("")) return value(this.series.get("")!);
    if (this.series.size === 0) return 0;
    return Object.fromEntries([...this.series].map(([k, v]) => [k || "total", value(v)]));
  }
}

/** A monotonically increasing count. */
export class Counter extends Series<number> {
  readonly type = "counter";
  /** Add `n` (default 1). */
  inc(n = 1, labels?: Labels): void {
    const k = this.keyOf(labels);
    this.series.set(k, (this.series.get(k) ?? 0) + n);
  }
  /** Current value for a label set. */
  get(labels?: Labels): number {
    return this.series.get(key(labels)) ?? 0;
  }
  /** Sum over all label sets. */
  total(): number {
    let t = 0;
    for (const v of this.series.values()) t += v;
    return t;
  }
  lines(): string[] {
    if (this.series.size === 0) return this.emptyLines();
    return [...this.series].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${fmt(v)}`);
  }
  snapshot(): unknown {
    return this.snap((v) => v);
  }
}

/** A value that goes up and down. */
export class Gauge extends Series<number> {
  readonly type = "gauge";
  set(v: number, labels?: Labels): void {
    this.series.set(this.keyOf(labels), v);
  }
  inc(n = 1, labels?: Labels): void {
    const k = this.keyOf(labels);
    this.series.set(k, (this.series.get(k) ?? 0) + n);
  }
  dec(n = 1, labels?: Labels): void {
    this.inc(-n, labels);
  }
  get(labels?: Labels): number {
    return this.series.get(key(labels)) ?? 0;
  }
  lines(): string[] {
    if (this.series.size === 0) return this.emptyLines();
    return [...this.series].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${fmt(v)}`);
  }
  snapshot(): unknown {
    return this.snap((v) => v);
  }
}

/** A histogram series: per-bucket counts (not cumulative), sum and count. */
export interface HistogramData {
  counts: Float64Array;
  sum: number;
  count: number;
}

/** Default buckets, in seconds: 5 ms to 5 min. */
export const DEFAULT_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
  300,
];

/** Observations counted into cumulative buckets. */
export class Histogram extends Series<HistogramData> {
  readonly type = "histogram";
  readonly buckets: number[];
  constructor(
    name: string,
    help: string,
    buckets: number[] = DEFAULT_BUCKETS,
    labelNames: readonly string[] = [],
  ) {
    super(name, help, labelNames);
    this.buckets = [...buckets].sort((a, b) => a - b);
  }
  observe(v: number, labels?: Labels): void {
    const k = this.keyOf(labels);
    let d = this.series.get(k);
    if (!d) {
      d = { counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
      this.series.set(k, d);
    }
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) d.counts[i]!++;
    d.sum += v;
    d.count++;
  }
  lines(): string[] {
    const out: string[] = [];
    for (const [k, d] of this.series) {
      const sep = k ? `${k},` : "";
      this.buckets.forEach((b, i) => {
        out.push(`${this.name}_bucket{${sep}le="${fmt(b)}"} ${d.counts[i]}`);
      });
      out.push(`${this.name}_bucket{${sep}le="+Inf"} ${d.count}`);
      out.push(`${this.name}_sum${k ? `{${k}}` : ""} ${fmt(d.sum)}`);
      out.push(`${this.name}_count${k ? `{${k}}` : ""} ${d.count}`);
    }
    return out;
  }
  snapshot(): unknown {
    return this.snap((d) => ({ count: d.count, sum: d.sum }));
  }
}

/** All metrics of the process. Asking twice for the same name returns the same metric. */
export class Registry {
  #metrics = new Map<string, Metric>();
  #collectors: (() => void)[] = [];

  /**
   * Run `collect` before every read of the metrics (render, snapshot, all): for values sampled
   * when asked, such as the process's memory and CPU time.
   */
  onCollect(collect: () => void): void {
    this.#collectors.push(collect);
  }

  #collect(): void {
    for (const c of this.#collectors) c();
  }

  #get<M extends Metric>(name: string, make: () => M, type: string): M {
    const m = this.#metrics.get(name);
    if (m) {
      if (m.type !== type) throw new TypeError(`metric ${name} is a ${m.type}, not a ${type}`);
      return m as M;
    }
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) {
      throw new TypeError(`invalid metric name: ${JSON.stringify(name)}`);
    }
    const made = make();
    this.#metrics.set(name, made);
    return made;
  }

  /**
   * A counter. `labelNames`: the labels its series carry (declare them: an unused labelled
   * counter then shows no sample rather than an unlabelled 0).
   */
  counter(name: string, help: string, labelNames: string[] = []): Counter {
    return this.#get(name, () => new Counter(name, help, labelNames), "counter");
  }

  /** A gauge; `labelNames` as for {@link Registry.counter}. */
  gauge(name: string, help: string, labelNames: string[] = []): Gauge {
    return this.#get(name, () => new Gauge(name, help, labelNames), "gauge");
  }

  /** A histogram (seconds by default); `labelNames` as for {@link Registry.counter}. */
  histogram(name: string, help: string, buckets?: number[], labelNames: string[] = []): Histogram {
    return this.#get(name, () => new Histogram(name, help, buckets, labelNames), "histogram");
  }

  /** Every metric, in registration order. */
  all(): Metric[] {
    this.#collect();
    return [...this.#metrics.values()];
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    this.#collect();
    const out: string[] = [];
    for (const m of this.#metrics.values()) {
      out.push(`# HELP ${m.name} ${m.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
      out.push(`# TYPE ${m.name} ${m.type}`);
      out.push(...m.lines());
    }
    return out.join("\n") + "\n";
  }

  /** Name → value, for /status and logs. */
  snapshot(): Record<string, unknown> {
    this.#collect();
    return Object.fromEntries([...this.#metrics.values()].map((m) => [m.name, m.snapshot()]));
  }
}
