/**
 * A TransformStream from lines to records around a {@linkcode LineParser}.
 * @module
 */
import type { LineParser, LogRecord } from "./record.ts";

/**
 * Turns framed lines (`Uint8Array`, no newline) into {@linkcode LogRecord}s with `parser`;
 * records still pending at the end of the input are emitted when the writable side closes.
 *
 * @example
 * ```ts
 * import { ParserStream } from "./parser_stream.ts";
 * import { PostgresParser } from "./postgres.ts";
 *
 * const parser = new PostgresParser();
 * const lines = ReadableStream.from([
 *   new TextEncoder().encode("2024-05-01 12:00:00 UTC::@:[7]:LOG:  database system is ready"),
 * ]);
 * const records = await Array.fromAsync(lines.pipeThrough(new ParserStream(parser)));
 * // records[0].severity === "LOG"; parser.records === 1
 * ```
 */
export class ParserStream extends TransformStream<Uint8Array, LogRecord> {
  /**
   * @param parser the line parser; its counters stay readable on the instance passed in.
   */
  constructor(parser: LineParser) {
    super({
      transform(line, controller) {
        for (const record of parser.push(line)) controller.enqueue(record);
      },
      flush(controller) {
        for (const record of parser.flush()) controller.enqueue(record);
      },
    });
  }
}
