/**
 * PostgreSQL stderr logs written with the RDS / Aurora default `log_line_prefix` `%t:%r:%u@%d:[%p]:`.
 *
 * The parser writes each record's JSON as UTF-8 bytes while it reads the line, into one growable
 * buffer: `process` hands those bytes on as they are. Building an object per record (a dozen
 * properties added one by one), then `JSON.stringify` and encoding it, cost most of `process`'s
 * CPU time, and the objects were most of its garbage. The object API (`push`, `pushText`,
 * `pushRange`, `flush`) reads records back from those bytes (`JSON.parse`): for tests and callers
 * off the hot path.
 * @module
 */
import { civilTimeUs } from "./civil_time.ts";
import { lineText } from "./line_text.ts";
import type { LineParser, LogRecord, ParserContext } from "./record.ts";

/** Options for {@linkcode PostgresParser}. */
export interface PostgresParserOptions {
  /**
   * Largest record, in characters of text folded into it. A continuation line that would exceed
   * it starts a new record (`continued: true`, `parse_error: true`) instead, so a run of
   * unprefixed lines cannot grow one record without bound.
   * @default {1048576}
   */
  maxRecordChars?: number;
  /** Where the previous read of the same file stopped: its {@linkcode PostgresParser.context}. */
  context?: ParserContext;
}

// A line that starts like a timestamp but does not match PREFIX_AT is a record we cannot parse, not a
// continuation of the previous one.
const LOOKS_PREFIXED = /\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}/y;
const NUMERIC_ZONE = /^([+-])(\d{2}):?(\d{2})?$/;

const enc = new TextEncoder();
const dec = new TextDecoder();
const EMPTY = new Uint8Array(0);

/** JSON text that the records are made of, encoded once. */
const K = {
  timestamp: enc.encode('"_timestamp":'),
  logTime: enc.encode('"log_time":"'),
  clientHost: enc.encode(',"client_host":"'),
  clientPort: enc.encode('","client_port":'),
  user: enc.encode(',"user":"'),
  database: enc.encode(',"database":"'),
  pid: enc.encode(',"pid":'),
  severity: enc.encode(',"severity":"'),
  duration: enc.encode(',"duration_ms":'),
  message: enc.encode('","message":"'),
  parseError: enc.encode('"parse_error":true,"message":"'),
  continued: enc.encode('"continued":true,"parse_error":true,'),
};

/**
 * The fields text is folded into: their bit in {@linkcode PostgresParser}'s mask of the fields a
 * pending record has, and their key (`,"detail":"`).
 */
interface FoldField {
  name: string;
  bit: number;
  key: Uint8Array;
}
const FOLD_FIELDS = new Map<string, FoldField>(
  ["message", "detail", "hint", "statement", "context", "query", "location"].map((name, i) => [
    name,
    { name, bit: 1 << i, key: enc.encode(`,"${name}":"`) },
  ]),
);
const MESSAGE = FOLD_FIELDS.get("message")!;

/** Severities whose line belongs to the record before it, and the field each goes to. */
const CONTINUATION = new Map(
  ["DETAIL", "HINT", "STATEMENT", "CONTEXT", "QUERY", "LOCATION"].map((
    s,
  ) => [s, FOLD_FIELDS.get(s.toLowerCase())!]),
);

/**
 * Parses PostgreSQL stderr log lines with the RDS default prefix `%t:%r:%u@%d:[%p]:` into
 * records `{_timestamp, log_time, client_host, client_port, user, database, pid, severity,
 * message}` (`_timestamp` in microseconds, `log_time` the `%t` text as written)
 * (empty prefix parts such as `::@:[123]:` leave their fields out; `duration_ms` is added for
 * `duration: N ms` messages).
 *
 * Folding: `DETAIL:`, `HINT:`, `STATEMENT:`, `CONTEXT:`, `QUERY:` and `LOCATION:` lines with the
 * same pid go into the previous record as `detail`, `hint`, ... ; lines without a prefix (such
 * as the tab-indented lines PostgreSQL writes for a multi-line message or statement) continue the
 * field written last, joined with `"\n"` and with the one leading tab PostgreSQL adds removed.
 * A record is complete when the next one starts, or on {@linkcode PostgresParser.flush} /
 * {@linkcode PostgresParser.endRecord}.
 *
 * Unparsable lines (a malformed prefix, or text with no record before it) become
 * `{message, parse_error: true}`: never dropped. Timestamps in zones other than UTC/GMT or a
 * numeric offset (`+03`, `-0530`) cannot be resolved: such records keep the raw time in
 * `log_time` and have no `_timestamp`.
 *
 * Records are written as JSON (UTF-8, escaped as `JSON.stringify` does), comma-separated, into a
 * buffer: {@linkcode PostgresParser.pushLine} feeds a line, {@linkcode PostgresParser.takeJson}
 * hands the completed records' bytes over. The record still being folded stays in the buffer,
 * open (no `}`), its last field's string last, so that a continuation line is written onto its
 * end. The object API (`push`, `pushText`, `pushRange`, `flush`) parses the completed records
 * back into objects.
 *
 * @example
 * ```ts
 * import { PostgresParser } from "./postgres.ts";
 * const p = new PostgresParser();
 * const enc = new TextEncoder();
 * p.push(enc.encode("2024-05-01 12:00:00 UTC:10.0.0.5(52344):app@orders:[12345]:ERROR:  boom"));
 * p.push(enc.encode("2024-05-01 12:00:00 UTC:10.0.0.5(52344):app@orders:[12345]:STATEMENT:  SELECT 1"));
 * p.flush(); // [{ _timestamp: 1714564800000000, log_time: "2024-05-01 12:00:00 UTC", ..., severity: "ERROR", message: "boom", statement: "SELECT 1" }]
 * ```
 */
export class PostgresParser implements LineParser {
  /**
   * JSON members written at the end of every record (a comma first), such as
   * `,"instance":"pg1"` (`process` adds its source fields so). Empty by default.
   */
  recordSuffix: Uint8Array = EMPTY;

  /** The completed records' JSON (`{...},{...}`), then the pending record's (no `}` yet). */
  #buf = new Uint8Array(64 << 10);
  /** Bytes written in `#buf`. */
  #len = 0;
  /** Records completed in `#buf`, and where they end. */
  #done = 0;
  #doneEnd = 0;
  /** Where the pending record's `{` is; -1 when none is pending. */
  #pendingAt = -1;
  /** The field plain continuation lines extend (the one written last). */
  #field = "message";
  /** `#field` is a string whose closing quote is the last byte written: appends go before it. */
  #open = false;
  /** The fold fields (FOLD_FIELDS bits) the pending record has. */
  #fields = 0;
  /** The pending record's pid (continuation lines of another pid are records of their own). */
  #pid: unknown = undefined;
  /** The pending record has `parse_error: true`. */
  #parseError = false;
  /** Characters of text folded into the pending record. */
  #chars = 0;
  readonly #maxChars: number;
  #lines = 0;
  #records = 0;
  #parseErrors = 0;

  /**
   * The last `%t` text, its `_timestamp`, and their JSON (`"_timestamp":N,"log_time":"..."`):
   * lines of one second share them.
   */
  readonly #time: TimeCache = {
    text: "",
    us: undefined,
    json: EMPTY,
    minute: "",
    minuteUs: 0,
  };
  /** The last `%u@%d` text and its JSON (`,"user":"...","database":"..."`). */
  readonly #session: { text: string; json: Uint8Array } = { text: "", json: EMPTY };
  /** Where `#newTime` and `#newSession` build their JSON. */
  #scratchBuf: Uint8Array = EMPTY;
  /** The bytes of the line being parsed, when it is ASCII (see {@linkcode pushLine}). */
  #ascii: Uint8Array | undefined = undefined;
  /** Where the parts of the line being parsed are (reused line after line). */
  readonly #at: PrefixAt = {
    fraction: -1,
    zone: -1,
    time: 0,
    user: 0,
    pid: 0,
    severity: 0,
    severityEnd: 0,
    message: 0,
  };

  /**
   * @param options see {@linkcode PostgresParserOptions}
   * @throws {RangeError} when `maxRecordChars` is not a positive integer
   */
  constructor({ maxRecordChars = 1_048_576, context }: PostgresParserOptions = {}) {
    if (!Number.isInteger(maxRecordChars) || maxRecordChars < 1) {
      throw new RangeError(`maxRecordChars must be a positive integer: got ${maxRecordChars}`);
    }
    this.#maxChars = maxRecordChars;
    if (context !== undefined) this.#restore(context);
  }

  /** Lines pushed so far. */
  get lines(): number {
    return this.#lines;
  }

  /** Records completed so far (parse errors included). */
  get records(): number {
    return this.#records;
  }

  /** Records completed with `parse_error: true` so far. */
  get parseErrors(): number {
    return this.#parseErrors;
  }

  /** File header lines skipped so far (PostgreSQL logs have none). */
  get headerLines(): number {
    return 0;
  }

  /** Feed one line; returns the records it completed. */
  push(line: Uint8Array): LogRecord[] {
    return this.pushText(lineText(line));
  }

  /** Feed one line (text without its newline); returns the record it completed, if any. */
  pushText(text: string): LogRecord[] {
    return this.pushRange(text, 0, text.length);
  }

  /**
   * Feed the line `text.slice(from, to)` (no newline) without cutting it out. The records it
   * completes are appended to `out` (a new array by default), which is returned.
   */
  pushRange(text: string, from: number, to: number, out: LogRecord[] = []): LogRecord[] {
    this.pushLine(text, from, to);
    if (this.#done > 0) this.#takeRecords(out);
    return out;
  }

  /** End of input: returns the record still being folded, if any. */
  flush(): LogRecord[] {
    const out: LogRecord[] = [];
    this.endRecord();
    this.#takeRecords(out);
    return out;
  }

  /**
   * The record being folded, for the next read of the same file: `{pending, field, chars}` (the
   * record as an object, the field plain continuation lines extend, the characters folded into
   * it), or `{}`.
   */
  context(): ParserContext {
    if (this.#pendingAt < 0) return {};
    return { pending: this.#pendingRecord(), field: this.#field, chars: this.#chars };
  }

  /**
   * Feed the line `text.slice(from, to)` (no newline), read where it is; the records it completes
   * are written as JSON, to be taken with {@linkcode takeJson}. `ascii`, when given, holds the
   * text's characters as bytes at the same indices (see `TextLines.eachLine`): the line's parts
   * are copied from it (reading bytes is cheaper than reading characters).
   */
  pushLine(text: string, from: number, to: number, ascii?: Uint8Array): void {
    this.#lines++;
    this.#ascii = ascii;
    const at = this.#at;
    if (prefixAt(text, from, to, at)) {
      const severity = severityName(text, at.severity, at.severityEnd);
      // A DETAIL/STATEMENT/... line of the record being folded: only its message is needed.
      if (this.#pendingAt >= 0) {
        const field = CONTINUATION.get(severity);
        if (
          field !== undefined && userAtDb(text, at) !== undefined &&
          this.#pid === pidOf(text, at)
        ) {
          this.#append(field.name, text, at.message, to);
          return;
        }
      }
      if (!this.#record(text, from, to, severity)) this.#startParseError(text, from, to);
      return;
    }
    LOOKS_PREFIXED.lastIndex = from;
    if (to - from >= 16 && LOOKS_PREFIXED.test(text)) {
      this.#startParseError(text, from, to);
    } else if (this.#pendingAt >= 0) {
      const tab = text.charCodeAt(from) === 9 && from < to ? 1 : 0;
      this.#append(this.#field, text, from + tab, to);
    } else if (to > from) {
      this.#startParseError(text, from, to);
    }
  }

  /** Complete the record being folded, if any (end of input): {@linkcode takeJson} has it next. */
  endRecord(): void {
    if (this.#pendingAt >= 0) this.#close();
  }

  /**
   * Hands the records completed since the last call to `use`, as their JSON joined by commas
   * (`{...},{...}`, UTF-8) and how many there are, then drops them; nothing when there are none.
   * `json` is a view of the parser's buffer: valid only during the call (copy what you keep).
   */
  takeJson(use: (json: Uint8Array, count: number) => void): void {
    if (this.#done === 0) return;
    use(this.#buf.subarray(0, this.#doneEnd), this.#done);
    // The pending record moves to the start (the comma before it goes).
    const pending = this.#pendingAt;
    if (pending >= 0) {
      this.#buf.copyWithin(0, pending, this.#len);
      this.#len -= pending;
      this.#pendingAt = 0;
    } else {
      this.#len = 0;
    }
    this.#done = this.#doneEnd = 0;
    // A huge record grew the buffer: not kept once it is gone.
    if (this.#buf.length > 4 << 20 && this.#len < 64 << 10) {
      this.#buf = this.#buf.slice(0, 64 << 10);
    }
  }

  /** The completed records as objects, appended to `out`. */
  #takeRecords(out: LogRecord[]): void {
    this.takeJson((json) => {
      for (const r of JSON.parse(`[${dec.decode(json)}]`)) out.push(r);
    });
  }

  /** The pending record as an object (it must exist). */
  #pendingRecord(): LogRecord {
    return JSON.parse(`${dec.decode(this.#buf.subarray(this.#pendingAt, this.#len))}}`);
  }

  /**
   * Writes a prefixed line's record (parts at `#at`) as the pending one; false (nothing written)
   * when user@db is malformed.
   */
  #record(line: string, from: number, to: number, severity: string): boolean {
    const at = this.#at;
    const a = userAtDb(line, at);
    if (a === undefined) return false;
    this.#begin();
    const colon = at.user;
    const time = this.#time;
    const timeEnd = at.time - 1;
    if (timeEnd - from !== time.text.length || !line.startsWith(time.text, from)) {
      this.#newTime(line, from, timeEnd);
    }
    // Room for the whole record at once: 6 bytes a character at most, keys and numbers besides.
    this.#room(time.json.length + (to - from) * 6 + 256);
    const b = this.#buf;
    let o = putBytes(b, this.#len, time.json);
    if (colon > at.time) {
      // host(port), or a host (a socket: [local])
      const open = line.charCodeAt(colon - 1) === 41 ? line.lastIndexOf("(", colon - 1) : -1;
      o = putBytes(b, o, K.clientHost);
      if (open >= at.time && isDigits(line, open + 1, colon - 1)) {
        o = putText(b, o, line, this.#ascii, at.time, open);
        o = putBytes(b, o, K.clientPort);
        o = putNumber(b, o, numberAt(line, open + 1, colon - 1));
      } else {
        o = putText(b, o, line, this.#ascii, at.time, colon);
        b[o++] = 34; // "
      }
    }
    // `%u@%d`: records of one session repeat it (its JSON is kept)
    const dbEnd = at.pid - 2;
    const session = this.#session;
    if (dbEnd - colon - 1 !== session.text.length || !line.startsWith(session.text, colon + 1)) {
      this.#newSession(line, colon + 1, a, dbEnd);
    }
    o = putBytes(b, o, session.json);
    const pid = pidOf(line, at);
    if (pid !== undefined) {
      o = putBytes(b, o, K.pid);
      o = putNumber(b, o, pid);
    }
    const duration = durationEnd(line, at.message, to);
    if (duration >= 0) {
      o = putBytes(b, o, K.duration);
      o = putDecimal(b, o, line, at.message + 10, duration);
    }
    // The message last: continuation lines are written onto its end.
    const known = SEVERITY_JSON.get(severity);
    if (known !== undefined) {
      o = putBytes(b, o, known);
    } else {
      o = putBytes(b, o, K.severity);
      o = putText(b, o, line, this.#ascii, at.severity, at.severityEnd);
      o = putBytes(b, o, K.message);
    }
    o = putText(b, o, line, this.#ascii, at.message, to);
    b[o++] = 34;
    this.#len = o;
    this.#pending(MESSAGE.name, MESSAGE.bit, pid, false, to - at.message);
    return true;
  }

  /** A new `%u@%d` (`user` from `from`, `@` at `a`, `database` to `to`): its JSON. */
  #newSession(line: string, from: number, a: number, to: number): void {
    const session = this.#session;
    session.text = line.slice(from, to);
    const b = this.#scratch((to - from) * 6 + 32);
    let o = 0;
    if (a > from) {
      o = putBytes(b, o, K.user);
      o = putText(b, o, line, this.#ascii, from, a);
      b[o++] = 34;
    }
    if (to > a + 1) {
      o = putBytes(b, o, K.database);
      o = putText(b, o, line, this.#ascii, a + 1, to);
      b[o++] = 34;
    }
    session.json = exactly(session.json, b, o);
  }

  /**
   * A new `%t` (at `from`..`to` of `line`): its `_timestamp`, and the JSON of both,
   * `"_timestamp":N,"log_time":"..."` (no `_timestamp` for a zone we cannot resolve, e.g. CEST).
   */
  #newTime(line: string, from: number, to: number): void {
    const time = this.#time;
    time.text = line.slice(from, to);
    time.us = timestampUs(line, from, this.#at, time);
    const b = this.#scratch((to - from) * 6 + 64);
    let o = 0;
    if (time.us !== undefined) {
      o = putBytes(b, o, K.timestamp);
      o = putNumber(b, o, time.us);
      b[o++] = 44; // ,
    }
    o = putBytes(b, o, K.logTime);
    o = putText(b, o, line, this.#ascii, from, to);
    b[o++] = 34;
    time.json = exactly(time.json, b, o);
  }

  /** A buffer of at least `n` bytes to build a cached piece of JSON in (reused). */
  #scratch(n: number): Uint8Array {
    if (this.#scratchBuf.length < n) this.#scratchBuf = new Uint8Array(Math.max(256, n));
    return this.#scratchBuf;
  }

  /** Starts the record `{message: line, parse_error: true}`. */
  #startParseError(line: string, from: number, to: number): void {
    this.#begin();
    this.#room((to - from) * 6 + 64);
    let o = putBytes(this.#buf, this.#len, K.parseError);
    o = putText(this.#buf, o, line, this.#ascii, from, to);
    this.#buf[o++] = 34;
    this.#len = o;
    this.#pending(MESSAGE.name, MESSAGE.bit, undefined, true, to - from);
  }

  /** The state of a pending record just written, its string field `field` last. */
  #pending(field: string, bits: number, pid: unknown, parseError: boolean, chars: number): void {
    this.#field = field;
    this.#open = true;
    this.#fields = bits;
    this.#pid = pid;
    this.#parseError = parseError;
    this.#chars = chars;
  }

  /**
   * Appends `line.slice(from, to)` to the pending record's `field` (joined with `"\n"`) and
   * makes `field` the one later lines extend. When that would exceed `maxRecordChars`, the
   * pending record is completed and the text starts a new one
   * `{[field]: text, continued: true, parse_error: true}`: split, not dropped.
   */
  #append(field: string, line: string, from: number, to: number): void {
    const n = to - from;
    if (this.#chars + n + 1 > this.#maxChars) {
      this.#begin();
      const known = FOLD_FIELDS.get(field);
      this.#room(n * 6 + 64);
      this.#len = putBytes(this.#buf, this.#len, K.continued);
      if (known !== undefined) this.#len = putBytes(this.#buf, this.#len, known.key.subarray(1));
      else this.#utf8(`${JSON.stringify(field)}:"`);
      this.#room(n * 6 + 1);
      this.#len = putText(this.#buf, this.#len, line, this.#ascii, from, to);
      this.#buf[this.#len++] = 34;
      this.#pending(field, known?.bit ?? 0, undefined, true, n);
      return;
    }
    this.#chars += n + 1;
    if (field === this.#field && this.#open) {
      // The usual case: the field written last, whose closing quote is the last byte.
      this.#room(n * 6 + 2);
      const b = this.#buf;
      let o = this.#len - 1;
      b[o++] = 92; // \n
      b[o++] = 110;
      o = putText(b, o, line, this.#ascii, from, to);
      b[o++] = 34;
      this.#len = o;
      return;
    }
    const known = FOLD_FIELDS.get(field);
    if (known === undefined || field === this.#field || (this.#fields & known.bit) !== 0) {
      // A field the record has, not the last one (a second DETAIL line, say): rare.
      this.#appendElsewhere(field, line.slice(from, to));
      return;
    }
    this.#room(n * 6 + 16);
    let o = putBytes(this.#buf, this.#len, known.key);
    o = putText(this.#buf, o, line, this.#ascii, from, to);
    this.#buf[o++] = 34;
    this.#len = o;
    this.#fields |= known.bit;
    this.#field = field;
    this.#open = true;
  }

  /**
   * Appends `text` to a field of the pending record that is not open at its end: the record is
   * read back, changed, and written again with `field` last (and open).
   */
  #appendElsewhere(field: string, text: string): void {
    const record = this.#pendingRecord();
    const prev = record[field];
    delete record[field];
    record[field] = typeof prev === "string" ? `${prev}\n${text}` : text;
    this.#rewrite(record, field);
  }

  /**
   * Writes `record` as the pending record (in place of the one there is, if any), its string
   * field `field` last so that continuation lines are written onto its end.
   */
  #rewrite(record: LogRecord, field: string): void {
    if (this.#pendingAt < 0) this.#begin();
    this.#len = this.#pendingAt;
    const value = record[field];
    let open = false;
    let json: string;
    if (typeof value === "string") {
      const rest = { ...record };
      delete rest[field];
      const head = JSON.stringify(rest);
      json = `${head.slice(0, -1)}${head.length > 2 ? "," : ""}${JSON.stringify(field)}:${
        JSON.stringify(value)
      }`;
      open = true;
    } else {
      json = JSON.stringify(record).slice(0, -1);
    }
    this.#utf8(json);
    let bits = 0;
    for (const key of Object.keys(record)) bits |= FOLD_FIELDS.get(key)?.bit ?? 0;
    this.#pending(field, bits, record.pid, record.parse_error === true, this.#chars);
    this.#open = open;
  }

  /** Continue from a {@linkcode context} (of a previous read); anything else is ignored. */
  #restore(context: ParserContext): void {
    const { pending, field, chars } = context;
    if (typeof pending !== "object" || pending === null || Array.isArray(pending)) return;
    this.#chars = typeof chars === "number" ? chars : 0;
    this.#rewrite({ ...pending } as LogRecord, typeof field === "string" ? field : "message");
  }

  /** Completes the pending record, if any, and begins a new one (`{`, after a comma). */
  #begin(): void {
    if (this.#pendingAt >= 0) this.#close();
    this.#room(2);
    if (this.#done > 0) this.#buf[this.#len++] = 44; // ,
    this.#pendingAt = this.#len;
    this.#buf[this.#len++] = 123; // {
  }

  /** Completes the pending record: its suffix and `}`. */
  #close(): void {
    const suffix = this.recordSuffix;
    this.#room(suffix.length + 1);
    const b = this.#buf;
    // (an empty record, `{}` from a context, takes the suffix without its comma)
    let o = this.#len;
    o = b[o - 1] === 123 ? putBytes(b, o, suffix.subarray(1)) : putBytes(b, o, suffix);
    b[o++] = 125; // }
    this.#len = o;
    this.#pendingAt = -1;
    this.#done++;
    this.#doneEnd = o;
    this.#records++;
    if (this.#parseError) this.#parseErrors++;
  }

  /** Room in `#buf` for `n` more bytes. */
  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const bigger = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    bigger.set(this.#buf.subarray(0, this.#len));
    this.#buf = bigger;
  }

  /** Text as it is (JSON already), encoded. */
  #utf8(text: string): void {
    this.#room(text.length * 3);
    this.#len += enc.encodeInto(text, this.#buf.subarray(this.#len)).written;
  }
}

/**
 * `b`'s first `n` bytes in an array of exactly that length: `last` when it has that length (a
 * cached piece of JSON is copied whole, by `set()`, and its length seldom changes).
 */
function exactly(last: Uint8Array, b: Uint8Array, n: number): Uint8Array {
  const out = last.length === n ? last : new Uint8Array(n);
  out.set(b.subarray(0, n));
  return out;
}

// The writers below put JSON at `o` in `b` and return where it ends; the caller made room.

/** The first `n` bytes of `bytes`. */
function putBytes(b: Uint8Array, o: number, bytes: Uint8Array, n = bytes.length): number {
  // (a view of part of `bytes` would be an object per call: only whole arrays are set())
  if (n > 40 && n === bytes.length) b.set(bytes, o);
  else for (let i = 0; i < n; i++) b[o + i] = bytes[i]!;
  return o + n;
}

/** ASCII text as it is (room: its length). */
function putAscii(b: Uint8Array, o: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[o++] = s.charCodeAt(i);
  return o;
}

/** A number as `JSON.stringify` writes it (room: 25 bytes). */
function putNumber(b: Uint8Array, o: number, n: number): number {
  if (!(n >= 0 && n < 1e16 && Number.isInteger(n))) {
    return putAscii(b, o, Number.isFinite(n) ? String(n) : "null");
  }
  if (n < 1e8) return putInt(b, o, n);
  // In two halves of 8 digits at most: int32 arithmetic.
  const high = Math.floor(n / 1e8);
  let low = n - high * 1e8;
  o = putInt(b, o, high);
  for (let i = o + 7; i >= o; i--) {
    b[i] = 48 + low % 10;
    low = (low / 10) | 0;
  }
  return o + 8;
}

/** The digits of `n`, an integer 0 <= n < 1e8. */
function putInt(b: Uint8Array, o: number, n: number): number {
  let digits = 1;
  for (let m = n; m >= 10; m = (m / 10) | 0) digits++;
  const end = o + digits;
  for (let i = end - 1; i >= o; i--) {
    b[i] = 48 + n % 10;
    n = (n / 10) | 0;
  }
  return end;
}

/**
 * The number written as the decimal `s.slice(from, to)` (digits, maybe `.digits`), as
 * `JSON.stringify(Number(text))` writes it (room: 25 bytes, and the text's length). With at most
 * 15 significant digits, that is the text without leading zeros and trailing fraction zeros
 * (a double tells such decimals apart, and the shortest text of one is itself); longer ones go
 * through `Number()` and `String()`.
 */
function putDecimal(b: Uint8Array, o: number, s: string, from: number, to: number): number {
  let dot = from;
  while (dot < to && s.charCodeAt(dot) !== 46) dot++;
  let i = from;
  while (i < dot - 1 && s.charCodeAt(i) === 48) i++;
  let end = to;
  if (dot < to) { while (end > dot + 1 && s.charCodeAt(end - 1) === 48) end--; }
  const fraction = dot < to ? end - dot - 1 : 0;
  let significant = dot - i + fraction;
  if (dot - i === 1 && s.charCodeAt(i) === 48) {
    // 0.000ddd: below 1e-6 String() writes an exponent
    let z = dot + 1;
    while (z < end && s.charCodeAt(z) === 48) z++;
    if (z - dot - 1 > 5 && z < end) significant = 99;
    else significant = end - z;
  }
  if (significant > 15) return putAscii(b, o, String(Number(s.slice(from, to))));
  for (; i < dot; i++) b[o++] = s.charCodeAt(i);
  if (fraction > 0) { for (i = dot; i < end; i++) b[o++] = s.charCodeAt(i); }
  return o;
}

/** `s.slice(from, to)` as the inside of a JSON string: from `ascii` when given (see pushLine). */
function putText(
  b: Uint8Array,
  o: number,
  s: string,
  ascii: Uint8Array | undefined,
  from: number,
  to: number,
): number {
  return ascii === undefined ? putString(b, o, s, from, to) : putAsciiBytes(b, o, ascii, from, to);
}

/** `ascii.subarray(from, to)` (bytes below 0x80) as the inside of a JSON string (room: 6 a byte). */
function putAsciiBytes(b: Uint8Array, o: number, ascii: Uint8Array, from: number, to: number) {
  for (let i = from; i < to; i++) {
    const c = ascii[i]!;
    if (c >= 0x20 && c !== 0x22 && c !== 0x5c) b[o++] = c;
    else o = putEscape(b, o, c);
  }
  return o;
}

/** `"`, `\` or a control character `c` as JSON escapes it (room: 6 bytes). */
function putEscape(b: Uint8Array, o: number, c: number): number {
  b[o++] = 92; // \
  const short = ESCAPES[c]!;
  if (short !== 0) {
    b[o++] = short;
    return o;
  }
  b[o++] = 117; // u00XX
  b[o++] = 48;
  b[o++] = 48;
  b[o++] = HEX[c >> 4]!;
  b[o++] = HEX[c & 15]!;
  return o;
}

/**
 * The characters `s.slice(from, to)` as the inside of a JSON string, as `JSON.stringify`
 * escapes them (`"`, `\`, control characters, lone surrogates as `\udXXX`), in UTF-8
 * (room: 6 bytes a character, the most one takes: `\u001f`).
 */
function putString(b: Uint8Array, o: number, s: string, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c >= 0x20 && c !== 0x22 && c !== 0x5c) b[o++] = c;
      else o = putEscape(b, o, c);
    } else if (c < 0x800) {
      b[o++] = 0xc0 | (c >> 6);
      b[o++] = 0x80 | (c & 63);
    } else if (c < 0xd800 || c > 0xdfff) {
      b[o++] = 0xe0 | (c >> 12);
      b[o++] = 0x80 | ((c >> 6) & 63);
      b[o++] = 0x80 | (c & 63);
    } else {
      const d = c <= 0xdbff && i + 1 < to ? s.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        const p = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        b[o++] = 0xf0 | (p >> 18);
        b[o++] = 0x80 | ((p >> 12) & 63);
        b[o++] = 0x80 | ((p >> 6) & 63);
        b[o++] = 0x80 | (p & 63);
        i++;
      } else {
        // a lone surrogate: \udXXX, as well-formed JSON.stringify writes it
        b[o++] = 92;
        b[o++] = 117;
        b[o++] = 100; // d
        b[o++] = HEX[(c >> 8) & 15]!;
        b[o++] = HEX[(c >> 4) & 15]!;
        b[o++] = HEX[c & 15]!;
      }
    }
  }
  return o;
}

/** Lowercase hex digits, as JSON.stringify writes `\u` escapes. */
const HEX = enc.encode("0123456789abcdef");
/** The letter of an ASCII character's short JSON escape (`"`, `\`, \b \f \n \r \t), or 0. */
const ESCAPES = new Uint8Array(128);
for (
  const [c, e] of [[0x22, '"'], [0x5c, "\\"], [8, "b"], [12, "f"], [10, "n"], [13, "r"], [
    9,
    "t",
  ]] as const
) {
  ESCAPES[c] = e.charCodeAt(0);
}

// %t (or %m) : %r : %u@%d : [%p] : SEVERITY: (matching stops before the message). prefixAt()
// finds the same parts by scanning; this decides the rare lines the scan leaves open (a numeric
// zone, a malformed prefix), with the `d` flag for where its groups are.
const PREFIX_AT =
  /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.(\d+))?(?: ([A-Za-z][A-Za-z0-9/_+-]*|[+-]\d{2}(?::?\d{2})?))?:(.*?):\[(\d*)\]:([A-Z][A-Z0-9]*):[ \t]*/d;

/**
 * Where the parts of a prefixed line are (indices into the line), as PREFIX_AT's groups: the
 * fraction's digits and the zone (-1: none), the `%r:%u@%d` part, the pid's digits, the severity,
 * and the message (after the blanks that follow `SEVERITY:`).
 */
interface PrefixAt {
  fraction: number;
  zone: number;
  /** Where `%r:%u@%d` begins; the `:` before it ends `%t`. */
  time: number;
  /** The `:` between `%r` and `%u` (set by userAtDb()). */
  user: number;
  /** Where the pid's digits begin; `%u@%d` ends 2 before (at `:[`). */
  pid: number;
  severity: number;
  severityEnd: number;
  message: number;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isUpper = (c: number) => c >= 65 && c <= 90;

/**
 * Finds the parts of a line with the RDS prefix, as PREFIX_AT would: true when it has one, with
 * their positions in `at`. Lines that begin like PREFIX_AT does are scanned here; what the scan
 * cannot settle in one pass (a numeric zone, whose `:MM` PREFIX_AT may take back, or anything
 * malformed) is left to PREFIX_AT itself.
 */
function prefixAt(s: string, from: number, to: number, at: PrefixAt): boolean {
  const b = from;
  if (!isDigit(s.charCodeAt(b)) || to <= b) return false; // PREFIX_AT begins with a digit
  if (
    to - b < 27 || !isDigit(s.charCodeAt(b + 1)) || !isDigit(s.charCodeAt(b + 2)) ||
    !isDigit(s.charCodeAt(b + 3)) || s.charCodeAt(b + 4) !== 45 ||
    !isDigit(s.charCodeAt(b + 5)) || !isDigit(s.charCodeAt(b + 6)) ||
    s.charCodeAt(b + 7) !== 45 || !isDigit(s.charCodeAt(b + 8)) ||
    !isDigit(s.charCodeAt(b + 9)) || s.charCodeAt(b + 10) !== 32 ||
    !isDigit(s.charCodeAt(b + 11)) || !isDigit(s.charCodeAt(b + 12)) ||
    s.charCodeAt(b + 13) !== 58 || !isDigit(s.charCodeAt(b + 14)) ||
    !isDigit(s.charCodeAt(b + 15)) || s.charCodeAt(b + 16) !== 58 ||
    !isDigit(s.charCodeAt(b + 17)) || !isDigit(s.charCodeAt(b + 18))
  ) {
    return prefixByRegExp(s, from, to, at);
  }
  // Nothing below matches the `\n` or `\r` after a line of a chunk: scans stop at `to`.
  let i = b + 19;
  at.fraction = at.zone = -1;
  if (s.charCodeAt(i) === 46) { // .digits
    let j = i + 1;
    while (isDigit(s.charCodeAt(j))) j++;
    if (j === i + 1 || j > to) return prefixByRegExp(s, from, to, at);
    at.fraction = i + 1;
    i = j;
  }
  if (s.charCodeAt(i) === 32) { // a zone: a name here, a numeric offset by PREFIX_AT
    const c = s.charCodeAt(i + 1) | 0x20;
    if (c < 97 || c > 122) return prefixByRegExp(s, from, to, at);
    let j = i + 2;
    for (;; j++) {
      const d = s.charCodeAt(j);
      if (
        !((d | 0x20) >= 97 && (d | 0x20) <= 122) && !isDigit(d) && d !== 47 && d !== 95 &&
        d !== 43 && d !== 45
      ) break;
    }
    if (j > to) return prefixByRegExp(s, from, to, at);
    at.zone = i + 1;
    i = j;
  }
  if (i >= to || s.charCodeAt(i) !== 58) return prefixByRegExp(s, from, to, at);
  const middle = i + 1;
  // `(.*?)` then `:[digits]:SEVERITY:`: the first `:[` that such a tail follows. Each part of the
  // tail has one way to match, so the first `:[` where it does is where PREFIX_AT stops.
  for (let q = s.indexOf(":[", middle); q >= 0 && q < to; q = s.indexOf(":[", q + 1)) {
    let k = q + 2;
    while (isDigit(s.charCodeAt(k))) k++;
    if (s.charCodeAt(k) !== 93 || s.charCodeAt(k + 1) !== 58 || !isUpper(s.charCodeAt(k + 2))) {
      continue;
    }
    let e = k + 3;
    for (let d = s.charCodeAt(e); isUpper(d) || isDigit(d); d = s.charCodeAt(++e));
    if (e >= to || s.charCodeAt(e) !== 58) continue;
    // `.` stops at line terminators: a middle with one is PREFIX_AT's to settle.
    for (let m = middle; m < q; m++) {
      const d = s.charCodeAt(m);
      if (d === 13 || d === 10 || d === 0x2028 || d === 0x2029) {
        return prefixByRegExp(s, from, to, at);
      }
    }
    let msg = e + 1;
    for (let d = s.charCodeAt(msg); (d === 32 || d === 9) && msg < to; d = s.charCodeAt(++msg));
    at.time = middle;
    at.pid = q + 2;
    at.severity = k + 2;
    at.severityEnd = e;
    at.message = msg;
    return true;
  }
  return prefixByRegExp(s, from, to, at);
}

/** prefixAt() by PREFIX_AT, on the line cut out. */
function prefixByRegExp(s: string, from: number, to: number, at: PrefixAt): boolean {
  const m = PREFIX_AT.exec(from === 0 && to === s.length ? s : s.slice(from, to));
  if (m === null) return false;
  const x = m.indices!;
  at.fraction = x[1] === undefined ? -1 : from + x[1][0];
  at.zone = x[2] === undefined ? -1 : from + x[2][0];
  at.time = from + x[3]![0];
  at.pid = from + x[4]![0];
  at.severity = from + x[5]![0];
  at.severityEnd = from + x[5]![1];
  at.message = from + m[0].length;
  return true;
}

/** Severities, one string each (not a new one per line). */
const SEVERITIES = new Map<string, string>();
for (
  const name of [
    "LOG",
    "ERROR",
    "WARNING",
    "NOTICE",
    "INFO",
    "DEBUG",
    "DEBUG1",
    "DEBUG2",
    "DEBUG3",
    "DEBUG4",
    "DEBUG5",
    "FATAL",
    "PANIC",
    "STATEMENT",
    "DETAIL",
    "HINT",
    "CONTEXT",
    "QUERY",
    "LOCATION",
  ]
) SEVERITIES.set(name, name);

/** The severity at `from`..`to` of `line`. */
function severityName(line: string, from: number, to: number): string {
  // The usual ones are compared in place; others are cut out (and looked up).
  for (const name of COMMON) {
    if (name.length === to - from && line.startsWith(name, from)) return name;
  }
  const s = line.slice(from, to);
  return SEVERITIES.get(s) ?? s;
}
const COMMON = ["LOG", "ERROR", "DETAIL", "STATEMENT", "WARNING", "HINT", "CONTEXT", "FATAL"];

/** `,"severity":"LOG","message":"` of the severities known, encoded once. */
const SEVERITY_JSON = new Map(
  [...SEVERITIES.keys()].map((name) => [name, enc.encode(`,"severity":"${name}","message":"`)]),
);

/**
 * Where the `@` of `%u@%d` is, with the `:` before it in `at.user`; `undefined` when the
 * client:user@db part has no `@`, or no `:` before it (the line is then malformed).
 */
function userAtDb(line: string, at: PrefixAt): number | undefined {
  const end = at.pid - 2; // the middle ends at `:[`
  if (end <= at.time) return undefined;
  const a = line.lastIndexOf("@", end - 1);
  if (a < at.time) return undefined;
  const colon = line.lastIndexOf(":", a);
  if (colon < at.time) return undefined;
  at.user = colon;
  return a;
}

/** The pid of a prefixed line, or undefined (`[]`). */
function pidOf(line: string, at: PrefixAt): number | undefined {
  const end = at.severity - 2; // digits, then `]:`
  return end > at.pid ? numberAt(line, at.pid, end) : undefined;
}

/** Only ASCII digits from `from` to `to`, and at least one. */
function isDigits(s: string, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

/** The number written in digits from `from` to `to` (as Number() reads it). */
function numberAt(s: string, from: number, to: number): number {
  if (to - from > 15) return Number(s.slice(from, to)); // beyond exact integers: Number's rounding
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + s.charCodeAt(i) - 48;
  return n;
}

/**
 * Where `N` ends in a message beginning `duration: N ms` (at `from` in `line`, ending at `to`;
 * `N` begins at `from + 10`), else -1.
 */
function durationEnd(line: string, from: number, to: number): number {
  if (to - from < 14 || !line.startsWith("duration: ", from)) return -1;
  const start = from + 10;
  let i = start;
  while (isDigit(line.charCodeAt(i))) i++;
  if (i === start) return -1;
  if (line.charCodeAt(i) === 46 && isDigit(line.charCodeAt(i + 1))) {
    i += 2;
    while (isDigit(line.charCodeAt(i))) i++;
  }
  return i + 3 <= to && line.startsWith(" ms", i) ? i : -1;
}

/**
 * The last `%t` text parsed, and its `_timestamp` (`undefined`: an unresolvable zone); the last
 * minute (`YYYY-MM-DD HH:MM`) resolved, and its start in UTC.
 */
interface TimeCache {
  text: string;
  us: number | undefined;
  /** `"_timestamp":N,"log_time":"..."` of `text` (no `_timestamp` when `us` is undefined). */
  json: Uint8Array;
  minute: string;
  minuteUs: number | undefined;
}

/** The number written in `s` from `from` to `to` (ASCII digits). */
function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + s.charCodeAt(i) - 48;
  return n;
}

/**
 * `_timestamp` of a prefixed line's `%t` (parts at `at`), or undefined (a zone we cannot resolve,
 * a field out of range). A minute's start is resolved once (`time` remembers the last one).
 */
function timestampUs(
  line: string,
  b: number,
  at: PrefixAt,
  time: TimeCache,
): number | undefined {
  const zoneEnd = at.time - 1;
  const offset = zoneOffset(at.zone < 0 ? undefined : line.slice(at.zone, zoneEnd));
  if (offset === undefined) return undefined;
  if (time.minute.length !== 16 || !line.startsWith(time.minute, b)) {
    time.minute = line.slice(b, b + 16);
    time.minuteUs = civilTimeUs(
      digits(line, b, b + 4),
      digits(line, b + 5, b + 7),
      digits(line, b + 8, b + 10),
      digits(line, b + 11, b + 13),
      digits(line, b + 14, b + 16),
      0,
    );
  }
  const second = digits(line, b + 17, b + 19);
  if (time.minuteUs === undefined || second > 60) return undefined;
  let fraction = 0;
  if (at.fraction >= 0) {
    const end = at.zone >= 0 ? at.zone - 1 : zoneEnd;
    for (let i = 0; i < 6; i++) {
      fraction = fraction * 10 +
        (at.fraction + i < end ? line.charCodeAt(at.fraction + i) - 48 : 0);
    }
  }
  return time.minuteUs + second * 1e6 + fraction - offset * 60e6;
}

/** Minutes east of UTC for a `%t` zone, or `undefined` when it is an abbreviation we cannot resolve. */
function zoneOffset(zone: string | undefined): number | undefined {
  if (zone === undefined || zone === "UTC" || zone === "GMT" || zone === "Z" || zone === "UCT") {
    return 0;
  }
  const m = NUMERIC_ZONE.exec(zone);
  if (m === null) return undefined;
  const minutes = Number(m[2]) * 60 + Number(m[3] ?? "0");
  return m[1] === "-" ? -minutes : minutes;
}
