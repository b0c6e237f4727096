/**
 * PostgreSQL stderr logs written with the RDS / Aurora default `log_line_prefix` `%t:%r:%u@%d:[%p]:`.
 * @module
 */
import { civilTimeUs } from "./civil_time.ts";
import type { LogRecord, ParserContext } from "./record.ts";
import { FoldingParser } from "./record_folder.ts";

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
 * A record is emitted when the next one starts, or on {@linkcode PostgresParser.flush}.
 *
 * Unparsable lines (a malformed prefix, or text with no record before it) become
 * `{message, parse_error: true}`: never dropped. Timestamps in zones other than UTC/GMT or a
 * numeric offset (`+03`, `-0530`) cannot be resolved: such records keep the raw time in
 * `log_time` and have no `_timestamp`.
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
export class PostgresParser extends FoldingParser {
  /** The last `%t` text and its `_timestamp`: lines of one second share them. */
  readonly #time: TimeCache = { text: "", us: undefined, minute: "", minuteUs: 0 };
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
  /** The last user and database: records of one session repeat them (one string, not one each). */
  #user = "";
  #database = "";

  /**
   * @param options see {@linkcode PostgresParserOptions}
   * @throws {RangeError} when `maxRecordChars` is not a positive integer
   */
  constructor({ maxRecordChars = 1_048_576, context }: PostgresParserOptions = {}) {
    super(maxRecordChars, context);
  }

  /** Feed one line (text without its newline); returns the record it completed, if any. */
  pushText(text: string): LogRecord[] {
    return this.pushRange(text, 0, text.length);
  }

  /**
   * Feed the line `text.slice(from, to)` (no newline) without cutting it out: a chunk's lines are
   * parsed where they are (and only their fields are cut out). The records it completes are
   * appended to `out` (a new array by default), which is returned.
   */
  override pushRange(text: string, from: number, to: number, out: LogRecord[] = []): LogRecord[] {
    this.linesSeen++;
    const folder = this.folder;
    const at = this.#at;
    if (prefixAt(text, from, to, at)) {
      const severity = severityName(text, at.severity, at.severityEnd);
      // A DETAIL/STATEMENT/... line of the record being folded: only its message is needed.
      const pending = folder.pending;
      const field = pending === undefined ? undefined : CONTINUATION.get(severity);
      if (
        field !== undefined && userAtDb(text, at) !== undefined &&
        pending!.pid === pidOf(text, at)
      ) {
        folder.append(out, field, text.slice(at.message, to));
        return out;
      }
      const record = this.#record(text, from, to, severity);
      if (record === undefined) {
        folder.start(out, { message: text.slice(from, to), parse_error: true });
        return out;
      }
      folder.start(out, record);
      return out;
    }
    LOOKS_PREFIXED.lastIndex = from;
    if (to - from >= 16 && LOOKS_PREFIXED.test(text)) {
      folder.start(out, { message: text.slice(from, to), parse_error: true });
    } else if (folder.pending !== undefined) {
      const tab = text.charCodeAt(from) === 9 && from < to ? 1 : 0;
      folder.append(out, folder.field, text.slice(from + tab, to));
    } else if (to > from) {
      folder.start(out, { message: text.slice(from, to), parse_error: true });
    }
    return out;
  }

  /** End of input: returns the record still being folded, if any. */
  flush(): LogRecord[] {
    const out: LogRecord[] = [];
    this.folder.emit(out);
    return out;
  }

  /** The record of a prefixed line (parts at `#at`), or `undefined` when user@db is malformed. */
  #record(line: string, from: number, to: number, severity: string): LogRecord | undefined {
    const at = this.#at;
    const a = userAtDb(line, at);
    if (a === undefined) return undefined;
    const colon = at.user;
    const record: LogRecord = {};
    const time = this.#time;
    const timeEnd = at.time - 1;
    let logTime = time.text;
    if (timeEnd - from !== logTime.length || !line.startsWith(logTime, from)) {
      logTime = time.text = line.slice(from, timeEnd);
      time.us = timestampUs(line, from, at, time);
    }
    // a zone abbreviation we cannot resolve (e.g. CEST) leaves only the time as written
    if (time.us !== undefined) record._timestamp = time.us;
    record.log_time = logTime;
    if (colon > at.time) {
      // host(port), or a host (a socket: [local])
      const open = line.charCodeAt(colon - 1) === 41 ? line.lastIndexOf("(", colon - 1) : -1;
      if (open >= at.time && isDigits(line, open + 1, colon - 1)) {
        record.client_host = line.slice(at.time, open);
        record.client_port = numberAt(line, open + 1, colon - 1);
      } else {
        record.client_host = line.slice(at.time, colon);
      }
    }
    if (a > colon + 1) record.user = this.#user = same(line, colon + 1, a, this.#user);
    const dbEnd = at.pid - 2;
    if (dbEnd > a + 1) record.database = this.#database = same(line, a + 1, dbEnd, this.#database);
    const pid = pidOf(line, at);
    if (pid !== undefined) record.pid = pid;
    record.severity = severity;
    record.message = line.slice(at.message, to);
    const duration = durationMs(line, at.message, to);
    if (duration !== undefined) record.duration_ms = duration;
    return record;
  }
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

/** Severities whose line belongs to the record before it, and the field each goes to. */
const CONTINUATION = new Map(
  ["DETAIL", "HINT", "STATEMENT", "CONTEXT", "QUERY", "LOCATION"].map((s) => [s, s.toLowerCase()]),
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

/** `line` from `from` to `to`, as `last` when it holds the same text (no new string). */
function same(line: string, from: number, to: number, last: string): string {
  return last.length === to - from && line.startsWith(last, from) ? last : line.slice(from, to);
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

/** `N` of a message beginning `duration: N ms` (at `from` in `line`, ending at `to`), else undefined. */
function durationMs(line: string, from: number, to: number): number | undefined {
  if (to - from < 14 || !line.startsWith("duration: ", from)) return undefined;
  const start = from + 10;
  let i = start;
  while (isDigit(line.charCodeAt(i))) i++;
  if (i === start) return undefined;
  if (line.charCodeAt(i) === 46 && isDigit(line.charCodeAt(i + 1))) {
    i += 2;
    while (isDigit(line.charCodeAt(i))) i++;
  }
  return i + 3 <= to && line.startsWith(" ms", i) ? Number(line.slice(start, i)) : undefined;
}

/**
 * The last `%t` text parsed, and its `_timestamp` (`undefined`: an unresolvable zone); the last
 * minute (`YYYY-MM-DD HH:MM`) resolved, and its start in UTC.
 */
interface TimeCache {
  text: string;
  us: number | undefined;
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
