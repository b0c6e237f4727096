/**
 * One pass over an Azure append blob whose appends are complete gzip members, from a committed
 * byte offset: a {@link Source} of consecutive ranges, each a unit. A range starts where the
 * previous one's last complete member ended (`UnitResult.consumed`, reported by the decoder).
 * When the unit's framer reports that offset as soon as the range is decoded (see
 * {@link DecodedReceiver}), the next range is read while the previous one's lines are still
 * being delivered (at most one range ahead); otherwise it waits for the delivery. Ranges are
 * committed (`commit`) in order, each after its delivery, and never past a range that failed, so
 * a crash re-sends at most two ranges: the duplicates are bounded by 2 × `rangeBytes` of
 * compressed input.
 *
 * A range that ends inside a member delivers the members before it; the cut member is read again
 * by the next range. A member still being appended at the blob's end is left for the next pass
 * (`progress.committed` stays before it). When one range holds no complete member the range grows
 * (doubling, up to the blob's end).
 *
 * A corrupt member (bad CRC, bad deflate data) is not retried forever: the members before it are
 * delivered and committed, then its bytes up to the next gzip header are skipped, reported to
 * `onCorrupt` (log it, count it) and committed, and the pass goes on.
 *
 * @example
 * ```ts
 * const source = new AppendBlobSource(container, "kubernetes/20250606.api-1-2_ns_c.gz", {
 *   start: await offsets.get(id),
 *   commit: (r) => offsets.put(id, r.end),
 * });
 * await runPipeline({ source, sink, decode: { allowTruncatedTail: true }, ... });
 * console.log(source.progress.committed);
 * ```
 * @module
 */

import { DecodeError, type DecodeFault, type DecodeReason } from "../pipeline/gzip.ts";
import type { Source, Unit, UnitResult } from "../pipeline/types.ts";
import type { AzureBlobContainer } from "./azure_blob.ts";

/**
 * A unit that wants to know, as soon as its input is decoded (before its lines are delivered),
 * how far the decoder got and what a resyncing decoder passed over. Its framer tells it at the
 * end of the unit's input.
 */
export interface DecodedReceiver {
  decoded(consumed: number, faults: readonly DecodeFault[]): void;
}

/** Tell `unit` how far its decoder got and what it passed over, if it wants to know. */
export function reportDecoded(
  unit: object,
  decoder: { consumed: number; faults: readonly DecodeFault[] },
): void {
  if ("decoded" in unit) (unit as DecodedReceiver).decoded(decoder.consumed, decoder.faults);
}

/** A delivered range, handed to `commit`. */
export interface CommittedRange {
  /** Where the range started (a member boundary). */
  start: number;
  /** The end of its last complete member: the new committed offset. */
  end: number;
  lines: number;
  /** Decoded bytes of the lines (without newlines). */
  bytes: number;
}

/** What a pass did so far. */
export interface AppendBlobProgress {
  /** The offset the pass started at. */
  start: number;
  /** The last committed offset (the end of the last complete, delivered member). */
  committed: number;
  /** The blob's size when the pass started (or `end`). */
  size: number;
  lines: number;
  bytes: number;
  /** Ranges delivered. */
  ranges: number;
  /** Corrupt bytes skipped. */
  skipped: number;
  /** Why the pass stopped early (a range failed: nothing after `committed` was committed). */
  failure?: Error;
}

/** Options for {@link AppendBlobSource}. */
export interface AppendBlobSourceOptions {
  /** The first byte to read: a member boundary (0, or a committed offset). */
  start: number;
  /** Read up to this offset (exclusive). @default the blob's size when the pass starts */
  end?: number;
  /** Compressed bytes per range (unit); the offset is committed after each. @default 4194304 */
  rangeBytes?: number;
  /** Attributes of every unit (a sink may turn them into headers); `start_offset` is added. */
  attributes?: Record<string, string>;
  /** Persist a delivered range's end. Called in order; the next range waits for it. */
  commit: (range: CommittedRange) => Promise<void>;
  /**
   * Corrupt bytes were skipped: `skipped` bytes from blob offset `offset` (committed past), found
   * by a resyncing decoder (the pipeline's `decode.resync`) or at a range's start.
   */
  onCorrupt?: (
    c: { offset: number; skipped: number; reason: DecodeReason; message: string },
  ) => void;
}

/** The DecodeError in an error's cause chain. */
function decodeErrorOf(e: unknown): DecodeError | undefined {
  for (let cur = e, i = 0; cur instanceof Error && i < 8; cur = cur.cause, i++) {
    if (cur instanceof DecodeError) return cur;
  }
  return undefined;
}

/** Consecutive ranges of one append blob from a committed offset. */
export class AppendBlobSource implements Source {
  readonly kind = "azure_blob";
  readonly #container: AzureBlobContainer;
  readonly #blob: string;
  readonly #o:
    & Required<Omit<AppendBlobSourceOptions, "end" | "onCorrupt">>
    & Pick<AppendBlobSourceOptions, "end" | "onCorrupt">;
  readonly #progress: AppendBlobProgress;

  /**
   * @param container the blob's container.
   * @param blob the blob name.
   * @param options start offset, range size, attributes and the commit callback.
   * @throws {RangeError} on a negative start or a range size below 1.
   */
  constructor(container: AzureBlobContainer, blob: string, options: AppendBlobSourceOptions) {
    const { start, rangeBytes = 4 << 20, attributes = {} } = options;
    if (!Number.isInteger(start) || start < 0) {
      throw new RangeError(`start offset must be a non-negative integer: got ${start}`);
    }
    if (!Number.isInteger(rangeBytes) || rangeBytes < 1) {
      throw new RangeError(`range_bytes must be a positive integer: got ${rangeBytes}`);
    }
    this.#container = container;
    this.#blob = blob;
    this.#o = { ...options, start, rangeBytes, attributes };
    this.#progress = {
      start,
      committed: start,
      size: start,
      lines: 0,
      bytes: 0,
      ranges: 0,
      skipped: 0,
    };
  }

  /** The pass's progress (final once the pipeline returned). */
  get progress(): Readonly<AppendBlobProgress> {
    return this.#progress;
  }

  async *units(signal: AbortSignal): AsyncIterable<Unit> {
    const p = this.#progress;
    let time: number | undefined;
    if (this.#o.end !== undefined) {
      p.size = this.#o.end;
    } else {
      const info = await this.#container.properties(this.#blob, signal);
      if (!info) {
        throw new Error(`${this.#container.url}/${this.#blob} does not exist`);
      }
      p.size = info.size;
      time = Date.parse(info.lastModified) || undefined;
    }
    let window = this.#o.rangeBytes;
    let stopAt: number | undefined;
    // Ranges are committed in order: each one's commit waits for the one before it.
    let chain: Promise<boolean> = Promise.resolve(true);
    let behind: Promise<unknown> | undefined;
    let next = p.committed;
    try {
      while (next < p.size && !signal.aborted && p.failure === undefined) {
        const start = next;
        const end = stopAt ?? Math.min(p.size, start + window);
        stopAt = undefined;
        const settled = Promise.withResolvers<UnitResult | Error>();
        const decoded = Promise.withResolvers<number>();
        const prev = chain;
        chain = settled.promise.then((r) => !(r instanceof Error));
        settled.promise.then((r) => {
          if (r instanceof Error && !decodeErrorOf(r)) p.failure ??= r;
        });
        yield this.#unit(start, end, time, settled, decoded, prev);
        // Decoded with complete members: the next range starts where they end, while this one's
        // lines are still being delivered (its commit follows, in order).
        const first = await Promise.race([settled.promise, decoded.promise]);
        if (typeof first === "number" && first > 0) {
          next = start + first;
          window = this.#o.rangeBytes;
          // At most one range read ahead of the one being delivered: a crash re-sends at most
          // two ranges.
          await behind;
          behind = settled.promise;
          continue;
        }
        behind = undefined;
        const r = await settled.promise;
        if (r instanceof Error) {
          const bad = decodeErrorOf(r);
          if (!bad) {
            p.failure ??= r;
            return;
          }
          // The ranges before this one must be committed before it is read again.
          if (!(await prev)) {
            p.failure ??= new Error(
              `an earlier range of ${this.#container.url}/${this.#blob} failed`,
            );
            return;
          }
          chain = Promise.resolve(true);
          if (bad.offset > 0) {
            stopAt = start + bad.offset; // deliver the good members before it on their own
            next = start;
            continue;
          }
          const skipTo = await this.#nextHeader(start + 1, p.size, signal);
          if (skipTo === undefined) return; // aborted
          try {
            await this.#o.commit({ start, end: skipTo, lines: 0, bytes: 0 });
          } catch (e) {
            p.failure = new Error(`cannot commit ${this.#container.url}/${this.#blob}`, {
              cause: e,
            });
            return;
          }
          p.committed = next = skipTo;
          p.skipped += skipTo - start;
          chain = Promise.resolve(true);
          this.#o.onCorrupt?.({
            offset: start,
            skipped: skipTo - start,
            reason: bad.reason,
            message: bad.message,
          });
          continue;
        }
        if (r.consumed === 0) {
          if (end >= p.size) return; // only a member still being appended remains
          window *= 2; // one member is longer than the range
          next = start;
          continue;
        }
        next = start + r.consumed;
        window = this.#o.rangeBytes;
      }
    } finally {
      // The pass ends once every range handed out has settled (and committed, in order).
      await chain.catch(() => false);
    }
  }

  /** The offset of the next gzip header (1f 8b 08) at or after `from`, else `size`. */
  async #nextHeader(from: number, size: number, signal: AbortSignal): Promise<number | undefined> {
    const step = this.#o.rangeBytes;
    for (let at = from; at < size; at += step) {
      if (signal.aborted) return undefined;
      // Two bytes of overlap, so a header across windows is found.
      const body = await this.#container.read(
        this.#blob,
        at,
        Math.min(step + 2, size - at),
        signal,
      );
      const chunk = new Uint8Array(await new Response(body).arrayBuffer());
      for (
        let i = chunk.indexOf(0x1f);
        i >= 0 && i + 2 < chunk.length;
        i = chunk.indexOf(0x1f, i + 1)
      ) {
        if (chunk[i + 1] === 0x8b && chunk[i + 2] === 0x08) return at + i;
      }
    }
    return size;
  }

  #unit(
    start: number,
    end: number,
    time: number | undefined,
    settled: PromiseWithResolvers<UnitResult | Error>,
    decoded: PromiseWithResolvers<number>,
    prev: Promise<boolean>,
  ): Unit {
    const c = this.#container;
    const blob = this.#blob;
    const p = this.#progress;
    let faults: readonly DecodeFault[] = [];
    const unit: Unit & DecodedReceiver = {
      decoded: (consumed, f) => {
        faults = f;
        decoded.resolve(consumed);
      },
      id: `${c.url}/${blob}@${start}-${end}`,
      ...(time !== undefined && { time }),
      size: end - start,
      attributes: { ...this.#o.attributes, start_offset: String(start) },
      open: (signal) => c.read(blob, start, end - start, signal),
      ack: async (r) => {
        // An earlier range failed: nothing after it may be committed.
        if (!(await prev)) {
          settled.resolve(new Error(`an earlier range of ${c.url}/${blob} failed`));
          return;
        }
        if (r.consumed > 0) {
          try {
            await this.#o.commit({
              start,
              end: start + r.consumed,
              lines: r.lines,
              bytes: r.bytes,
            });
          } catch (e) {
            const err = new Error(
              `cannot commit ${c.url}/${blob} at byte ${
                start + r.consumed
              }: its lines were delivered and will be sent again`,
              { cause: e },
            );
            settled.resolve(err);
            throw err;
          }
          p.committed = start + r.consumed;
          p.lines += r.lines;
          p.bytes += r.bytes;
          p.ranges++;
          // What the decoder passed over inside the committed part: reported once, here.
          for (const f of faults) {
            if (f.offset >= r.consumed || f.skipped === 0) continue;
            p.skipped += f.skipped;
            try {
              this.#o.onCorrupt?.({
                offset: start + f.offset,
                skipped: f.skipped,
                reason: f.reason,
                message: f.message.replace(
                  /at byte (\d+)/,
                  (_, n) => `at blob byte ${start + Number(n)}`,
                ),
              });
            } catch { /* a reporting callback must not stop the pass */ }
          }
        }
        settled.resolve(r);
      },
      nack: (e) => {
        settled.resolve(e);
        return Promise.resolve();
      },
    };
    return unit;
  }
}
