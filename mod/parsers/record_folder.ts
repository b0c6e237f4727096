/**
 * The record being built by a multi-line parser, with the counters every parser exposes.
 * @module
 */
import { lineText } from "./line_text.ts";
import type { LineParser, LogRecord, ParserContext } from "./record.ts";

/**
 * Holds one pending record while continuation lines are folded into it, bounded to `maxChars`
 * characters of folded text; counts the records emitted and those with `parse_error: true`.
 * Used by the MySQL parsers (PostgresParser folds into the JSON it writes); not a stream itself.
 */
export class RecordFolder {
  #maxChars: number;
  #pending: LogRecord | undefined;
  #field = "message";
  #chars = 0;
  #records = 0;
  #parseErrors = 0;

  /**
   * @param maxChars largest amount of text folded into one record; see {@linkcode append}
   * @throws {RangeError} when `maxChars` is not a positive integer
   */
  constructor(maxChars: number) {
    if (!Number.isInteger(maxChars) || maxChars < 1) {
      throw new RangeError(`maxRecordChars must be a positive integer: got ${maxChars}`);
    }
    this.#maxChars = maxChars;
  }

  /** The record being folded, if any. */
  get pending(): LogRecord | undefined {
    return this.#pending;
  }

  /** The field that plain continuation lines extend (the one written last). */
  get field(): string {
    return this.#field;
  }

  /** Records emitted so far. */
  get records(): number {
    return this.#records;
  }

  /** Records emitted with `parse_error: true` so far. */
  get parseErrors(): number {
    return this.#parseErrors;
  }

  /** Emits the pending record (if any) to `out` and makes `record` the pending one. */
  start(out: LogRecord[], record: LogRecord, field = "message"): void {
    this.emit(out);
    this.#pending = record;
    this.#field = field;
    const text = record[field];
    this.#chars = typeof text === "string" ? text.length : 0;
  }

  /**
   * Appends `text` to the pending record's `field` (joined with `"\n"`) and makes `field` the one
   * later lines extend. When that would exceed the bound, the pending record is emitted and `text`
   * starts a new one `{[field]: text, continued: true, parse_error: true}`: split, not dropped.
   * Must only be called while a record is pending.
   */
  append(out: LogRecord[], field: string, text: string): void {
    if (this.#chars + text.length + 1 > this.#maxChars) {
      this.start(out, { [field]: text, continued: true, parse_error: true }, field);
      return;
    }
    const pending = this.#pending!;
    const prev = pending[field];
    pending[field] = typeof prev === "string" ? `${prev}\n${text}` : text;
    this.#chars += text.length + 1;
    this.#field = field;
  }

  /**
   * The pending record and the field later lines extend, as a JSON-ready object, or `{}`.
   * {@linkcode restore} makes another folder continue from it.
   */
  state(): ParserContext {
    const pending = this.#pending;
    return pending === undefined ? {} : { pending, field: this.#field, chars: this.#chars };
  }

  /** Continue from a {@linkcode state} (of a previous read); anything else is ignored. */
  restore(state: ParserContext): void {
    const { pending, field, chars } = state;
    if (typeof pending !== "object" || pending === null || Array.isArray(pending)) return;
    this.#pending = pending as LogRecord;
    this.#field = typeof field === "string" ? field : "message";
    this.#chars = typeof chars === "number" ? chars : 0;
  }

  /** Emits the pending record, if any, to `out`. */
  emit(out: LogRecord[]): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    this.#pending = undefined;
    this.#records++;
    if (pending.parse_error === true) this.#parseErrors++;
    out.push(pending);
  }
}

/**
 * What the multi-line parsers share: a {@link RecordFolder} and the counters every parser reports
 * (`lines`, `records`, `parseErrors`, `headerLines`).
 */
export abstract class FoldingParser implements LineParser {
  protected readonly folder: RecordFolder;
  protected linesSeen = 0;
  protected headersSkipped = 0;

  /**
   * @param context where a previous read stopped (see {@linkcode context})
   * @throws {RangeError} when `maxRecordChars` is not a positive integer
   */
  constructor(maxRecordChars: number, context?: ParserContext) {
    this.folder = new RecordFolder(maxRecordChars);
    if (context !== undefined) this.folder.restore(context);
  }

  /** The record being folded, for the next read of the same file. */
  context(): ParserContext {
    return this.folder.state();
  }

  /** Lines pushed so far. */
  get lines(): number {
    return this.linesSeen;
  }

  /** Records emitted so far (parse errors included). */
  get records(): number {
    return this.folder.records;
  }

  /** Records emitted with `parse_error: true` so far. */
  get parseErrors(): number {
    return this.folder.parseErrors;
  }

  /** File header lines skipped so far. */
  get headerLines(): number {
    return this.headersSkipped;
  }

  /** Feed one line; returns the records it completed. */
  push(line: Uint8Array): LogRecord[] {
    return this.pushText(lineText(line));
  }

  /**
   * Feed the line `text.slice(from, to)`, its records appended to `out` (returned); parsers that
   * can read the line in place override this.
   */
  pushRange(text: string, from: number, to: number, out: LogRecord[] = []): LogRecord[] {
    const line = from === 0 && to === text.length ? text : text.slice(from, to);
    for (const r of this.pushText(line)) out.push(r);
    return out;
  }

  abstract pushText(text: string): LogRecord[];
  abstract flush(): LogRecord[];
}
