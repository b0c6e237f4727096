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

import { errorChain, type Logger } from "../log/logger.ts";
import {
  KafkaClient,
  type KafkaConnection,
  type KafkaProducer,
  type PartitionReader,
} from "../sources/kafka_client.ts";
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
  readonly #client: KafkaClient;
  readonly #producer: KafkaProducer;
  readonly #reader: PartitionReader;
  readonly #syncTimeout: number;
  readonly #log: Logger | undefined;
  #closed = false;
  #following: Promise<void> = Promise.resolve();

  private constructor(
    topic: string,
    client: KafkaClient,
    producer: KafkaProducer,
    reader: PartitionReader,
    o: CompactedTopicStoreOptions,
  ) {
    this.topic = topic;
    this.#client = client;
    this.#producer = producer;
    this.#reader = reader;
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
    const client = new KafkaClient(conn);
    const producer = client.producer({ idempotent: true });
    // No consumer group: every process reads the whole topic, and leaves nothing behind.
    const reader = client.reader([topic], { fromBeginning: true, maxWait: 200 });
    try {
      const exists = (await client.listTopics()).includes(topic);
      if (!exists) {
        if (!create) throw new Error(`topic ${topic} does not exist`);
        await client.createTopic(topic, {
          partitions,
          replicationFactor,
          configs: retentionMs > 0
            ? { "cleanup.policy": "compact,delete", "retention.ms": String(retentionMs) }
            : { "cleanup.policy": "compact" },
        });
        options.log?.info("created compacted topic", { topic, partitions });
      }
      await producer.connect();
      await reader.start();
    } catch (e) {
      await Promise.allSettled([reader.close(), producer.close(), client.close()]);
      throw new Error(
        `cannot open the store on topic ${topic} at ${conn.brokers.join(",")}: ${errorChain(e)}`,
        { cause: e },
      );
    }
    const store = new CompactedTopicStore<V>(topic, client, producer, reader, options);
    store.#following = store.#follow();
    await store.sync();
    return store;
  }

  async #follow(): Promise<void> {
    while (!this.#closed) {
      let records;
      try {
        records = await this.#reader.fetch();
      } catch (e) {
        if (this.#closed) return;
        this.#log?.warn("store read failed: retrying", { topic: this.topic, error: errorChain(e) });
        await sleep(500);
        continue;
      }
      for (const m of records) {
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
            partition: m.partition,
            offset: String(m.offset),
            key,
            error: errorChain(e),
          });
        }
      }
    }
  }

  /**
   * Wait until every partition has been read up to its end as of now.
   *
   * @throws {Error} when that takes longer than `syncTimeout`.
   */
  async sync(): Promise<void> {
    const ends = await this.#client.offsets(this.topic);
    const deadline = Date.now() + this.#syncTimeout;
    for (;;) {
      const behind = ends.filter((p) =>
        p.high > p.low &&
        (this.#reader.positions.get(`${this.topic}/${p.partition}`) ?? 0n) < p.high
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
      await this.#producer.send(this.topic, [{
        key,
        value: value === null ? null : JSON.stringify(value),
      }]);
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
    this.#closed = true;
    await this.#following.catch(() => {});
    await Promise.allSettled([this.#reader.close(), this.#producer.close(), this.#client.close()]);
  }
}
