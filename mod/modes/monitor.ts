/**
 * Mode `monitor`: watch Azure containers of append blobs (one per environment) and announce in
 * Kafka what changed, as JSON keyed by blob name (one blob's events land in one partition, in
 * order):
 * - `BlobObserved`: a new blob, or one that grew (name, container, size, previous_size,
 *   last_modified, etag, subscription, environment, service, date);
 * - `BlobsListed`: per scan, date, service and environment, the count and total bytes;
 * - `BlobClosed`: no growth for `blob_closing.timeout_minutes` (or sealed): ingest workers stop
 *   watching it. A closed blob that grows again is announced observed again.
 *
 * Every `polling_interval` each enabled environment's container is listed under today's date
 * prefix (`kubernetes/YYYYMMDD.` in `timezone`) and, for `end_of_day_overlap` after midnight,
 * yesterday's too: the last appends of the day are still seen. A blob whose day is no longer
 * listed is still closed on time. What was announced is kept in `state_file`, written after the
 * events were published, so a restart announces nothing twice (a crash in between re-announces:
 * a duplicate, never a gap).
 * @module
 */

import { resolve } from "node:path";
import { durationOrSeconds } from "../config/duration_or_seconds.ts";
import { f, type Infer } from "../config/spec.ts";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { CheckpointStore } from "../pipeline/checkpoint.ts";
import { sleep } from "../pipeline/retry.ts";
import type { KafkaMessage } from "../sinks/kafka.ts";
import { kafkaSpec } from "../sources/kafka_spec.ts";
import { AzureBlobContainer, azureStorageSpec, type BlobInfo } from "../sources/azure_blob.ts";
import type { BlobClosed, BlobEvent, BlobRef } from "../sources/events.ts";
import { parseBlobName } from "../sources/k8s_blob_name.ts";
import { defineMode } from "./mode.ts";
import {
  type ResolvedEnvironment,
  type ResolvedMonitorConfig,
  resolveMonitorConfig,
} from "./monitor_reference.ts";

const environmentSpec = f.object({
  subscription: f.string({ description: "Subscription id or name", example: "cp2" }),
  environment: f.string({ description: "Environment name", example: "P1" }),
  storage_account: f.optional(azureStorageSpec),
  container: f.optional(f.string({
    description:
      "Container of the environment's blobs (else AZURE_STORAGE_CONTAINER_NAME, else commerce-logs-separated, the reference's)",
    example: "commerce-logs-separated",
  })),
  enabled: f.bool({ description: "Watch this environment", default: true }),
  selectors: f.list(f.string({ description: "service name prefix" }), {
    description: "Only blobs whose service starts with one of these (empty: all)",
    default: [],
  }),
}, { description: "An environment to watch" });

/** One `environments[]` entry. */
export type MonitorEnvironment = Infer<typeof environmentSpec>;

const validZone = (tz: string) => {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return undefined;
  } catch {
    return `must be an IANA time zone like "UTC" or "Europe/Berlin": got ${JSON.stringify(tz)}`;
  }
};

/** The `monitor:` config section. */
export const monitorSpec = f.object({
  kafka: kafkaSpec({ topic: "Ingestion.Blobs", description: "Where the blob events go" }),
  prefix: f.string({ description: "Blob name prefix before the date", default: "kubernetes/" }),
  polling_interval: durationOrSeconds({
    description: "How often to list",
    default: "5m",
    min: "1s",
  }),
  timezone: f.string({
    description: "Time zone of the blobs' dates (IANA name)",
    default: "UTC",
    check: validZone,
  }),
  end_of_day_overlap: f.duration({
    description: "After midnight, keep listing yesterday's blobs this long",
    default: "1h",
  }),
  blob_closing: f.object({
    enabled: f.bool({ description: "Announce BlobClosed", default: true }),
    timeout_minutes: f.int({
      description: "A blob that has not grown this long is announced closed",
      default: 5,
      min: 1,
    }),
  }, { description: "Closing detection" }),
  global: f.optional(f.object({
    polling_interval: f.optional(durationOrSeconds({ description: "As polling_interval" })),
    timezone: f.optional(f.string({ description: "As timezone", check: validZone })),
    blob_closing: f.optional(f.object({
      enabled: f.optional(f.bool({ description: "As blob_closing.enabled" })),
      timeout_minutes: f.optional(
        f.int({ description: "As blob_closing.timeout_minutes", min: 1 }),
      ),
    }, { description: "As blob_closing" })),
  }, {
    description:
      "The reference monitor's layout (kafka:, global:, environments:): keys set here replace the ones above",
  })),
  environments: f.list(environmentSpec, {
    description: "Environments to watch",
    default: [],
    example: [{
      subscription: "cp2",
      environment: "P1",
      storage_account: { account_name: "prodlogs", access_key: "${AZURE_STORAGE_KEY:-change-me}" },
      container: "commerce-logs-separated",
      selectors: ["apache-proxy", "api-service"],
    }],
  }),
  state_file: f.string({
    description: "What was announced (relative to the config file)",
    default: "/var/lib/edge-agent/monitor-state.json",
  }),
  once: f.bool({ description: "Poll once, then exit", default: false }),
}, { description: "Mode monitor: Azure append blobs → blob events in Kafka" });

/** The monitor's config. */
export type MonitorConfig = Infer<typeof monitorSpec>;

/** `YYYYMMDD` and the minutes since midnight of `ms` in `timeZone`. */
export function localDay(ms: number, timeZone: string): { date: string; minutes: number } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    }).formatToParts(new Date(ms)).map((p) => [p.type, p.value]),
  );
  return {
    date: `${parts.year}${parts.month}${parts.day}`,
    minutes: Number(parts.hour) * 60 + Number(parts.minute),
  };
}

/** The date prefixes to list at `ms`: yesterday within the overlap after midnight, and today. */
export function datesToList(ms: number, timeZone: string, overlapMs: number): string[] {
  const today = localDay(ms, timeZone);
  if (today.minutes * 60_000 >= overlapMs) return [today.date];
  return [localDay(ms - (today.minutes + 1) * 60_000, timeZone).date, today.date];
}

/** What the monitor remembers of a blob. */
interface Seen {
  size: number;
  etag: string;
  /** When it was last seen growing (ms). */
  grewAt: number;
  closed: boolean;
  date: string;
}

/** Lists an environment's blobs under a prefix. */
export type Lister = (env: ResolvedEnvironment, prefix: string) => AsyncIterable<BlobInfo>;

/** Options for {@link BlobMonitor}. */
export interface BlobMonitorOptions {
  /** Where announced blobs are remembered (key `blobs`). */
  store: CheckpointStore;
  /** Publish events, in order, keyed; resolves once Kafka has them. */
  publish: (messages: KafkaMessage[]) => Promise<void>;
  metrics: Registry;
  log: Logger;
  /** Lists blobs. @default the Azure container of each environment */
  list?: Lister;
  /** The clock (ms since epoch). @default Date.now */
  now?: () => number;
}

/** Polls the environments and announces changes; what was announced survives restarts. */
export class BlobMonitor {
  readonly #c: ResolvedMonitorConfig;
  readonly #o: Required<BlobMonitorOptions>;
  readonly #containers = new Map<ResolvedEnvironment, Promise<AzureBlobContainer>>();
  readonly #m;
  /** Environments whose listing failed in the last poll. */
  listingFailures = 0;

  constructor(c: MonitorConfig | ResolvedMonitorConfig, options: BlobMonitorOptions) {
    this.#c = resolveMonitorConfig(c);
    this.#o = {
      list: (env, prefix) => this.#azureList(env, prefix),
      now: Date.now,
      ...options,
    };
    const m = options.metrics;
    this.#m = {
      events: m.counter("monitor_events_published_total", "Blob events published", ["type"]),
      errors: m.counter(
        "monitor_poll_errors_total",
        "Environments whose listing failed (retried at the next poll)",
        ["environment"],
      ),
      tracked: m.gauge("monitor_blobs_tracked", "Blobs remembered in the state"),
      duration: m.histogram("monitor_poll_duration_seconds", "Time of one poll"),
    };
  }

  async *#azureList(env: ResolvedEnvironment, prefix: string): AsyncIterable<BlobInfo> {
    let c = this.#containers.get(env);
    if (!c) {
      c = AzureBlobContainer.open(env.storage_account, env.container);
      c.catch(() => this.#containers.delete(env));
      this.#containers.set(env, c);
    }
    yield* (await c).list(prefix);
  }

  /**
   * One poll: list, publish what changed, then remember it.
   *
   * @returns the events published.
   * @throws {Error} when publishing fails (nothing is remembered: the next poll announces again).
   */
  async poll(): Promise<BlobEvent[]> {
    const c = this.#c;
    const { store, list, log, now: clock } = this.#o;
    const started = performance.now();
    const now = clock();
    const dates = datesToList(now, c.timezone, c.end_of_day_overlap);
    const closeAfter = c.blob_closing.timeout_minutes * 60_000;
    const before = store.get<Record<string, Seen>>("blobs") ?? {};
    const after: Record<string, Seen> = structuredClone(before);
    const events: { key: string; event: BlobEvent }[] = [];
    const iso = new Date(now).toISOString();
    this.listingFailures = 0;

    for (const env of c.environments) {
      if (!env.enabled) continue;
      const scope = `${env.subscription}/${env.environment}/${env.container}/`;
      const base = {
        container: env.container,
        subscription: env.subscription,
        environment: env.environment,
      };
      const listed = new Set<string>();
      try {
        for (const date of dates) {
          const summary = new Map<string, { count: number; bytes: number }>();
          for await (const b of list(env, `${c.prefix}${date}.`)) {
            const { service } = parseBlobName(b.name);
            if (env.selectors.length && !env.selectors.some((s) => service.startsWith(s))) {
              continue;
            }
            const s = summary.get(service) ?? { count: 0, bytes: 0 };
            s.count++;
            s.bytes += b.size;
            summary.set(service, s);
            const key = scope + b.name;
            listed.add(key);
            const seen = after[key];
            const blob: BlobRef = { ...base, name: b.name, service, date };
            if (!seen || b.size > seen.size) {
              events.push({
                key: b.name,
                event: {
                  type: "BlobObserved",
                  ...blob,
                  size: b.size,
                  previous_size: seen?.size ?? 0,
                  last_modified: b.lastModified,
                  etag: b.etag,
                  observed_at: iso,
                },
              });
              after[key] = { size: b.size, etag: b.etag, grewAt: now, closed: false, date };
            } else if (!seen.closed && c.blob_closing.enabled) {
              const reason = b.sealed
                ? "sealed"
                : now - seen.grewAt >= closeAfter
                ? "inactive"
                : "";
              if (reason) {
                events.push({ key: b.name, event: closedEvent(blob, seen, reason, iso) });
                seen.closed = true;
              }
            }
          }
          for (const [service, s] of summary) {
            events.push({
              key: `${env.subscription}/${env.environment}/${date}/${service}`,
              event: {
                type: "BlobsListed",
                ...base,
                date,
                service,
                count: s.count,
                total_bytes: s.bytes,
                listed_at: iso,
              },
            });
          }
        }
      } catch (e) {
        this.listingFailures++;
        this.#m.errors.inc(1, { environment: `${env.subscription}/${env.environment}` });
        log.error("listing failed: this environment is polled again next time", {
          subscription: env.subscription,
          environment: env.environment,
          container: env.container,
          error: errorChain(e),
        });
        // Keep the state of what could not be listed as it was.
        for (const key of Object.keys(after)) {
          if (key.startsWith(scope) && !listed.has(key)) listed.add(key);
        }
      }
      // Blobs not listed now (their day left the listing window, or deleted): close them on
      // time; forget them once closed and out of the window.
      for (const [key, seen] of Object.entries(after)) {
        if (!key.startsWith(scope) || listed.has(key)) continue;
        if (!seen.closed && c.blob_closing.enabled && now - seen.grewAt >= closeAfter) {
          const name = key.slice(scope.length);
          const blob: BlobRef = {
            ...base,
            name,
            service: parseBlobName(name).service,
            date: seen.date,
          };
          events.push({ key: name, event: closedEvent(blob, seen, "inactive", iso) });
          seen.closed = true;
        }
        if ((seen.closed || !c.blob_closing.enabled) && !dates.includes(seen.date)) {
          delete after[key];
        }
      }
    }
    // Environments no longer configured (or disabled) are forgotten.
    const scopes = c.environments.filter((e) => e.enabled).map((e) =>
      `${e.subscription}/${e.environment}/${e.container}/`
    );
    for (const key of Object.keys(after)) {
      if (!scopes.some((s) => key.startsWith(s))) delete after[key];
    }

    await this.#o.publish(events.map((e) => ({ key: e.key, value: JSON.stringify(e.event) })));
    for (const e of events) this.#m.events.inc(1, { type: e.event.type });
    store.set("blobs", after);
    await store.flush();
    this.#m.tracked.set(Object.keys(after).length);
    this.#m.duration.observe((performance.now() - started) / 1000);
    return events.map((e) => e.event);
  }
}

function closedEvent(
  blob: BlobRef,
  seen: Seen,
  reason: BlobClosed["reason"],
  iso: string,
): BlobClosed {
  return {
    type: "BlobClosed",
    ...blob,
    size: seen.size,
    etag: seen.etag,
    last_growth_at: new Date(seen.grewAt).toISOString(),
    reason,
    closed_at: iso,
  };
}

/** Mode `monitor`. */
export const monitorMode = defineMode({
  name: "monitor",
  // The reference's config file (kafka:, global:, environments: at the top) runs unchanged.
  referenceLayout: { marker: "environments", keys: ["kafka", "global", "environments"] },
  summary: "Azure append blobs → blob events (observed, listed, closed) in Kafka",
  spec: monitorSpec,
  flags: {
    once: { key: "once", description: "Poll once, then exit", boolean: true },
    brokers: { key: "kafka.brokers", description: "Kafka brokers, comma-separated", list: true },
    topic: { key: "kafka.topic", description: "Topic of the events" },
    "state-file": { key: "state_file", description: "What was announced (a JSON file)" },
  },
  async run({ config: section, configDir, metrics, log, health, signal }) {
    const config = resolveMonitorConfig(section);
    // The Kafka client loads with the mode that uses it (kafka_spec.ts says why).
    const { KafkaSink } = await import("../sinks/kafka.ts");
    const sink = await KafkaSink.connect(config.kafka, { log, metrics });
    health.set("kafka", true);
    const store = new CheckpointStore(resolve(configDir, config.state_file), {
      flushInterval: 0,
      log,
      metrics,
    });
    await store.load();
    const monitor = new BlobMonitor(config, {
      store,
      publish: (messages) => sink.send(config.kafka.topic, messages, signal),
      metrics,
      log,
    });
    try {
      while (!signal.aborted) {
        try {
          const events = await monitor.poll();
          health.set("monitor", true);
          log.info("poll done", { events: events.length });
        } catch (e) {
          health.set("monitor", false, errorChain(e));
          log.error("poll failed: retrying at the next interval", { error: errorChain(e) });
          if (config.once) return 1;
        }
        // One run that could not list everything failed, as `discover --once` does.
        if (config.once) return monitor.listingFailures > 0 ? 1 : 0;
        await sleep(config.polling_interval, signal);
      }
      return 0;
    } finally {
      await store.close();
      await sink.close();
    }
  },
});
