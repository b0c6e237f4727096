/**
 * A source's checkpoint: which units were delivered (`done`), how far into a unit to resume
 * (`offsets`), and free-form source state (a scan `watermark`), kept in one JSON file that is
 * atomically replaced (temp + fsync + rename, see atomic_file.ts): after a crash the file holds
 * the old state or the new one, never a mix.
 *
 * Writes are coalesced: many acks within `flush_interval` become one write, and `flush()` (or
 * `close()`) writes at once on shutdown. So a crash can forget the last second of acks: those
 * units are read and delivered again. We prefer a duplicate line to a lost one.
 *
 * A missing file is a fresh start (a missing directory is created). A file that cannot be parsed is an error naming the path:
 * silently starting over would re-send (or, with a watermark, skip) a whole history.
 *
 * File format (version 1):
 * ```json
 * { "version": 1, "updated": "2025-10-12T21:41:32.000Z",
 *   "done": { "year=2025/month=10/day=12/1760305292_56442_130_1.gz":
 *             { "at": 1760305353000, "lines": 6554, "consumed": 655360 } },
 *   "offsets": { "blob/a.log": 1048576 },
 *   "quarantined": { "bad.gz": { "id": "file:///in/bad.gz", "reason": "corrupt_gzip",
 *             "message": "...", "offset": 1048576, "at": 1760305353000, "attempts": 1, "lines": 0 } },
 *   "state": { "watermark": 1760305292 } }
 * ```
 *
 * `quarantined` holds the units that failed for good (also in `done`, so they are not read
 * again; `requeue` removes both); optional when read. How far units in flight were delivered is
 * kept beside it, in `<path>.progress` (see progress_file.ts): it changes with every batch, so it
 * is written as it changes and without fsync, which this file could not afford.
 *
 * @example
 * ```ts
 * const store = new CheckpointStore("/var/lib/edge-agent/state.json");
 * await store.load();
 * if (!store.isDone(key)) { ...; store.markDone(key, { lines, consumed }); }
 * await store.close(); // writes what is pending
 * ```
 * @module
 */

import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { dirname } from "node:path";
import { removeStaleTemps, writeFileAtomic } from "./atomic_file.ts";
import { ProgressFile } from "./progress_file.ts";
import type { QuarantineRecord } from "./types.ts";

/** What is recorded for a delivered unit. */
export interface UnitDone {
  /** When it was recorded, ms since epoch. */
  at: number;
  /** Lines delivered. */
  lines: number;
  /** Input bytes consumed (see UnitResult.consumed). */
  consumed: number;
}

/** The file's content. */
export interface CheckpointFile {
  version: 1;
  updated: string;
  done: Record<string, UnitDone>;
  offsets: Record<string, number>;
  quarantined?: Record<string, QuarantineRecord>;
  state: Record<string, unknown>;
}

/** Options for {@link CheckpointStore}. */
export interface CheckpointStoreOptions {
  /** At most one write per this many ms; 0 writes on the next tick. @default 1000 */
  flushInterval?: number;
  /** Where failed background writes are reported. */
  log?: Logger;
  /** Counts failed writes in `checkpoint_write_errors_total`. */
  metrics?: Registry;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/** The checkpoint of one source, persisted to one JSON file. */
export class CheckpointStore {
  /** The state file. */
  readonly path: string;
  readonly #flushInterval: number;
  readonly #log: Logger | undefined;
  readonly #now: () => number;
  readonly #writeErrors;
  #done = new Map<string, UnitDone>();
  #offsets = new Map<string, number>();
  readonly #progress: ProgressFile;
  #quarantined = new Map<string, QuarantineRecord>();
  #state: Record<string, unknown> = {};
  #dirty = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;
  /** close() began: no more background writes are scheduled. */
  #stopping = false;
  #closed = false;
  #failing = false;

  /**
   * @param path the JSON state file; its directory must exist.
   * @param options write coalescing, logging, metrics.
   * @throws {RangeError} when `flushInterval` is negative.
   */
  constructor(
    path: string,
    { flushInterval = 1000, log, metrics, now = Date.now }: CheckpointStoreOptions = {},
  ) {
    if (!(flushInterval >= 0)) {
      throw new RangeError(`flush_interval must be ≥ 0 ms: got ${flushInterval}`);
    }
    this.path = path;
    this.#flushInterval = flushInterval;
    this.#log = log;
    this.#now = now;
    this.#progress = new ProgressFile(`${path}.progress`, log);
    this.#writeErrors = metrics?.counter(
      "checkpoint_write_errors_total",
      "Failed checkpoint file writes (retried at the next flush)",
    );
  }

  /**
   * Read the file. Missing: a fresh start (empty state). Also removes temp files left beside it
   * by a process killed mid-write.
   *
   * @throws {Error} naming the path when the file cannot be read or is not a valid checkpoint.
   */
  async load(): Promise<void> {
    await this.#makeDir();
    await this.#removeStaleTemps();
    await this.#progress.load();
    let text: string;
    try {
      text = await Deno.readTextFile(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        this.#log?.info("no checkpoint file: fresh start", { state_file: this.path });
        return;
      }
      throw new Error(`cannot read checkpoint file ${this.path}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new Error(
        `checkpoint file ${this.path} is corrupt (not JSON: ${
          (e as Error).message
        }); move it away to start fresh (every unit is then read again)`,
        { cause: e },
      );
    }
    const problem = this.#take(parsed);
    if (problem) {
      throw new Error(
        `checkpoint file ${this.path} is not a valid checkpoint: ${problem}; move it away to start fresh (every unit is then read again)`,
      );
    }
    for (const id of this.#progress.ids()) if (this.#done.has(id)) this.#progress.delete(id);
  }

  /** Adopt a parsed file; returns what is wrong with it, if anything. */
  #take(v: unknown): string | undefined {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return "not a JSON object";
    const o = v as Record<string, unknown>;
    if (o.version !== undefined && o.version !== 1) {
      return `version ${JSON.stringify(o.version)} is not supported (this agent reads 1)`;
    }
    const done = new Map<string, UnitDone>();
    const offsets = new Map<string, number>();
    if (o.done !== undefined) {
      if (o.done === null || typeof o.done !== "object" || Array.isArray(o.done)) {
        return '"done" must be an object';
      }
      for (const [id, d] of Object.entries(o.done)) {
        if (typeof d === "number") {
          // Written by the first file source: the file's size.
          done.set(id, { at: 0, lines: 0, consumed: d });
          continue;
        }
        const u = d as Partial<UnitDone> | null;
        if (
          u === null || typeof u !== "object" || typeof u.at !== "number" ||
          typeof u.lines !== "number" || typeof u.consumed !== "number"
        ) {
          return `done[${JSON.stringify(id)}] must be {at, lines, consumed} numbers`;
        }
        done.set(id, { at: u.at, lines: u.lines, consumed: u.consumed });
      }
    }
    if (o.offsets !== undefined) {
      if (o.offsets === null || typeof o.offsets !== "object" || Array.isArray(o.offsets)) {
        return '"offsets" must be an object';
      }
      for (const [id, n] of Object.entries(o.offsets)) {
        if (typeof n !== "number" || !(n >= 0)) {
          return `offsets[${JSON.stringify(id)}] must be a number ≥ 0`;
        }
        offsets.set(id, n);
      }
    }
    if (
      o.state !== undefined &&
      (o.state === null || typeof o.state !== "object" || Array.isArray(o.state))
    ) {
      return '"state" must be an object';
    }
    const quarantined = new Map<string, QuarantineRecord>();
    if (o.quarantined !== undefined) {
      if (
        o.quarantined === null || typeof o.quarantined !== "object" ||
        Array.isArray(o.quarantined)
      ) {
        return '"quarantined" must be an object';
      }
      for (const [id, q] of Object.entries(o.quarantined)) {
        const r = q as Partial<QuarantineRecord> | null;
        if (r === null || typeof r !== "object" || typeof r.reason !== "string") {
          return `quarantined[${JSON.stringify(id)}] must be an object with a reason`;
        }
        quarantined.set(id, r as QuarantineRecord);
      }
    }
    this.#done = done;
    this.#offsets = offsets;
    this.#quarantined = quarantined;
    this.#state = { ...(o.state as Record<string, unknown> | undefined) };
    return undefined;
  }

  /** A missing state directory is created (else every write would fail after delivery). */
  async #makeDir(): Promise<void> {
    try {
      await Deno.mkdir(dirname(this.path), { recursive: true });
    } catch (e) {
      throw new Error(
        `cannot create the directory of checkpoint file ${this.path}: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  async #removeStaleTemps(): Promise<void> {
    const n = await removeStaleTemps(this.path) + await removeStaleTemps(this.#progress.path);
    if (n > 0) {
      this.#log?.info("removed temp files of a killed writer", { state_file: this.path, files: n });
    }
  }

  /** Whether the unit was delivered. */
  isDone(id: string): boolean {
    return this.#done.has(id);
  }

  /** What was recorded for a delivered unit. */
  getDone(id: string): UnitDone | undefined {
    return this.#done.get(id);
  }

  /** Units recorded as delivered. */
  get size(): number {
    return this.#done.size;
  }

  /** Ids of the delivered units. */
  ids(): IterableIterator<string> {
    return this.#done.keys();
  }

  /**
   * Record a delivered unit (and forget its resume offset). Written within `flush_interval`.
   *
   * @param id the unit's checkpoint key.
   * @param result what was delivered; `at` defaults to now.
   */
  markDone(id: string, result: { lines: number; consumed: number; at?: number }): void {
    this.#done.set(id, {
      at: result.at ?? this.#now(),
      lines: result.lines,
      consumed: result.consumed,
    });
    this.#offsets.delete(id);
    // Its progress goes once this is written (a crash before then resumes after the progress).
    this.#touch();
  }

  /** Forget a unit (it will be read again). */
  forget(id: string): void {
    const a = this.#done.delete(id), b = this.#offsets.delete(id);
    const d = this.#quarantined.delete(id);
    this.#progress.delete(id);
    if (a || b || d) this.#touch();
  }

  /**
   * Record a unit that failed for good: done (not read again) and quarantined (listed, may be
   * re-queued).
   */
  markQuarantined(
    id: string,
    record: QuarantineRecord,
    result: { lines: number; consumed: number },
  ): void {
    this.markDone(id, { ...result, at: record.at });
    this.#quarantined.set(id, record);
    this.#touch();
  }

  /** The quarantine record of a unit, if it is quarantined. */
  getQuarantined(id: string): QuarantineRecord | undefined {
    return this.#quarantined.get(id);
  }

  /** The quarantined units, by key. */
  quarantined(): IterableIterator<[string, QuarantineRecord]> {
    return this.#quarantined.entries();
  }

  /**
   * Re-queue a quarantined unit: it is no longer done nor quarantined, and is read again (whole).
   *
   * @returns whether `id` was quarantined.
   */
  requeue(id: string): boolean {
    if (!this.#quarantined.has(id)) return false;
    this.forget(id);
    return true;
  }

  /** Items of an unfinished unit delivered contiguously from its start; 0 when unknown. */
  getProgress(id: string): number {
    return this.#progress.get(id);
  }

  /** Record how many items of an unfinished unit were delivered (see the module doc). */
  setProgress(id: string, items: number): void {
    this.#progress.set(id, items);
  }

  /**
   * Drop the done entries `predicate` selects (files gone, keys behind the watermark), to keep
   * the file bounded.
   *
   * @returns how many were dropped.
   */
  prune(predicate: (id: string, done: UnitDone) => boolean): number {
    let n = 0;
    for (const [id, d] of this.#done) {
      if (predicate(id, d)) {
        this.#done.delete(id);
        this.#quarantined.delete(id);
        this.#progress.delete(id);
        n++;
      }
    }
    if (n > 0) this.#touch();
    return n;
  }

  /** Where to resume a partially delivered unit (bytes); 0 when unknown. */
  getOffset(id: string): number {
    return this.#offsets.get(id) ?? 0;
  }

  /**
   * Record how far a unit was delivered.
   *
   * @throws {RangeError} for a negative or non-finite offset.
   */
  setOffset(id: string, offset: number): void {
    if (!Number.isFinite(offset) || offset < 0) {
      throw new RangeError(`offset of ${id} must be a finite number ≥ 0: got ${offset}`);
    }
    if (this.#offsets.get(id) === offset) return;
    this.#offsets.set(id, offset);
    this.#touch();
  }

  /** A free-form source value (e.g. `watermark`). */
  get<T = unknown>(key: string): T | undefined {
    return this.#state[key] as T | undefined;
  }

  /** Set a free-form source value (must survive JSON). */
  set(key: string, value: unknown): void {
    this.#state[key] = value;
    this.#touch();
  }

  /** The file content for the current state. */
  snapshot(): CheckpointFile {
    return {
      version: 1,
      updated: new Date(this.#now()).toISOString(),
      done: Object.fromEntries(this.#done),
      offsets: Object.fromEntries(this.#offsets),
      ...(this.#quarantined.size > 0 && { quarantined: Object.fromEntries(this.#quarantined) }),
      state: { ...this.#state },
    };
  }

  #touch(): void {
    this.#dirty = true;
    if (this.#closed) {
      this.#log?.warn("checkpoint changed after close: not written", { state_file: this.path });
      return;
    }
    if (!this.#stopping && this.#timer === undefined && this.#writing === undefined) {
      this.#schedule();
    }
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // A failure is reported in #write, which schedules the next attempt.
      this.#write().catch(() => {});
    }, this.#flushInterval);
  }

  /** Write the current state if it changed; one write at a time. */
  async #write(): Promise<void> {
    while (this.#writing) await this.#writing.catch(() => {});
    if (!this.#dirty) return;
    this.#dirty = false;
    const text = JSON.stringify(this.snapshot(), null, 1) + "\n";
    const recorded = this.#progress.ids().filter((id) => this.#done.has(id));
    this.#writing = writeFileAtomic(this.path, text);
    try {
      await this.#writing;
      // Units now recorded as done need no progress any more.
      for (const id of recorded) if (this.#done.has(id)) this.#progress.delete(id);
      if (this.#failing) {
        this.#failing = false;
        this.#log?.info("checkpoint written again", { state_file: this.path });
      }
    } catch (e) {
      this.#dirty = true;
      this.#writeErrors?.inc();
      if (!this.#failing) {
        this.#failing = true;
        this.#log?.error("checkpoint write failed: will retry", {
          state_file: this.path,
          error: e,
        });
      }
      if (!this.#stopping && this.#timer === undefined) this.#schedule();
      throw e;
    } finally {
      this.#writing = undefined;
    }
    // Changes that came in while writing wait for the next interval.
    if (this.#dirty && !this.#stopping && this.#timer === undefined) this.#schedule();
  }

  /**
   * Write pending changes now and wait for the write.
   *
   * @throws {Error} naming the path when the write fails (the state stays pending).
   */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    await this.#write();
    await this.#progress.flush();
  }

  /**
   * Write what is pending and stop writing in the background. Idempotent.
   *
   * @throws {Error} naming the path when the last write fails.
   */
  async close(): Promise<void> {
    this.#stopping = true;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    try {
      do await this.#write(); while (this.#dirty);
    } finally {
      this.#closed = true;
      await this.#progress.flush();
      await this.#removeStaleTemps();
    }
  }
}
