/**
 * Text lines from UTF-8 chunks, for framers that parse text: a chunk is decoded once, not line
 * by line.
 * @module
 */

const enc = new TextEncoder();

/** Options for {@linkcode TextLines}. */
export interface TextLinesOptions {
  /**
   * Longer lines (in UTF-8 bytes) are cut here and counted in {@linkcode TextLines.linesTruncated}.
   * @default {1048576}
   */
  maxLineBytes?: number;
}

/**
 * Splits decoded text into lines as `LineStream` does for bytes: no `\n`, a trailing `\r`
 * removed, empty lines skipped, lines over `maxLineBytes` cut there (at a character boundary).
 * A line split across chunks, and a character split across chunks, come out whole.
 *
 * @example
 * ```ts
 * import { TextLines } from "./text_lines.ts";
 * const lines = new TextLines();
 * lines.split(new TextEncoder().encode("a\r\nb")); // ["a"]
 * lines.end(); // ["b"]
 * ```
 */
export class TextLines {
  readonly #decoder = new TextDecoder();
  readonly #max: number;
  #tail = "";
  #discarding = false;
  /** Lines cut at `maxLineBytes`. */
  linesTruncated = 0;

  /** @throws {RangeError} when `maxLineBytes` is not a positive integer */
  constructor({ maxLineBytes = 1 << 20 }: TextLinesOptions = {}) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer: got ${maxLineBytes}`);
    }
    this.#max = maxLineBytes;
  }

  /** The lines `chunk` completes. */
  split(chunk: Uint8Array): string[] {
    const out: string[] = [];
    this.eachLine(chunk, (text, from, to) => out.push(text.slice(from, to)));
    return out;
  }

  /** The last line, if the input did not end with a newline. */
  end(): string[] {
    const out: string[] = [];
    this.endLine((text, from, to) => out.push(text.slice(from, to)));
    return out;
  }

  /**
   * The lines `chunk` completes, without cutting them out of the decoded text: `line(text, from,
   * to, ascii)` for each (a line cut at `maxLineBytes` comes as a string of its own). `ascii` is
   * `chunk` when its bytes are the text's characters one for one (ASCII), for the lines read
   * where they are in it: a parser may copy bytes from it instead of reading characters.
   */
  eachLine(chunk: Uint8Array, line: LineAt): void {
    // The chunk's text is not joined to the tail (a joined string is copied flat by its first
    // search: a second copy of every chunk); only the line the tail begins is.
    const text = this.#decoder.decode(chunk, { stream: true });
    // (bytes of a character begun in the previous chunk would make the text one longer)
    const ascii = text.length === chunk.length && isAscii(chunk) ? chunk : undefined;
    let start = 0;
    let nl = text.indexOf("\n");
    if (this.#tail !== "" || this.#discarding) {
      if (nl < 0) {
        if (!this.#discarding) this.#tail += text;
      } else {
        if (this.#discarding) this.#discarding = false; // the rest of a line already cut
        else {
          const first = this.#tail + text.slice(0, nl);
          this.#emit(first, 0, first.length, line);
        }
        this.#tail = "";
        start = nl + 1;
        nl = text.indexOf("\n", start);
      }
    }
    if (this.#tail === "" && !this.#discarding) {
      for (; nl >= 0; nl = text.indexOf("\n", start)) {
        this.#emit(text, start, nl, line, ascii);
        start = nl + 1;
      }
      this.#tail = text.slice(start);
    }
    // A line with no end in sight is cut now rather than held whole; its rest is dropped.
    if (this.#tail.length > this.#max) {
      this.#emit(this.#tail, 0, this.#tail.length, line);
      this.#tail = "";
      this.#discarding = true;
    }
  }

  /** {@linkcode end} as {@linkcode eachLine} does it. */
  endLine(line: LineAt): void {
    const rest = this.#tail + this.#decoder.decode();
    if (!this.#discarding) this.#emit(rest, 0, rest.length, line);
    this.#tail = "";
    this.#discarding = false;
  }

  #emit(text: string, from: number, to: number, line: LineAt, ascii?: Uint8Array): void {
    if (to > from && text.charCodeAt(to - 1) === 13) to--; // \r
    if (to === from) return;
    // UTF-8 takes at most 3 bytes per UTF-16 unit: only long lines need measuring.
    if ((to - from) * 3 > this.#max) {
      const bytes = enc.encode(text.slice(from, to));
      if (bytes.length > this.#max) {
        const cut = new TextDecoder().decode(bytes.subarray(0, this.#max)).replace(/\uFFFD$/, "");
        this.linesTruncated++;
        line(cut, 0, cut.length);
        return;
      }
    }
    line(text, from, to, ascii);
  }
}

/** Every byte of `bytes` is below 0x80 (read 4 at a time where they are aligned). */
function isAscii(bytes: Uint8Array): boolean {
  let i = 0;
  const n = bytes.length;
  for (; i < n && (bytes.byteOffset + i) % 4 !== 0; i++) if (bytes[i]! >= 0x80) return false;
  const words = (n - i) >> 2;
  if (words > 0) {
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset + i, words);
    let acc = 0;
    for (let k = 0; k < words; k++) acc |= w[k]!;
    if ((acc & 0x80808080) !== 0) return false;
    i += words * 4;
  }
  for (; i < n; i++) if (bytes[i]! >= 0x80) return false;
  return true;
}

/**
 * Where a line is: `text.slice(from, to)`; `ascii`, when given, holds the same characters as
 * bytes at the same indices (`ascii[i] === text.charCodeAt(i)`, all below 0x80).
 */
export type LineAt = (text: string, from: number, to: number, ascii?: Uint8Array) => void;
