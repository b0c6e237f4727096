/**
 * MySQL / Aurora MySQL slow-query logs.
 * @module
 */
import { isMysqlLogHeader } from "./mysql_header.ts";
import { mysqlTimeUs } from "./mysql_time.ts";
import type { LogRecord, ParserContext } from "./record.ts";
import { FoldingParser } from "./record_folder.ts";

/** Options for {@linkcode MysqlSlowParser}. */
export interface MysqlSlowParserOptions {
  /**
   * Largest record, in characters of query text folded into it (see
   * {@linkcode RecordFolder.append}).
   * @default {1048576}
   */
  maxRecordChars?: number;
  /** Where the previous read of the same file stopped: its {@linkcode MysqlSlowParser.context}. */
  context?: ParserContext;
}

const TIME = /^# Time: (.+?)\s*$/;
const USER_HOST = /^# User@Host: ([^\[\s]*)\[([^\]]*)\] @ (\S*) \[([^\]]*)\](?:\s+Id:\s*(\d+))?/;
const KEY_VALUE = /([A-Za-z_]+): +(\S+)/g;
const NUMBER = /^-?\d+(?:\.\d+)?$/;
const USE = /^use ([^;]+);$/i;
const SET_TIMESTAMP = /^SET (?:[a-z_]+=[^,;]*,)*timestamp=(\d+(?:\.\d+)?)(?:,[a-z_]+=[^,;]*)*;$/i;

/** Where a block is: its `#` lines, its `use`/`SET` lines, or the query text. */
type Phase = "meta" | "preamble" | "query";

/**
 * Parses MySQL slow-query log blocks into one record each:
 * `{_timestamp, log_time, user, host, ip, id, query_time, lock_time, rows_sent, rows_examined,
 * database?, query}` (`_timestamp` in microseconds, `log_time` the `# Time:` text). A block is
 * ```text
 * # Time: 2024-05-01T12:00:00.123456Z
 * # User@Host: app[app] @ ip-10-0-0-5.ec2.internal [10.0.0.5]  Id:    42
 * # Query_time: 1.500000  Lock_time: 0.000100 Rows_sent: 1  Rows_examined: 100
 * use orders;
 * SET timestamp=1714564800;
 * SELECT ...
 *   FROM ...;
 * ```
 * Every `Key: value` pair of the `#` lines becomes a lower-cased field (numbers as numbers), so
 * `log_slow_extra` (Thread_id, Errno, Bytes_sent, ...) and MariaDB/Percona extras are kept.
 * `user` is the authenticated user in brackets; `priv_user` is added when the account differs.
 * `# Time:` gives `_timestamp`; without it (5.6 writes it once per second) `SET timestamp=`.
 * `query` is the text as logged (several lines joined with `"\n"`, final `;` kept).
 * MySQL writes `use db;` only when the database changes, so `database` carries over to the
 * following blocks of the same input, and to a later read of the same file through
 * {@linkcode MysqlSlowParser.context}.
 *
 * A block ends at the next `# Time:` or `# User@Host:` line, a file header (skipped, counted in
 * {@linkcode MysqlSlowParser.headerLines}) or the end of input. Lines outside any block become
 * `{message, parse_error: true}`.
 */
export class MysqlSlowParser extends FoldingParser {
  #phase: Phase = "meta";
  #sawUserHost = false;
  #database: string | undefined;

  /**
   * @param options see {@linkcode MysqlSlowParserOptions}
   * @throws {RangeError} when `maxRecordChars` is not a positive integer
   */
  constructor({ maxRecordChars = 1_048_576, context }: MysqlSlowParserOptions = {}) {
    super(maxRecordChars, context);
    if (context === undefined) return;
    if (typeof context.database === "string") this.#database = context.database;
    if (context.phase === "preamble" || context.phase === "query") this.#phase = context.phase;
    this.#sawUserHost = context.saw_user_host === true;
  }

  /**
   * The block being read and the current database (MySQL writes `use db;` only when it
   * changes), for the next read of the same file.
   */
  override context(): ParserContext {
    return {
      ...super.context(),
      ...(this.#database !== undefined && { database: this.#database }),
      ...(this.#phase !== "meta" && { phase: this.#phase }),
      ...(this.#sawUserHost && { saw_user_host: true }),
    };
  }

  /** Feed one line (text without its newline); returns the block it completed, if any. */
  pushText(text: string): LogRecord[] {
    this.linesSeen++;
    const out: LogRecord[] = [];
    const folder = this.folder;
    const pending = folder.pending;
    const inQuery = this.#phase === "query";

    if (text.startsWith("# Time: ")) {
      const time = TIME.exec(text)?.[1] ?? "";
      const timestamp = mysqlTimeUs(time);
      this.#begin(
        out,
        timestamp === undefined ? { time: text.slice(8).trim() } : {
          _timestamp: timestamp,
          log_time: time,
        },
      );
      return out;
    }
    if (text.startsWith("# User@Host: ")) {
      // a new block unless this completes a `# Time:` line still waiting for its user
      if (pending === undefined || this.#phase !== "meta" || this.#sawUserHost) {
        this.#begin(out, {});
      }
      this.#userHost(text);
      return out;
    }
    if (isMysqlLogHeader(text)) {
      this.headersSkipped++;
      folder.emit(out);
      return out;
    }
    if (pending === undefined) {
      if (text.length > 0) {
        folder.start(out, { message: text, parse_error: true });
        folder.emit(out);
      }
      return out;
    }
    if (this.#phase === "meta" && text.startsWith("# ")) {
      this.#keyValues(pending, text);
      return out;
    }
    if (!inQuery) {
      const use = USE.exec(text);
      if (use !== null) {
        this.#database = use[1]!.trim().replace(/^`(.*)`$/, "$1");
        pending.database = this.#database;
        this.#phase = "preamble";
        return out;
      }
      const set = SET_TIMESTAMP.exec(text);
      if (set !== null) {
        const seconds = Number(set[1]);
        pending.set_timestamp = seconds;
        if (pending._timestamp === undefined) pending._timestamp = Math.round(seconds * 1e6);
        this.#phase = "preamble";
        return out;
      }
      if (text.length === 0) return out;
      if (pending.database === undefined && this.#database !== undefined) {
        pending.database = this.#database;
      }
    }
    this.#phase = "query";
    folder.append(out, "query", text);
    return out;
  }

  /** End of input: returns the block still open, if any. */
  flush(): LogRecord[] {
    const out: LogRecord[] = [];
    this.folder.emit(out);
    this.#phase = "meta";
    return out;
  }

  #begin(out: LogRecord[], record: LogRecord): void {
    this.folder.start(out, record, "query");
    this.#phase = "meta";
    this.#sawUserHost = false;
  }

  #userHost(text: string): void {
    this.#sawUserHost = true;
    const pending = this.folder.pending!;
    const m = USER_HOST.exec(text);
    if (m === null) {
      pending.user_host = text.slice(13);
      return;
    }
    const [, privUser, user, host, ip, id] = m;
    if (user!.length > 0) pending.user = user;
    if (privUser!.length > 0 && privUser !== user) pending.priv_user = privUser;
    if (host!.length > 0) pending.host = host;
    if (ip!.length > 0) pending.ip = ip;
    if (id !== undefined) pending.id = Number(id);
  }

  #keyValues(pending: LogRecord, text: string): void {
    let found = false;
    for (const [, key, value] of text.matchAll(KEY_VALUE)) {
      found = true;
      pending[key!.toLowerCase()] = NUMBER.test(value!) ? Number(value) : value;
    }
    if (!found) {
      const prev = pending.comments;
      pending.comments = typeof prev === "string" ? `${prev}\n${text}` : text;
    }
  }
}
