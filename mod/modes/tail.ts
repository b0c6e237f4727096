/**
 * Mode `tail`: follow log lines in Kafka topics from the terminal. Filters read the message
 * headers the ingest pipeline sets (subscription, environment, service), so a line is never parsed
 * just to be skipped. Text output picks timestamp, service and message out of JSON log lines.
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import { kafkaConnectionFields } from "../sources/kafka_spec.ts";
import { defineMode } from "./mode.ts";

/** The `tail:` config section. */
export const tailSpec = f.object({
  ...kafkaConnectionFields,
  topics: f.list(f.string({ description: "topic" }), {
    description: "Topics to follow",
    default: ["Raw.ApplicationLogs"],
    minItems: 1,
  }),
  subscription: f.optional(
    f.string({ description: "Only lines whose subscription header is this" }),
  ),
  environment: f.optional(f.string({ description: "Only lines whose environment header is this" })),
  service: f.optional(
    f.string({ description: "Only lines whose service header starts with this" }),
  ),
  format: f.enum(["text", "json"] as const, {
    description: "text: timestamp, service and message; json: one JSON object per line",
    default: "text",
  }),
  raw: f.bool({
    description: "Show the line as stored plus topic, partition, offset and headers",
    default: false,
  }),
  from_beginning: f.bool({ description: "Start at the oldest retained message", default: false }),
  follow: f.bool({
    description: "Keep waiting for new lines; false: exit once caught up",
    default: true,
  }),
}, { description: "Mode tail: follow log lines in Kafka" });

type TailConfig = Infer<typeof tailSpec>;

const dec = new TextDecoder();

/** What a line is shown as; undefined when a filter drops it. */
export function renderLine(
  c: Pick<TailConfig, "subscription" | "environment" | "service" | "format" | "raw">,
  m: {
    topic: string;
    partition: number;
    offset: string;
    value: Uint8Array | null;
    headers: Record<string, string>;
  },
): string | undefined {
  const h = m.headers;
  if (c.subscription !== undefined && h.subscription !== c.subscription) return undefined;
  if (c.environment !== undefined && h.environment !== c.environment) return undefined;
  if (c.service !== undefined && !(h.service ?? "").startsWith(c.service)) return undefined;
  const line = m.value ? dec.decode(m.value) : "";
  if (c.format === "json") {
    let parsed: unknown = line;
    try {
      parsed = JSON.parse(line);
    } catch { /* not JSON: kept as a string */ }
    return JSON.stringify(
      c.raw
        ? { topic: m.topic, partition: m.partition, offset: m.offset, headers: h, line: parsed }
        : parsed,
    );
  }
  if (c.raw) {
    const hs = Object.entries(h).map(([k, v]) => `${k}=${v}`).join(" ");
    return `${m.topic}/${m.partition}@${m.offset} ${hs} | ${line}`;
  }
  let ts = "", level = "", svc = h.service ?? "", msg = line;
  if (line.startsWith("{")) {
    try {
      let o = JSON.parse(line) as Record<string, unknown>;
      // A container runtime's wrapper ({"log": "...", "stream": ..., "time": ...}) around an
      // application's JSON line: the inner fields win.
      if (typeof o.log === "string" && o.log.trimStart().startsWith("{")) {
        try {
          const { log: _, ...outer } = o;
          o = { ...outer, ...JSON.parse(o.log) as Record<string, unknown> };
        } catch { /* the log text is not JSON: shown as the message */ }
      }
      const pick = (...ks: string[]) => ks.map((k) => o[k]).find((v) => v !== undefined);
      ts = String(pick("timestamp", "@timestamp", "time", "ts") ?? "");
      level = String(pick("level", "severity", "lvl", "log.level") ?? "").toUpperCase();
      svc = String(pick("service", "app", "application") ?? svc);
      const text = pick("message", "msg", "log");
      if (text !== undefined) {
        msg = typeof text === "string" ? text.trimEnd() : JSON.stringify(text);
      }
    } catch { /* shown as is */ }
  }
  return [ts, level, svc && `[${svc}]`, msg].filter(Boolean).join(" ");
}

/** Mode `tail`. */
export const tailMode = defineMode({
  name: "tail",
  summary: "Follow log lines in Kafka topics, filtered by headers",
  spec: tailSpec,
  flags: {
    topics: { key: "topics", description: "Topics, comma-separated", list: true },
    brokers: { key: "brokers", description: "Brokers, comma-separated", list: true },
    subscription: { key: "subscription", description: "Subscription header filter" },
    environment: { key: "environment", description: "Environment header filter" },
    service: { key: "service", description: "Service header prefix filter" },
    format: { key: "format", description: "text | json" },
    raw: { key: "raw", description: "Show headers and metadata", boolean: true },
    "from-beginning": { key: "from_beginning", description: "Start at the oldest", boolean: true },
    follow: {
      key: "follow",
      description: "Keep waiting (--no-follow: exit at the end)",
      boolean: true,
    },
  },
  cliTool: () => true,
  async run({ config, signal, stdout, health, log }) {
    // No consumer group: a tail run reads partitions directly and leaves nothing behind.
    const { KafkaClient } = await import("../sources/kafka_client.ts");
    const client = new KafkaClient(config);
    const reader = client.reader(config.topics, {
      fromBeginning: config.from_beginning,
      maxWait: 250,
    });
    const writer = stdout.getWriter();
    const enc = new TextEncoder();
    let shown = 0;
    try {
      // Where "caught up" is, for --no-follow: each partition's end offset now.
      const ends = new Map<string, bigint>();
      for (const [key, p] of await reader.start()) {
        if (p.high > (reader.positions.get(key) ?? p.high)) ends.set(key, p.high);
      }
      health.set("kafka", true);
      const caughtUp = () =>
        [...ends].every(([key, end]) => (reader.positions.get(key) ?? 0n) >= end);
      while (!signal.aborted) {
        if (!config.follow && caughtUp()) break;
        const records = await reader.fetch();
        const lines: string[] = [];
        for (const r of records) {
          const out = renderLine(config, {
            topic: r.topic,
            partition: r.partition,
            offset: String(r.offset),
            value: r.value,
            headers: r.headers,
          });
          if (out !== undefined) lines.push(out);
        }
        if (lines.length) {
          shown += lines.length;
          await writer.write(enc.encode(lines.join("\n") + "\n"));
        }
      }
    } finally {
      writer.releaseLock();
      await reader.close();
      await client.close();
    }
    log.debug("tail stopped", { lines_shown: shown });
  },
});
