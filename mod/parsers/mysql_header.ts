/**
 * The header MySQL writes at the top of a slow-query or general log file (and again after each
 * FLUSH LOGS / restart).
 * @module
 */

const HEADER = [
  /^\S*mysqld(?:\.exe)?, Version: .*started with:$/,
  /^Tcp port: \d+ +Unix socket: /,
  /^Time +Id +Command +Argument$/,
];

/**
 * Tells whether `text` is one of the three header lines of a MySQL slow-query or general log:
 * `/rdsdbbin/mysql/bin/mysqld, Version: 8.0.35 (Source distribution). started with:`,
 * `Tcp port: 3306  Unix socket: /tmp/mysql.sock`, `Time                 Id Command    Argument`.
 * @param text one line
 * @returns true for a header line
 */
export function isMysqlLogHeader(text: string): boolean {
  return HEADER.some((re) => re.test(text));
}
