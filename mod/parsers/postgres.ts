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

// %t (or %m) : %r : %u@%d : [%p] : SEVERITY:  message
const PREFIX =
  /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?: ([A-Za-z][A-Za-z0-9/_+-]*|[+-]\d{2}(?::?\d{2})?))?:(.*?):\[(\d*)\]:([A-Z][A-Z0-9]*):[ \t]*(.*)$/;
// A line that starts like a timestamp but does not match PREFIX is a record we cannot parse, not a
// continuation of the previous one.
const LOOKS_PREFIXED = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}/;
const NUMERIC_ZONE = /^([+-])(\d{2}):?(\d{2})?$/;
const PORT = /^\d+$/;
const DURATION = /^duration: (\d+(?:\.\d+)?) ms/;

/** Severities whose line belongs to the record before it, stored under the lower-cased name. */
const CONTINUATION = new Set(["DETAIL", "HINT", "STATEMENT", "CONTEXT", "QUERY", "LOCATION"]);

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
  /**
   * @param options see {@linkcode PostgresParserOptions}
   * @throws {RangeError} when `maxRecordChars` is not a positive integer
   */
  constructor({ maxRecordChars = 1_048_576, context }: PostgresParserOptions = {}) {
    super(maxRecordChars, context);
  }

  /** Feed one line (text without its newline); returns the record it completed, if any. */
  pushText(text: string): LogRecord[] {
    this.linesSeen++;
    const out: LogRecord[] = [];
    const folder = this.folder;
    const m = PREFIX.exec(text);
    if (m !== null) {
      // A DETAIL/STATEMENT/... line of the record being folded: only its message is needed.
      const pending = folder.pending;
      if (
        pending !== undefined && CONTINUATION.has(m[11]!) && userAtDb(m[9]!) &&
        pending.pid === (m[10]!.length > 0 ? Number(m[10]) : undefined)
      ) {
        folder.append(out, m[11]!.toLowerCase(), m[12]!);
        return out;
      }
      const record = parsePrefixed(m);
      if (record === undefined) {
        folder.start(out, { message: text, parse_error: true });
        return out;
      }
      folder.start(out, record);
    } else if (LOOKS_PREFIXED.test(text)) {
      folder.start(out, { message: text, parse_error: true });
    } else if (folder.pending !== undefined) {
      folder.append(out, folder.field, text.startsWith("\t") ? text.slice(1) : text);
    } else if (text.length > 0) {
      folder.start(out, { message: text, parse_error: true });
    }
    return out;
  }

  /** End of input: returns the record still being folded, if any. */
  flush(): LogRecord[] {
    const out: LogRecord[] = [];
    this.folder.emit(out);
    return out;
  }
}

/** The client:user@db part has its `@` and the `:` before it (else the line is malformed). */
function userAtDb(middle: string): boolean {
  const at = middle.lastIndexOf("@");
  return at >= 0 && middle.lastIndexOf(":", at) >= 0;
}

/** Builds a record from a PREFIX match, or `undefined` when the user@db part is malformed. */
function parsePrefixed(m: RegExpExecArray): LogRecord | undefined {
  const middle = m[9]!; // client:user@db
  const at = middle.lastIndexOf("@");
  if (at < 0) return undefined;
  const colon = middle.lastIndexOf(":", at);
  if (colon < 0) return undefined;
  const record: LogRecord = {};
  const offset = zoneOffset(m[8]);
  const timestamp = offset === undefined ? undefined : civilTimeUs(
    Number(m[1]),
    Number(m[2]),
    Number(m[3]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6]),
    m[7] ?? "",
    offset,
  );
  // a zone abbreviation we cannot resolve (e.g. CEST) leaves only the time as written
  if (timestamp !== undefined) record._timestamp = timestamp;
  record.log_time = m.input.slice(
    0,
    19 + (m[7] === undefined ? 0 : m[7].length + 1) + (m[8] === undefined ? 0 : m[8].length + 1),
  );
  const client = middle.slice(0, colon);
  if (client.length > 0) {
    // host(port)
    const open = client.endsWith(")") ? client.lastIndexOf("(") : -1;
    const port = open < 0 ? "" : client.slice(open + 1, -1);
    if (port.length > 0 && PORT.test(port)) {
      record.client_host = client.slice(0, open);
      record.client_port = Number(port);
    } else {
      record.client_host = client;
    }
  }
  const user = middle.slice(colon + 1, at);
  if (user.length > 0) record.user = user;
  const database = middle.slice(at + 1);
  if (database.length > 0) record.database = database;
  if (m[10]!.length > 0) record.pid = Number(m[10]);
  record.severity = m[11];
  const message = m[12]!;
  record.message = message;
  const d = message.startsWith("duration: ") ? DURATION.exec(message) : null;
  if (d !== null) record.duration_ms = Number(d[1]);
  return record;
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
