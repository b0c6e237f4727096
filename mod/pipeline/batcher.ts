/**
 * Batching: a batch closes at `batchLines` items, or before an item would push it past
 * `batchBytes` (never exceeded unless one item alone is larger), or `flushInterval` after its
 * first item, whichever comes first. Each batch records how many of its items came from each
 * tag (the units they belong to), so delivery can be acknowledged per unit.
 *
 * Closed batches are handed to `onBatch` one at a time, in order; `add` returns onBatch's
 * promise when it closed a batch, so a slow sink slows the producers down (backpressure).
 *
 * With `copyLines`, byte lines are copied as they are added into one buffer per batch, each
 * followed by a newline: the batch's `body`, ready to send as newline-delimited bytes, with
 * `items` as views into it. The input chunks the lines came from are then free as soon as `add`
 * returns, and a batch's buffer is reused for a later batch once {@link Batcher.recycle} says
 * the sink is done with it: decoded bytes cost no allocation per batch.
 * @module
 */

/** A closed batch. */
export interface TaggedBatch<T, Tag> {
  /** The items (with `copyLines`, views into `body`, made when first asked for). */
  readonly items: T[];
  /** How many items. */
  count: number;
  /** Sum of `sizeOf(item)`. */
  bytes: number;
  /** Items per tag. */
  tags: Map<Tag, number>;
  /** The tags in item order, run-length: `[tag, n]` (item i's tag, for partial failures). */
  runs: [Tag, number][];
  /** With `copyLines`: the items, each followed by "\n", in one buffer (`bytes` long). */
  body?: Uint8Array;
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
  /**
   * Items are byte lines: copy each into the batch's `body` (see the module doc). `sizeOf` must
   * then be the default. @default false
   */
  copyLines?: boolean;
  /** With `copyLines`: batch buffers kept for reuse. @default 16 */
  keepBuffers?: number;
}

/** The open batch. With `copyLines` it keeps where each line ends, not a view per line. */
class OpenBatch<T, Tag> implements TaggedBatch<T, Tag> {
  count = 0;
  bytes = 0;
  tags = new Map<Tag, number>();
  runs: [Tag, number][] = [];
  body: Uint8Array | undefined;
  /** With copyLines: the buffer the lines are copied into (`body` is its filled part). */
  slab: Uint8Array | undefined;
  #items: T[] = [];
  /** With copyLines: each line's end in `body` (the next line starts after its newline). */
  readonly ends: number[] | undefined;

  constructor(copy: boolean) {
    if (copy) this.ends = [];
  }

  get items(): T[] {
    const ends = this.ends;
    if (ends && this.#items.length < ends.length && this.body) {
      for (let i = this.#items.length; i < ends.length; i++) {
        this.#items.push(this.body.subarray(i === 0 ? 0 : ends[i - 1]! + 1, ends[i]) as T);
      }
    }
    return this.#items;
  }

  push(item: T): void {
    this.#items.push(item);
  }
}

/** Collects tagged items into batches. */
export class Batcher<T, Tag = unknown> {
  readonly #lines: number;
  readonly #bytes: number;
  readonly #interval: number;
  readonly #sizeOf: (item: T) => number;
  readonly #onBatch: (batch: TaggedBatch<T, Tag>) => Promise<void>;
  #cur: OpenBatch<T, Tag>;
  #chain: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #copy: boolean;
  readonly #keep: number;
  /** With copyLines: buffers of finished batches, for reuse. */
  readonly #free: Uint8Array[] = [];

  constructor(
    {
      batchLines = 1000,
      batchBytes = 1 << 20,
      flushInterval = 1000,
      sizeOf = (item) => (item as Uint8Array).byteLength + 1,
      onBatch,
      copyLines = false,
      keepBuffers = 16,
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
    this.#copy = copyLines;
    this.#keep = keepBuffers;
    this.#cur = new OpenBatch(copyLines);
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
    if (cur.count > 0 && cur.bytes + size > this.#bytes) wait = this.#close();
    const b = this.#cur;
    if (b.count === 0) this.#arm();
    if (b.ends) {
      const line = item as Uint8Array;
      if (b.count === 0) {
        // A line larger than a batch gets a buffer of its own.
        b.slab = size <= this.#bytes
          ? this.#free.pop() ?? new Uint8Array(this.#bytes)
          : new Uint8Array(size);
      }
      const slab = b.slab!;
      slab.set(line, b.bytes);
      slab[b.bytes + line.length] = 10;
      b.ends.push(b.bytes + line.length);
    } else b.push(item);
    b.count++;
    b.bytes += size;
    b.tags.set(tag, (b.tags.get(tag) ?? 0) + 1);
    const run = b.runs[b.runs.length - 1];
    if (run && run[0] === tag) run[1]++;
    else b.runs.push([tag, 1]);
    if (b.count >= this.#lines || b.bytes >= this.#bytes) wait = this.#close();
    return wait;
  }

  /** Close the open batch now (if any); resolves when every closed batch was taken. */
  flush(): Promise<void> {
    if (this.#cur.count > 0) return this.#close();
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
      if (this.#cur === batch && batch.count > 0) {
        this.#close().catch(() => {});
      }
    }, this.#interval);
  }

  /**
   * The sink is done with `batch` (delivered or given up): with `copyLines`, its buffer carries
   * a later batch. Its items must not be used after this.
   */
  recycle(batch: TaggedBatch<T, Tag>): void {
    const buf = batch.body?.buffer;
    if (!buf || buf.byteLength !== this.#bytes || this.#free.length >= this.#keep) return;
    this.#free.push(new Uint8Array(buf));
  }

  #close(): Promise<void> {
    clearTimeout(this.#timer);
    const b = this.#cur;
    if (b.slab) b.body = b.slab.subarray(0, b.bytes);
    this.#cur = new OpenBatch(this.#copy);
    this.#chain = this.#chain.then(() => this.#onBatch(b));
    return this.#chain;
  }
}
