/**
 * Duration and size parsing, done once when the config is loaded.
 * @module
 */

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parse a duration such as `500ms`, `15s`, `1m`, `1h30m` or `0` to milliseconds.
 *
 * @param raw the value as written in the config.
 * @returns milliseconds, or an error message (string) naming what was wrong.
 */
export function parseDuration(raw: unknown): number | string {
  if (raw === 0 || raw === "0") return 0;
  if (typeof raw === "number") {
    return `duration needs a unit (ms, s, m, h, d), e.g. "${raw}s": got ${raw}`;
  }
  if (typeof raw !== "string") return `must be a duration like "15s": got ${typeof raw}`;
  const s = raw.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  if (s === "" || end !== s.length) {
    return `must be a duration like "500ms", "15s", "1m", "1h30m": got ${JSON.stringify(raw)}`;
  }
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

/**
 * Parse a size such as `1MiB`, `10MB`, `512KiB` or a plain byte count to bytes.
 *
 * @param raw the value as written in the config.
 * @returns bytes, or an error message (string) naming what was wrong.
 */
export function parseSize(raw: unknown): number | string {
  if (typeof raw === "number") {
    return Number.isInteger(raw) && raw >= 0
      ? raw
      : `must be a whole number of bytes or a size like "1MiB": got ${raw}`;
  }
  if (typeof raw !== "string") return `must be a size like "1MiB": got ${typeof raw}`;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    return `must be a size like "512KiB", "1MiB", "10MB" or a byte count: got ${
      JSON.stringify(raw)
    }`;
  }
  return Math.round(Number(m[1]) * unit);
}

/** Format milliseconds back as a short duration (`1m30s`), for docs and logs. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms % 1000 !== 0 || ms < 1000) return `${ms}ms`;
  let s = ms / 1000;
  let out = "";
  for (const [u, n] of [["d", 86400], ["h", 3600], ["m", 60]] as const) {
    if (s >= n) {
      out += `${Math.floor(s / n)}${u}`;
      s %= n;
    }
  }
  return s ? `${out}${s}s` : out;
}
