/**
 * The `kafka` source: a consumer group, each message a {@link KafkaUnit}. A partition's offset
 * is committed only up to the last message whose unit was acked, and every unit before it too
 * (committed as soon as that prefix grows). A nacked unit stops the source: units not yet handed
 * out are released, those in flight settle, acked offsets are committed, and after a backoff
 * every partition is read again from its committed offset, so the nacked message and the ones
 * behind it are fetched again (a nack re-delivers, it never skips; we prefer a duplicate to a
 * loss).
 *
 * Membership: the client heartbeats in the background every `heartbeat_interval`, so a slow unit
 * never costs the group; a member silent for `session_timeout` (a process killed with SIGKILL)
 * is dropped and its partitions move on after that long. `close()` leaves the group, so after a
 * SIGTERM the partitions move at once.
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

import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { backoff, sleep } from "../pipeline/retry.ts";
import type { Source, Unit, UnitResult } from "../pipeline/types.ts";
import { type GroupConsumer, KafkaClient, type KafkaRecord } from "./kafka_client.ts";
import { kafkaGroupFields, type KafkaSourceConfig, kafkaSourceSpec } from "./kafka_spec.ts";

export { kafkaGroupFields, type KafkaSourceConfig, kafkaSourceSpec };

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
  /** `topic/partition`. */
  lane: string;
  offset: bigint;
  outcome?: Outcome;
  settle(o: Outcome): void;
  handedOut: boolean;
}

/** A partition's units not yet committed, in offset order. */
interface Lane {
  topic: string;
  partition: number;
  units: Pending[];
  /** Handed out and not settled. */
  active: number;
}

/** A consumer group whose messages are units; acks commit offsets. */
export class KafkaSource implements Source {
  readonly kind = "kafka";
  readonly #consumer: GroupConsumer;
  readonly #c: KafkaSourceConfig;
  readonly #log: Logger | undefined;
  readonly #m;
  readonly #queue: Pending[] = [];
  readonly #lanes = new Map<string, Lane>();
  #wake: (() => void) | undefined;
  #running = false;
  #stopping = false;
  /** Set by a nack: hand nothing out until the re-read. */
  #failed: Pending | undefined;
  #failures = 0;
  #recovering: Promise<void> | undefined;
  #commits = Promise.resolve();
  readonly #closing = new AbortController();

  private constructor(consumer: GroupConsumer, c: KafkaSourceConfig, o: KafkaSourceOptions) {
    this.#consumer = consumer;
    this.#c = c;
    this.#log = o.log;
    const m = o.metrics;
    this.#m = m && {
      consumed: m.counter("kafka_messages_consumed_total", "Messages handed out as units"),
      nacked: m.counter("kafka_messages_nacked_total", "Units that failed: fetched again"),
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
    const consumer = new KafkaClient(c).groupConsumer({
      groupId: c.group_id,
      topics: c.topics,
      fromBeginning: c.from_beginning,
      sessionTimeout: c.session_timeout,
      heartbeatInterval: Math.min(c.heartbeat_interval, Math.floor(c.session_timeout / 3)),
      maxWait: c.max_wait,
    });
    try {
      await consumer.start();
    } catch (e) {
      await consumer.close();
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
    const pump = this.#pump(signal);
    try {
      while (!signal.aborted && !this.#stopping) {
        const p = this.#failed ? undefined : this.#next();
        if (p) {
          p.handedOut = true;
          this.#lanes.get(p.lane)!.active++;
          yield p.unit;
          continue;
        }
        await new Promise<void>((r) => this.#wake = r);
      }
    } finally {
      signal.removeEventListener("abort", wake);
      this.#releaseQueued();
      this.#stopping = true;
      this.#wakeUp();
      void pump;
    }
  }

  /** The first queued unit whose partition may run now (partitions_in_parallel). */
  #next(): Pending | undefined {
    let active = 0;
    for (const l of this.#lanes.values()) if (l.active > 0) active++;
    for (const [i, p] of this.#queue.entries()) {
      const lane = this.#lanes.get(p.lane)!;
      if (lane.active > 0 || active < this.#c.partitions_in_parallel) {
        // A partition's units go out in order: never skip an earlier one of the same lane.
        this.#queue.splice(i, 1);
        return p;
      }
    }
    return undefined;
  }

  /** Fetch records into the queue; after a nack, re-read from the committed offsets. */
  async #pump(signal: AbortSignal): Promise<void> {
    while (!signal.aborted && !this.#stopping) {
      try {
        for await (const r of this.#consumer.records()) {
          if (signal.aborted || this.#stopping) return;
          // After a nack, what the old stream still delivers is read again after the restart.
          if (this.#failed) continue;
          this.#enqueue(r);
          // Bounded read-ahead: wait while many units are queued.
          while (this.#queue.length >= 256 && !this.#failed && !this.#stopping) {
            await sleep(5, this.#closing.signal).catch(() => {});
          }
        }
      } catch (e) {
        if (this.#stopping) return;
        this.#log?.warn("kafka consumer stream failed: reading again from committed offsets", {
          error: errorChain(e),
        });
      }
      if (this.#stopping || signal.aborted) return;
      // The stream ended: a nack's recovery restarted it, or it broke (recover now).
      await (this.#recovering ??= this.#recover());
    }
  }

  /** After a nack (or a broken stream): settle, commit, back off, re-read. */
  async #recover(): Promise<void> {
    try {
      this.#releaseQueued();
      // Units in flight finish first, so the re-read does not race them.
      while (!this.#stopping && [...this.#lanes.values()].some((l) => l.active > 0)) {
        await sleep(5, this.#closing.signal).catch(() => {});
      }
      await this.#commits;
      const failed = this.#failed;
      if (failed) {
        this.#failures++;
        const wait = backoff(this.#failures, {
          initial_backoff: this.#c.initial_backoff,
          max_backoff: this.#c.max_backoff,
        });
        this.#log?.warn("unit failed: its message will be fetched again", {
          unit: failed.unit.id,
          attempt: this.#failures,
          wait_ms: Math.round(wait),
        });
        await sleep(wait, this.#closing.signal).catch(() => {});
      } else await sleep(500, this.#closing.signal).catch(() => {});
      if (this.#stopping) return;
      this.#lanes.clear();
      this.#failed = undefined;
      await this.#consumer.restart().catch((e) =>
        this.#log?.warn("kafka consumer restart failed: retrying", { error: errorChain(e) })
      );
      this.#wakeUp();
    } finally {
      this.#recovering = undefined;
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
    for (const l of this.#lanes.values()) {
      for (const p of l.units) if (!p.outcome) p.settle("released");
    }
    this.#wakeUp();
    await this.#commits;
    await this.#consumer.close();
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #releaseQueued(): void {
    for (const p of this.#queue.splice(0)) p.settle("released");
  }

  #enqueue(r: KafkaRecord): void {
    const laneKey = `${r.topic}/${r.partition}`;
    let lane = this.#lanes.get(laneKey);
    if (!lane) {
      this.#lanes.set(
        laneKey,
        lane = { topic: r.topic, partition: r.partition, units: [], active: 0 },
      );
    }
    const p = this.#pending(r, laneKey);
    lane.units.push(p);
    this.#queue.push(p);
    this.#m?.consumed.inc();
    this.#wakeUp();
  }

  /** A unit settled: commit the partition's acked prefix; a nack stops hand-outs. */
  #settled(p: Pending, o: Outcome): void {
    const lane = this.#lanes.get(p.lane);
    if (!lane || !lane.units.includes(p)) return;
    if (p.handedOut) lane.active--;
    if (o === "nacked") {
      this.#failed ??= p;
      this.#recovering ??= this.#recover();
      this.#wakeUp();
      return;
    }
    if (o !== "acked") return;
    let upto: bigint | undefined;
    while (lane.units[0]?.outcome === "acked") upto = lane.units.shift()!.offset + 1n;
    if (upto === undefined) return;
    if (!this.#failed) this.#failures = 0;
    const at = upto;
    this.#commits = this.#commits.then(() =>
      this.#consumer.commit(lane.topic, lane.partition, at).catch((e) =>
        // The partition moved to another member (a rebalance): it reads from the last commit.
        this.#log?.warn("offset commit failed: those messages may be handled again", {
          topic: lane.topic,
          partition: lane.partition,
          offset: String(at),
          error: errorChain(e),
        })
      )
    );
  }

  #pending(r: KafkaRecord, lane: string): Pending {
    const value = r.value ?? new Uint8Array(0);
    const id = `kafka://${r.topic}/${r.partition}@${r.offset}`;
    const log = this.#log;
    const nacked = this.#m?.nacked;
    const unit: KafkaUnit = {
      id,
      time: r.timestamp,
      size: value.byteLength,
      topic: r.topic,
      partition: r.partition,
      offset: String(r.offset),
      key: r.key,
      value,
      headers: r.headers,
      attributes: r.headers,
      open: () => Promise.resolve(ReadableStream.from([value])),
      ack: (_r: UnitResult) => {
        pending.settle("acked");
        return Promise.resolve();
      },
      nack: (e: Error) => {
        if (!pending.outcome) {
          nacked?.inc();
          log?.error("unit nacked: not committed", { unit: id, error: errorChain(e) });
        }
        pending.settle("nacked");
        return Promise.resolve();
      },
    };
    const pending: Pending = {
      unit,
      lane,
      offset: r.offset,
      handedOut: false,
      settle: (o) => {
        if (pending.outcome) return;
        pending.outcome = o;
        this.#settled(pending, o);
      },
    };
    return pending;
  }
}
