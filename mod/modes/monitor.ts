/**
 * Mode `monitor`: watch Azure containers of append blobs (one per environment) and announce in
 * Kafka what changed, keyed by blob name: `BlobObserved` (new, or grown), `BlobsListed` (a scan's
 * count and bytes per date, service and environment), `BlobClosed` (no growth for
 * `blob_closing.timeout_minutes`). Each poll lists today's date prefix (`YYYYMMDD.` in `timezone`)
 * and, during `end_of_day_overlap` after midnight, yesterday's too. What was announced is kept in
 * a state file, so a restart announces nothing twice.
 * @module
 */

import { resolve } from "node:path";
import { f, type Infer } from "../config/spec.ts";
import type { Registry } from "../metrics/registry.ts";
import { writeFileAtomic } from "../pipeline/atomic_file.ts";
import { sleep } from "../pipeline/retry.ts";
import { KafkaSink, kafkaSinkFields } from "../sinks/kafka.ts";
import { serviceOf } from "./ingest.ts";
import { defineMode } from "./mode.ts";

const environmentSpec = f.object({
  subscription: f.string({ description: "Subscription id or name", example: "cp2" }),
  environment: f.string({ description: "Environment name", example: "P1" }),
  connection_string: f.string({
    description: "Azure Storage connection string (or a SAS URL connection string)",
    secret: true,
    example: "${AZURE_STORAGE_CONNECTION_STRING:-UseDevelopmentStorage=true}",
  }),
  container: f.string({ description: "Container of the environment's blobs", example: "logs" }),
  enabled: f.bool({ description: "Watch this environment", default: true }),
  selectors: f.list(f.string({ description: "service name prefix" }), {
    description: "Only blobs whose service starts with one of these (empty: all)",
    default: [],
  }),
}, { description: "An environment to watch" });

/** The `monitor:` config section. */
export const monitorSpec = f.object({
  ...kafkaSinkFields,
  topic: f.string({ description: "Topic of the blob events", default: "Ingestion.Blobs" }),
  prefix: f.string({ description: "Blob name prefix above the date", default: "kubernetes/" }),
  polling_interval: f.duration({ description: "How often to list", default: "30s", min: "1s" }),
  timezone: f.string({ description: "Time zone of the blobs' dates (IANA name)", default: "UTC" }),
  end_of_day_overlap: f.duration({
    description: "After midnight, keep listing yesterday's blobs this long",
    default: "1h",
  }),
  blob_closing: f.object({
    timeout_minutes: f.int({
      description: "A blob that has not grown this long is announced closed",
      default: 30,
      min: 1,
    }),
  }, { description: "Closing detection" }),
  environments: f.list(environmentSpec, {
    description: "Environments to watch",
    default: [],
    example: [{
      subscription: "cp2",
      environment: "P1",
      connection_string: "${AZURE_STORAGE_CONNECTION_STRING:-UseDevelopmentStorage=true}",
      container: "logs",
    }],
  }),
  state_file: f.string({
    description: "What was announced (relative to the config file)",
    default: "/var/lib/edge-agent/monitor-state.json",
  }),
  once: f.bool({ description: "Poll once, then exit", default: false }),
}, { description: "Mode monitor: Azure append blobs → blob events in Kafka" });

type MonitorConfig = Infer<typeof monitorSpec>;

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

/** The date prefixes to list at `ms`: today, plus yesterday within the overlap. */
export function datesToList(ms: number, timeZone: string, overlapMs: number): string[] {
  const today = localDay(ms, timeZone);
  if (today.minutes * 60_000 >= overlapMs) return [today.date];
  return [localDay(ms - (today.minutes + 1) * 60_000, timeZone).date, today.date];
}

interface Seen {
  size: number;
  etag: string;
  grewAt: number;
  closed: boolean;
}

/** One environment's blob as listed. */
interface Listed {
  name: string;
  size: number;
  etag: string;
  lastModified: string;
}

/** Lists blobs; injectable for tests of the clock logic. */
export type Lister = (env: Infer<typeof environmentSpec>, prefix: string) => Promise<Listed[]>;

/** Lists an environment's blobs by prefix with the Azure SDK. */
export async function azureLister(): Promise<Lister> {
  const { BlobServiceClient } = await import("@azure/storage-blob");
  return async (env, prefix) => {
    const container = BlobServiceClient.fromConnectionString(env.connection_string)
      .getContainerClient(env.container);
    const out: Listed[] = [];
    for await (const b of container.listBlobsFlat({ prefix })) {
      out.push({
        name: b.name,
        size: b.properties.contentLength ?? 0,
        etag: b.properties.etag ?? "",
        lastModified: b.properties.lastModified?.toISOString() ?? "",
      });
    }
    return out;
  };
}

/** Polls the environments and announces changes; state survives restarts. */
export class BlobMonitor {
  #seen = new Map<string, Seen>();
  readonly #c: MonitorConfig;
  readonly #stateFile: string;
  readonly #list: Lister;
  readonly #publish: (key: string, event: Record<string, unknown>) => Promise<void>;
  readonly #events;

  constructor(
    c: MonitorConfig,
    stateFile: string,
    list: Lister,
    publish: (key: string, event: Record<string, unknown>) => Promise<void>,
    metrics: Registry,
  ) {
    this.#c = c;
    this.#stateFile = stateFile;
    this.#list = list;
    this.#publish = publish;
    this.#events = metrics.counter("monitor_events_total", "Blob events published", ["type"]);
  }

  async load(): Promise<void> {
    try {
      const state = JSON.parse(await Deno.readTextFile(this.#stateFile)) as Record<string, Seen>;
      this.#seen = new Map(Object.entries(state));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new Error(`cannot read state file ${this.#stateFile}`, { cause: e });
      }
    }
  }

  /** One poll at time `now` (ms). */
  async poll(now: number): Promise<void> {
    const c = this.#c;
    const dates = datesToList(now, c.timezone, c.end_of_day_overlap);
    const closeAfter = c.blob_closing.timeout_minutes * 60_000;
    for (const env of c.environments.filter((e) => e.enabled)) {
      for (const date of dates) {
        const listed = await this.#list(env, `${c.prefix}${date}.`);
        const summary = new Map<string, { count: number; bytes: number }>();
        for (const b of listed) {
          const service = serviceOf(b.name);
          if (env.selectors.length && !env.selectors.some((s) => service.startsWith(s))) continue;
          const s = summary.get(service) ?? { count: 0, bytes: 0 };
          s.count++;
          s.bytes += b.size;
          summary.set(service, s);
          const key = `${env.subscription}/${env.environment}/${env.container}/${b.name}`;
          const seen = this.#seen.get(key);
          const base = {
            name: b.name,
            container: env.container,
            subscription: env.subscription,
            environment: env.environment,
            service,
          };
          if (!seen || b.size > seen.size) {
            await this.#emit(b.name, {
              type: "BlobObserved",
              ...base,
              size: b.size,
              last_modified: b.lastModified,
              etag: b.etag,
            });
            this.#seen.set(key, { size: b.size, etag: b.etag, grewAt: now, closed: false });
          } else if (!seen.closed && now - seen.grewAt >= closeAfter) {
            await this.#emit(b.name, { type: "BlobClosed", ...base, size: b.size });
            seen.closed = true;
          }
        }
        for (const [service, s] of summary) {
          await this.#emit(`${date}.${service}`, {
            type: "BlobsListed",
            date,
            service,
            subscription: env.subscription,
            environment: env.environment,
            container: env.container,
            count: s.count,
            total_bytes: s.bytes,
          });
        }
      }
    }
    await writeFileAtomic(this.#stateFile, JSON.stringify(Object.fromEntries(this.#seen)) + "\n");
  }

  async #emit(key: string, event: Record<string, unknown>): Promise<void> {
    await this.#publish(key, event);
    this.#events.inc(1, { type: String(event.type) });
  }
}

/** Mode `monitor`. */
export const monitorMode = defineMode({
  name: "monitor",
  summary: "Azure append blobs → blob events in Kafka",
  spec: monitorSpec,
  flags: { once: { key: "once", description: "Poll once, then exit", boolean: true } },
  async run({ config, configDir, metrics, log, health, signal }) {
    const sink = await KafkaSink.connect(config);
    health.set("kafka", true);
    const monitor = new BlobMonitor(
      config,
      resolve(configDir, config.state_file),
      await azureLister(),
      (key, event) => sink.event(config.topic, key, event),
      metrics,
    );
    await monitor.load();
    try {
      while (!signal.aborted) {
        try {
          await monitor.poll(Date.now());
          health.set("azure", true);
        } catch (e) {
          health.set("azure", false, (e as Error).message);
          log.error("monitor poll failed: retrying at the next interval", { error: e });
        }
        if (config.once) break;
        await sleep(config.polling_interval, signal);
      }
    } finally {
      await sink.close();
    }
  },
});
