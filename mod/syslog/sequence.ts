/**
 * Exact loss accounting from sequence tags: per sender (worker), which numbers arrived, which
 * twice, which after a higher one, and which never. A sender numbers its messages 0, 1, 2, ...;
 * a window of the last {@link WINDOW} numbers is kept as a bitmap (128 KiB a sender), so
 * duplicates and late arrivals are told apart exactly within it; a message older than the
 * window is counted as reordered (it cannot be checked for a duplicate).
 *
 * Lost = numbers up to the highest seen that never arrived; when the sender says how many it
 * sent ({@link SequenceTracker.summary} with `sent`), the missing tail counts too.
 * @module
 */

/** Numbers tracked exactly behind the highest seen, per sender. */
export const WINDOW = 1 << 20;

/** What one sender's numbers say. */
export interface SequenceCounts {
  /** Tagged messages received, duplicates included. */
  received: number;
  /** Distinct numbers received. */
  distinct: number;
  /** Numbers received more than once (each extra copy counts). */
  duplicated: number;
  /** Numbers that arrived after a higher one. */
  reordered: number;
  /** Highest number seen, -1 if none. */
  highest: number;
  /** Numbers never received: up to `highest`, or up to `sent` when known. */
  lost: number;
  /** lost / expected, in percent (0 when nothing was expected). */
  lossPercent: number;
}

class Sender {
  readonly bits = new Uint32Array(WINDOW / 32);
  /** Numbers below `base` have left the window. */
  base = 0;
  highest = -1;
  received = 0;
  distinct = 0;
  duplicated = 0;
  reordered = 0;

  see(seq: number): void {
    this.received++;
    if (seq < this.base) {
      // Older than the window: it arrived late; whether it is a copy cannot be known.
      this.distinct++;
      this.reordered++;
      return;
    }
    if (seq >= this.base + WINDOW) this.#slide(seq - WINDOW + 1);
    const i = seq & (WINDOW - 1);
    const word = i >>> 5, bit = 1 << (i & 31);
    if (this.bits[word]! & bit) {
      this.duplicated++;
      return;
    }
    this.bits[word]! |= bit;
    this.distinct++;
    if (seq < this.highest) this.reordered++;
    else this.highest = seq;
  }

  #slide(newBase: number): void {
    if (newBase - this.base >= WINDOW) this.bits.fill(0);
    else {
      for (let s = this.base; s < newBase; s++) {
        const i = s & (WINDOW - 1);
        this.bits[i >>> 5]! &= ~(1 << (i & 31));
      }
    }
    this.base = newBase;
  }

  counts(sent?: number): SequenceCounts {
    const expected = Math.max(this.highest + 1, sent ?? 0);
    const lost = Math.max(0, expected - this.distinct);
    return {
      received: this.received,
      distinct: this.distinct,
      duplicated: this.duplicated,
      reordered: this.reordered,
      highest: this.highest,
      lost,
      lossPercent: expected ? (100 * lost) / expected : 0,
    };
  }
}

/** Sequence accounting for every sender seen. */
export class SequenceTracker {
  readonly #senders = new Map<number, Sender>();
  /** Messages that carried no tag. */
  untagged = 0;

  /** Count one message from `worker` numbered `seq`. */
  see(worker: number, seq: number): void {
    let s = this.#senders.get(worker);
    if (!s) this.#senders.set(worker, s = new Sender());
    s.see(seq);
  }

  /**
   * Per sender and in total.
   *
   * @param sent messages each sender says it sent (by worker), for loss at the tail.
   */
  summary(
    sent?: ReadonlyMap<number, number>,
  ): { workers: Record<string, SequenceCounts>; total: SequenceCounts } {
    const workers: Record<string, SequenceCounts> = {};
    const total: SequenceCounts = {
      received: 0,
      distinct: 0,
      duplicated: 0,
      reordered: 0,
      highest: -1,
      lost: 0,
      lossPercent: 0,
    };
    let expected = 0;
    const ids = new Set([...this.#senders.keys(), ...(sent?.keys() ?? [])]);
    for (const id of [...ids].sort((a, b) => a - b)) {
      const c = (this.#senders.get(id) ?? new Sender()).counts(sent?.get(id));
      workers[id] = c;
      total.received += c.received;
      total.distinct += c.distinct;
      total.duplicated += c.duplicated;
      total.reordered += c.reordered;
      total.lost += c.lost;
      total.highest = Math.max(total.highest, c.highest);
      expected += c.distinct + c.lost;
    }
    total.lossPercent = expected ? (100 * total.lost) / expected : 0;
    return { workers, total };
  }
}
