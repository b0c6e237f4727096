/**
 * {@link BlobEventSource}: blob events (the monitor's, from Kafka; or one request) → range units
 * of the blobs they name. Each `BlobObserved` starts a pass over the blob's new bytes, from its
 * committed offset (an {@link AppendBlobSource}: consecutive ranges, each committed once
 * delivered); `BlobClosed` starts a last pass. Passes over different blobs run side by side (up
 * to `blobsInParallel`); one blob's events are handled one after another, in order.
 *
 * Nested acknowledgements (as Redpanda Connect's S3 input counts an SQS message's objects): an
 * event is acked only once the last range of its pass was delivered and committed; then the
 * completion event (`BlobIngested`) is sent. A pass that fails (a range nacked, shutdown before
 * the blob's end) nacks its event: it is fetched again, and the pass resumes from the committed
 * offset. Events that are not blob events, or name an environment without credentials, are
 * logged, counted and acked (skipping them loses nothing: they carry no data).
 *
 * @example
 * ```ts
 * const source = new BlobEventSource(await KafkaSource.connect(...), { offsets, storageFor, log, metrics });
 * await runPipeline({ source, sink, frame: (u, d) => new KafkaLineStream(u, d), ... });
 * ```
 * @module
 */

import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import type { Source, Unit, UnitResult } from "../pipeline/types.ts";
import { AppendBlobSource } from "./azure_append_blob.ts";
import { AzureBlobContainer, type AzureStorage } from "./azure_blob.ts";
import { type BlobIngested, parseBlobEvent, type SkippedRange } from "./events.ts";
import type { BlobOffsetStore } from "./blob_offsets.ts";
import { parseBlobName } from "./k8s_blob_name.ts";

/** An event as it arrives: a Kafka message (KafkaUnit) or a one-shot request. */
export interface BlobEventUnit {
  readonly id: string;
  /** The event's JSON. */
  readonly value: Uint8Array;
  ack(result: UnitResult): Promise<void>;
  nack(error: Error): Promise<void>;
}

/** Where the events come from. */
export interface BlobEventInput {
  units(signal: AbortSignal): AsyncIterable<BlobEventUnit>;
  close?(): Promise<void>;
}

/** Options for {@link BlobEventSource}. */
export interface BlobEventSourceOptions {
  /** Committed offsets per blob (`subscription/environment/container/blob`). */
  offsets: BlobOffsetStore;
  /** Credentials of a subscription/environment (undefined: its events are skipped, logged). */
  storageFor: (subscription: string, environment: string) => AzureStorage | undefined;
  /** Compressed bytes per range unit. @default 4194304 */
  rangeBytes?: number;
  /** Blobs read at the same time. @default 4 */
  blobsInParallel?: number;
  /** Send a pass's completion event (before its event is acked). */
  complete?: (event: BlobIngested) => Promise<void>;
  log: Logger;
  metrics: Registry;
}

/** What passes did, for a one-shot run's exit code. */
export interface BlobEventStats {
  passes: number;
  failed: number;
}

const done: UnitResult = { lines: 0, bytes: 0, consumed: 0, truncated: 0 };
const enc = new TextEncoder();

/**
 * One blob request as an event input (one-shot `ingest`): `start` overrides the committed
 * offset.
 *
 * @param request the blob and, optionally, where to start.
 * @returns the input, and the outcome once its pass settled.
 */
export function oneBlobRequest(request: {
  subscription: string;
  environment: string;
  container: string;
  name: string;
  start?: number;
}): BlobEventInput & { outcome: Promise<"acked" | "nacked"> } {
  const outcome = Promise.withResolvers<"acked" | "nacked">();
  const value = enc.encode(JSON.stringify({
    type: "BlobObserved",
    ...request,
    ...(request.start !== undefined && { start_offset: request.start }),
  }));
  return {
    outcome: outcome.promise,
    async *units() {
      yield {
        id: `request:${request.container}/${request.name}`,
        value,
        ack: () => Promise.resolve(outcome.resolve("acked")),
        nack: () => Promise.resolve(outcome.resolve("nacked")),
      };
    },
  };
}

/** Blob events → range units of the blobs they name, acked per event once its pass is done. */
export class BlobEventSource implements Source {
  readonly kind = "azure_blob";
  readonly stats: BlobEventStats = { passes: 0, failed: 0 };
  readonly #input: BlobEventInput;
  readonly #o: Required<Omit<BlobEventSourceOptions, "complete">> & {
    complete?: BlobEventSourceOptions["complete"];
  };
  readonly #containers = new Map<string, Promise<AzureBlobContainer>>();
  /** Range units ready to hand out. */
  readonly #ready: Unit[] = [];
  /** The last pass queued per blob: the next one of the blob waits for it. */
  readonly #lanes = new Map<string, Promise<void>>();
  readonly #passes = new Set<Promise<void>>();
  #wake: (() => void) | undefined;
  readonly #m;

  /**
   * @param input the events.
   * @param options offsets, credentials, range size, parallelism, completion.
   * @throws {RangeError} on a range size or parallelism below 1.
   */
  constructor(input: BlobEventInput, options: BlobEventSourceOptions) {
    const { rangeBytes = 4 << 20, blobsInParallel = 4 } = options;
    if (!Number.isInteger(blobsInParallel) || blobsInParallel < 1) {
      throw new RangeError(`blobs_in_parallel must be a positive integer: got ${blobsInParallel}`);
    }
    this.#input = input;
    this.#o = { ...options, rangeBytes, blobsInParallel };
    const m = options.metrics;
    this.#m = {
      events: m.counter("ingest_events_total", "Blob events handled, by type", ["type"]),
      invalid: m.counter(
        "ingest_events_invalid_total",
        "Events that are not blob events (logged with their offset, then skipped)",
      ),
      passes: m.counter("ingest_passes_total", "Blob passes, by outcome", ["outcome"]),
      corrupt: m.counter(
        "ingest_corrupt_bytes_total",
        "Bytes of corrupt gzip members skipped (logged with blob and offset)",
      ),
      tail: m.counter(
        "ingest_incomplete_tail_bytes_total",
        "Bytes of an incomplete last member left in a blob announced closed (logged)",
      ),
      missing: m.counter("ingest_missing_blobs_total", "Passes over blobs that no longer exist"),
    };
  }

  /**
   * Range units of every pass, until the input ends (and its passes are done) or `signal`
   * aborts. On abort no new range starts; passes end after their range in flight, and their
   * events are nacked (read again later, from the committed offsets).
   */
  async *units(signal: AbortSignal): AsyncIterable<Unit> {
    const wake = () => this.#wakeUp();
    signal.addEventListener("abort", wake, { once: true });
    let intakeDone = false;
    const intake = this.#intake(signal).finally(() => {
      intakeDone = true;
      this.#wakeUp();
    });
    try {
      for (;;) {
        const u = this.#ready.shift();
        if (u) {
          yield u;
          continue;
        }
        if (intakeDone && this.#passes.size === 0) break;
        if (signal.aborted && this.#passes.size === 0) break;
        await new Promise<void>((r) => this.#wake = r);
      }
      await intake;
    } finally {
      signal.removeEventListener("abort", wake);
      // Ranges never handed out: their passes stop there (and nack their events).
      for (const u of this.#ready.splice(0)) await u.nack(new Error("shutting down"));
      await Promise.all(this.#passes);
    }
  }

  /** Wait for every pass, then close the input (committing what was acked). */
  async close(): Promise<void> {
    await Promise.all(this.#passes);
    await this.#input.close?.();
  }

  #wakeUp(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Read events; start a pass per blob event, one blob's passes in order. */
  async #intake(signal: AbortSignal): Promise<void> {
    const { log } = this.#o;
    for await (const unit of this.#input.units(signal)) {
      const e = parseBlobEvent(unit.value);
      if (typeof e === "string") {
        this.#m.invalid.inc();
        log.error("blob event skipped", { unit: unit.id, reason: e });
        await unit.ack(done);
        continue;
      }
      this.#m.events.inc(1, { type: e.type });
      if ((e.type !== "BlobObserved" && e.type !== "BlobClosed") || !("name" in e)) {
        await unit.ack(done);
        continue;
      }
      const storage = this.#o.storageFor(e.subscription, e.environment);
      if (!storage) {
        this.#m.invalid.inc();
        log.error("blob event skipped: no storage credentials for its environment", {
          unit: unit.id,
          subscription: e.subscription,
          environment: e.environment,
          blob: e.name,
        });
        await unit.ack(done);
        continue;
      }
      const start = (e as { start_offset?: unknown }).start_offset;
      const request: PassRequest = {
        storage,
        container: e.container,
        blob: e.name,
        subscription: e.subscription,
        environment: e.environment,
        closing: e.type === "BlobClosed",
        ...(typeof start === "number" && { start }),
      };
      const lane = `${e.subscription}/${e.environment}/${e.container}/${e.name}`;
      const pass: Promise<void> = (this.#lanes.get(lane) ?? Promise.resolve()).then(() =>
        this.#pass(request, unit, signal)
      );
      this.#lanes.set(lane, pass);
      this.#passes.add(pass);
      pass.finally(() => {
        this.#passes.delete(pass);
        if (this.#lanes.get(lane) === pass) this.#lanes.delete(lane);
        this.#wakeUp();
      });
      while (this.#passes.size >= this.#o.blobsInParallel && !signal.aborted) {
        await Promise.race(this.#passes);
      }
      if (signal.aborted) break;
    }
  }

  #container(storage: AzureStorage, name: string): Promise<AzureBlobContainer> {
    const key = JSON.stringify([storage, name]);
    let c = this.#containers.get(key);
    if (!c) {
      c = AzureBlobContainer.open(storage, name);
      c.catch(() => this.#containers.delete(key));
      this.#containers.set(key, c);
    }
    return c;
  }

  /** One pass; acks or nacks its event. Never throws. */
  async #pass(p: PassRequest, event: BlobEventUnit, signal: AbortSignal): Promise<void> {
    const { log } = this.#o;
    try {
      const ok = await this.#read(p, signal);
      this.stats.passes++;
      if (ok) await event.ack(done);
      else {
        this.stats.failed++;
        await event.nack(new Error(`pass over ${p.blob} did not finish`));
      }
    } catch (err) {
      this.stats.passes++;
      this.stats.failed++;
      this.#m.passes.inc(1, { outcome: "failed" });
      log.error("ingest pass failed: the event will be handled again", {
        unit: event.id,
        blob: p.blob,
        error: errorChain(err),
      });
      await event.nack(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Read a blob from its committed offset to the end of its last complete member. */
  async #read(p: PassRequest, signal: AbortSignal): Promise<boolean> {
    const { log, offsets } = this.#o;
    const id = `${p.subscription}/${p.environment}/${p.container}/${p.blob}`;
    await offsets.sync();
    const start = p.start ?? offsets.get(id)?.offset ?? 0;
    const container = await this.#container(p.storage, p.container);
    const url = `${container.url}/${p.blob}`;
    const info = await container.properties(p.blob, signal);
    if (!info) {
      this.#m.missing.inc();
      log.error("blob does not exist: nothing ingested", { blob: url });
      return true;
    }
    const attributes = {
      subscription: p.subscription,
      environment: p.environment,
      blob: p.blob,
      service: parseBlobName(p.blob).service,
    };
    const skipped: SkippedRange[] = [];
    const source = new AppendBlobSource(container, p.blob, {
      start,
      end: info.size,
      rangeBytes: this.#o.rangeBytes,
      attributes,
      commit: (r) => offsets.put(id, { offset: r.end, updated: new Date().toISOString() }),
      onCorrupt: ({ offset, skipped: bytes, reason, message }) => {
        this.#m.corrupt.inc(bytes);
        skipped.push({ offset, bytes, reason });
        log.error("corrupt gzip member skipped", {
          blob: url,
          offset,
          skipped_bytes: bytes,
          reason,
          error: message,
        });
      },
    });
    for await (const range of source.units(signal)) {
      this.#ready.push(range);
      this.#wakeUp();
    }
    const pr = source.progress;
    const ok = pr.failure === undefined && !(signal.aborted && pr.committed < pr.size);
    this.#m.passes.inc(1, { outcome: ok ? "ok" : "failed" });
    const fields = {
      blob: url,
      start_offset: start,
      end_offset: pr.committed,
      size: pr.size,
      lines: pr.lines,
    };
    if (!ok) {
      log.error("ingest pass failed: the rest is read again next time", {
        ...fields,
        error: errorChain(pr.failure ?? signal.reason),
      });
      return false;
    }
    let closed = false;
    if (p.closing) {
      closed = true;
      const tail = pr.size - pr.committed;
      if (tail > 0) {
        this.#m.tail.inc(tail);
        log.error("blob closed with an incomplete last member: its bytes are not ingested", {
          blob: url,
          offset: pr.committed,
          bytes: tail,
        });
      }
      await offsets.put(id, {
        offset: pr.committed,
        updated: new Date().toISOString(),
        closed: true,
      });
    }
    log.info("ingest pass finished", fields);
    await this.#o.complete?.({
      type: "BlobIngested",
      ...attributes,
      container: p.container,
      start_offset: start,
      end_offset: pr.committed,
      size: pr.size,
      lines: pr.lines,
      bytes: pr.committed - start,
      message_bytes: pr.bytes,
      skipped_bytes: pr.skipped,
      skipped,
      closed,
      at: new Date().toISOString(),
    });
    return true;
  }
}

/** One pass's request. */
interface PassRequest {
  storage: AzureStorage;
  container: string;
  blob: string;
  subscription: string;
  environment: string;
  /** Start here instead of the committed offset. */
  start?: number;
  /** The blob was announced closed: this is its last pass. */
  closing?: boolean;
}
