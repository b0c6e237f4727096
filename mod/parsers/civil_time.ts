/**
 * Calendar date and time of day → milliseconds since the epoch, with range checks.
 * @module
 */

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Converts a date and time given in a zone `offsetMinutes` east of UTC to epoch milliseconds.
 * The fraction of a second is given as its digits (`"123456"` for .123456) and truncated to
 * whole milliseconds. A leap second (`60`) counts as the next second, as `Date.UTC` does.
 *
 * @param year full year (0-9999)
 * @param month 1-12
 * @param day 1-31, checked against the month (and leap years)
 * @param hour 0-23
 * @param minute 0-59
 * @param second 0-60
 * @param fraction digits after the decimal point, `""` for none
 * @param offsetMinutes the zone's offset east of UTC (`+02:00` → 120)
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
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) {
    return undefined;
  }
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > DAYS_IN_MONTH[month - 1]! || (month === 2 && day === 29 && !leap)) return undefined;
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  date.setUTCFullYear(year); // Date.UTC maps years 0-99 to 1900-1999
  let ms = date.getTime();
  if (fraction.length > 0) ms += Number((fraction + "00").slice(0, 3));
  return ms - offsetMinutes * 60_000;
}
