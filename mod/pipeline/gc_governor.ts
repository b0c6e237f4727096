/**
 * {@link GcGovernor}: a full garbage collection each time the JavaScript heap plus the memory
 * outside it that JavaScript objects hold (ArrayBuffers) has grown by `stepBytes` since the last
 * one.
 *
 * Why: the data path turns over buffers faster than V8's own schedule frees them. Each produce
 * request is copied into one new Buffer by the Kafka client (a batch's size, held until the broker
 * answers, so it outlives the young generation), and each OpenObserve body is encoded into a new
 * one; such buffers are freed only by a full collection, which V8 starts once about 64 MB of them
 * are waiting, on top of a heap that has meanwhile grown by as much again in promoted garbage.
 * Measured on `ingest` (705,989 lines of 212 B): heap + ArrayBuffers peaked at 60 + 86 MB between
 * V8's collections, 145 MB of a 256 MB peak RSS; a step of 24 MB held them to 43 + 46 MB.
 *
 * It needs V8's `gc()` (`--v8-flags=--expose-gc`, which `deno task compile` bakes into the
 * binary); without it {@link GcGovernor.start} returns false and nothing runs. Its timer does not
 * keep the process alive.
 *
 * @example
 * ```ts
 * const governor = new GcGovernor();
 * governor.start(); // false without --expose-gc
 * // ... run the mode ...
 * governor.stop();
 * ```
 * @module
 */

import { loadLibc } from "./libc.ts";

/** The two figures the governor watches (`Deno.memoryUsage()`'s). */
export interface HeapFigures {
  /** Bytes of live and not yet collected objects in V8's heap. */
  heapUsed: number;
  /** Bytes held outside the heap by JavaScript objects (ArrayBuffers' contents). */
  external: number;
}

/** Options for {@link GcGovernor}. */
export interface GcGovernorOptions {
  /** Collect once heap + external memory grew this much since the last collection. @default 24000000 */
  stepBytes?: number;
  /** How often the figures are read (ms). @default 100 */
  intervalMs?: number;
  /** The full collection. @default globalThis.gc (present with --expose-gc) */
  gc?: () => void;
  /** Where the figures come from. @default Deno.memoryUsage */
  memory?: () => HeapFigures;
  /** Called after each collection the governor made. */
  onCollect?: () => void;
}

/** Starts a full garbage collection each time heap + external memory grew by a step. */
export class GcGovernor {
  readonly #step: number;
  readonly #interval: number;
  readonly #gc: (() => void) | undefined;
  readonly #memory: () => HeapFigures;
  readonly #onCollect: (() => void) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Heap + external memory after the last collection (or the lowest seen since). */
  #base = Infinity;
  #collections = 0;

  /**
   * @param options step, period, and (for tests) the collector and the figures.
   * @throws {RangeError} when `stepBytes` or `intervalMs` is not a positive number.
   */
  constructor(options: GcGovernorOptions = {}) {
    const {
      stepBytes = 24_000_000,
      intervalMs = 100,
      gc = (globalThis as { gc?: () => void }).gc,
      memory = () => Deno.memoryUsage(),
      onCollect,
    } = options;
    if (!(stepBytes > 0)) throw new RangeError(`stepBytes must be positive: got ${stepBytes}`);
    if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be positive: got ${intervalMs}`);
    this.#step = stepBytes;
    this.#interval = intervalMs;
    this.#gc = typeof gc === "function" ? gc : undefined;
    this.#memory = memory;
    this.#onCollect = onCollect;
  }

  /** Collections made so far. */
  get collections(): number {
    return this.#collections;
  }

  /**
   * Start watching.
   *
   * @returns false (and does nothing) when there is no `gc()` to call.
   */
  start(): boolean {
    if (!this.#gc) return false;
    if (this.#timer !== undefined) return true;
    this.#base = this.#level();
    const timer = setInterval(() => this.check(), this.#interval);
    Deno.unrefTimer(timer);
    this.#timer = timer;
    return true;
  }

  /** Stop watching. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Read the figures once, and collect when they grew by a step (the timer calls this).
   *
   * @returns true when it collected.
   */
  check(): boolean {
    if (!this.#gc) return false;
    const level = this.#level();
    if (level < this.#base) this.#base = level; // V8 collected on its own
    if (level - this.#base < this.#step) return false;
    this.#gc();
    this.#collections++;
    this.#base = this.#level();
    this.#onCollect?.();
    return true;
  }

  #level(): number {
    const m = this.#memory();
    return m.heapUsed + m.external;
  }
}

/** glibc's mallopt() parameters used by {@link tuneMalloc}. */
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
/** Blocks from this size on are mapped on their own, and unmapped when freed. */
const MMAP_THRESHOLD = 128 << 10;

/** What {@link tuneMalloc} returns: a way to hand freed memory back to the system. */
export interface MallocTuning {
  /** `malloc_trim(0)` a little later (once V8's sweeper freed the buffers a collection found). */
  trimSoon(): void;
}

/**
 * Makes glibc's malloc give memory back (Linux, with FFI permitted; else `undefined`).
 *
 * ArrayBuffers' contents and the runtime's buffers come from malloc. When its heap has no room,
 * glibc maps a block of 128 KiB or more on its own, but after the first such block is freed it
 * raises that threshold to the block's size (up to 32 MiB): from then on request bodies and RDS
 * answers (~1 MB each) grow the heap, whose free space glibc keeps. Fixing the thresholds at
 * 128 KiB keeps such blocks mapped (unmapped when freed) and the heap's top trimmed, and a trim
 * after each forced collection returns the heap's free pages. Measured on `process` (200 MB of
 * PostgreSQL log): the main heap held 47 MB at the end without this, 24–26 MB with it; peak RSS
 * 169–172 → 162–165 MB.
 */
export function tuneMalloc(): MallocTuning | undefined {
  const libc = loadLibc();
  if (!libc) return undefined;
  const { mallopt, malloc_trim } = libc.symbols;
  if (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) !== 1) return undefined;
  mallopt(M_TRIM_THRESHOLD, MMAP_THRESHOLD);
  let pending: ReturnType<typeof setTimeout> | undefined;
  return {
    trimSoon() {
      if (pending !== undefined) return;
      pending = setTimeout(() => {
        pending = undefined;
        malloc_trim(0n);
      }, 200);
      Deno.unrefTimer(pending);
    },
  };
}

/**
 * The ArrayBuffer `bytes` view all of (nothing else can view it, so it may be freed), or
 * `undefined` when they are part of a larger or shared buffer.
 */
export function wholeBuffer(bytes: Uint8Array): ArrayBuffer | undefined {
  const buf = bytes.buffer;
  if (!(buf instanceof ArrayBuffer)) return undefined;
  return bytes.byteOffset === 0 && bytes.byteLength === buf.byteLength ? buf : undefined;
}

/**
 * Frees `bytes`' memory at once, not at the next full collection, when they are the whole of
 * their buffer ({@link wholeBuffer}); the buffer is detached (`transfer(0)`). One the runtime
 * holds (not detachable) is left to the collector.
 */
export function detachWhole(bytes: Uint8Array): void {
  const buf = wholeBuffer(bytes);
  if (buf === undefined || buf.detached) return;
  try {
    buf.transfer(0);
  } catch {
    // Not detachable: the collector frees it.
  }
}
