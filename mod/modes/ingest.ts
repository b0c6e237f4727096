/**
 * Mode `ingest` (one-shot): read an Azure append blob from a byte offset, decode it gzip member by
 * member, produce each line to Kafka with headers, and once the producer has confirmed every line,
 * commit the new offset = the end of the last complete member. A member still being appended is
 * left for the next pass. The reference's environment variables (SUBSCRIPTION_ID, ENVIRONMENT,
 * AZURE_STORAGE_CONTAINER_NAME, AZURE_STORAGE_BLOB_NAME, KAFKA_BROKERS, KAFKA_TOPIC,
 * START_OFFSET) fill whatever the config leaves empty.
 *
 * Blob byte offsets are kept in a state file (atomically replaced JSON): one worker per blob needs
 * nothing more, and the file survives a broker outage. Sharing offsets across workers (a compacted
 * topic) belongs with the long-running worker mode, which is not built yet.
 * @module
 */

import { resolve } from "node:path";
import { Readable } from "node:stream";
import { f, type Infer } from "../config/spec.ts";
import { writeFileAtomic } from "../pipeline/atomic_file.ts";
import { runPipeline } from "../pipeline/run.ts";
import type { Unit } from "../pipeline/types.ts";
import { type KafkaMessage, kafkaMessageSize, KafkaSink, kafkaSinkFields } from "../sinks/kafka.ts";
import { batchSpec } from "../pipeline/run.ts";
import { LineStream } from "../pipeline/line_stream.ts";
import { kafkaClient } from "../sources/kafka.ts";
import { defineMode, type ModeContext } from "./mode.ts";

/** The `ingest:` config section. */
export const ingestSpec = f.object({
  ...kafkaSinkFields,
  ...batchSpec,
  batch_bytes: f.size({
    description:
      "A batch (one produce request) closes at this size: keep it under the broker's message.max.bytes (1 MiB by default) when compression is none",
    default: "900KiB",
    min: 1,
  }),
  completion_topic: f.string({
    description:
      "Where a completion event (blob, start/end offset, lines, bytes) goes; empty: none",
    default: "",
    allowEmpty: true,
  }),
  connection_string: f.string({
    description: "Azure Storage connection string (else AZURE_STORAGE_CONNECTION_STRING)",
    default: "",
    allowEmpty: true,
    secret: true,
  }),
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
    description: "Byte offset to start from (else START_OFFSET, else the state file, else 0)",
    default: -1,
    min: -1,
  }),
  worker: f.bool({
    description:
      "Run as a long-running worker consuming the monitor's events (events_topic) in a consumer group; add workers to scale out",
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
  environments: f.list(
    f.object({
      subscription: f.string({
        description: "Subscription of the events this entry serves",
        example: "cp2",
      }),
      environment: f.string({
        description: "Environment of the events this entry serves",
        example: "P1",
      }),
      connection_string: f.string({
        description: "Azure Storage connection string for that environment",
        secret: true,
        example: "${AZURE_STORAGE_CONNECTION_STRING:-UseDevelopmentStorage=true}",
      }),
    }, { description: "Storage credentials per environment (worker mode)" }),
    { description: "Storage credentials per subscription/environment (worker mode)", default: [] },
  ),
  state_file: f.string({
    description: "Committed blob offsets (relative to the config file)",
    default: "/var/lib/edge-agent/ingest-offsets.json",
  }),
}, { description: "Mode ingest: an Azure append blob → lines in Kafka, resumable by byte offset" });

/** `kubernetes/20250606.<service>-<pod>_<namespace>_<container>-<id>.gz` → service. */
export function serviceOf(blob: string): string {
  const name = blob.slice(blob.lastIndexOf("/") + 1).replace(/^\d{8}\./, "");
  const pod = name.split("_")[0] ?? name;
  // <service>-<replicaset hash>-<pod hash>: drop the two generated suffixes when present.
  const parts = pod.split("-");
  return parts.length > 2 ? parts.slice(0, -2).join("-") : parts[0] ?? pod;
}

/** What one ingest pass needs. */
interface BlobPass {
  connection: string;
  container: string;
  blob: string;
  subscription: string;
  environment: string;
  /** Where to start; undefined: the committed offset (or 0). */
  start?: number;
}

/**
 * Ingests blobs pass by pass: each pass reads from the committed offset to the end of the last
 * complete member, produces the lines, then commits (state file) and announces completion.
 */
class BlobIngestor {
  constructor(
    readonly c: Infer<typeof ingestSpec>,
    readonly sink: KafkaSink,
    readonly stateFile: string,
    readonly offsets: Record<string, number>,
    readonly ctx: Pick<ModeContext<unknown>, "metrics" | "log" | "health" | "signal">,
  ) {}

  static async open(
    c: Infer<typeof ingestSpec>,
    sink: KafkaSink,
    stateFile: string,
    ctx: Pick<ModeContext<unknown>, "metrics" | "log" | "health" | "signal">,
  ): Promise<BlobIngestor> {
    const offsets = await Deno.readTextFile(stateFile).then((t) => JSON.parse(t), (e) => {
      if (e instanceof Deno.errors.NotFound) return {};
      throw new Error(`cannot read state file ${stateFile}`, { cause: e });
    });
    return new BlobIngestor(c, sink, stateFile, offsets, ctx);
  }

  /** One pass; returns whether all of it was delivered and committed. */
  async pass(p: BlobPass): Promise<{ ok: boolean; start: number; end: number; lines: number }> {
    const { c, sink, offsets } = this;
    const id = `${p.container}/${p.blob}`;
    const start = p.start ?? offsets[id] ?? 0;
    const attributes = {
      subscription: p.subscription,
      environment: p.environment,
      blob: p.blob,
      service: serviceOf(p.blob),
      start_offset: String(start),
    };
    const { BlobServiceClient } = await import("@azure/storage-blob");
    const client = BlobServiceClient.fromConnectionString(p.connection)
      .getContainerClient(p.container).getBlobClient(p.blob);
    let committed = start;
    let lines = 0;
    const unit: Unit = {
      id: `azure://${id}@${start}`,
      attributes,
      open: async (abortSignal) => {
        const res = await client.download(start, undefined, { abortSignal });
        return Readable.toWeb(res.readableStreamBody as Readable) as ReadableStream<Uint8Array>;
      },
      ack: async (r) => {
        committed = start + r.consumed;
        lines = r.lines;
        offsets[id] = committed;
        await writeFileAtomic(this.stateFile, JSON.stringify(offsets, null, 1) + "\n");
        if (c.completion_topic) {
          await sink.event(c.completion_topic, p.blob, {
            type: "BlobIngested",
            ...attributes,
            container: p.container,
            start_offset: start,
            end_offset: committed,
            lines: r.lines,
            bytes: r.bytes,
          });
        }
      },
      nack: () => Promise.resolve(),
    };
    // The sink stays open across passes: the pipeline's close must not end it.
    const shared = {
      kind: sink.kind,
      write: sink.write.bind(sink),
      close: () => Promise.resolve(),
    };
    const stats = await runPipeline<KafkaMessage>({
      source: {
        kind: "azure_blob",
        units: async function* () {
          yield unit;
        },
      },
      sink: shared,
      ...this.ctx,
      batch: c,
      decode: { allowTruncatedTail: true },
      sizeOf: kafkaMessageSize,
      frame: (u) => {
        const framer = new LineStream();
        const headers = { ...u.attributes } as Record<string, string>;
        const toMessages = new TransformStream<Uint8Array[], KafkaMessage[]>({
          transform: (chunk, ctrl) =>
            ctrl.enqueue(chunk.map((value) => ({ key: p.blob, value, headers }))),
        });
        return { writable: framer.writable, readable: framer.readable.pipeThrough(toMessages) };
      },
    });
    this.ctx.log.info("ingest pass finished", {
      blob: id,
      start_offset: start,
      end_offset: committed,
      lines,
    });
    return { ok: stats.unitsFailed === 0, start, end: committed, lines };
  }
}

/** Mode `ingest`. */
export const ingestMode = defineMode({
  name: "ingest",
  summary: "Blob events → blob lines in Kafka, resumable by byte offset",
  spec: ingestSpec,
  usage: `Subcommand: edge-agent ingest test-kafka [BROKERS]   check that Kafka answers, then exit`,
  flags: {
    blob: { key: "blob", description: "Blob name" },
    container: { key: "container", description: "Container" },
    "start-offset": { key: "start_offset", description: "Byte offset to start from" },
    brokers: { key: "brokers", description: "Kafka brokers, comma-separated", list: true },
    topic: { key: "topic", description: "Output topic" },
    worker: { key: "worker", description: "Consume the monitor's events", boolean: true },
  },
  async run({ config: c, args, configDir, metrics, log, health, signal, stdout }) {
    const env = (k: string) => Deno.env.get(k) ?? "";
    const brokers = env("KAFKA_BROKERS") && c.brokers.join(",") === "127.0.0.1:9092"
      ? env("KAFKA_BROKERS").split(",")
      : c.brokers;
    const kafkaConfig = { ...c, brokers, topic: env("KAFKA_TOPIC") || c.topic };
    if (args[0] === "test-kafka") {
      const sink = await KafkaSink.connect({
        ...kafkaConfig,
        brokers: args[1]?.split(",") ?? brokers,
      });
      await sink.close();
      await stdout.getWriter().write(
        new TextEncoder().encode(`kafka ok: ${(args[1] ?? brokers.join(","))}\n`),
      );
      return 0;
    }
    // Fail fast: Kafka is checked before the first download.
    const sink = await KafkaSink.connect(kafkaConfig);
    health.set("kafka", true);
    const ingestor = await BlobIngestor.open(c, sink, resolve(configDir, c.state_file), {
      metrics,
      log,
      health,
      signal,
    });
    try {
      if (c.worker) return await runWorker(c, ingestor, kafkaConfig, signal);
      const blob = c.blob || env("AZURE_STORAGE_BLOB_NAME");
      const container = c.container || env("AZURE_STORAGE_CONTAINER_NAME");
      const connection = c.connection_string || env("AZURE_STORAGE_CONNECTION_STRING");
      if (!blob || !container || !connection) {
        throw new Error(
          "ingest needs blob, container and connection_string (or AZURE_STORAGE_BLOB_NAME, AZURE_STORAGE_CONTAINER_NAME, AZURE_STORAGE_CONNECTION_STRING)",
        );
      }
      const start = c.start_offset >= 0
        ? c.start_offset
        : env("START_OFFSET") !== ""
        ? Number(env("START_OFFSET"))
        : undefined;
      const r = await ingestor.pass({
        connection,
        container,
        blob,
        subscription: c.subscription || env("SUBSCRIPTION_ID"),
        environment: c.environment || env("ENVIRONMENT"),
        ...(start !== undefined && { start }),
      });
      return r.ok ? 0 : 1;
    } finally {
      await sink.close();
    }
  },
});

/**
 * The worker: the monitor's events in a consumer group. BlobObserved → a pass from the committed
 * offset; BlobClosed → a last pass. The event's Kafka offset is committed only after its pass
 * (kafkajs commits after eachMessage returns): a crash replays the event, never skips it.
 */
async function runWorker(
  c: Infer<typeof ingestSpec>,
  ingestor: BlobIngestor,
  kafkaConfig: Infer<typeof ingestSpec>,
  signal: AbortSignal,
): Promise<number> {
  const kafka = await kafkaClient(kafkaConfig);
  const consumer = kafka.consumer({ groupId: c.group_id });
  await consumer.connect();
  await consumer.subscribe({ topic: c.events_topic, fromBeginning: true });
  const creds = (sub: string, envName: string) =>
    c.environments.find((e) => e.subscription === sub && e.environment === envName)
      ?.connection_string || c.connection_string || Deno.env.get("AZURE_STORAGE_CONNECTION_STRING");
  const failed = ingestor.ctx.metrics.counter(
    "ingest_events_failed_total",
    "Blob events whose pass failed (left uncommitted for a retry)",
  );
  await consumer.run({
    eachMessage: async ({ message }) => {
      let e: Record<string, string>;
      try {
        e = JSON.parse(message.value?.toString() ?? "");
      } catch {
        ingestor.ctx.log.error("blob event is not JSON: skipped", { offset: message.offset });
        return;
      }
      if (e.type !== "BlobObserved" && e.type !== "BlobClosed") return;
      const connection = creds(e.subscription ?? "", e.environment ?? "");
      if (!connection) {
        ingestor.ctx.log.error("no storage credentials for the event's environment: skipped", {
          subscription: e.subscription,
          environment: e.environment,
          blob: e.name,
        });
        return;
      }
      const r = await ingestor.pass({
        connection,
        container: e.container ?? "",
        blob: e.name ?? "",
        subscription: e.subscription ?? "",
        environment: e.environment ?? "",
      });
      if (!r.ok) {
        failed.inc();
        throw new Error(`ingest of ${e.name} failed: the event will be retried`);
      }
    },
  });
  await new Promise<void>((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
  await consumer.disconnect();
  return 0;
}
