/**
 * The `kafka` sink: each batch is one produce request of keyed messages with headers, acks=all,
 * gzip or no compression, from an idempotent producer (the broker drops a retried batch it
 * already has). The client retries a request a few times itself; around that, retry.ts decides
 * (capped exponential backoff with jitter, up to `retry.max_retries`); when it gives up the batch
 * fails with a {@link SinkError} and its units are not checkpointed.
 *
 * Order: messages with one key go to one partition in batch order. The producer keeps one
 * request per broker in flight, so batches written one after another land in that order; a
 * batch whose request failed is retried whole by retry.ts, and the idempotent producer's
 * sequence numbers keep a retried batch from being written twice.
 *
 * @example
 * ```ts
 * const sink = await KafkaSink.connect(parseValue(kafkaSpec(), { brokers: "127.0.0.1:9092" }));
 * await sink.send("Ingestion.Blobs", [{ key: "blob.gz", value: JSON.stringify({ type: "x" }) }]);
 * await sink.close();
 * ```
 * @module
 */

import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { retry } from "../pipeline/retry.ts";
import { type Batch, type Sink, SinkError } from "../pipeline/types.ts";
import {
  KafkaClient,
  type KafkaMessage,
  type KafkaProducer,
  kafkaRetryable,
} from "../sources/kafka_client.ts";

import { type KafkaConfig, kafkaSpec, type KafkaSpecOptions } from "../sources/kafka_spec.ts";

export { type KafkaConfig, type KafkaMessage, kafkaSpec, type KafkaSpecOptions };

/** Options for {@link KafkaSink.connect}. */
export interface KafkaSinkOptions {
  /** Where retries are reported. */
  log?: Logger;
  /** Counts retries in `kafka_retries_total`. */
  metrics?: Registry;
}

/** The last headers object sized, and its size (a blob's lines share one per member). */
let lastHeaders: KafkaMessage["headers"];
let lastHeadersSize = 0;

/**
 * Bytes a message adds to a batch (for batch_bytes): value, key, headers and record overhead.
 * A headers object is taken as it was when first sized (messages share them; none is changed).
 */
export function kafkaMessageSize(m: KafkaMessage): number {
  let n =
    (m.source !== undefined
      ? m.end! - m.start!
      : typeof m.value === "string"
      ? m.value.length
      : m.value?.byteLength ?? 0) + 20;
  if (m.key !== undefined) n += typeof m.key === "string" ? m.key.length : m.key.byteLength;
  const h = m.headers;
  if (h) {
    if (h !== lastHeaders) {
      let size = 0;
      for (const k in h) {
        const v = h[k]!;
        size += k.length + (typeof v === "string" ? v.length : v.byteLength) + 2;
      }
      lastHeaders = h;
      lastHeadersSize = size;
    }
    n += lastHeadersSize;
  }
  return n;
}

/** Produces batches of messages to a topic (or any topic, through {@link send}). */
export class KafkaSink implements Sink<KafkaMessage> {
  readonly kind = "kafka";
  /** The configured topic `write` produces to. */
  readonly topic: string;
  readonly #producer: KafkaProducer;
  readonly #c: KafkaConfig;
  readonly #log: Logger | undefined;
  readonly #retries;
  readonly #closing = new AbortController();

  private constructor(producer: KafkaProducer, c: KafkaConfig, o: KafkaSinkOptions) {
    this.#producer = producer;
    this.#c = c;
    this.topic = c.topic;
    this.#log = o.log;
    this.#retries = o.metrics?.counter(
      "kafka_retries_total",
      "Produce requests retried after an error",
    );
  }

  /**
   * Connect a producer. Fails fast when no broker answers (the reference's connectivity check).
   *
   * @param c the producer section.
   * @param options logging and metrics.
   * @returns the connected sink.
   * @throws {Error} naming the brokers when none can be reached.
   */
  static async connect(c: KafkaConfig, options: KafkaSinkOptions = {}): Promise<KafkaSink> {
    const producer = new KafkaClient(c).producer({ idempotent: c.idempotent });
    try {
      await producer.connect();
    } catch (e) {
      await producer.close();
      throw new Error(
        `cannot connect to Kafka at ${c.brokers.join(",")}: ${errorChain(e)}`,
        { cause: e },
      );
    }
    return new KafkaSink(producer, c, options);
  }

  /** Deliver one batch to the configured topic. @throws {SinkError} once retries are exhausted. */
  write(batch: Batch<KafkaMessage>, signal?: AbortSignal): Promise<void> {
    return this.send(this.topic, batch.items, signal);
  }

  /**
   * Produce `messages` to `topic` in one request (acks=all), retried per `retry`.
   *
   * @param topic the topic.
   * @param messages keyed messages with headers.
   * @param signal aborting stops retrying.
   * @throws {SinkError} naming the topic and the count once retries are exhausted (retryable
   *   unless the broker refused the messages themselves, e.g. too large).
   */
  async send(topic: string, messages: KafkaMessage[], signal?: AbortSignal): Promise<void> {
    if (messages.length === 0) return;
    const c = this.#c;
    const stop = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    // One batch, retried with the same sequence numbers (the broker writes it once).
    const batch = this.#producer.batch(topic, messages, c.compression);
    try {
      await retry(
        () => batch.send(),
        {
          ...c.retry,
          signal: stop,
          retryable: kafkaRetryable,
          onRetry: (e, attempt, wait) => {
            this.#retries?.inc();
            this.#log?.warn("produce failed: retrying", {
              topic,
              messages: messages.length,
              attempt,
              wait_ms: Math.round(wait),
              error: errorChain(e),
            });
          },
        },
      );
    } catch (e) {
      throw new SinkError(
        `gave up producing ${messages.length} messages to ${topic} at ${c.brokers.join(",")}: ${
          errorChain(e)
        }`,
        { cause: e, retryable: kafkaRetryable(e) || stop.aborted },
      );
    }
  }

  /** Stop retrying and disconnect (a send in progress finishes or fails first). */
  async close(): Promise<void> {
    this.#closing.abort();
    await this.#producer.close();
  }
}
