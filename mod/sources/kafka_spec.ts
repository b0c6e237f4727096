/**
 * The config specs of the Kafka components: a connection (`kafkaConnectionFields`), a consumer
 * group's session (`kafkaGroupFields`), the Kafka source (`kafkaSourceSpec`) and a producer
 * section (`kafkaSpec`). They stand apart from the client (kafka_client.ts), the source
 * (kafka.ts) and the sink (../sinks/kafka.ts), which re-export them, so that declaring a mode's
 * config does not load `@platformatic/kafka`: modes without Kafka (stream, route, generate,
 * receive) start without it (stream's end-to-end bench: 10–17 MB less peak RSS, ~1 CPU s/GB less),
 * and the Kafka modes load it when they run. Same reason as aws_spec.ts.
 * @module
 */

import { f, type Field, type Infer } from "../config/spec.ts";
import { retrySpec } from "../pipeline/retry.ts";

const brokerList = f.list(
  f.string({ description: "host:port", pattern: /^[^\s:,]+:\d+$/ }),
  {
    description: "Bootstrap brokers: a list, or one comma-separated string (the reference's form)",
    default: ["127.0.0.1:9092"],
    minItems: 1,
  },
);

/** `brokers`: a list, or `"host1:9092,host2:9092"` as the reference's config and KAFKA_BROKERS. */
const brokers: Field<string[]> = {
  ...brokerList,
  parse(input, path, ctx) {
    if (typeof input?.value === "string") {
      const value = input.value.split(",").map((s) => s.trim()).filter(Boolean);
      const { interpolated: _, ...rest } = input;
      return brokerList.parse({ ...rest, value }, path, ctx);
    }
    return brokerList.parse(input, path, ctx);
  },
};

/** Fields of a Kafka connection (spread into a component's spec). */
export const kafkaConnectionFields = {
  brokers,
  client_id: f.string({ description: "Kafka client id", default: "edge-agent" }),
  ssl: f.bool({ description: "TLS to the brokers (system CA store)", default: false }),
  sasl: f.optional(f.object({
    mechanism: f.enum(["plain", "scram-sha-256", "scram-sha-512"] as const, {
      description: "SASL mechanism",
      default: "scram-sha-512",
    }),
    username: f.string({ description: "SASL user", example: "edge-agent" }),
    password: f.string({
      description: "SASL password",
      secret: true,
      example: "${KAFKA_PASSWORD:-change-me}",
    }),
  }, { description: "SASL authentication (absent: none)" })),
  connection_timeout: f.duration({
    description: "Time to open a connection to a broker (the reference gave up after 5s)",
    default: "5s",
    min: "100ms",
  }),
  request_timeout: f.duration({
    description: "Time for a broker to answer a request (a produce with acks=all included)",
    default: "30s",
    min: "100ms",
  }),
};

/** A Kafka connection's settings. */
export type KafkaConnection = {
  [K in keyof typeof kafkaConnectionFields]: Infer<(typeof kafkaConnectionFields)[K]>;
};

/**
 * A consumer group member's session settings (spread into a component's spec). The default
 * session of 10 s bounds how long a partition waits after its member was killed with SIGKILL.
 */
export const kafkaGroupFields = {
  session_timeout: f.duration({
    description:
      "A member silent this long is dropped from the group and its partitions move on (after a SIGKILL; a SIGTERM leaves at once). The broker allows 6s to 5m by default",
    default: "10s",
    min: "1s",
  }),
  heartbeat_interval: f.duration({
    description:
      "How often a member tells the group it is alive: at most a third of session_timeout",
    default: "3s",
    min: "100ms",
  }),
};

/** The Kafka source's settings. */
export const kafkaSourceSpec = f.object({
  ...kafkaConnectionFields,
  ...kafkaGroupFields,
  topics: f.list(f.string({ description: "topic" }), {
    description: "Topics to consume",
    minItems: 1,
    example: ["Ingestion.Blobs"],
  }),
  group_id: f.string({
    description: "Consumer group: members share the partitions (add members to scale out)",
    example: "edge-agent",
  }),
  from_beginning: f.bool({
    description: "A group without committed offsets starts at the oldest message (else the newest)",
    default: true,
  }),
  partitions_in_parallel: f.int({
    description: "Partitions whose messages are handed out at the same time",
    default: 1,
    min: 1,
    max: 1024,
  }),
  max_wait: f.duration({
    description: "How long a fetch waits for new messages",
    default: "500ms",
    min: "1ms",
  }),
  initial_backoff: f.duration({
    description: "Wait before fetching a nacked message again (doubles per failure)",
    default: "500ms",
  }),
  max_backoff: f.duration({ description: "Longest wait before a re-fetch", default: "30s" }),
}, { description: "Kafka consumer group source" });

/** The Kafka source's config. */
export type KafkaSourceConfig = Infer<typeof kafkaSourceSpec>;

/** Options of {@link kafkaSpec}. */
export interface KafkaSpecOptions {
  /** The `topic` default. @default "commerce-logs" */
  topic?: string;
  /** The section's description. @default "Kafka producer" */
  description?: string;
}

/**
 * The spec of a Kafka producer section: connection (brokers, client_id, ssl, sasl with the
 * password masked), topic, compression, idempotence and retries.
 *
 * @param options the topic default and the description.
 * @returns an object field.
 */
export function kafkaSpec(
  { topic = "commerce-logs", description = "Kafka producer" }: KafkaSpecOptions = {},
) {
  return f.object({
    ...kafkaConnectionFields,
    topic: f.string({ description: "Topic written to", default: topic }),
    compression: f.enum(["gzip", "none"] as const, {
      description: "Compression of produce requests",
      default: "gzip",
    }),
    idempotent: f.bool({
      description: "Idempotent producer (the broker drops a retried batch it already has)",
      default: true,
    }),
    retry: retrySpec,
  }, { description });
}

/** A Kafka producer section's config. */
export type KafkaConfig = Infer<ReturnType<typeof kafkaSpec>>;
