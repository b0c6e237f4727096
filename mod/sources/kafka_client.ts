/**
 * A Kafka connection: its config fields and a kafkajs client, shared by the Kafka source, the
 * Kafka sink, the compacted-topic store and `tail`. kafkajs is loaded only when a client is made
 * (it reads NODE_ENV at import, so that needs env permission).
 *
 * @example
 * ```ts
 * const kafka = await kafkaClient(parseValue(f.object(kafkaConnectionFields, { description: "" }), {
 *   brokers: "127.0.0.1:9092",
 * }));
 * const admin = kafka.admin();
 * ```
 * @module
 */

import type { Kafka } from "kafkajs";
import { f, type Field, type Infer } from "../config/spec.ts";
import { patchKafkajsVarints } from "../sinks/kafkajs_varint.ts";

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

/** Options for {@link kafkaClient}. */
export interface KafkaClientOptions {
  /** kafkajs' own quick retries of one request before it gives up. @default 3 */
  retries?: number;
}

/**
 * A kafkajs client for `c`. kafkajs' own logging is off: errors reach our logger through the
 * callers, with context. Its varint encoding is replaced by a faster one (kafkajs_varint.ts).
 *
 * @param c the connection settings.
 * @param options kafkajs' internal retries.
 * @returns the client (nothing is connected yet).
 */
export async function kafkaClient(
  c: KafkaConnection,
  { retries = 3 }: KafkaClientOptions = {},
): Promise<Kafka> {
  const { Kafka, logLevel } = await import("kafkajs");
  await patchKafkajsVarints();
  return new Kafka({
    clientId: c.client_id,
    brokers: c.brokers,
    ssl: c.ssl,
    connectionTimeout: c.connection_timeout,
    requestTimeout: c.request_timeout,
    retry: { retries, initialRetryTime: 100, maxRetryTime: 5000 },
    ...(c.sasl && {
      sasl: {
        mechanism: c.sasl.mechanism,
        username: c.sasl.username,
        password: c.sasl.password,
      } as never,
    }),
    logLevel: logLevel.NOTHING,
  });
}

/**
 * Whether a kafkajs error is worth another attempt: connection trouble, timeouts, a leader
 * moving, "retries exceeded" over such a cause. Not: a message too large, an authorization
 * failure (sending again cannot help).
 *
 * @param e what kafkajs threw.
 * @returns true when trying again may succeed.
 */
export function kafkaRetryable(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && typeof cur === "object" && depth < 8; depth++) {
    const err = cur as { name?: string; retriable?: boolean; type?: string; cause?: unknown };
    if (err.name === "AbortError") return false;
    if (
      err.type === "MESSAGE_TOO_LARGE" || err.type === "TOPIC_AUTHORIZATION_FAILED" ||
      err.type === "SASL_AUTHENTICATION_FAILED" || err.type === "INVALID_RECORD" ||
      err.type === "RECORD_LIST_TOO_LARGE"
    ) {
      return false;
    }
    if (err.name === "KafkaJSNumberOfRetriesExceeded") {
      if (!err.cause) return true;
      cur = err.cause;
      continue;
    }
    if (typeof err.retriable === "boolean") return err.retriable;
    return err.name?.startsWith("KafkaJS") ?? false;
  }
  return false;
}
