/**
 * The PostgreSQL parser as it was before it scanned lines itself: one regular expression per line
 * (PREFIX), building each record as an object. Kept as the reference that
 * tests/parsers/postgres_scan_test.ts and tests/parsers/postgres_json_test.ts compare the parser
 * with (not a test file itself).
 */
import { civilTimeUs } from "../../mod/parsers/civil_time.ts";
import type { LogRecord, ParserContext } from "../../mod/parsers/record.ts";
import { FoldingParser } from "../../mod/parsers/record_folder.ts";

const PREFIX =
  /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.(\d+))?(?: ([A-Za-z][A-Za-z0-9/_+-]*|[+-]\d{2}(?::?\d{2})?))?:(.*?):\[(\d*)\]:([A-Z][A-Z0-9]*):[ \t]*/;
const LOOKS_PREFIXED = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}/;
const NUMERIC_ZONE = /^([+-])(\d{2}):?(\d{2})?$/;
const PORT = /^\d+$/;
const DURATION = /^duration: (\d+(?:\.\d+)?) ms/;
const CONTINUATION = new Set(["DETAIL", "HINT", "STATEMENT", "CONTEXT", "QUERY", "LOCATION"]);

/** The regular-expression PostgreSQL parser (see the module doc). */
export class RegExpPostgresParser extends FoldingParser {
  /** The last `%t` text and its `_timestamp`: lines of one second share them. */
  readonly #time: TimeCache = { text: "", us: undefined };

  constructor(maxRecordChars = 1_048_576, context?: ParserContext) {
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
        pending !== undefined && CONTINUATION.has(m[5]!) && userAtDb(m[3]!) &&
        pending.pid === (m[4]!.length > 0 ? Number(m[4]) : undefined)
      ) {
        folder.append(out, m[5]!.toLowerCase(), text.slice(m[0].length));
        return out;
      }
      const record = parsePrefixed(m, this.#time);
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

/** The last `%t` text parsed, and its `_timestamp` (`undefined`: an unresolvable zone). */
interface TimeCache {
  text: string;
  us: number | undefined;
}

/** The number written in `s` from `from` to `to` (ASCII digits, as PREFIX matched them). */
function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + s.charCodeAt(i) - 48;
  return n;
}

/**
 * Builds a record from a PREFIX match, or `undefined` when the user@db part is malformed.
 * `time` remembers the last `%t` resolved: a run of lines of one second is resolved once.
 */
function parsePrefixed(m: RegExpExecArray, time: TimeCache): LogRecord | undefined {
  const middle = m[3]!; // client:user@db
  const at = middle.lastIndexOf("@");
  if (at < 0) return undefined;
  const colon = middle.lastIndexOf(":", at);
  if (colon < 0) return undefined;
  const record: LogRecord = {};
  const line = m.input;
  const fraction = m[1], zone = m[2];
  const logTime = line.slice(
    0,
    19 + (fraction === undefined ? 0 : fraction.length + 1) +
      (zone === undefined ? 0 : zone.length + 1),
  );
  if (logTime !== time.text) {
    const offset = zoneOffset(zone);
    time.text = logTime;
    time.us = offset === undefined ? undefined : civilTimeUs(
      digits(line, 0, 4),
      digits(line, 5, 7),
      digits(line, 8, 10),
      digits(line, 11, 13),
      digits(line, 14, 16),
      digits(line, 17, 19),
      fraction ?? "",
      offset,
    );
  }
  // a zone abbreviation we cannot resolve (e.g. CEST) leaves only the time as written
  if (time.us !== undefined) record._timestamp = time.us;
  record.log_time = logTime;
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
  if (m[4]!.length > 0) record.pid = Number(m[4]);
  record.severity = m[5];
  const message = line.slice(m[0].length);
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
