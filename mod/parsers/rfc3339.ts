/**
 * RFC 3339 timestamp parsing.
 * @module
 */
import { civilTimeMs, civilTimeUs } from "./civil_time.ts";

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

/**
 * Parses an RFC 3339 date-time: `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.123456+02:00`.
 * Also accepted, as most producers write them: a space instead of `T`, lower-case `t`/`z`, a
 * comma before the fraction, any number of fraction digits, an offset without its colon.
 * A zone (`Z` or an offset) is required: a local time means nothing without one.
 *
 * @param text the timestamp
 * @returns epoch milliseconds (fraction truncated to whole ms), or `undefined` when `text` is not
 *   an RFC 3339 date-time or a field is out of range
 */
export function parseRfc3339(text: string): number | undefined {
  return parse(text, civilTimeMs);
}

/**
 * Parses an RFC 3339 date-time as {@linkcode parseRfc3339} does, to epoch microseconds.
 *
 * @param text the timestamp
 * @returns epoch microseconds (fraction truncated to whole µs), or `undefined`
 */
export function parseRfc3339Us(text: string): number | undefined {
  return parse(text, civilTimeUs);
}

function parse(text: string, civil: typeof civilTimeMs): number | undefined {
  const m = RFC3339.exec(text);
  if (m === null) return undefined;
  let offset = 0;
  if (m[8] === undefined) {
    const hours = Number(m[10]);
    const minutes = Number(m[11]);
    if (hours > 23 || minutes > 59) return undefined;
    offset = (m[9] === "-" ? -1 : 1) * (hours * 60 + minutes);
  }
  return civil(
    Number(m[1]),
    Number(m[2]),
    Number(m[3]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6]),
    m[7] ?? "",
    offset,
  );
}
