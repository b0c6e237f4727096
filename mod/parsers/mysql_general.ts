/**
 * MySQL / Aurora MySQL general query logs.
 * @module
 */
import { isMysqlLogHeader } from "./mysql_header.ts";
import { mysqlTimeUs } from "./mysql_time.ts";
import type { LogRecord, ParserContext } from "./record.ts";
import { FoldingParser } from "./record_folder.ts";

/** Options for {@linkcode MysqlGeneralParser}. */
export interface MysqlGeneralParserOptions {
  /**
   * Largest record, in characters of argument text folded into it (see
   * {@linkcode RecordFolder.append}).
   * @default {1048576}
   */
  maxRecordChars?: number;
  /** Where the previous read of the same file stopped: its {@linkcode MysqlGeneralParser.context}. */
  context?: ParserContext;
}

// `time<TAB>%5u command<TAB>argument`; 5.6 writes `<TAB><TAB>` instead of a time repeated within
// the same second. Command names with a space are listed; others are one word.
const ENTRY =
  /^(?:(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})|\d{6} {1,2}\d{1,2}:\d{2}:\d{2})[\t ]+|\t\t *)(\d+) (Init DB|Field List|Create DB|Drop DB|Close stmt|Reset stmt|Long Data|Binlog Dump(?: GTID)?|Change user|Connect Out|Register Slave|Register Replica|Delayed insert|Table Dump|Set option|Reset Connection|Group Replication Data Stream subscription|[A-Z][A-Za-z_]*)(?:\t| +|$)(.*)$/;

/**
 * Parses MySQL general log lines (`2024-05-01T12:00:00.123456Z\t   12 Query\tSELECT 1`, tabs or
 * spaces) into `{_timestamp, log_time, thread_id, command, argument}` (`_timestamp` in
 * microseconds, `log_time` the time as written). 5.6 lines that leave the time out (same second as
 * the line before) get the previous line's time. Lines that match no entry
 * continue the previous record's `argument` (a multi-line query) with `"\n"`; with no previous
 * record they become `{message, parse_error: true}`. File headers are skipped and counted in
 * {@linkcode MysqlGeneralParser.headerLines}.
 */
export class MysqlGeneralParser extends FoldingParser {
  #lastTimestamp: number | undefined;
  #lastTime: string | undefined;

  /**
   * @param options see {@linkcode MysqlGeneralParserOptions}
   * @throws {RangeError} when `maxRecordChars` is not a positive integer
   */
  constructor({ maxRecordChars = 1_048_576, context }: MysqlGeneralParserOptions = {}) {
    super(maxRecordChars, context);
    if (context === undefined) return;
    if (typeof context.last_timestamp === "number") this.#lastTimestamp = context.last_timestamp;
    if (typeof context.last_time === "string") this.#lastTime = context.last_time;
  }

  /** The record being read and the last time written (5.6 leaves repeats out), for a later read. */
  override context(): ParserContext {
    return {
      ...super.context(),
      ...(this.#lastTimestamp !== undefined && { last_timestamp: this.#lastTimestamp }),
      ...(this.#lastTime !== undefined && { last_time: this.#lastTime }),
    };
  }

  /** Feed one line (text without its newline); returns the record it completed, if any. */
  pushText(text: string): LogRecord[] {
    this.linesSeen++;
    const out: LogRecord[] = [];
    const folder = this.folder;
    const m = ENTRY.exec(text);
    const timestamp = m?.[1] === undefined ? this.#lastTimestamp : mysqlTimeUs(m[1]);
    if (m !== null && (m[1] === undefined || timestamp !== undefined)) {
      this.#lastTimestamp = timestamp;
      if (m[1] !== undefined) this.#lastTime = m[1];
      const record: LogRecord = {};
      if (timestamp !== undefined) {
        record._timestamp = timestamp;
        record.log_time = this.#lastTime;
      }
      record.thread_id = Number(m[2]);
      record.command = m[3];
      record.argument = m[4];
      folder.start(out, record, "argument");
    } else if (isMysqlLogHeader(text)) {
      this.headersSkipped++;
      folder.emit(out);
    } else if (folder.pending !== undefined) {
      folder.append(out, folder.field, text);
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
