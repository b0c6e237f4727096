/** Helpers shared by the parser tests (not a test file itself). */
import type { LineParser, LogRecord } from "../../mod/parsers/record.ts";

const encoder = new TextEncoder();

/** Splits `text` into framed lines as LineStream would: no `\n`, a final empty line dropped. */
export function linesOf(text: string): Uint8Array[] {
  const parts = text.split("\n");
  if (parts.at(-1) === "") parts.pop();
  return parts.map((p) => encoder.encode(p));
}

/** Feeds every line of `text` to `parser`, then flushes it. */
export function parseText(parser: LineParser, text: string): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of linesOf(text)) out.push(...parser.push(line));
  out.push(...parser.flush());
  return out;
}

/** Reads a file under tests/testdata/parsers/. */
export function testdata(name: string): string {
  return Deno.readTextFileSync(new URL(`../testdata/parsers/${name}`, import.meta.url));
}

/** The time fields of a database log record: `_timestamp` in µs (`ms` and `us` more) and `log_time`. */
export function time(ms: number, text: string, us = 0): { _timestamp: number; log_time: string } {
  return { _timestamp: ms * 1000 + us, log_time: text };
}
