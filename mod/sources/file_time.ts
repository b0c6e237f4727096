/**
 * Log file names of the reference feed carry their time: `<unix_ts>_<id>_<id>_<seq>[.gz]`.
 * @module
 */

/** `<unix_ts>_<id>_<id>_<seq>[.gz]` → unix seconds, or undefined for other names. */
export function fileTime(key: string): number | undefined {
  const name = key.slice(key.lastIndexOf("/") + 1);
  const m = /^(\d{9,11})_[^_/]+_[^_/]+_[^_/.]+(\.[A-Za-z0-9]+)?$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
