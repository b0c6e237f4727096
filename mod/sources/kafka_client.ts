/**
 * The agent's one Kafka client: its config fields and a small interface over
 * `@platformatic/kafka` (pure JavaScript, no native code), shared by the Kafka sink, the Kafka
 * source, the compacted-topic store, `tail` and `ingest test-kafka`. Nothing else imports the
 * library, so the rest of the agent sees only these types: {@link KafkaClient} (admin calls),
 * {@link KafkaProducer} (send a batch, acks=all), {@link GroupConsumer} (a consumer group member
 * whose offsets are committed by hand) and {@link PartitionReader} (read topics without a group,
 * so a CLI run leaves no consumer group behind).
 *
 * @example
 * ```ts
 * const client = new KafkaClient(parseValue(f.object(kafkaConnectionFields, { description: "" }), {
 *   brokers: "127.0.0.1:9092",
 * }));
 * console.log(await client.cluster());
 * await client.close();
 * ```
 * @module
 */

// First: the library's option validators compile on first use (kafka_lazy_validators.ts).
import { endLazyValidators } from "./kafka_lazy_validators.ts";
import {
  Admin,
  Consumer,
  kGetConnection,
  type MessagesStream,
  murmur2,
  Producer,
  produceV9,
  Writer,
} from "@platformatic/kafka";
import { detachWhole, wholeBuffer } from "../pipeline/gc_governor.ts";
import { encodeRecordBatch, restampRecordBatch } from "../sinks/kafka_record_batch.ts";
import { Buffer } from "node:buffer";
import { type KafkaConnection, kafkaConnectionFields } from "./kafka_spec.ts";

export { type KafkaConnection, kafkaConnectionFields };

endLazyValidators();

/** A message to produce. Strings are UTF-8 encoded; bytes are sent as they are. */
export interface KafkaMessage {
  key?: string | Uint8Array;
  /** null: a tombstone (deletes the key in a compacted topic). */
  value: Uint8Array | string | null;
  /**
   * The value as `source[start, end)`, without a view object per message (a line of a decoded
   * chunk); when set, the encoder reads these and not `value`.
   */
  source?: Uint8Array;
  start?: number;
  end?: number;
  headers?: Record<string, string | Uint8Array>;
  /** Force a partition (else: murmur2 of the key, as the Java client; no key: round robin). */
  partition?: number;
  /** Input the value is a view of, released once the value was copied into a record batch. */
  held?: HeldInput;
}

/** A decoded chunk that messages' values are views of: released when the last one is encoded. */
export interface HeldInput {
  /** Messages still holding it. */
  n: number;
  release(): void;
}

/** A consumed record. */
export interface KafkaRecord {
  topic: string;
  partition: number;
  offset: bigint;
  /** Milliseconds since the epoch. */
  timestamp: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  /** Header values as UTF-8 (repeated keys joined with commas). */
  headers: Record<string, string>;
}

/** One partition's offsets. */
export interface PartitionOffsets {
  partition: number;
  /** The first offset still held. */
  low: bigint;
  /** The offset the next message will get. */
  high: bigint;
}

/** Options for {@link KafkaClient}. */
export interface KafkaClientOptions {
  /** The library's own quick retries of one request before it gives up. @default 3 */
  retries?: number;
}

const dec = new TextDecoder();

// deno-lint-ignore no-explicit-any
type AnyOptions = any;

/** The library's base options for a connection. */
function baseOptions(c: KafkaConnection, retries: number, clientId = c.client_id): AnyOptions {
  return {
    clientId,
    bootstrapBrokers: c.brokers,
    connectTimeout: c.connection_timeout,
    requestTimeout: c.request_timeout,
    timeout: c.request_timeout,
    retries,
    retryDelay: 100,
    autocreateTopics: false,
    ...(c.ssl && { tls: {} }),
    ...(c.sasl && {
      sasl: {
        mechanism: c.sasl.mechanism === "plain" ? "PLAIN" : c.sasl.mechanism.toUpperCase(),
        username: c.sasl.username,
        password: c.sasl.password,
      },
    }),
  };
}

const toBuffer = (b: string | Uint8Array): Buffer =>
  typeof b === "string"
    ? Buffer.from(b)
    : Buffer.isBuffer(b)
    ? b as Buffer
    : Buffer.from(b.buffer, b.byteOffset, b.byteLength);

const bytes = (b: Uint8Array | null | undefined): Uint8Array | null =>
  b ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : null;

/** Header pairs as strings (repeated keys joined with commas). */
function headerStrings(
  pairs: Iterable<[Uint8Array | null | undefined, Uint8Array | null | undefined]>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) {
    if (!k) continue;
    const key = dec.decode(k);
    const value = v ? dec.decode(v) : "";
    out[key] = key in out ? `${out[key]},${value}` : value;
  }
  return out;
}

/**
 * Whether a Kafka error is worth another attempt: connection trouble, timeouts, a leader moving.
 * Not: a message too large, an authorization failure, an abort (sending again cannot help).
 *
 * @param e what the client threw.
 * @returns true when trying again may succeed.
 */
export function kafkaRetryable(e: unknown): boolean {
  const seen = new Set<unknown>();
  const walk = (cur: unknown, depth: number): boolean | undefined => {
    if (!cur || typeof cur !== "object" || depth > 8 || seen.has(cur)) return undefined;
    seen.add(cur);
    const err = cur as {
      name?: string;
      canRetry?: boolean;
      errors?: unknown[];
      cause?: unknown;
      code?: string;
    };
    if (err.name === "AbortError") return false;
    // A request that timed out is sent again (the idempotent producer drops a duplicate).
    if (err.name === "TimeoutError") return true;
    // A missing topic may be created: a configuration problem, retried (never skipped).
    if (/^Unknown topic/.test((cur as Error).message ?? "")) return true;
    if (err.code === "PLT_KFK_AUTHENTICATION" || err.code === "PLT_KFK_USER") return false;
    if (Array.isArray(err.errors) && err.errors.length > 0) {
      // Every part must be retryable for the whole to be.
      let all = true;
      for (const x of err.errors) if (walk(x, depth + 1) === false) all = false;
      return all;
    }
    if (typeof err.canRetry === "boolean" && err.code !== "PLT_KFK_MULTIPLE") {
      return err.canRetry;
    }
    const inner = walk(err.cause, depth + 1);
    if (inner !== undefined) return inner;
    if (err.code?.startsWith("PLT_KFK_")) return true;
    return err.code === "ECONNREFUSED" || err.code === "ECONNRESET" || err.code === "ETIMEDOUT";
  };
  return walk(e, 0) ?? false;
}

/**
 * A connection to a cluster: admin calls, and the factory of producers, group members and
 * readers. Nothing connects until a call needs it.
 */
export class KafkaClient {
  readonly connection: KafkaConnection;
  readonly #retries: number;
  #admin: Admin | undefined;

  /**
   * @param c the connection settings.
   * @param options the library's quick retries.
   */
  constructor(c: KafkaConnection, { retries = 3 }: KafkaClientOptions = {}) {
    this.connection = c;
    this.#retries = retries;
  }

  get #adm(): Admin {
    return this.#admin ??= new Admin(baseOptions(this.connection, this.#retries));
  }

  /** The library's options for this connection (for the producer's own encoder). @internal */
  options(clientId?: string): AnyOptions {
    return baseOptions(this.connection, this.#retries, clientId);
  }

  /**
   * The cluster's id and brokers.
   *
   * @returns the id and `host:port` of each broker.
   */
  async cluster(): Promise<{ id: string; brokers: string[] }> {
    const m = await this.#adm.metadata({ topics: [] });
    return { id: m.id, brokers: [...m.brokers.values()].map((b) => `${b.host}:${b.port}`) };
  }

  /** Names of the topics (internal ones left out). */
  listTopics(): Promise<string[]> {
    return this.#adm.listTopics();
  }

  /**
   * Create a topic and wait for its partitions' leaders.
   *
   * @param topic the name.
   * @param options partitions, replication factor (-1: the broker's default), configs.
   */
  async createTopic(
    topic: string,
    { partitions = 1, replicationFactor = -1, configs = {} }: {
      partitions?: number;
      replicationFactor?: number;
      configs?: Record<string, string>;
    } = {},
  ): Promise<void> {
    await this.#adm.createTopics({
      topics: [topic],
      partitions,
      replicas: replicationFactor,
      configs: Object.entries(configs).map(([name, value]) => ({ name, value })),
    });
    // Leaders are elected shortly after creation.
    for (let i = 0; i < 100; i++) {
      const m = await this.#adm.metadata({ topics: [topic], forceUpdate: true }).catch(() =>
        undefined
      );
      const t = m?.topics.get(topic);
      if (t && t.partitions.length === partitions && t.partitions.every((p) => p.leader >= 0)) {
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Each partition's first and next offsets.
   *
   * @param topic the topic.
   * @returns one entry per partition, by partition number.
   */
  async offsets(topic: string): Promise<PartitionOffsets[]> {
    const meta = await this.#adm.metadata({ topics: [topic], forceUpdate: true });
    const t = meta.topics.get(topic);
    if (!t) throw new Error(`topic ${topic} does not exist`);
    const partitions = t.partitions.map((_, partitionIndex) => partitionIndex);
    const list = (timestamp: bigint) =>
      this.#adm.listOffsets({
        topics: [{
          name: topic,
          partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })),
        }],
      });
    const [earliest, latest] = await Promise.all([list(-2n), list(-1n)]);
    const at = (
      r: { name: string; partitions: { partitionIndex: number; offset: bigint }[] }[],
    ) => {
      const out = new Map<number, bigint>();
      for (const t of r) {
        if (t.name !== topic) continue;
        for (const p of t.partitions) out.set(p.partitionIndex, BigInt(p.offset));
      }
      return out;
    };
    const low = at(earliest);
    const high = at(latest);
    return partitions.map((partition) => ({
      partition,
      low: low.get(partition) ?? 0n,
      high: high.get(partition) ?? 0n,
    }));
  }

  /**
   * A group's committed offsets on a topic (partitions without a commit are left out).
   *
   * @param groupId the group.
   * @param topic the topic.
   */
  async committed(groupId: string, topic: string): Promise<Map<number, bigint>> {
    const r = await this.#adm.listConsumerGroupOffsets({ groups: [groupId] } as never);
    const out = new Map<number, bigint>();
    for (
      const g of r as unknown as {
        topics: {
          name: string;
          partitions: { partitionIndex: number; committedOffset: bigint }[];
        }[];
      }[]
    ) {
      for (const t of g.topics ?? []) {
        if (t.name !== topic) continue;
        for (const p of t.partitions) {
          if (p.committedOffset >= 0n) out.set(p.partitionIndex, BigInt(p.committedOffset));
        }
      }
    }
    return out;
  }

  /**
   * A topic's configuration values.
   *
   * @param topic the topic.
   * @param names the keys wanted.
   */
  async topicConfig(topic: string, names: string[]): Promise<Record<string, string | null>> {
    const r = await this.#adm.describeConfigs({
      resources: [{ resourceType: 2, resourceName: topic, configurationKeys: names }],
    });
    const out: Record<string, string | null> = {};
    for (const c of r[0]?.configs ?? []) out[c.name] = c.value ?? null;
    return out;
  }

  /**
   * How many members a consumer group has now (0: empty or unknown).
   *
   * @param groupId the group.
   */
  async groupMembers(groupId: string): Promise<number> {
    const groups = await this.#adm.describeGroups({ groups: [groupId] });
    return groups.get(groupId)?.members.size ?? 0;
  }

  /** Names of the consumer groups the cluster knows. */
  async listGroups(): Promise<string[]> {
    const groups = await this.#adm.listGroups();
    return [...groups.keys()];
  }

  /**
   * A producer (acks=all).
   *
   * @param options idempotence.
   */
  producer({ idempotent = true }: { idempotent?: boolean } = {}): KafkaProducer {
    return new KafkaProducer(this, idempotent);
  }

  /**
   * A consumer group member (offsets committed by hand with {@link GroupConsumer.commit}).
   *
   * @param options group, topics, where a group without commits starts, session settings.
   */
  groupConsumer(options: GroupConsumerOptions): GroupConsumer {
    return new GroupConsumer(this, options);
  }

  /**
   * Read topics without a consumer group, from their start or their end.
   *
   * @param topics the topics.
   * @param options where to start, how long a fetch waits.
   */
  reader(topics: string[], options: PartitionReaderOptions = {}): PartitionReader {
    return new PartitionReader(this, topics, options);
  }

  /** Close the admin connection. */
  async close(): Promise<void> {
    await this.#admin?.close().catch(() => {});
    this.#admin = undefined;
  }
}

/** Compression of produce requests. */
export type KafkaCompression = "gzip" | "none";

/** One batch of a topic, encoded per partition, its sequence numbers assigned. */
interface Prepared {
  topic: string;
  partitions: { partition: number; records: Uint8Array }[];
}

const ACKS_ALL = -1;

/**
 * A producer: each {@link send} is one acks=all produce of a batch. The client library keeps the
 * connections, the metadata and the idempotent producer id; the records themselves are encoded
 * here (kafka_record_batch.ts: one buffer per partition's batch) and sent as a Produce v9 request
 * on the partition leader's connection.
 *
 * Order: batches are encoded (their sequence numbers assigned) and queued on the leader's
 * connection in the order `send` was called, so one key's batches land in that order; the
 * broker checks the sequence numbers, and a retried batch carries the same ones (it is written
 * once).
 */
export class KafkaProducer {
  readonly #p: Producer;
  readonly #idempotent: boolean;
  readonly #timeout: number;
  #info: { id: bigint; epoch: number } | undefined;
  readonly #sequences = new Map<string, number>();
  /** Encoding and queueing, one batch after another. */
  #order: Promise<unknown> = Promise.resolve();
  readonly #keyPartitions = new Map<unknown, number>();
  #roundRobin = 0;
  /** Record batch buffers of delivered batches, reused (the connection sends a copy). */
  readonly #free: Uint8Array[] = [];

  constructor(client: KafkaClient, idempotent: boolean) {
    this.#idempotent = idempotent;
    this.#timeout = client.connection.request_timeout;
    this.#p = new Producer({
      ...client.options(),
      idempotent,
      // One connection per broker, up to 5 requests in flight (the idempotent limit).
      maxInflights: 5,
    } as AnyOptions);
  }

  /** Connect now (the first send would): fails when no broker answers. */
  async connect(): Promise<void> {
    await this.#p.metadata({ topics: [] });
    if (this.#idempotent) await this.#init();
  }

  async #init(): Promise<void> {
    const info = await this.#p.initIdempotentProducer({});
    this.#info = { id: info.producerId, epoch: info.producerEpoch };
    this.#sequences.clear();
  }

  /**
   * Produce `messages` to `topic` (acks=all); resolves once the brokers have them. Each call is
   * one attempt; {@link batch} gives a batch that can be retried with the same sequence numbers.
   *
   * @param topic the topic.
   * @param messages the messages.
   * @param compression gzip or none. @default "none"
   */
  send(
    topic: string,
    messages: KafkaMessage[],
    compression: KafkaCompression = "none",
  ): Promise<void> {
    return this.batch(topic, messages, compression).send();
  }

  /**
   * A batch to send, retried by calling `send()` again: the first call encodes it (in call
   * order) and queues it; later calls send the same bytes again (re-encoded with new sequence
   * numbers only when the broker lost track of the producer).
   *
   * @param topic the topic.
   * @param messages the messages.
   * @param compression gzip or none.
   */
  batch(
    topic: string,
    messages: KafkaMessage[],
    compression: KafkaCompression = "none",
  ): { send(): Promise<void> } {
    let prepared: Promise<Prepared> | undefined;
    let reprepare = false;
    let released = false;
    // Delivered: what the values were views of may be reused (not before: a batch given up on
    // keeps its values for the dead letter).
    const release = () => {
      if (released) return;
      released = true;
      for (const m of messages) {
        const h = m.held;
        if (h && --h.n === 0) h.release();
      }
    };
    /** Encode (or restamp) and queue in call order: the queueing is part of the ordered step. */
    const ordered = (make: () => Promise<Prepared>) => {
      let result!: Promise<void>;
      const step = this.#order.then(async () => {
        const p = await make();
        result = this.#deliver(p, true);
        return p;
      });
      this.#order = step.catch(() => {});
      prepared = step;
      return step.then(() => result);
    };
    const attempt = (): Promise<void> => {
      if (messages.length === 0) return Promise.resolve();
      if (prepared && reprepare) {
        reprepare = false;
        // New producer id, new sequence numbers: the same records, restamped, in order.
        const old = prepared;
        return ordered(async () => this.#restamp(await old));
      }
      if (!prepared) return ordered(() => this.#prepare(topic, messages, compression));
      return prepared.then((p) => this.#deliver(p, false));
    };
    return {
      send: () =>
        attempt().then(() => {
          release();
          // The connection wrote a copy: the batch's buffer may take the next batch.
          prepared?.then((p) => this.#give(p), () => {});
          prepared = undefined;
        }, (e) => {
          if (this.#sequenceLost(e)) reprepare = true;
          throw e;
        }),
    };
  }

  /** The broker no longer knows the producer's sequence: start over with a new producer id. */
  #sequenceLost(e: unknown): boolean {
    const ids = new Set<string>();
    const walk = (x: unknown, d: number) => {
      if (!x || typeof x !== "object" || d > 6) return;
      const o = x as { apiId?: string; errors?: unknown[]; cause?: unknown };
      if (o.apiId) ids.add(o.apiId);
      for (const y of o.errors ?? []) walk(y, d + 1);
      walk(o.cause, d + 1);
    };
    walk(e, 0);
    const lost = ids.has("OUT_OF_ORDER_SEQUENCE_NUMBER") || ids.has("UNKNOWN_PRODUCER_ID") ||
      ids.has("INVALID_PRODUCER_EPOCH");
    if (lost && this.#idempotent) this.#info = undefined;
    return lost;
  }

  /** Group by partition and encode, assigning sequence numbers. */
  async #prepare(
    topic: string,
    messages: KafkaMessage[],
    compression: KafkaCompression,
  ): Promise<Prepared> {
    if (this.#idempotent && !this.#info) await this.#init();
    const meta = await this.#p.metadata({ topics: [topic] });
    const count = meta.topics.get(topic)?.partitionsCount;
    if (!count) throw new Error(`Unknown topic ${topic}.`);
    const byPartition = new Map<number, KafkaMessage[]>();
    let lastKey: unknown = Symbol();
    let lastPartition = 0;
    for (const m of messages) {
      let partition = m.partition;
      if (partition === undefined) {
        if (m.key !== undefined && m.key === lastKey) partition = lastPartition;
        else if (m.key !== undefined) {
          partition = this.#partitionOf(m.key, count);
          [lastKey, lastPartition] = [m.key, partition];
        } else partition = this.#roundRobin++ % count;
      }
      const list = byPartition.get(partition);
      if (list) list.push(m);
      else byPartition.set(partition, [m]);
    }
    const partitions = [...byPartition].map(([partition, list]) => {
      let baseSequence = -1;
      if (this.#info) {
        const key = `${topic}:${partition}`;
        baseSequence = this.#sequences.get(key) ?? 0;
        this.#sequences.set(key, (baseSequence + list.length) % 0x80000000);
      }
      return {
        partition,
        records: encodeRecordBatch(list, {
          producerId: this.#info?.id ?? -1n,
          producerEpoch: this.#info?.epoch ?? -1,
          baseSequence,
          compression,
          alloc: (size) => this.#take(size),
        }),
      };
    });
    return { topic, partitions };
  }

  #take(size: number): Uint8Array {
    const i = this.#free.findIndex((b) => b.length >= size);
    if (i >= 0) return this.#free.splice(i, 1)[0]!;
    // Room to grow a little, so that a buffer fits the next batches too.
    return new Uint8Array(Math.ceil(size * 1.25 / 4096) * 4096);
  }

  /** A delivered batch's buffers may be reused. */
  #give(p: Prepared): void {
    for (const { records } of p.partitions) {
      if (this.#free.length < 16) this.#free.push(new Uint8Array(records.buffer));
    }
  }

  /** The same batches with this producer's current id and next sequence numbers. */
  async #restamp(p: Prepared): Promise<Prepared> {
    if (this.#idempotent && !this.#info) await this.#init();
    return {
      topic: p.topic,
      partitions: p.partitions.map(({ partition, records }) => {
        const key = `${p.topic}:${partition}`;
        const count = new DataView(records.buffer, records.byteOffset).getInt32(57);
        const baseSequence = this.#sequences.get(key) ?? 0;
        this.#sequences.set(key, (baseSequence + count) % 0x80000000);
        return {
          partition,
          records: restampRecordBatch(records, {
            producerId: this.#info?.id ?? -1n,
            producerEpoch: this.#info?.epoch ?? -1,
            baseSequence: this.#info ? baseSequence : -1,
          }),
        };
      }),
    };
  }

  /** The Java client's partition of a key: murmur2, positive, modulo the partition count. */
  #partitionOf(key: string | Uint8Array, count: number): number {
    const cached = this.#keyPartitions.get(key);
    if (cached !== undefined && cached >> 16 === count) return cached & 0xffff;
    const b = typeof key === "string" ? Buffer.from(key) : toBuffer(key);
    const p = (murmur2(b) & 0x7fffffff) % count;
    if (this.#keyPartitions.size > 10_000) this.#keyPartitions.clear();
    this.#keyPartitions.set(key, (count << 16) | p);
    return p;
  }

  /** Send each partition's batch to its leader; resolves when all are acknowledged. */
  async #deliver(p: Prepared, fresh: boolean): Promise<void> {
    const meta = await this.#p.metadata({ topics: [p.topic], forceUpdate: !fresh });
    const t = meta.topics.get(p.topic);
    if (!t) throw new Error(`Unknown topic ${p.topic}.`);
    await Promise.all(p.partitions.map(async ({ partition, records }) => {
      const leader = t.partitions[partition]?.leader;
      const broker = leader === undefined ? undefined : meta.brokers.get(leader);
      if (!broker) throw new Error(`no leader for ${p.topic}/${partition}`);
      const connection = await new Promise<AnyOptions>((resolve, reject) =>
        (this.#p as AnyOptions)[kGetConnection](
          broker,
          (e: Error | null, c: unknown) => e ? reject(e) : resolve(c),
        )
      );
      releaseWrittenRequests(connection.socket);
      const name = Buffer.from(p.topic);
      const head = Buffer.alloc(64 + name.length);
      let at = 0;
      head[at++] = 0; // transactional_id: null
      at = head.writeInt16BE(ACKS_ALL, at);
      at = head.writeInt32BE(this.#timeout, at);
      head[at++] = 2; // one topic
      at = writeUVarint(head, at, name.length + 1);
      at += name.copy(head, at);
      head[at++] = 2; // one partition
      at = head.writeInt32BE(partition, at);
      at = writeUVarint(head, at, records.length + 1);
      const tail = Buffer.from([0, 0, 0]); // partition, topic and request tagged fields
      const writer = Writer.create();
      writer.append(head.subarray(0, at));
      writer.append(toBuffer(records));
      writer.append(tail);
      await new Promise<void>((resolve, reject) =>
        connection.send(
          produceV9.api.key,
          produceV9.api.version,
          () => writer,
          produceV9.parseResponse,
          true,
          true,
          (e: Error | null) => {
            // Already written (a retried batch the broker had): done.
            if (e && duplicateOnly(e)) return resolve();
            e ? reject(e) : resolve();
          },
        )
      );
    }));
  }

  /** Close the connections. */
  async close(): Promise<void> {
    await this.#order.catch(() => {});
    await this.#p.close().catch(() => {});
  }
}

/** Chunks at least this large are released once written (smaller ones are not worth it). */
const RELEASE_MIN_BYTES = 64 << 10;
const releasing = new WeakSet<object>();

/**
 * Free each produce request's memory as soon as the socket has written it, not at V8's next full
 * collection. The library copies every request (its header + our record batch) into one new
 * Buffer, writes it, and keeps it on the in-flight request until the broker answers: about twice
 * the line bytes over a run, garbage that outlives the young generation. Once the write's callback
 * has fired the socket is done with the bytes, and the library reads the request's payload only
 * before writing it (and to log it at debug level, synchronously), so the chunk's ArrayBuffer is
 * detached (`transfer(0)`), which frees its backing store at once. Only a chunk that is a whole
 * ArrayBuffer of its own (what `Buffer.concat` allocates for a large request) is touched; one that
 * cannot be detached is left to the collector.
 *
 * @param socket the producer connection's socket (wrapped once).
 * @internal exported for tests.
 */
export function releaseWrittenRequests(socket: AnyOptions): void {
  if (!socket || typeof socket.write !== "function" || releasing.has(socket)) return;
  releasing.add(socket);
  const write = socket.write;
  socket.write = function (chunk: unknown, encoding?: unknown, cb?: unknown) {
    if (typeof encoding === "function") [cb, encoding] = [encoding, undefined];
    if (
      !(chunk instanceof Uint8Array) || chunk.byteLength < RELEASE_MIN_BYTES ||
      wholeBuffer(chunk) === undefined
    ) {
      return write.call(this, chunk, encoding, cb);
    }
    return write.call(this, chunk, encoding, (e?: Error | null) => {
      detachWhole(chunk);
      if (typeof cb === "function") cb(e);
    });
  };
}

function writeUVarint(buf: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[at++] = v;
  return at;
}

/** A produce error that only says "already written". */
function duplicateOnly(e: unknown): boolean {
  const errors = (e as { errors?: { apiId?: string }[] }).errors;
  return Array.isArray(errors) && errors.length > 0 &&
    errors.every((x) => x.apiId === "DUPLICATE_SEQUENCE_NUMBER");
}

/** Options for {@link KafkaClient.groupConsumer}. */
export interface GroupConsumerOptions {
  groupId: string;
  topics: string[];
  /** A group without committed offsets starts at the oldest message (else the newest). */
  fromBeginning: boolean;
  /** A member silent this long is dropped from the group (ms). */
  sessionTimeout: number;
  /** Heartbeat period (ms), a third of the session timeout or less. */
  heartbeatInterval: number;
  /** How long a fetch waits for new messages (ms). */
  maxWait: number;
}

/**
 * A member of a consumer group. {@link records} yields what the member's partitions hold, from
 * the committed offsets; offsets are committed only through {@link commit}; {@link restart}
 * reads again from the committed offsets (after a failure); {@link close} leaves the group, so
 * the partitions move to another member at once rather than after the session timeout.
 */
export class GroupConsumer {
  readonly #c: Consumer;
  readonly #o: GroupConsumerOptions;
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  #closed = false;

  constructor(client: KafkaClient, o: GroupConsumerOptions) {
    this.#o = o;
    this.#c = new Consumer({
      ...client.options(),
      groupId: o.groupId,
      sessionTimeout: o.sessionTimeout,
      rebalanceTimeout: Math.max(o.sessionTimeout, 10_000),
      heartbeatInterval: o.heartbeatInterval,
      maxWaitTime: o.maxWait,
      autocommit: false,
    } as AnyOptions);
  }

  /** Join the group and start fetching (fails when no broker answers or a topic is missing). */
  async start(): Promise<void> {
    await this.#c.metadata({ topics: this.#o.topics });
    this.#stream = await this.#c.consume({
      topics: this.#o.topics,
      mode: "committed",
      fallbackMode: this.#o.fromBeginning ? "earliest" : "latest",
      autocommit: false,
      maxWaitTime: this.#o.maxWait,
    } as AnyOptions);
  }

  /** Stop the current stream and read again from the committed offsets. */
  async restart(): Promise<void> {
    const s = this.#stream;
    this.#stream = undefined;
    await s?.close().catch(() => {});
    if (!this.#closed) await this.start();
  }

  /**
   * The records, in partition order, until the stream is closed or restarted.
   */
  async *records(): AsyncIterable<KafkaRecord> {
    const s = this.#stream;
    if (!s) return;
    for await (const m of s) {
      yield {
        topic: m.topic,
        partition: m.partition,
        offset: m.offset,
        timestamp: Number(m.timestamp),
        key: bytes(m.key ?? null),
        value: bytes(m.value ?? null),
        headers: headerStrings(m.headerEntries),
      };
    }
  }

  /**
   * Commit `offset` (the next one to read) for a partition.
   *
   * @throws {Error} when the broker refuses (e.g. the partition moved to another member).
   */
  async commit(topic: string, partition: number, offset: bigint): Promise<void> {
    await this.#c.commit({ offsets: [{ topic, partition, offset, leaderEpoch: -1 }] });
  }

  /** Leave the group and close the connections. */
  async close(): Promise<void> {
    this.#closed = true;
    const s = this.#stream;
    this.#stream = undefined;
    await s?.close().catch(() => {});
    await this.#c.close().catch(() => {});
  }
}

/** Options for {@link KafkaClient.reader}. */
export interface PartitionReaderOptions {
  /** Start at each partition's oldest message (else: only what comes after now). @default false */
  fromBeginning?: boolean;
  /** How long a fetch waits for new messages (ms). @default 500 */
  maxWait?: number;
}

/**
 * Reads topics without a consumer group (nothing is committed, no group is left behind):
 * `tail`, and the compacted-topic store that every process reads whole.
 */
export class PartitionReader {
  readonly #client: KafkaClient;
  readonly #topics: string[];
  readonly #o: Required<PartitionReaderOptions>;
  readonly #c: Consumer;
  /** The next offset to read, per `topic/partition`. */
  readonly positions = new Map<string, bigint>();
  #closed = false;

  constructor(client: KafkaClient, topics: string[], o: PartitionReaderOptions) {
    this.#client = client;
    this.#topics = topics;
    this.#o = { fromBeginning: false, maxWait: 500, ...o };
    // The Consumer class is used only for its metadata and fetch calls: it never joins a group.
    this.#c = new Consumer({
      ...client.options(),
      groupId: `${client.connection.client_id}-reader-unused`,
    } as AnyOptions);
  }

  /** Where each partition starts, and each one's end now. */
  async start(): Promise<Map<string, PartitionOffsets>> {
    const ends = new Map<string, PartitionOffsets>();
    for (const topic of this.#topics) {
      for (const p of await this.#client.offsets(topic)) {
        const key = `${topic}/${p.partition}`;
        ends.set(key, p);
        if (!this.positions.has(key)) {
          this.positions.set(key, this.#o.fromBeginning ? p.low : p.high);
        }
      }
    }
    return ends;
  }

  /**
   * One fetch round over every partition: the records that came back (possibly none).
   */
  async fetch(): Promise<KafkaRecord[]> {
    if (this.#closed) return [];
    const meta = await this.#c.metadata({ topics: this.#topics });
    const byNode = new Map<number, { topicId: string; partitions: AnyOptions[] }[]>();
    const names = new Map<string, string>();
    for (const topic of this.#topics) {
      const t = meta.topics.get(topic);
      if (!t) continue;
      names.set(t.id, topic);
      t.partitions.forEach((p, partition) => {
        const at = this.positions.get(`${topic}/${partition}`);
        if (at === undefined) return;
        const list = byNode.get(p.leader) ?? [];
        let entry = list.find((e) => e.topicId === t.id);
        if (!entry) list.push(entry = { topicId: t.id, partitions: [] });
        entry.partitions.push({
          partition,
          currentLeaderEpoch: -1,
          fetchOffset: at,
          lastFetchedEpoch: -1,
          partitionMaxBytes: 4 << 20,
        });
        byNode.set(p.leader, list);
      });
    }
    const out: KafkaRecord[] = [];
    await Promise.all([...byNode].map(async ([node, topics]) => {
      const r = await this.#c.fetch({
        node,
        topics: topics as never,
        maxWaitTime: this.#o.maxWait,
        minBytes: 1,
        maxBytes: 16 << 20,
      });
      for (const t of r.responses) {
        const topic = names.get(t.topicId);
        if (!topic) continue;
        for (const p of t.partitions) {
          const key = `${topic}/${p.partitionIndex}`;
          const from = this.positions.get(key) ?? 0n;
          let next = from;
          for (const b of p.records ?? []) {
            const last = b.firstOffset + BigInt(b.lastOffsetDelta);
            if (last + 1n > next) next = last + 1n;
            if (b.attributes & 0x20) continue; // control batch
            for (const rec of b.records) {
              const offset = b.firstOffset + BigInt(rec.offsetDelta);
              if (offset < from) continue;
              out.push({
                topic,
                partition: p.partitionIndex,
                offset,
                timestamp: Number(b.firstTimestamp + rec.timestampDelta),
                key: bytes(rec.key),
                value: bytes(rec.value),
                headers: headerStrings(rec.headers),
              });
            }
          }
          this.positions.set(key, next);
        }
      }
    }));
    return out;
  }

  /** Close the connections. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#c.close().catch(() => {});
  }
}
