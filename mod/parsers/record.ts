/**
 * The common shape every parser produces, and the contract of a line parser.
 * @module
 */

/**
 * One structured log record; its fields depend on the format. The database log parsers
 * (PostgreSQL, MySQL) set `_timestamp`, microseconds since the epoch (an integer: OpenObserve's
 * unit, and MySQL writes microseconds), and `log_time`, the time as the line wrote it, when the
 * line carries one.
 */
export type LogRecord = Record<string, unknown>;

/**
 * What a parser carries from one read of a file to the next (a JSON object): the record it is
 * still folding, and state that spans records, such as the MySQL slow log's current database.
 * `process` keeps it in the tracking table beside the file's marker and seeds the next read's
 * parser with it, so a file read in many portions parses as if read in one go.
 */
export type ParserContext = Record<string, unknown>;

/**
 * A parser fed one line at a time (a `Uint8Array` without its `\n`; a trailing `\r` is tolerated).
 * Multi-line formats hold the record being built until a line shows it is complete, so `push`
 * may return nothing for a line and `flush` returns what is still pending at the end of the input.
 * Wrap one in a {@linkcode ParserStream} to use it in a Web Streams pipeline.
 */
export interface LineParser {
  /** Feed one line; returns the records completed by it (often none or one). */
  push(line: Uint8Array): LogRecord[];
  /**
   * Feed one line already decoded (no `\n`, no trailing `\r`): what `push` does after decoding.
   * Framers that decode a whole chunk at once use it.
   */
  pushText?(text: string): LogRecord[];
  /**
   * Feed the line `text.slice(from, to)` (no `\n`, no trailing `\r`) where it is, in a decoded
   * chunk: what `pushText` does with the line cut out, which a parser may skip. The records are
   * appended to `out` when given (no array per line), and `out` is returned.
   */
  pushRange?(text: string, from: number, to: number, out?: LogRecord[]): LogRecord[];
  /** End of input: returns the records still pending. The parser may be reused afterwards. */
  flush(): LogRecord[];
  /**
   * What carries over to the input's next lines (see {@linkcode ParserContext}): a parser
   * constructed with it continues where this one is now. Only for parsers of files read in parts.
   */
  context?(): ParserContext;
}
