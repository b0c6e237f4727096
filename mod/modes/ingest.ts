/**
 * Mode `ingest`: Azure append blobs → their lines in Kafka, resumable by byte offset.
 *
 * One pipeline: blob events (a BlobEventSource: the monitor's events from the consumer group
 * `group_id` with `worker: true`, else the one blob the config or the reference's environment
 * variables name) → range units of each blob from its committed offset → gzip members → lines
 * (KafkaLineStream: keyed by the blob, headers `subscription`, `environment`, `blob`, `service`,
 * `member_offset`) → KafkaSink. The source commits each delivered range's offset, acks an event
 * once its pass is done and sends the completion event to `completion_topic`.
 *
 * Blob offsets live in `offsets_topic` (a compacted topic shared by every worker, which worker
 * mode needs: a rebalance moves a blob's events to another host) or in `state_file`.
 * Delivery is at-least-once: a crash re-sends at most two ranges (the one being delivered and
 * the next, read meanwhile).
 * @module
 */

import { resolve } from "node:path";
import { f, type Infer, parseValue } from "../config/spec.ts";
import { errorChain } from "../log/logger.ts";
import { runPipeline } from "../pipeline/run.ts";
import type { KafkaMessage } from "../sinks/kafka.ts";
import { KafkaLineStream } from "../sinks/kafka_line_stream.ts";
import { azureStorageFromEnv, azureStorageSpec, loadAzureSdk } from "../sources/azure_blob.ts";
import { BlobEventSource, oneBlobRequest } from "../sources/blob_event_source.ts";
import {
  type KafkaConfig,
  kafkaGroupFields,
  kafkaSourceSpec,
  kafkaSpec,
} from "../sources/kafka_spec.ts";
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
  ...kafkaGroupFields,
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
    const oneShot = c.worker ? undefined : oneShotRequest(c, env);
    // Fail fast: Kafka must answer before anything is downloaded. The Azure SDK's modules load
    // meanwhile (nothing is requested from Azure before Kafka answered).
    loadAzureSdk().catch(() => {}); // a failure is reported where the SDK is used
    log.info("checking Kafka connectivity", { brokers: kafka.brokers.join(",") });
    // The Kafka client loads with the mode that uses it (kafka_spec.ts says why).
    const [{ KafkaSink, kafkaMessageSize }, { KafkaSource }, { openBlobOffsets }] = await Promise
      .all([
        import("../sinks/kafka.ts"),
        import("../sources/kafka.ts"),
        import("../sources/blob_offsets.ts"),
      ]);
    const sink = await KafkaSink.connect(kafka, { log, metrics });
    health.set("kafka", true);
    const offsets = await openBlobOffsets({
      topic: c.offsets_topic,
      kafka,
      stateFile: resolve(configDir, c.state_file),
      log,
    }).catch(async (e) => {
      await sink.close();
      throw e;
    });
    try {
      if (c.worker && !c.offsets_topic) {
        log.warn(
          "worker keeps blob offsets in a local state file: with more than one worker, set offsets_topic so a blob's offset follows it on a rebalance",
          { state_file: c.state_file },
        );
      }
      const events = oneShot ?? await KafkaSource.connect({
        ...parseValue(kafkaSourceSpec, { topics: [c.events_topic], group_id: c.group_id }),
        ...kafkaConnection(kafka),
        session_timeout: c.session_timeout,
        heartbeat_interval: c.heartbeat_interval,
        partitions_in_parallel: c.blobs_in_parallel,
      }, { log, metrics });
      const source = new BlobEventSource(events, {
        offsets,
        storageFor: (s, e) => storageFor(c, s, e),
        rangeBytes: c.range_bytes,
        blobsInParallel: c.blobs_in_parallel,
        ...(c.completion_topic && {
          complete: (e) =>
            sink.send(c.completion_topic, [{ key: e.blob, value: JSON.stringify(e) }], signal),
        }),
        log,
        metrics,
      });
      await runPipeline<KafkaMessage>({
        source,
        sink,
        metrics,
        log,
        signal,
        health,
        processing: { worker_count: c.blobs_in_parallel, max_line_bytes: c.max_line_bytes },
        batch: {
          batch_lines: c.batch_lines,
          batch_bytes: c.batch_bytes,
          flush_interval: c.flush_interval,
          workers: c.workers,
        },
        // Append blobs are all gzip: bytes that are not a valid member are skipped to the next
        // member header, counted and logged, never sent.
        decode: {
          allowTruncatedTail: true,
          holdMemberBytes: c.hold_member_bytes,
          resync: true,
          plain: "reject",
        },
        sizeOf: kafkaMessageSize,
        frame: (unit, decoder) =>
          new KafkaLineStream(unit, decoder, { maxLineBytes: c.max_line_bytes }),
      });
      if (oneShot) return (await oneShot.outcome) === "acked" ? 0 : 1;
      return 0;
    } finally {
      await offsets.close();
    }
  },
});

/** The connection fields of a producer section. */
function kafkaConnection(k: KafkaConfig) {
  const { topic: _, compression: _c, idempotent: _i, retry: _r, ...connection } = k;
  return connection;
}

/** Credentials for a subscription/environment: the entry, else storage_account, else env. */
function storageFor(c: IngestConfig, subscription: string, environment: string) {
  return c.environments.find((e) =>
    e.subscription === subscription && e.environment === environment
  )?.storage_account ?? c.storage_account ?? azureStorageFromEnv();
}

/** The one blob the config or the reference's environment variables name. */
function oneShotRequest(c: IngestConfig, env: (k: string) => string) {
  const subscription = c.subscription || env("SUBSCRIPTION_ID");
  const environment = c.environment || env("ENVIRONMENT");
  const container = c.container || env("AZURE_STORAGE_CONTAINER_NAME");
  const name = c.blob || env("AZURE_STORAGE_BLOB_NAME");
  if (!container || !name) {
    throw new Error(
      "ingest needs a container and a blob: set ingest.container and ingest.blob (or AZURE_STORAGE_CONTAINER_NAME and AZURE_STORAGE_BLOB_NAME), or run with worker: true",
    );
  }
  if (!storageFor(c, subscription, environment)) {
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
  return oneBlobRequest({
    subscription,
    environment,
    container,
    name,
    ...(start !== undefined && { start }),
  });
}

/** How long `test-kafka` waits for a broker to answer, as the reference did. */
const TEST_KAFKA_TIMEOUT_MS = 5_000;

/**
 * The reference's `test-kafka`: connect, describe the cluster, report. Gives up after 5 s, also
 * when a port accepts the connection but never answers.
 */
async function testKafka(kafka: KafkaConfig): Promise<string> {
  const { KafkaClient } = await import("../sources/kafka_client.ts");
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
