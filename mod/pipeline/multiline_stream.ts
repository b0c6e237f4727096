/**
 * Multi-line records (stack traces): bytes → lines (LineStream) → records, where a line matching
 * `startPattern` begins a record and every other line is joined to the record before it, with
 * `separator` between them. A newline cannot be that separator: bodies are newline-delimited, so
 * a newline would end the record on the wire; the default is the two characters `\n`.
 *
 * The stream ends its last record when its input ends: the source decides where input ends (the
 * tail source cuts a unit before the last record start it has seen, so a record still being
 * written is not split).
 *
 * @example
 * ```ts
 * const records = await Array.fromAsync(
 *   ReadableStream.from([enc("2025 boom\n\tat x\n2025 ok\n")])
 *     .pipeThrough(new MultilineStream({ startPattern: /^\d{4} / })),
 * ); // [["2025 boom\\n\tat x"], ["2025 ok"]] as bytes (one array per input chunk)
 * ```
 * @module
 */

import { LineStream } from "./line_stream.ts";

/** Options for {@link MultilineStream}. */
export interface MultilineStreamOptions {
  /** A line matching this begins a record (tested on its first 1,024 bytes, decoded). */
  startPattern: RegExp;
  /** Put between joined lines. @default "\\n" (a backslash and an n) */
  separator?: string;
  /** Lines, and records, longer than this are cut here (counted). @default 1048576 */
  maxRecordBytes?: number;
}

const decoder = new TextDecoder();

/** Joins lines into records by a start-of-record pattern; one array of records per chunk. */
export class MultilineStream extends TransformStream<Uint8Array, Uint8Array[]> {
  /** Records (or lines) cut at `maxRecordBytes`. */
  linesTruncated = 0;
  readonly #lines: LineStream;
  readonly #start: RegExp;
  readonly #sep: Uint8Array;
  readonly #max: number;
  #parts: Uint8Array[] = [];
  #bytes = 0;

  /**
   * @param options the start-of-record pattern, the separator and the size limit.
   * @throws {RangeError} when `maxRecordBytes` is not a positive integer.
   */
  constructor(
    { startPattern, separator = "\\n", maxRecordBytes = 1 << 20 }: MultilineStreamOptions,
  ) {
    if (!Number.isInteger(maxRecordBytes) || maxRecordBytes < 1) {
      throw new RangeError(`maxRecordBytes must be a positive integer: got ${maxRecordBytes}`);
    }
    super({
      transform: (chunk, c) => {
        const out = this.#take(this.#lines.split(chunk));
        if (out.length) c.enqueue(out);
      },
      flush: (c) => {
        const out = this.#take(this.#lines.end());
        this.#end(out);
        if (out.length) c.enqueue(out);
      },
    });
    this.#lines = new LineStream({ maxLineBytes: maxRecordBytes });
    this.#start = startPattern;
    this.#sep = new TextEncoder().encode(separator);
    this.#max = maxRecordBytes;
  }

  #take(lines: Uint8Array[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const line of lines) {
      if (this.#parts.length === 0 || this.#start.test(decoder.decode(line.subarray(0, 1024)))) {
        this.#end(out);
      }
      const add = this.#parts.length ? this.#sep.length + line.length : line.length;
      if (this.#bytes + add > this.#max) {
        if (this.#bytes < this.#max) this.linesTruncated++;
        this.#bytes = this.#max + 1; // drop the rest of the record, counted once
        continue;
      }
      if (this.#parts.length) this.#parts.push(this.#sep);
      this.#parts.push(line.slice()); // a copy: the chunk's buffer may be reused
      this.#bytes += add;
    }
    return out;
  }

  #end(out: Uint8Array[]): void {
    if (this.#parts.length === 0) return;
    const parts = this.#parts;
    if (parts.length === 1) out.push(parts[0]!);
    else {
      const size = parts.reduce((n, p) => n + p.length, 0);
      const rec = new Uint8Array(size);
      let o = 0;
      for (const p of parts) {
        rec.set(p, o);
        o += p.length;
      }
      out.push(rec);
    }
    this.#parts = [];
    this.#bytes = 0;
  }
}
