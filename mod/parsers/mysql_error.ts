/**
 * MySQL / Aurora MySQL error logs.
 * @module
 */
import { mysqlTimeUs } from "./mysql_time.ts";
import type { LogRecord, ParserContext } from "./record.ts";
import { FoldingParser } from "./record_folder.ts";

/** Options for {@linkcode MysqlErrorParser}. */
export interface MysqlErrorParserOptions {
  /**
   * Largest record, in characters of text folded into it (see {@linkcode RecordFolder.append}).
   * @default {1048576}
   */
  maxRecordChars?: number;
  /** Where the previous read of the same file stopped: its {@linkcode MysqlErrorParser.context}. */
  context?: ParserContext;
}

// time, thread id (decimal, or hex for 5.6 InnoDB lines), [severity], [MY-code] [subsystem], message
const ENTRY =
  /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}|\d{6} {1,2}\d{1,2}:\d{2}:\d{2}) +(?:(\d+|[0-9a-f]{8,16}) +)?(?:\[([A-Za-z]+)\] ?)?(?:\[(MY-\d+)\] \[([A-Za-z ]+)\] ?)?(.*)$/;

/**
 * Parses MySQL error log lines into `{_timestamp, log_time, thread_id, severity, error_code,
 * subsystem, message}` (`_timestamp` in microseconds, `log_time` the time as written), for the 8.0 / Aurora MySQL 3 form
 * `2024-05-01T12:00:00.123456Z 0 [Warning] [MY-010055] [Server] message`, the 5.7 form without
 * code and subsystem, the 5.6 form `2024-05-01 12:00:00 12345 [Note] message` (5.6 InnoDB lines
 * carry a hex thread id, kept as a string) and the 5.5 form `240501 12:00:00 [Note] message`.
 * Fields absent from a line are left out. Times without a zone are read as UTC.
 *
 * Lines without a time (stack traces, InnoDB monitor output) fold into the previous record's
 * `message` with `"\n"`; with no previous record they become `{message, parse_error: true}`.
 */
export class MysqlErrorParser extends FoldingParser {
  /**
   * @param options see {@linkcode MysqlErrorParserOptions}
   * @throws {RangeError} when `maxRecordChars` is not a positive integer
   */
  constructor({ maxRecordChars = 1_048_576, context }: MysqlErrorParserOptions = {}) {
    super(maxRecordChars, context);
  }

  /** Feed one line (text without its newline); returns the record it completed, if any. */
  pushText(text: string): LogRecord[] {
    this.linesSeen++;
    const out: LogRecord[] = [];
    const folder = this.folder;
    const m = ENTRY.exec(text);
    const timestamp = m === null ? undefined : mysqlTimeUs(m[1]!);
    if (m !== null && timestamp !== undefined) {
      const record: LogRecord = { _timestamp: timestamp, log_time: m[1] };
      const thread = m[2];
      if (thread !== undefined) record.thread_id = /^\d+$/.test(thread) ? Number(thread) : thread;
      if (m[3] !== undefined) record.severity = m[3];
      if (m[4] !== undefined) record.error_code = m[4];
      if (m[5] !== undefined) record.subsystem = m[5];
      record.message = m[6];
      folder.start(out, record);
    } else if (folder.pending !== undefined) {
      folder.append(out, "message", text);
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
