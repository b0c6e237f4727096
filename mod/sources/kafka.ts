/**
 * Kafka connection settings and client, shared by every mode that reads or writes Kafka
 * (`tail`, and the blob and database pipelines). kafkajs is loaded only when a client is made.
 * @module
 */

import type { Kafka } from "kafkajs";
import { f, type Infer } from "../config/spec.ts";

/** Fields of a Kafka connection (spread into a component's spec). */
export const kafkaFields = {
  brokers: f.list(f.string({ description: "host:port", pattern: /^[^\s:]+:\d+$/ }), {
    description: "Bootstrap brokers",
    default: ["127.0.0.1:9092"],
    minItems: 1,
  }),
  client_id: f.string({ description: "Kafka client id", default: "edge-agent" }),
  ssl: f.bool({ description: "TLS to the brokers", default: false }),
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
};

/** A Kafka connection's settings. */
export type KafkaConnection = { [K in keyof typeof kafkaFields]: Infer<(typeof kafkaFields)[K]> };

/** A kafkajs client for `c` (kafkajs' own logging off: errors reach our logger). */
export async function kafkaClient(c: KafkaConnection): Promise<Kafka> {
  const { Kafka, logLevel } = await import("kafkajs");
  return new Kafka({
    clientId: c.client_id,
    brokers: c.brokers,
    ssl: c.ssl,
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
