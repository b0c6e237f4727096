/**
 * Byte-level line framing: no per-line string decoding. LF and CRLF, a final line without a
 * newline, lines split across chunks, and a `maxLineBytes` limit past which a line is cut (its
 * head kept, the rest discarded up to the newline, counted in `linesTruncated`): never a crash
 * and never unbounded memory.
 *
 * Each input chunk yields one array of lines (views into the input where a line lies within one
 * chunk; a copy only when it spans chunks), so stream overhead is paid per chunk, not per line.
 * Empty lines carry nothing for a log intake and are skipped (counted in `emptyLines`).
 *
 * @example
 * ```ts
 * const lines = await Array.fromAsync(
 *   ReadableStream.from([enc("a\nb"), enc("c\r\n")]).pipeThrough(new LineStream()),
 * ); // [[a], [bc]] as Uint8Array lines
 * ```
 * @module
 */

/** Options for {@link LineStream}. */
export interface LineStreamOptions {
  /** Lines longer than this are cut here. @default 1048576 */
  maxLineBytes?: number;
}

/** Called with each line: its bytes are `buf[start, end)` (without the LF/CRLF). */
export type LineCallback = (buf: Uint8Array, start: number, end: number) => void;

/** Splits bytes into lines (without their LF/CRLF), one array of lines per input chunk. */
export class LineStream extends TransformStream<Uint8Array, Uint8Array[]> {
  /** Lines emitted. */
  lines = 0;
  /** Bytes of the lines emitted (without newlines). */
  bytes = 0;
  /** Lines cut at `maxLineBytes`. */
  linesTruncated = 0;
  /** Where the first cut line starts: its byte offset in the input (undefined: none cut). */
  firstTruncatedAt: number | undefined;
  /** Empty lines skipped. */
  emptyLines = 0;
  #partial: Uint8Array[] = [];
  #partialBytes = 0;
  /** Input bytes before the current chunk, and where the partial line starts. */
  #seen = 0;
  #partialStart = 0;
  /** Inside an over-long line whose head was already emitted: discard up to the newline. */
  #discarding = false;
  readonly #max: number;

  constructor({ maxLineBytes = 1 << 20 }: LineStreamOptions = {}) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer: got ${maxLineBytes}`);
    }
    super({
      transform: (chunk, c) => {
        const out = this.split(chunk);
        if (out.length) c.enqueue(out);
      },
      flush: (c) => {
        const out = this.end();
        if (out.length) c.enqueue(out);
      },
    });
    this.#max = maxLineBytes;
  }

  /**
   * Split without the stream: the lines that `chunk` completes (for framers that need to know
   * which chunk a line came from). Do not mix with writing to the stream.
   */
  split(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.#split(chunk, (buf, start, end) => out.push(buf.subarray(start, end)));
    return out;
  }

  /**
   * {@link split} without a view per line: `each(buf, start, end)` for every line `chunk`
   * completes, `buf` being `chunk` itself, or a copy for a line that spans chunks.
   */
  splitEach(chunk: Uint8Array, each: LineCallback): void {
    this.#split(chunk, each);
  }

  /** The last line, if the input did not end with a newline (the stream's flush). */
  end(): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.endEach((buf, start, end) => out.push(buf.subarray(start, end)));
    return out;
  }

  /** {@link end} as {@link splitEach} reports lines. */
  endEach(each: LineCallback): void {
    if (this.#partialBytes > 0) {
      const line = this.#joinPartial();
      this.#emit(line, 0, line.length, each);
    }
    this.#partial = [];
    this.#partialBytes = 0;
  }

  #emit(buf: Uint8Array, start: number, end: number, each: LineCallback): void {
    if (end > start && buf[end - 1] === 13) end--;
    if (end === start) {
      this.emptyLines++;
      return;
    }
    each(buf, start, end);
    this.lines++;
    this.bytes += end - start;
  }

  /** Emit a complete line (CR still on) starting at input offset `at`, cut at the limit. */
  #emitCut(buf: Uint8Array, start: number, end: number, each: LineCallback, at: number): void {
    const eff = end > start && buf[end - 1] === 13 ? end - 1 - start : end - start;
    if (eff > this.#max) {
      this.#emit(buf, start, start + this.#max, each);
      this.#cut(at);
    } else this.#emit(buf, start, end, each);
  }

  #cut(at: number): void {
    this.linesTruncated++;
    this.firstTruncatedAt ??= at;
  }

  #joinPartial(): Uint8Array {
    if (this.#partial.length === 1) return this.#partial[0]!;
    const buf = new Uint8Array(this.#partialBytes);
    let o = 0;
    for (const p of this.#partial) {
      buf.set(p, o);
      o += p.length;
    }
    return buf;
  }

  #split(chunk: Uint8Array, each: LineCallback): void {
    const max = this.#max;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      if (this.#discarding) {
        this.#discarding = false;
      } else if (this.#partialBytes > 0) {
        const seg = chunk.subarray(start, nl);
        this.#partial.push(seg);
        this.#partialBytes += seg.length;
        const line = this.#joinPartial();
        this.#emitCut(line, 0, line.length, each, this.#partialStart);
        this.#partial = [];
        this.#partialBytes = 0;
      } else {
        this.#emitCut(chunk, start, nl, each, this.#seen + start);
      }
      start = nl + 1;
    }
    if (start < chunk.length && !this.#discarding) {
      const rest = chunk.subarray(start);
      if (this.#partialBytes === 0) this.#partialStart = this.#seen + start;
      if (this.#partialBytes + rest.length > max + 1) {
        // Over the limit without a newline yet: emit the head now, drop the rest of the line.
        this.#partial.push(rest);
        this.#partialBytes += rest.length;
        this.#emit(this.#joinPartial(), 0, max, each);
        this.#cut(this.#partialStart);
        this.#partial = [];
        this.#partialBytes = 0;
        this.#discarding = true;
      } else {
        // A copy: the chunk's buffer may be reused once its complete lines are consumed.
        this.#partial.push(rest.slice());
        this.#partialBytes += rest.length;
      }
    }
    this.#seen += chunk.length;
  }
}
