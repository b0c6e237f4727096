/**
 * The `kafka` sink: each batch is one produce request (acks=all, idempotent producer, gzip or no
 * compression) of keyed messages with headers. kafkajs retries inside; when it gives up the batch
 * fails with a retryable {@link SinkError} and its units are not checkpointed.
 * @module
 */

import type { Producer } from "kafkajs";
import { Buffer } from "node:buffer";
import { f, type Infer } from "../config/spec.ts";
import { errorChain } from "../log/logger.ts";
import { type Batch, type Sink, SinkError } from "../pipeline/types.ts";
import { kafkaClient, kafkaFields } from "../sources/kafka.ts";

/** One message to produce. */
export interface KafkaMessage {
  key?: string;
  value: Uint8Array;
  headers?: Record<string, string>;
}

/** The Kafka sink's settings (spread into a mode's spec). */
export const kafkaSinkFields = {
  ...kafkaFields,
  topic: f.string({ description: "Topic written to", default: "commerce-logs" }),
  compression: f.enum(["gzip", "none"] as const, {
    description: "Compression of produce requests",
    default: "gzip",
  }),
};

/** The Kafka sink's config. */
export type KafkaSinkConfig = {
  [K in keyof typeof kafkaSinkFields]: Infer<(typeof kafkaSinkFields)[K]>;
};

/** The encoded size of a message, for batch_bytes. */
export function kafkaMessageSize(m: KafkaMessage): number {
  return m.value.byteLength + (m.key?.length ?? 0) + 16;
}

/** Produces batches to one topic. */
export class KafkaSink implements Sink<KafkaMessage> {
  readonly kind = "kafka";
  readonly #producer: Producer;
  readonly #c: KafkaSinkConfig;
  readonly #gzip: number;

  private constructor(producer: Producer, c: KafkaSinkConfig, gzip: number) {
    this.#producer = producer;
    this.#c = c;
    this.#gzip = gzip;
  }

  /** Connect a producer (fails fast when the brokers cannot be reached). */
  static async connect(c: KafkaSinkConfig): Promise<KafkaSink> {
    const kafka = await kafkaClient(c);
    const { CompressionTypes } = await import("kafkajs");
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5 });
    try {
      await producer.connect();
    } catch (e) {
      throw new Error(`cannot connect to Kafka at ${c.brokers.join(",")}: ${errorChain(e)}`, {
        cause: e,
      });
    }
    return new KafkaSink(producer, c, CompressionTypes.GZIP);
  }

  async write(batch: Batch<KafkaMessage>): Promise<void> {
    try {
      await this.#producer.send({
        topic: this.#c.topic,
        acks: -1,
        ...(this.#c.compression === "gzip" && { compression: this.#gzip }),
        messages: batch.items.map((m) => ({
          ...(m.key !== undefined && { key: m.key }),
          value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
          ...(m.headers && { headers: m.headers }),
        })),
      });
    } catch (e) {
      throw new SinkError(
        `gave up producing ${batch.items.length} messages to ${this.#c.topic}: ${errorChain(e)}`,
        { cause: e, retryable: true },
      );
    }
  }

  /** Produce one JSON event (monitor events, completion events). */
  async event(topic: string, key: string, event: unknown): Promise<void> {
    await this.#producer.send({
      topic,
      acks: -1,
      messages: [{ key, value: JSON.stringify(event) }],
    });
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }
}
