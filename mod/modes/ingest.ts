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
import { f } from "../config/spec.ts";
import { writeFileAtomic } from "../pipeline/atomic_file.ts";
import { runPipeline } from "../pipeline/run.ts";
import type { Source, Unit } from "../pipeline/types.ts";
import { type KafkaMessage, kafkaMessageSize, KafkaSink, kafkaSinkFields } from "../sinks/kafka.ts";
import { batchSpec } from "../pipeline/run.ts";
import { LineStream } from "../pipeline/line_stream.ts";
import { defineMode } from "./mode.ts";

/** The `ingest:` config section. */
export const ingestSpec = f.object({
  ...kafkaSinkFields,
  ...batchSpec,
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
    const blob = c.blob || env("AZURE_STORAGE_BLOB_NAME");
    const container = c.container || env("AZURE_STORAGE_CONTAINER_NAME");
    const conn = c.connection_string || env("AZURE_STORAGE_CONNECTION_STRING");
    if (!blob || !container || !conn) {
      throw new Error(
        "ingest needs blob, container and connection_string (or AZURE_STORAGE_BLOB_NAME, AZURE_STORAGE_CONTAINER_NAME, AZURE_STORAGE_CONNECTION_STRING)",
      );
    }
    const stateFile = resolve(configDir, c.state_file);
    const offsets: Record<string, number> = await Deno.readTextFile(stateFile)
      .then((t) => JSON.parse(t), (e) => {
        if (e instanceof Deno.errors.NotFound) return {};
        throw new Error(`cannot read state file ${stateFile}`, { cause: e });
      });
    const id = `${container}/${blob}`;
    const start = c.start_offset >= 0
      ? c.start_offset
      : env("START_OFFSET") !== ""
      ? Number(env("START_OFFSET"))
      : offsets[id] ?? 0;
    const attributes = {
      subscription: c.subscription || env("SUBSCRIPTION_ID"),
      environment: c.environment || env("ENVIRONMENT"),
      blob,
      service: serviceOf(blob),
      start_offset: String(start),
    };

    // Fail fast: Kafka is checked before the first download.
    const sink = await KafkaSink.connect(kafkaConfig);
    health.set("kafka", true);
    const { BlobServiceClient } = await import("@azure/storage-blob");
    const client = BlobServiceClient.fromConnectionString(conn).getContainerClient(container)
      .getBlobClient(blob);
    let committed = start;
    const unit: Unit = {
      id: `azure://${id}@${start}`,
      attributes,
      open: async (abortSignal) => {
        const res = await client.download(start, undefined, { abortSignal });
        return Readable.toWeb(res.readableStreamBody as Readable) as ReadableStream<Uint8Array>;
      },
      ack: async (r) => {
        committed = start + r.consumed;
        offsets[id] = committed;
        await writeFileAtomic(stateFile, JSON.stringify(offsets, null, 1) + "\n");
        if (c.completion_topic) {
          await sink.event(c.completion_topic, blob, {
            type: "BlobIngested",
            ...attributes,
            container,
            start_offset: start,
            end_offset: committed,
            lines: r.lines,
            bytes: r.bytes,
          });
        }
      },
      nack: () => Promise.resolve(),
    };
    const source: Source = {
      kind: "azure_blob",
      async *units() {
        yield unit;
      },
    };
    const stats = await runPipeline<KafkaMessage>({
      source,
      sink,
      metrics,
      log,
      health,
      signal,
      batch: c,
      decode: { allowTruncatedTail: true },
      sizeOf: kafkaMessageSize,
      frame: (u) => {
        const lines = new LineStream();
        const headers = { ...u.attributes } as Record<string, string>;
        const toMessages = new TransformStream<Uint8Array[], KafkaMessage[]>({
          transform: (chunk, ctrl) =>
            ctrl.enqueue(chunk.map((value) => ({ key: blob, value, headers }))),
        });
        return { writable: lines.writable, readable: lines.readable.pipeThrough(toMessages) };
      },
    });
    log.info("ingest finished", { blob: id, start_offset: start, end_offset: committed, ...stats });
    return stats.unitsFailed > 0 ? 1 : 0;
  },
});
