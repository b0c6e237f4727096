/**
 * Line decoding shared by the text parsers.
 * @module
 */

const decoder = new TextDecoder();

/**
 * Decodes a framed line as UTF-8 (invalid bytes become U+FFFD, a leading BOM is dropped) and
 * removes a trailing `\r` left by CRLF line endings.
 * @param line one line without its `\n`
 * @returns the line's text
 */
export function lineText(line: Uint8Array): string {
  const end = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
  return decoder.decode(end === line.length ? line : line.subarray(0, end));
}
