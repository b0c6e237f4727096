/**
 * The time formats of MySQL's error, slow-query and general logs.
 * @module
 */
import { civilTimeUs } from "./civil_time.ts";
import { parseRfc3339Us } from "./rfc3339.ts";

const DATETIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/;
const SHORT = /^(\d{2})(\d{2})(\d{2}) +(\d{1,2}):(\d{2}):(\d{2})$/;

/**
 * Reads a MySQL log time as epoch microseconds (MySQL writes up to six fraction digits):
 * - `2024-05-01T12:00:00.123456Z` or `...+02:00` (5.7 and later, `log_timestamps`);
 * - `2024-05-01 12:00:00` (5.6 error log) and `240501 12:00:00` / `240501  2:00:00` (5.5/5.6
 *   slow and general logs): local server time without a zone, read as UTC, the time zone of
 *   RDS and Aurora hosts.
 *
 * @param text the time as written
 * @returns epoch microseconds, or `undefined` when `text` is none of these forms
 */
export function mysqlTimeUs(text: string): number | undefined {
  const iso = parseRfc3339Us(text);
  if (iso !== undefined) return iso;
  let m = DATETIME.exec(text);
  if (m !== null) {
    return civilTimeUs(
      Number(m[1]),
      Number(m[2]),
      Number(m[3]),
      Number(m[4]),
      Number(m[5]),
      Number(m[6]),
      m[7] ?? "",
    );
  }
  m = SHORT.exec(text);
  if (m !== null) {
    return civilTimeUs(
      2000 + Number(m[1]),
      Number(m[2]),
      Number(m[3]),
      Number(m[4]),
      Number(m[5]),
      Number(m[6]),
    );
  }
  return undefined;
}
