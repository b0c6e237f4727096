/**
 * Calendar date and time of day → time since the epoch, with range checks.
 * @module
 */

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Converts a date and time given in a zone `offsetMinutes` east of UTC to epoch microseconds.
 * The fraction of a second is given as its digits (`"123456"` for .123456) and truncated to
 * whole microseconds. A leap second (`60`) counts as the next second, as `Date.UTC` does.
 * Microseconds are exact as integers up to the year 2255 (2^53 µs after 1970).
 *
 * @param year full year (0-9999)
 * @param month 1-12
 * @param day 1-31, checked against the month (and leap years)
 * @param hour 0-23
 * @param minute 0-59
 * @param second 0-60
 * @param fraction digits after the decimal point, `""` for none
 * @param offsetMinutes the zone's offset east of UTC (`+02:00` → 120)
 * @returns epoch microseconds, or `undefined` when a field is out of range
 */
export function civilTimeUs(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  fraction = "",
  offsetMinutes = 0,
): number | undefined {
  const s = civilSeconds(year, month, day, hour, minute, second, offsetMinutes);
  if (s === undefined) return undefined;
  let us = 0;
  for (let i = 0; i < 6; i++) {
    us = us * 10 + (i < fraction.length ? fraction.charCodeAt(i) - 48 : 0);
  }
  return s * 1e6 + us;
}

/**
 * Converts a date and time given in a zone `offsetMinutes` east of UTC to epoch milliseconds,
 * the fraction truncated to whole milliseconds. See {@linkcode civilTimeUs}.
 *
 * @returns epoch milliseconds, or `undefined` when a field is out of range
 */
export function civilTimeMs(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  fraction = "",
  offsetMinutes = 0,
): number | undefined {
  const us = civilTimeUs(year, month, day, hour, minute, second, fraction, offsetMinutes);
  return us === undefined ? undefined : Math.floor(us / 1000);
}

/** Whole seconds since the epoch (days from the civil date, no Date object), or undefined. */
function civilSeconds(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  offsetMinutes: number,
): number | undefined {
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) {
    return undefined;
  }
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > DAYS_IN_MONTH[month - 1]! || (month === 2 && day === 29 && !leap)) return undefined;
  // Days from 1970-01-01 (H. Hinnant's days_from_civil).
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  const days = era * 146097 + doe - 719468;
  return days * 86400 + hour * 3600 + minute * 60 + second - offsetMinutes * 60;
}
