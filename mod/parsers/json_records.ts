/**
 * JSON log objects: newline-delimited (NDJSON) or one JSON array, detected from the first byte.
 * @module
 */
import { lineText } from "./line_text.ts";
import type { LineParser, LogRecord } from "./record.ts";

/** Options for {@linkcode JsonRecordsParser}. */
export interface JsonRecordsParserOptions {
  /**
   * Largest element of a JSON array document, in characters; a larger element is skipped and
   * counted as malformed, so an array document needs memory for one element, not the whole
   * document. (NDJSON lines are bounded by the line framing before they get here.)
   * @default {1048576}
   */
  maxRecordChars?: number;
  /**
   * How many errors {@linkcode JsonRecordsParser.errors} keeps (the first ones);
   * {@linkcode JsonRecordsParser.malformed} counts them all.
   * @default {100}
   */
  maxErrors?: number;
}

/** Why a line or array element was skipped. */
export interface JsonRecordsError {
  /** 1-based line of the document where the bad line or element starts. */
  line: number;
  /** What was wrong. */
  message: string;
}

const enum Mode {
  Detect,
  Ndjson,
  Array,
}

const SPACE = 0x20, TAB = 0x09, CR = 0x0d, LF = 0x0a;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c;
const OPEN_BRACKET = 0x5b, CLOSE_BRACKET = 0x5d, OPEN_BRACE = 0x7b, CLOSE_BRACE = 0x7d;

function isSpace(c: number): boolean {
  return c === SPACE || c === TAB || c === CR || c === LF;
}

/**
 * Parses a JSON log document fed line by line into one record per log event. The first
 * non-whitespace character decides the form:
 * - `[`: a JSON array of events (pretty-printed over many lines or all on one). It is scanned
 *   incrementally: each element is parsed once complete, so memory is one element (bounded by
 *   `maxRecordChars`) plus the current line. A bad element is skipped up to the next top-level
 *   `,`; several arrays one after another (`[...][...]`) are all read.
 * - anything else: NDJSON, one event per line; blank lines are ignored; a line holding an array
 *   gives one event per element.
 *
 * An event that is a JSON object is the record; any other JSON value becomes `{message: value}`.
 * Malformed lines or elements are skipped, counted in {@linkcode JsonRecordsParser.malformed}
 * and described (with their line number) in {@linkcode JsonRecordsParser.errors}: never fatal.
 * `flush()` ends the document; the parser can then take the next one (counters keep adding up,
 * line numbers restart).
 *
 * @example
 * ```ts
 * import { JsonRecordsParser } from "./json_records.ts";
 * const p = new JsonRecordsParser();
 * const enc = new TextEncoder();
 * p.push(enc.encode('{"msg":"a"}'));
 * p.push(enc.encode("not json"));
 * p.flush();
 * // p.records === 1, p.malformed === 1, p.errors[0].line === 2
 * ```
 */
export class JsonRecordsParser implements LineParser {
  #maxRecordChars: number;
  #maxErrors: number;
  #mode = Mode.Detect;
  #line = 0;
  #lines = 0;
  #records = 0;
  #malformed = 0;
  #errors: JsonRecordsError[] = [];
  // array scanner state
  #depth = 0; // 0 outside an array, 1 between elements, > 1 inside an element's brackets
  #inString = false;
  #escape = false;
  #parts: string[] = [];
  #chars = 0;
  #oversized = false;
  #elementLine = 0; // line where the current element's first character is, 0 before it

  /**
   * @param options see {@linkcode JsonRecordsParserOptions}
   * @throws {RangeError} when `maxRecordChars` is not a positive integer or `maxErrors` is negative
   */
  constructor({ maxRecordChars = 1_048_576, maxErrors = 100 }: JsonRecordsParserOptions = {}) {
    if (!Number.isInteger(maxRecordChars) || maxRecordChars < 1) {
      throw new RangeError(`maxRecordChars must be a positive integer: got ${maxRecordChars}`);
    }
    if (!Number.isInteger(maxErrors) || maxErrors < 0) {
      throw new RangeError(`maxErrors must be a non-negative integer: got ${maxErrors}`);
    }
    this.#maxRecordChars = maxRecordChars;
    this.#maxErrors = maxErrors;
  }

  /** The form detected for the current document, `undefined` before its first character. */
  get format(): "ndjson" | "array" | undefined {
    return this.#mode === Mode.Ndjson ? "ndjson" : this.#mode === Mode.Array ? "array" : undefined;
  }

  /** Lines pushed so far. */
  get lines(): number {
    return this.#lines;
  }

  /** Records emitted so far. */
  get records(): number {
    return this.#records;
  }

  /** Lines or array elements skipped as malformed so far. */
  get malformed(): number {
    return this.#malformed;
  }

  /** The first `maxErrors` malformed lines or elements, with their line numbers. */
  get errors(): readonly JsonRecordsError[] {
    return this.#errors;
  }

  /** Feed one line; returns the records it completed. */
  push(line: Uint8Array): LogRecord[] {
    this.#lines++;
    this.#line++;
    const text = lineText(line);
    const out: LogRecord[] = [];
    if (this.#mode === Mode.Detect) {
      let i = 0;
      while (i < text.length && isSpace(text.charCodeAt(i))) i++;
      if (i === text.length) return out;
      this.#mode = text.charCodeAt(i) === OPEN_BRACKET ? Mode.Array : Mode.Ndjson;
    }
    if (this.#mode === Mode.Ndjson) this.#ndjson(text, out);
    else this.#scan(text, out);
    return out;
  }

  /** End of the document: returns the last array element when the array was not closed. */
  flush(): LogRecord[] {
    const out: LogRecord[] = [];
    if (this.#mode === Mode.Array && this.#depth > 0) {
      if (this.#elementLine > 0) {
        this.#element(out, this.#parts.join(""));
      }
      this.#error(this.#line, "JSON array not closed at end of input", false);
    }
    this.#mode = Mode.Detect;
    this.#line = 0;
    this.#depth = 0;
    this.#inString = false;
    this.#escape = false;
    this.#resetElement();
    return out;
  }

  #ndjson(text: string, out: LogRecord[]): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      if (text.trim().length === 0) return;
      this.#error(this.#line, `invalid JSON: ${(e as Error).message}`);
      return;
    }
    if (Array.isArray(value)) { for (const v of value) this.#emit(out, v); }
    else this.#emit(out, value);
  }

  /** Scans one line of an array document, emitting each element it completes. */
  #scan(text: string, out: LogRecord[]): void {
    let segStart = 0;
    const n = text.length;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i);
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (c === BACKSLASH) this.#escape = true;
        else if (c === QUOTE) this.#inString = false;
        continue;
      }
      if (this.#depth === 0) {
        if (isSpace(c)) continue;
        if (c === OPEN_BRACKET) {
          this.#depth = 1;
          segStart = i + 1;
          continue;
        }
        this.#error(this.#line, `unexpected text after the JSON array at column ${i + 1}`);
        return;
      }
      if (this.#depth === 1) {
        if (c === COMMA || c === CLOSE_BRACKET) {
          if (this.#elementLine > 0) this.#element(out, this.#take(text, segStart, i));
          this.#resetElement();
          segStart = i + 1;
          if (c === CLOSE_BRACKET) this.#depth = 0;
          continue;
        }
        if (isSpace(c)) continue;
        if (this.#elementLine === 0) this.#elementLine = this.#line;
      }
      if (c === QUOTE) this.#inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) this.#depth++;
      else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && this.#depth > 1) this.#depth--;
    }
    if (this.#depth > 0 && this.#elementLine > 0) this.#keep(text.slice(segStart) + "\n");
  }

  /** The element's text: the parts kept from earlier lines plus `text[start, end)`. */
  #take(text: string, start: number, end: number): string {
    this.#keep(text.slice(start, end));
    return this.#parts.join("");
  }

  #keep(part: string): void {
    if (this.#oversized) return;
    this.#chars += part.length;
    if (this.#chars > this.#maxRecordChars) {
      this.#oversized = true;
      this.#parts = [];
      return;
    }
    this.#parts.push(part);
  }

  #element(out: LogRecord[], text: string): void {
    if (this.#oversized) {
      this.#error(this.#elementLine, `array element larger than ${this.#maxRecordChars} chars`);
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      this.#error(this.#elementLine, `invalid JSON array element: ${(e as Error).message}`);
      return;
    }
    this.#emit(out, value);
  }

  #resetElement(): void {
    this.#parts = [];
    this.#chars = 0;
    this.#oversized = false;
    this.#elementLine = 0;
  }

  #emit(out: LogRecord[], value: unknown): void {
    this.#records++;
    out.push(
      typeof value === "object" && value !== null && !Array.isArray(value)
        ? value as LogRecord
        : { message: value },
    );
  }

  #error(line: number, message: string, count = true): void {
    if (count) this.#malformed++;
    if (this.#errors.length < this.#maxErrors) this.#errors.push({ line, message });
  }
}
