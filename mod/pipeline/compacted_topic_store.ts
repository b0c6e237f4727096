/**
 * A key → JSON value store on a compacted Kafka topic (`cleanup.policy=compact`): Kafka keeps
 * the latest value of every key. Used for checkpoints that must follow the work from one process
 * to another (ingest workers in a consumer group: a blob's events can move to another worker on a
 * rebalance, and its byte offset has to be there too, without a shared disk).
 *
 * `open` reads the whole topic; a background consumer then keeps the local copy current with
 * what other processes write. `sync()` waits until the copy has caught up with the topic's end
 * as of that moment (read-your-writes across processes: call it before trusting `get` for a key
 * another process may have written). `put` returns once the broker has the value (acks=all).
 *
 * @example
 * ```ts
 * const store = await CompactedTopicStore.open<{ offset: number }>(conn, "Ingestion.Offsets");
 * await store.sync();
 * const at = store.get("container/blob.gz")?.offset ?? 0;
 * await store.put("container/blob.gz", { offset: 4096 });
 * await store.close();
 * ```
 * @module
 */

import type { Admin, Consumer, Producer } from "kafkajs";
import { errorChain, type Logger } from "../log/logger.ts";
import { kafkaClient, type KafkaConnection } from "../sources/kafka_client.ts";
import { sleep } from "./retry.ts";

/** Options for {@link CompactedTopicStore.open}. */
export interface CompactedTopicStoreOptions {
  /** Create the topic (compacted) when it does not exist. @default true */
  create?: boolean;
  /** Partitions of a created topic. @default 6 */
  partitions?: number;
  /** Replication factor of a created topic (-1: the broker's default). @default -1 */
  replicationFactor?: number;
  /**
   * A created topic also deletes records older than this (`cleanup.policy=compact,delete`): a
   * key not written for that long is forgotten. 0: compaction only. @default 0
   */
  retentionMs?: number;
  /** Longest wait of `sync()`. @default 30000 */
  syncTimeout?: number;
  log?: Logger;
}

const dec = new TextDecoder();

/** The latest JSON value per key of a compacted topic, kept current in memory. */
export class CompactedTopicStore<V> {
  /** The topic. */
  readonly topic: string;
  readonly #values = new Map<string, V>();
  /** Next offset to read, per partition. */
  readonly #position = new Map<number, number>();
  readonly #admin: Admin;
  readonly #producer: Producer;
  readonly #consumer: Consumer;
  readonly #syncTimeout: number;
  readonly #log: Logger | undefined;

  private constructor(
    topic: string,
    admin: Admin,
    producer: Producer,
    consumer: Consumer,
    o: CompactedTopicStoreOptions,
  ) {
    this.topic = topic;
    this.#admin = admin;
    this.#producer = producer;
    this.#consumer = consumer;
    this.#syncTimeout = o.syncTimeout ?? 30_000;
    this.#log = o.log;
  }

  /**
   * Open the store: create the topic if needed, read it whole, keep following it.
   *
   * @param conn the Kafka connection.
   * @param topic the compacted topic.
   * @param options creation and timeouts.
   * @returns the store, caught up with the topic.
   * @throws {Error} naming the topic when Kafka cannot be reached or the topic is missing.
   */
  static async open<V>(
    conn: KafkaConnection,
    topic: string,
    options: CompactedTopicStoreOptions = {},
  ): Promise<CompactedTopicStore<V>> {
    const { create = true, partitions = 6, replicationFactor = -1, retentionMs = 0 } = options;
    const kafka = await kafkaClient(conn);
    const admin = kafka.admin();
    const producer = kafka.producer({ idempotent: true, allowAutoTopicCreation: false });
    // A group of its own (never committed): every process reads the whole topic.
    const consumer = kafka.consumer({
      groupId: `${conn.client_id}-store-${crypto.randomUUID()}`,
      maxWaitTimeInMs: 200,
      allowAutoTopicCreation: false,
    });
    try {
      await admin.connect();
      const exists = (await admin.listTopics()).includes(topic);
      if (!exists) {
        if (!create) throw new Error(`topic ${topic} does not exist`);
        await admin.createTopics({
          topics: [{
            topic,
            numPartitions: partitions,
            replicationFactor,
            configEntries: retentionMs > 0
              ? [
                { name: "cleanup.policy", value: "compact,delete" },
                { name: "retention.ms", value: String(retentionMs) },
              ]
              : [{ name: "cleanup.policy", value: "compact" }],
          }],
          waitForLeaders: true,
        });
        options.log?.info("created compacted topic", { topic, partitions });
      }
      await producer.connect();
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
    } catch (e) {
      await Promise.allSettled([admin.disconnect(), producer.disconnect(), consumer.disconnect()]);
      throw new Error(
        `cannot open the store on topic ${topic} at ${conn.brokers.join(",")}: ${errorChain(e)}`,
        { cause: e },
      );
    }
    const store = new CompactedTopicStore<V>(topic, admin, producer, consumer, options);
    await store.#follow();
    await store.sync();
    return store;
  }

  async #follow(): Promise<void> {
    const c = this.#consumer;
    c.on(c.events.END_BATCH_PROCESS, (e) => {
      const next = Number(e.payload.lastOffset) + 1;
      if (next > (this.#position.get(e.payload.partition) ?? 0)) {
        this.#position.set(e.payload.partition, next);
      }
    });
    await c.run({
      autoCommit: false,
      eachBatch: ({ batch }) => {
        for (const m of batch.messages) {
          if (!m.key) continue;
          const key = dec.decode(m.key);
          if (m.value === null || m.value.length === 0) {
            this.#values.delete(key);
            continue;
          }
          try {
            this.#values.set(key, JSON.parse(dec.decode(m.value)) as V);
          } catch (e) {
            this.#log?.error("store record is not JSON: ignored", {
              topic: this.topic,
              partition: batch.partition,
              offset: m.offset,
              key,
              error: errorChain(e),
            });
          }
        }
        return Promise.resolve();
      },
    });
  }

  /**
   * Wait until every partition has been read up to its end as of now.
   *
   * @throws {Error} when that takes longer than `syncTimeout`.
   */
  async sync(): Promise<void> {
    const ends = await this.#admin.fetchTopicOffsets(this.topic);
    const deadline = Date.now() + this.#syncTimeout;
    for (;;) {
      const behind = ends.filter((p) =>
        Number(p.high) > Number(p.low) && (this.#position.get(p.partition) ?? 0) < Number(p.high)
      );
      if (behind.length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(
          `store on topic ${this.topic} did not catch up within ${this.#syncTimeout} ms (partitions ${
            behind.map((p) => p.partition).join(",")
          } behind)`,
        );
      }
      await sleep(10);
    }
  }

  /** The latest value of `key` read so far. */
  get(key: string): V | undefined {
    return this.#values.get(key);
  }

  /** Every key and its latest value read so far. */
  entries(): IterableIterator<[string, V]> {
    return this.#values.entries();
  }

  /**
   * Write `key`'s value (null deletes it: a tombstone); resolves once the broker has it.
   *
   * @throws {Error} naming the topic and key when the produce fails.
   */
  async put(key: string, value: V | null): Promise<void> {
    try {
      await this.#producer.send({
        topic: this.topic,
        acks: -1,
        messages: [{ key, value: value === null ? null : JSON.stringify(value) }],
      });
    } catch (e) {
      throw new Error(`cannot write ${key} to topic ${this.topic}: ${errorChain(e)}`, {
        cause: e,
      });
    }
    if (value === null) this.#values.delete(key);
    else this.#values.set(key, value);
  }

  /** Stop following and disconnect. */
  async close(): Promise<void> {
    await Promise.allSettled([
      this.#consumer.disconnect(),
      this.#producer.disconnect(),
      this.#admin.disconnect(),
    ]);
  }
}
