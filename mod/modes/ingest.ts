/**
 * Mode `ingest`: Azure append blobs → their lines in Kafka, resumable by byte offset.
 *
 * A pass reads a blob from its committed offset in ranges (an AppendBlobSource: ranged, streamed
 * downloads), decodes it gzip member by member and produces each line (runPipeline → KafkaSink)
 * keyed by the blob, with the headers `subscription`, `environment`, `blob`, `service` and
 * `member_offset` (the byte offset of the gzip member the line was decoded from: re-reading from
 * there yields the line again). Once the producer confirmed a range's lines, the blob's offset
 * moves to the end of the range's last complete member; a member still being appended is left
 * for the next pass. After a pass, a completion event goes to `completion_topic`.
 *
 * Two ways to run:
 * - one-shot, as the reference: one pass over one blob, named by the config or the reference's
 *   environment variables (SUBSCRIPTION_ID, ENVIRONMENT, AZURE_STORAGE_CONTAINER_NAME,
 *   AZURE_STORAGE_BLOB_NAME, KAFKA_BROKERS, KAFKA_TOPIC, START_OFFSET);
 * - `worker: true`: a member of the consumer group `group_id` on the monitor's events. Each
 *   BlobObserved (new or grown) triggers a pass over the new bytes; BlobClosed a last one, whose
 *   completion event says `closed: true`. An event's Kafka offset is committed after its pass.
 *   Add workers to scale out: Kafka spreads the events' partitions (keyed by blob) over them.
 *
 * Where blob offsets are kept: with `offsets_topic` set, in that compacted Kafka topic (key: the
 * blob, value: its offset), shared by every worker. That is what worker mode needs: when the
 * group rebalances, a blob's events move to another worker, possibly on another host, and its
 * offset must be there too (a local file would restart the blob from 0 and re-send it whole).
 * Without `offsets_topic`, in `state_file` (atomically replaced JSON): right for one-shot runs and
 * a single worker, and it needs no extra topic.
 *
 * Delivery is at-least-once: a crash re-sends at most the range in progress (`range_bytes` of
 * compressed input), never skips.
 * @module
 */

import { Buffer } from "node:buffer";
import { resolve } from "node:path";
import { f, type Infer, parseValue } from "../config/spec.ts";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { CheckpointStore } from "../pipeline/checkpoint.ts";
import { CompactedTopicStore } from "../pipeline/compacted_topic_store.ts";
import { LineStream } from "../pipeline/line_stream.ts";
import { runPipeline } from "../pipeline/run.ts";
import type { Sink } from "../pipeline/types.ts";
import {
  type KafkaConfig,
  type KafkaMessage,
  kafkaMessageSize,
  KafkaSink,
  kafkaSpec,
} from "../sinks/kafka.ts";
import { AppendBlobSource } from "../sources/azure_append_blob.ts";
import {
  AzureBlobContainer,
  type AzureStorage,
  azureStorageFromEnv,
  azureStorageSpec,
} from "../sources/azure_blob.ts";
import { parseBlobName } from "../sources/k8s_blob_name.ts";
import { KafkaSource, kafkaSourceSpec } from "../sources/kafka.ts";
import { KafkaClient } from "../sources/kafka_client.ts";
import type { Health } from "../status/health.ts";
import { defineMode } from "./mode.ts";

const ingestEnvironmentSpec = f.object({
  subscription: f.string({ description: "Subscription of the blobs", example: "cp2" }),
  environment: f.string({ description: "Environment of the blobs", example: "P1" }),
  storage_account: azureStorageSpec,
}, { description: "Storage credentials of one subscription/environment" });

/** The `ingest:` config section. */
export const ingestSpec = f.object({
  kafka: kafkaSpec({
    topic: "commerce-logs",
    description:
      "Where lines go (KAFKA_BROKERS and KAFKA_TOPIC fill brokers and topic when left at their defaults)",
  }),
  batch_lines: f.int({
    description: "A produce request closes at this many lines",
    default: 2000,
    min: 1,
  }),
  batch_bytes: f.size({
    description:
      "... or at this size; keep it under the broker's message.max.bytes (1 MiB by default), which applies before compression",
    default: "900KiB",
    min: 1,
  }),
  flush_interval: f.duration({
    description: "... or when its oldest line has waited this long",
    default: "50ms",
    min: "1ms",
  }),
  workers: f.int({
    description: "Produce requests in flight at once",
    default: 4,
    min: 1,
    max: 64,
  }),
  max_line_bytes: f.size({
    description:
      "Longer lines are cut here (counted in lines_truncated_total); a line must fit in one Kafka message",
    default: "512KiB",
    min: 64,
  }),
  range_bytes: f.size({
    description:
      "Compressed bytes read per range; the offset is committed after each, so a crash re-sends at most this much",
    default: "4MiB",
    min: 1,
  }),
  hold_member_bytes: f.size({
    description:
      "A gzip member's lines are held until its CRC checks out, up to this many decoded bytes (a longer member cut by a range end is partly sent twice)",
    default: "16MiB",
    min: 0,
  }),
  completion_topic: f.string({
    description:
      "Where a completion event (blob, start/end offset, lines, bytes) goes after each pass; empty: none",
    default: "",
    allowEmpty: true,
  }),
  storage_account: f.optional(azureStorageSpec),
  subscription: f.string({
    description: "Subscription (else SUBSCRIPTION_ID)",
    default: "",
    allowEmpty: true,
  }),
  environment: f.string({
    description: "Environment (else ENVIRONMENT)",
    default: "",
    allowEmpty: true,
  }),
  container: f.string({
    description: "Container (else AZURE_STORAGE_CONTAINER_NAME)",
    default: "",
    allowEmpty: true,
  }),
  blob: f.string({
    description: "Blob name (else AZURE_STORAGE_BLOB_NAME)",
    default: "",
    allowEmpty: true,
  }),
  start_offset: f.int({
    description:
      "Byte offset to start from, a member boundary (else START_OFFSET, else the committed offset, else 0); -1: not set",
    default: -1,
    min: -1,
  }),
  environments: f.list(ingestEnvironmentSpec, {
    description:
      "Storage credentials per subscription/environment (else storage_account, else AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN)",
    default: [],
  }),
  worker: f.bool({
    description:
      "Run as a long-running worker on the monitor's events (events_topic) in the consumer group group_id",
    default: false,
  }),
  events_topic: f.string({
    description: "Topic of the monitor's blob events",
    default: "Ingestion.Blobs",
  }),
  group_id: f.string({
    description: "Consumer group of the workers",
    default: "edge-agent-ingest",
  }),
  blobs_in_parallel: f.int({
    description: "Worker mode: blobs ingested at the same time",
    default: 4,
    min: 1,
    max: 256,
  }),
  offsets_topic: f.string({
    description:
      "Compacted topic holding blob offsets, shared by all workers (created if missing); empty: state_file",
    default: "",
    allowEmpty: true,
  }),
  state_file: f.string({
    description: "Blob offsets when offsets_topic is empty (relative to the config file)",
    default: "/var/lib/edge-agent/ingest-offsets.json",
  }),
}, { description: "Mode ingest: Azure append blobs → lines in Kafka, resumable by byte offset" });

type IngestConfig = Infer<typeof ingestSpec>;

/** A blob's committed offset, as stored. */
export interface BlobOffset {
  offset: number;
  /** When it was committed (ISO 8601). */
  updated: string;
  /** A BlobClosed was handled: the blob was read to its end. */
  closed?: boolean;
}

/** Where blob offsets live: a compacted topic or a state file. */
interface OffsetStore {
  /** Catch up with other writers (a no-op for a file). */
  sync(): Promise<void>;
  get(id: string): BlobOffset | undefined;
  /** Durable once resolved. */
  put(id: string, v: BlobOffset): Promise<void>;
  close(): Promise<void>;
}

/** How long an untouched blob offset is kept: the offsets topic's retention.ms, the file's pruning. */
const OFFSET_RETENTION_MS = 7 * 24 * 3600_000;

async function openOffsets(c: IngestConfig, configDir: string, log: Logger): Promise<OffsetStore> {
  if (c.offsets_topic) {
    const store = await CompactedTopicStore.open<BlobOffset>(c.kafka, c.offsets_topic, {
      log,
      retentionMs: OFFSET_RETENTION_MS,
    });
    return {
      sync: () => store.sync(),
      get: (id) => store.get(id),
      put: (id, v) => store.put(id, v),
      close: () => store.close(),
    };
  }
  const file = new CheckpointStore(resolve(configDir, c.state_file), { flushInterval: 0, log });
  await file.load();
  const blobs = file.get<Record<string, BlobOffset>>("blobs") ?? {};
  // Closed blobs untouched for a week are forgotten (the topic store expires them the same way).
  const expired = Date.now() - OFFSET_RETENTION_MS;
  for (const [id, v] of Object.entries(blobs)) {
    if (v.closed && Date.parse(v.updated) < expired) delete blobs[id];
  }
  return {
    sync: () => Promise.resolve(),
    get: (id) => blobs[id],
    put: async (id, v) => {
      blobs[id] = v;
      file.set("blobs", blobs);
      await file.flush();
    },
    close: () => file.close(),
  };
}

/** One pass's request. */
interface PassRequest {
  storage: AzureStorage;
  container: string;
  blob: string;
  subscription: string;
  environment: string;
  /** Start here instead of the committed offset. */
  start?: number;
  /** The blob was announced closed: this is its last pass. */
  closing?: boolean;
}

/** What a pass did. */
interface PassResult {
  ok: boolean;
  start: number;
  end: number;
  lines: number;
}

/** Runs passes: AppendBlobSource → runPipeline → KafkaSink, offsets in the store. */
class BlobIngestor {
  readonly #c: IngestConfig;
  readonly #sink: Sink<KafkaMessage>;
  readonly #events: KafkaSink;
  readonly #offsets: OffsetStore;
  readonly #ctx: { metrics: Registry; log: Logger; health: Health; signal: AbortSignal };
  readonly #containers = new Map<string, Promise<AzureBlobContainer>>();
  readonly #m;

  constructor(
    c: IngestConfig,
    sink: KafkaSink,
    offsets: OffsetStore,
    ctx: { metrics: Registry; log: Logger; health: Health; signal: AbortSignal },
  ) {
    this.#c = c;
    this.#events = sink;
    // The pipeline closes its sink when a pass ends; this one outlives passes.
    this.#sink = { kind: sink.kind, write: (b, s) => sink.write(b, s), close: async () => {} };
    this.#offsets = offsets;
    this.#ctx = ctx;
    const m = ctx.metrics;
    this.#m = {
      passes: m.counter("ingest_passes_total", "Blob passes, by outcome", ["outcome"]),
      corrupt: m.counter(
        "ingest_corrupt_bytes_total",
        "Bytes of corrupt gzip members skipped (logged with blob and offset)",
      ),
      tail: m.counter(
        "ingest_incomplete_tail_bytes_total",
        "Bytes of an incomplete last member left in a blob announced closed (logged)",
      ),
      missing: m.counter("ingest_missing_blobs_total", "Passes over blobs that no longer exist"),
    };
  }

  #container(storage: AzureStorage, name: string): Promise<AzureBlobContainer> {
    const key = JSON.stringify([storage, name]);
    let c = this.#containers.get(key);
    if (!c) {
      c = AzureBlobContainer.open(storage, name);
      c.catch(() => this.#containers.delete(key));
      this.#containers.set(key, c);
    }
    return c;
  }

  /** One pass over a blob: from the committed offset to the end of its last complete member. */
  async pass(p: PassRequest): Promise<PassResult> {
    const c = this.#c;
    const { log, signal } = this.#ctx;
    const id = `${p.subscription}/${p.environment}/${p.container}/${p.blob}`;
    await this.#offsets.sync();
    const start = p.start ?? this.#offsets.get(id)?.offset ?? 0;
    const container = await this.#container(p.storage, p.container);
    const info = await container.properties(p.blob, signal);
    if (!info) {
      this.#m.missing.inc();
      log.error("blob does not exist: nothing ingested", { blob: `${container.url}/${p.blob}` });
      return { ok: true, start, end: start, lines: 0 };
    }
    const name = parseBlobName(p.blob);
    const attributes = {
      subscription: p.subscription,
      environment: p.environment,
      blob: p.blob,
      service: name.service,
    };
    const source = new AppendBlobSource(container, p.blob, {
      start,
      end: info.size,
      rangeBytes: c.range_bytes,
      attributes,
      commit: (r) =>
        this.#offsets.put(id, {
          offset: r.end,
          updated: new Date().toISOString(),
        }),
      onCorrupt: ({ offset, skipped, error }) => {
        this.#m.corrupt.inc(skipped);
        log.error("corrupt gzip member skipped", {
          blob: `${container.url}/${p.blob}`,
          offset,
          skipped_bytes: skipped,
          error: error.message,
        });
      },
    });
    const key = Buffer.from(p.blob);
    await runPipeline<KafkaMessage>({
      source,
      sink: this.#sink,
      ...this.#ctx,
      processing: { worker_count: 2, max_line_bytes: c.max_line_bytes },
      batch: {
        batch_lines: c.batch_lines,
        batch_bytes: c.batch_bytes,
        flush_interval: c.flush_interval,
        workers: c.workers,
      },
      decode: { allowTruncatedTail: true, holdMemberBytes: c.hold_member_bytes },
      sizeOf: kafkaMessageSize,
      frame: (unit, decoder) => {
        const lines = new LineStream({ maxLineBytes: c.max_line_bytes });
        // Headers are shared by the messages of one member: those of the unit, and the offset
        // of the member each line was decoded from (re-reading from there yields it again).
        const { start_offset, ...fixed } = unit.attributes ?? {};
        const base = Number(start_offset ?? 0);
        const shared: Record<string, Uint8Array> = {};
        for (const [k, v] of Object.entries(fixed)) shared[k] = Buffer.from(v);
        let member = -1;
        let headers = shared;
        const messages = (values: Uint8Array[], at: number): KafkaMessage[] => {
          if (at !== member) {
            member = at;
            headers = { ...shared, member_offset: Buffer.from(String(base + at)) };
          }
          const h = headers;
          return values.map((value) => ({ key, value, headers: h }));
        };
        return new TransformStream<Uint8Array, KafkaMessage[]>({
          transform: (chunk, ctrl) => {
            const out = lines.split(chunk);
            if (out.length) ctrl.enqueue(messages(out, decoder.memberOffset(chunk)));
          },
          flush: (ctrl) => {
            const out = lines.end();
            if (out.length) ctrl.enqueue(messages(out, member < 0 ? 0 : member));
          },
        });
      },
    });
    const pr = source.progress;
    const ok = pr.failure === undefined && !(signal.aborted && pr.committed < pr.size);
    this.#m.passes.inc(1, { outcome: ok ? "ok" : "failed" });
    let closed = false;
    if (ok && p.closing) {
      closed = true;
      const tail = pr.size - pr.committed;
      if (tail > 0) {
        this.#m.tail.inc(tail);
        log.error("blob closed with an incomplete last member: its bytes are not ingested", {
          blob: `${container.url}/${p.blob}`,
          offset: pr.committed,
          bytes: tail,
        });
      }
      await this.#offsets.put(id, {
        offset: pr.committed,
        updated: new Date().toISOString(),
        closed: true,
      });
    }
    const fields = {
      blob: `${container.url}/${p.blob}`,
      start_offset: start,
      end_offset: pr.committed,
      size: pr.size,
      lines: pr.lines,
    };
    if (!ok) {
      log.error("ingest pass failed: the rest is read again next time", {
        ...fields,
        error: errorChain(pr.failure ?? signal.reason),
      });
    } else log.info("ingest pass finished", fields);
    if (ok && c.completion_topic) {
      await this.#events.send(c.completion_topic, [{
        key: p.blob,
        value: JSON.stringify({
          type: "BlobIngested",
          ...attributes,
          container: p.container,
          start_offset: start,
          end_offset: pr.committed,
          size: pr.size,
          lines: pr.lines,
          // Blob bytes ingested; message_bytes: what went to Kafka (lines, key, headers).
          bytes: pr.committed - start,
          message_bytes: pr.bytes,
          skipped_bytes: pr.skipped,
          closed,
          at: new Date().toISOString(),
        }),
      }]);
    }
    return { ok, start, end: pr.committed, lines: pr.lines };
  }

  /** Credentials for a subscription/environment: the entry, else storage_account, else env. */
  storageFor(subscription: string, environment: string): AzureStorage | undefined {
    return this.#c.environments.find((e) =>
      e.subscription === subscription && e.environment === environment
    )?.storage_account ?? this.#c.storage_account ?? azureStorageFromEnv();
  }
}

/** Mode `ingest`. */
export const ingestMode = defineMode({
  name: "ingest",
  summary: "Azure append blobs → their lines in Kafka, resumable by byte offset",
  spec: ingestSpec,
  usage: `Subcommand: edge-agent ingest test-kafka [BROKERS]   check that Kafka answers, then exit

One-shot environment variables (the reference's): SUBSCRIPTION_ID, ENVIRONMENT,
AZURE_STORAGE_CONTAINER_NAME, AZURE_STORAGE_BLOB_NAME, KAFKA_BROKERS, KAFKA_TOPIC, START_OFFSET;
credentials: AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or
AZURE_STORAGE_SAS_TOKEN.`,
  cliTool: (args) => args[0] === "test-kafka",
  flags: {
    blob: { key: "blob", description: "Blob name" },
    container: { key: "container", description: "Container" },
    subscription: { key: "subscription", description: "Subscription" },
    environment: { key: "environment", description: "Environment" },
    "start-offset": { key: "start_offset", description: "Byte offset to start from" },
    brokers: { key: "kafka.brokers", description: "Kafka brokers, comma-separated", list: true },
    topic: { key: "kafka.topic", description: "Output topic" },
    worker: { key: "worker", description: "Consume the monitor's events", boolean: true },
  },
  async run({ config, args, configDir, metrics, log, health, signal, stdout }) {
    const env = (k: string) => Deno.env.get(k) ?? "";
    const defaults = ingestSpec.shape.kafka.shape;
    const envBrokers = env("KAFKA_BROKERS").split(",").map((s) => s.trim()).filter(Boolean);
    const kafka: KafkaConfig = {
      ...config.kafka,
      brokers: envBrokers.length &&
          config.kafka.brokers.join(",") === (defaults.brokers.rawDefault as string[]).join(",")
        ? envBrokers
        : config.kafka.brokers,
      topic: env("KAFKA_TOPIC") && config.kafka.topic === defaults.topic.rawDefault
        ? env("KAFKA_TOPIC")
        : config.kafka.topic,
    };
    if (args[0] === "test-kafka") {
      const brokers = args[1]?.split(",").map((s) => s.trim()).filter(Boolean) ?? kafka.brokers;
      await stdout.getWriter().write(
        new TextEncoder().encode(await testKafka({ ...kafka, brokers }) + "\n"),
      );
      return 0;
    }
    if (args.length > 0) {
      throw new Error(`unknown ingest subcommand ${args[0]}: the only one is test-kafka`);
    }
    const c = { ...config, kafka };
    // Fail fast: Kafka must answer before anything is downloaded.
    log.info("checking Kafka connectivity", { brokers: kafka.brokers.join(",") });
    const sink = await KafkaSink.connect(kafka, { log, metrics });
    health.set("kafka", true);
    let offsets: OffsetStore | undefined;
    try {
      offsets = await openOffsets(c, configDir, log);
      const ingestor = new BlobIngestor(c, sink, offsets, { metrics, log, health, signal });
      if (c.worker) {
        if (!c.offsets_topic) {
          log.warn(
            "worker keeps blob offsets in a local state file: with more than one worker, set offsets_topic so a blob's offset follows it on a rebalance",
            { state_file: c.state_file },
          );
        }
        return await runWorker(c, ingestor, { metrics, log, signal });
      }
      return await runOnce(c, ingestor, env);
    } finally {
      await offsets?.close();
      await sink.close();
    }
  },
});

/** How long `test-kafka` waits for a broker to answer, as the reference did. */
const TEST_KAFKA_TIMEOUT_MS = 5_000;

/**
 * The reference's `test-kafka`: connect, describe the cluster, report. Gives up after 5 s, also
 * when a port accepts the connection but never answers.
 */
async function testKafka(kafka: KafkaConfig): Promise<string> {
  const client = new KafkaClient({
    ...kafka,
    connection_timeout: Math.min(kafka.connection_timeout, TEST_KAFKA_TIMEOUT_MS),
    request_timeout: Math.min(kafka.request_timeout, TEST_KAFKA_TIMEOUT_MS),
  }, { retries: 0 });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const cluster = await Promise.race([
      client.cluster(),
      new Promise<never>((_, reject) =>
        timer = setTimeout(
          () => reject(new Error(`no answer within ${TEST_KAFKA_TIMEOUT_MS / 1000}s`)),
          TEST_KAFKA_TIMEOUT_MS,
        )
      ),
    ]);
    return `kafka ok: ${
      kafka.brokers.join(",")
    } (cluster ${cluster.id}, ${cluster.brokers.length} broker(s): ${cluster.brokers.join(", ")})`;
  } catch (e) {
    throw new Error(
      `Kafka connectivity check failed for ${kafka.brokers.join(",")}: ${errorChain(e)}`,
      { cause: e },
    );
  } finally {
    clearTimeout(timer);
    await client.close();
  }
}

/** One pass over the blob the config or the reference's environment variables name. */
async function runOnce(
  c: IngestConfig,
  ingestor: BlobIngestor,
  env: (k: string) => string,
): Promise<number> {
  const subscription = c.subscription || env("SUBSCRIPTION_ID");
  const environment = c.environment || env("ENVIRONMENT");
  const container = c.container || env("AZURE_STORAGE_CONTAINER_NAME");
  const blob = c.blob || env("AZURE_STORAGE_BLOB_NAME");
  if (!container || !blob) {
    throw new Error(
      "ingest needs a container and a blob: set ingest.container and ingest.blob (or AZURE_STORAGE_CONTAINER_NAME and AZURE_STORAGE_BLOB_NAME), or run with worker: true",
    );
  }
  const storage = ingestor.storageFor(subscription, environment);
  if (!storage) {
    throw new Error(
      `no storage credentials for ${subscription || "?"}/${
        environment || "?"
      }: add an ingest.environments entry, or set ingest.storage_account, or AZURE_STORAGE_CONNECTION_STRING`,
    );
  }
  let start: number | undefined = c.start_offset >= 0 ? c.start_offset : undefined;
  if (start === undefined && env("START_OFFSET") !== "") {
    start = Number(env("START_OFFSET"));
    if (!Number.isInteger(start) || start < 0) {
      throw new Error(
        `START_OFFSET must be a byte offset (an integer ≥ 0): got ${env("START_OFFSET")}`,
      );
    }
  }
  const r = await ingestor.pass({
    storage,
    container,
    blob,
    subscription,
    environment,
    ...(start !== undefined && { start }),
  });
  return r.ok ? 0 : 1;
}

/** A monitor event, as far as ingest reads it. */
interface BlobEvent {
  type: string;
  name: string;
  container: string;
  subscription: string;
  environment: string;
}

function parseEvent(value: Uint8Array): BlobEvent | string {
  let e: unknown;
  try {
    e = JSON.parse(new TextDecoder().decode(value));
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
  if (e === null || typeof e !== "object") return "not a JSON object";
  const o = e as Record<string, unknown>;
  for (const k of ["type", "name", "container", "subscription", "environment"]) {
    if (typeof o[k] !== "string") return `field ${k} missing or not a string`;
  }
  return o as unknown as BlobEvent;
}

/**
 * The worker: the monitor's events from a consumer group, one pass per BlobObserved/BlobClosed,
 * blobs in parallel, one blob's events in order. An event is acked (its offset committed) after
 * its pass; a failed pass nacks it, so it is fetched again after a backoff.
 */
async function runWorker(
  c: IngestConfig,
  ingestor: BlobIngestor,
  { metrics, log, signal }: { metrics: Registry; log: Logger; signal: AbortSignal },
): Promise<number> {
  const { topic: _, compression: _c, idempotent: _i, retry: _r, ...connection } = c.kafka;
  const events = await KafkaSource.connect({
    ...parseValue(kafkaSourceSpec, { topics: [c.events_topic], group_id: c.group_id }),
    ...connection,
    partitions_in_parallel: c.blobs_in_parallel,
  }, { log, metrics });
  const counted = metrics.counter("ingest_events_total", "Blob events handled, by type", ["type"]);
  const invalid = metrics.counter(
    "ingest_events_invalid_total",
    "Events that are not blob events (logged with their offset, then skipped)",
  );
  const lanes = new Map<string, Promise<void>>();
  const running = new Set<Promise<void>>();
  const done = { lines: 0, bytes: 0, consumed: 0, truncated: 0 };
  try {
    for await (const unit of events.units(signal)) {
      const e = parseEvent(unit.value);
      if (typeof e === "string") {
        invalid.inc();
        log.error("blob event skipped", { unit: unit.id, reason: e });
        await unit.ack(done);
        continue;
      }
      counted.inc(1, { type: e.type });
      if (e.type !== "BlobObserved" && e.type !== "BlobClosed") {
        await unit.ack(done);
        continue;
      }
      const storage = ingestor.storageFor(e.subscription, e.environment);
      if (!storage) {
        invalid.inc();
        log.error("blob event skipped: no storage credentials for its environment", {
          unit: unit.id,
          subscription: e.subscription,
          environment: e.environment,
          blob: e.name,
        });
        await unit.ack(done);
        continue;
      }
      const lane = `${e.subscription}/${e.environment}/${e.container}/${e.name}`;
      const job: Promise<void> = (lanes.get(lane) ?? Promise.resolve()).then(async () => {
        try {
          const r = await ingestor.pass({
            storage,
            container: e.container,
            blob: e.name,
            subscription: e.subscription,
            environment: e.environment,
            closing: e.type === "BlobClosed",
          });
          if (r.ok) await unit.ack({ ...done, lines: r.lines, consumed: r.end - r.start });
          else await unit.nack(new Error(`pass over ${e.name} did not finish`));
        } catch (err) {
          log.error("ingest pass failed: the event will be handled again", {
            unit: unit.id,
            blob: e.name,
            error: errorChain(err),
          });
          await unit.nack(err instanceof Error ? err : new Error(String(err)));
        }
      });
      lanes.set(lane, job);
      running.add(job);
      job.finally(() => {
        running.delete(job);
        if (lanes.get(lane) === job) lanes.delete(lane);
      });
      while (running.size >= c.blobs_in_parallel) await Promise.race(running);
    }
    await Promise.all(running);
  } finally {
    await events.close();
  }
  return 0;
}
