/**
 * Batching: a batch closes at `batchLines` items, or before an item would push it past
 * `batchBytes` (never exceeded unless one item alone is larger), or `flushInterval` after its
 * first item, whichever comes first. Each batch records how many of its items came from each
 * tag (the units they belong to), so delivery can be acknowledged per unit.
 *
 * Closed batches are handed to `onBatch` one at a time, in order; `add` returns onBatch's
 * promise when it closed a batch, so a slow sink slows the producers down (backpressure).
 * @module
 */

/** A closed batch. */
export interface TaggedBatch<T, Tag> {
  items: T[];
  /** Sum of `sizeOf(item)`. */
  bytes: number;
  /** Items per tag. */
  tags: Map<Tag, number>;
}

/** Options for {@link Batcher}. */
export interface BatcherOptions<T, Tag> {
  /** @default 1000 */
  batchLines?: number;
  /** @default 1048576 */
  batchBytes?: number;
  /** Milliseconds. @default 1000 */
  flushInterval?: number;
  /** An item's encoded size. @default byteLength + 1 (a line and its newline) */
  sizeOf?: (item: T) => number;
  /** Receives each closed batch; resolve when the sink has taken it. */
  onBatch: (batch: TaggedBatch<T, Tag>) => Promise<void>;
}

/** Collects tagged items into batches. */
export class Batcher<T, Tag = unknown> {
  readonly #lines: number;
  readonly #bytes: number;
  readonly #interval: number;
  readonly #sizeOf: (item: T) => number;
  readonly #onBatch: (batch: TaggedBatch<T, Tag>) => Promise<void>;
  #cur: TaggedBatch<T, Tag> = { items: [], bytes: 0, tags: new Map() };
  #chain: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(
    {
      batchLines = 1000,
      batchBytes = 1 << 20,
      flushInterval = 1000,
      sizeOf = (item) => (item as Uint8Array).byteLength + 1,
      onBatch,
    }: BatcherOptions<T, Tag>,
  ) {
    if (!Number.isInteger(batchLines) || batchLines < 1) {
      throw new RangeError(`batch_lines must be a positive integer: got ${batchLines}`);
    }
    if (!Number.isInteger(batchBytes) || batchBytes < 1) {
      throw new RangeError(`batch_bytes must be a positive integer: got ${batchBytes}`);
    }
    if (!(flushInterval > 0)) {
      throw new RangeError(`flush_interval must be positive: got ${flushInterval}`);
    }
    this.#lines = batchLines;
    this.#bytes = batchBytes;
    this.#interval = flushInterval;
    this.#sizeOf = sizeOf;
    this.#onBatch = onBatch;
  }

  /**
   * Add one item. Returns a promise (to await) when a batch was closed, else undefined.
   *
   * @throws {Error} after {@link close}.
   */
  add(item: T, tag: Tag): Promise<void> | undefined {
    if (this.#closed) throw new Error("Batcher.add() after close()");
    const size = this.#sizeOf(item);
    let wait: Promise<void> | undefined;
    const cur = this.#cur;
    if (cur.items.length > 0 && cur.bytes + size > this.#bytes) wait = this.#close();
    const b = this.#cur;
    if (b.items.length === 0) this.#arm();
    b.items.push(item);
    b.bytes += size;
    b.tags.set(tag, (b.tags.get(tag) ?? 0) + 1);
    if (b.items.length >= this.#lines || b.bytes >= this.#bytes) wait = this.#close();
    return wait;
  }

  /** Close the open batch now (if any); resolves when every closed batch was taken. */
  flush(): Promise<void> {
    if (this.#cur.items.length > 0) return this.#close();
    return this.#chain;
  }

  /** Flush and stop the timer; no more adds. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const batch = this.#cur;
    this.#timer = setTimeout(() => {
      if (this.#cur === batch && batch.items.length > 0) {
        this.#close().catch(() => {});
      }
    }, this.#interval);
  }

  #close(): Promise<void> {
    clearTimeout(this.#timer);
    const b = this.#cur;
    this.#cur = { items: [], bytes: 0, tags: new Map() };
    this.#chain = this.#chain.then(() => this.#onBatch(b));
    return this.#chain;
  }
}
