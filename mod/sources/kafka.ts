/**
 * The `kafka` source: a consumer group, each message a {@link KafkaUnit}. A partition's offset
 * is committed only up to the last message whose unit was acked, and every unit before it too
 * (kafkajs `eachBatch` with manual `resolveOffset`; commits after each batch and every
 * `commit_interval` inside a long one). A nacked unit stops the partition there: after a backoff
 * the message is fetched again, and so are the ones behind it (a nack re-delivers, it never
 * skips; we prefer a duplicate to a loss).
 *
 * Shutdown: when the `units()` signal aborts, no more units are handed out; those fetched but not
 * handed out are released un-acked (fetched again by whoever owns the partition next), those in
 * flight are awaited by the caller (runPipeline drains them), then `close()` commits and leaves
 * the group.
 *
 * @example
 * ```ts
 * const source = await KafkaSource.connect(parseValue(kafkaSourceSpec, {
 *   brokers: "127.0.0.1:9092", topics: ["Ingestion.Blobs"], group_id: "ingest",
 * }));
 * for await (const unit of source.units(signal)) {
 *   handle(unit.value);
 *   await unit.ack({ lines: 1, bytes: unit.value.byteLength, consumed: 0, truncated: 0 });
 * }
 * await source.close();
 * ```
 * @module
 */

import type { Consumer, EachBatchPayload, KafkaMessage as KafkaJsMessage } from "kafkajs";
import { f, type Infer } from "../config/spec.ts";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { backoff, sleep } from "../pipeline/retry.ts";
import type { Source, Unit, UnitResult } from "../pipeline/types.ts";
import { kafkaClient, kafkaConnectionFields } from "./kafka_client.ts";

/** The Kafka source's settings. */
export const kafkaSourceSpec = f.object({
  ...kafkaConnectionFields,
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
  session_timeout: f.duration({
    description: "A member silent this long is dropped from the group",
    default: "30s",
    min: "6s",
  }),
  commit_interval: f.duration({
    description: "Inside a long batch, commit acked offsets at least this often",
    default: "5s",
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

/** A consumed message as a unit of work; `open()` streams its value. */
export interface KafkaUnit extends Unit {
  readonly topic: string;
  readonly partition: number;
  /** The message's offset (a decimal string: offsets are 64-bit). */
  readonly offset: string;
  readonly key: Uint8Array | null;
  readonly value: Uint8Array;
  /** Headers as UTF-8 strings (repeated headers joined with commas). */
  readonly headers: Readonly<Record<string, string>>;
  /** Also the unit's `attributes`. */
  readonly attributes: Readonly<Record<string, string>>;
}

/** Options for {@link KafkaSource.connect}. */
export interface KafkaSourceOptions {
  log?: Logger;
  metrics?: Registry;
}

type Outcome = "acked" | "nacked" | "released";

/** A unit with its settlement, inside the source. */
interface Pending {
  unit: KafkaUnit;
  settled: Promise<Outcome>;
  release(): void;
  handedOut: boolean;
}

const dec = new TextDecoder();
const bytes = (b: Uint8Array | null | undefined): Uint8Array | null =>
  b ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : null;

/** A consumer group whose messages are units; acks commit offsets. */
export class KafkaSource implements Source {
  readonly kind = "kafka";
  readonly #consumer: Consumer;
  readonly #c: KafkaSourceConfig;
  readonly #log: Logger | undefined;
  readonly #m;
  readonly #queue: Pending[] = [];
  /** Every unit handed out or queued and not yet settled. */
  readonly #open = new Set<Pending>();
  #wake: (() => void) | undefined;
  #running = false;
  #stopping = false;
  readonly #closing = new AbortController();
  /** Consecutive nacks per partition, for the re-fetch backoff. */
  readonly #failures = new Map<string, number>();

  private constructor(consumer: Consumer, c: KafkaSourceConfig, o: KafkaSourceOptions) {
    this.#consumer = consumer;
    this.#c = c;
    this.#log = o.log;
    const m = o.metrics;
    this.#m = m && {
      consumed: m.counter("kafka_messages_consumed_total", "Messages handed out as units"),
      nacked: m.counter("kafka_messages_nacked_total", "Units that failed: fetched again"),
      lag: m.gauge(
        "kafka_consumer_lag",
        "Messages behind the partition's end at the last fetch",
        ["topic", "partition"],
      ),
    };
  }

  /**
   * Join the group and subscribe (fails fast when no broker answers).
   *
   * @param c the source's settings.
   * @param options logging and metrics.
   * @returns the source; units flow once {@link units} is iterated.
   * @throws {Error} naming the brokers and topics when connecting or subscribing fails.
   */
  static async connect(
    c: KafkaSourceConfig,
    options: KafkaSourceOptions = {},
  ): Promise<KafkaSource> {
    const kafka = await kafkaClient(c);
    const consumer = kafka.consumer({
      groupId: c.group_id,
      maxWaitTimeInMs: c.max_wait,
      sessionTimeout: c.session_timeout,
      heartbeatInterval: Math.max(1000, Math.floor(c.session_timeout / 10)),
      allowAutoTopicCreation: false,
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: c.topics, fromBeginning: c.from_beginning });
    } catch (e) {
      await consumer.disconnect().catch(() => {});
      throw new Error(
        `cannot consume ${c.topics.join(",")} as group ${c.group_id} from ${c.brokers.join(",")}: ${
          errorChain(e)
        }`,
        { cause: e },
      );
    }
    return new KafkaSource(consumer, c, options);
  }

  /**
   * The messages as units, in partition order, until `signal` aborts or {@link close}.
   * Iterate once.
   */
  async *units(signal: AbortSignal): AsyncIterable<KafkaUnit> {
    if (this.#running) throw new Error("KafkaSource.units() iterated twice");
    this.#running = true;
    const wake = () => this.#wakeUp();
    signal.addEventListener("abort", wake, { once: true });
    await this.#consumer.run({
      autoCommit: true,
      autoCommitInterval: this.#c.commit_interval,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.#c.partitions_in_parallel,
      eachBatch: (p) => this.#eachBatch(p),
    });
    try {
      while (!signal.aborted && !this.#stopping) {
        const p = this.#queue.shift();
        if (p) {
          p.handedOut = true;
          yield p.unit;
          continue;
        }
        await new Promise<void>((r) => this.#wake = r);
      }
    } finally {
      signal.removeEventListener("abort", wake);
      this.#releaseQueued();
    }
  }

  /**
   * Release what was not handed out (and what was but never settled), commit what was acked,
   * leave the group.
   */
  async close(): Promise<void> {
    this.#stopping = true;
    this.#closing.abort();
    this.#releaseQueued();
    for (const p of [...this.#open]) p.release();
    this.#wakeUp();
    await this.#consumer.disconnect();
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #releaseQueued(): void {
    for (const p of this.#queue.splice(0)) p.release();
  }

  async #eachBatch(
    { batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }:
      EachBatchPayload,
  ): Promise<void> {
    const { topic, partition } = batch;
    if (this.#stopping || batch.messages.length === 0) return;
    this.#m?.lag.set(Number(batch.offsetLag()), { topic, partition: String(partition) });
    const pending = batch.messages.map((m) => this.#pending(topic, partition, m));
    this.#queue.push(...pending);
    this.#m?.consumed.inc(pending.length);
    this.#wakeUp();
    const key = `${topic}/${partition}`;
    let stopAt = -1;
    let failed: Pending | undefined;
    for (const [i, p] of pending.entries()) {
      const outcome = await this.#settle(p.settled, heartbeat, pending);
      if (outcome === "acked") resolveOffset(p.unit.offset);
      if (outcome === "nacked") failed = p;
      if (outcome !== "acked") {
        stopAt = i;
        break;
      }
      if (!isRunning() || isStale()) {
        stopAt = i + 1;
        break;
      }
      await commitOffsetsIfNecessary();
    }
    if (stopAt < 0) {
      this.#failures.delete(key);
      return;
    }
    // Stopped early: units not handed out go back (fetched again from the first unresolved
    // offset); those in flight finish first, so the re-fetch does not race them.
    for (const p of pending.slice(stopAt)) {
      if (!p.handedOut) {
        const i = this.#queue.indexOf(p);
        if (i >= 0) this.#queue.splice(i, 1);
        p.release();
      }
    }
    await Promise.all(pending.slice(stopAt).map((p) => this.#settle(p.settled, heartbeat, [])));
    if (failed && !this.#stopping && isRunning()) {
      const n = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, n);
      const wait = backoff(n, {
        initial_backoff: this.#c.initial_backoff,
        max_backoff: this.#c.max_backoff,
      });
      this.#log?.warn("unit failed: its message will be fetched again", {
        unit: failed.unit.id,
        attempt: n,
        wait_ms: Math.round(wait),
      });
      await sleep(wait, this.#closing.signal);
    }
  }

  /** Wait for a unit to settle, heartbeating meanwhile (a slow unit must not lose the group). */
  async #settle(
    settled: Promise<Outcome>,
    heartbeat: () => Promise<void>,
    batch: Pending[],
  ): Promise<Outcome> {
    const tick = Symbol("tick");
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([
        settled,
        new Promise<typeof tick>((res) => timer = setTimeout(() => res(tick), 1000)),
      ]);
      clearTimeout(timer);
      if (r !== tick) return r;
      try {
        await heartbeat();
      } catch (e) {
        // Rebalancing (or dropped from the group): hand nothing more out; kafkajs rejoins.
        for (const p of batch) {
          if (!p.handedOut) {
            const i = this.#queue.indexOf(p);
            if (i >= 0) this.#queue.splice(i, 1);
            p.release();
          }
        }
        throw e;
      }
    }
  }

  #pending(topic: string, partition: number, m: KafkaJsMessage): Pending {
    const { promise, resolve: settle } = Promise.withResolvers<Outcome>();
    const open = this.#open;
    const resolve = (o: Outcome) => {
      open.delete(pending);
      settle(o);
    };
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.headers ?? {})) {
      if (v === undefined) continue;
      headers[k] = Array.isArray(v)
        ? v.map((x) => typeof x === "string" ? x : dec.decode(x)).join(",")
        : typeof v === "string"
        ? v
        : dec.decode(v);
    }
    const value = bytes(m.value) ?? new Uint8Array(0);
    const id = `kafka://${topic}/${partition}@${m.offset}`;
    const log = this.#log;
    const nacked = this.#m?.nacked;
    const unit: KafkaUnit = {
      id,
      time: Number(m.timestamp),
      size: value.byteLength,
      topic,
      partition,
      offset: m.offset,
      key: bytes(m.key),
      value,
      headers,
      attributes: headers,
      open: () => Promise.resolve(ReadableStream.from([value])),
      ack: (_r: UnitResult) => {
        resolve("acked");
        return Promise.resolve();
      },
      nack: (e: Error) => {
        nacked?.inc();
        log?.error("unit nacked: not committed", { unit: id, error: errorChain(e) });
        resolve("nacked");
        return Promise.resolve();
      },
    };
    const pending: Pending = {
      unit,
      settled: promise,
      release: () => resolve("released"),
      handedOut: false,
    };
    open.add(pending);
    return pending;
  }
}
