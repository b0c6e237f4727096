/**
 * Realistic syslog messages written straight into a caller's buffer: RFC 3164
 * (`<PRI>Mmm dd hh:mm:ss host app[pid]: text seq=W:N`, day space-padded, the TIMESTAMP in local
 * time and the HOSTNAME without its domain, as §4.1.2 says) or RFC 5424
 * (`<PRI>1 2026-11-23T01:02:03.000Z host.domain app pid - - text seq=W:N`, UTC and the FQDN),
 * padded to a fixed size if asked. Everything variable is pre-encoded once (hosts, apps with their PIDs, facility/severity
 * prefixes drawn with weights, message templates), the timestamp bytes are rebuilt once per
 * second, and the sequence number is written as ASCII digits in place: {@link SyslogWriter.write}
 * allocates nothing.
 *
 * @example
 * ```ts
 * const w = new SyslogWriter({ format: "rfc3164" });
 * const buf = new Uint8Array(2048);
 * const n = w.write(buf, 0, 3, 42, Date.now());
 * console.log(new TextDecoder().decode(buf.subarray(0, n))); // ... seq=3:42
 * ```
 * @module
 */

const enc = new TextEncoder();

/** Message format. */
export type SyslogFormat = "rfc3164" | "rfc5424";

/** Options of {@link SyslogWriter}. */
export interface SyslogWriterOptions {
  /** @default "rfc3164" */
  format?: SyslogFormat;
  /** Pad (with spaces before the tag) or cut every message to this many bytes; 0: natural size. */
  messageSize?: number;
  /** Text before `<worker>:<n>`. @default "seq=" */
  seqPrefix?: string;
  /** Seed of the pseudo-random choices (same seed, same messages). @default 1 */
  seed?: number;
  /**
   * The zone of RFC 3164 timestamps (local time, §4.1.2): `"local"` (the host's, from `TZ`),
   * `"UTC"`, or an IANA name such as `"Asia/Kolkata"`. RFC 5424 timestamps are always UTC (`Z`):
   * they carry their offset, so a receiver reads them right in any zone.
   * @default "local"
   */
  timeZone?: string;
}

/**
 * Check a time zone for {@link SyslogWriterOptions.timeZone}.
 *
 * @returns a message saying what is wrong, or undefined when `"local"`, `"UTC"` or a known
 * IANA name.
 */
export function checkTimeZone(zone: string): string | undefined {
  if (zone === "local") return undefined;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return undefined;
  } catch {
    return `must be "local", "UTC" or an IANA time zone name (e.g. Asia/Kolkata): got ${
      JSON.stringify(zone)
    }`;
  }
}

/** Month (0–11), day, hours, minutes and seconds of an instant in one time zone. */
type WallClock = (ms: number) => [number, number, number, number, number];

function wallClock(zone: string): WallClock {
  if (zone === "local") {
    return (ms) => {
      const d = new Date(ms);
      return [d.getMonth(), d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
    };
  }
  if (zone === "UTC") {
    return (ms) => {
      const d = new Date(ms);
      return [
        d.getUTCMonth(),
        d.getUTCDate(),
        d.getUTCHours(),
        d.getUTCMinutes(),
        d.getUTCSeconds(),
      ];
    };
  }
  const bad = checkTimeZone(zone);
  if (bad) throw new RangeError(`timezone ${bad}`);
  const fmt = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
    hourCycle: "h23",
  });
  return (ms) => {
    const out: [number, number, number, number, number] = [0, 0, 0, 0, 0];
    for (const p of fmt.formatToParts(ms)) {
      const i = ["month", "day", "hour", "minute", "second"].indexOf(p.type);
      if (i >= 0) out[i] = Number(p.value) - (i === 0 ? 1 : 0);
    }
    return out;
  };
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Facility codes and their relative weights (mostly daemon, auth, kern, local apps). */
const FACILITIES: [number, number][] = [
  [3, 30], // daemon
  [4, 10], // auth
  [10, 8], // authpriv
  [0, 6], // kern
  [1, 10], // user
  [9, 4], // cron
  [16, 16], // local0
  [17, 8], // local1
  [23, 8], // local7
];
/** Severities and weights: informational and notice dominate, as in real fleets. */
const SEVERITIES: [number, number][] = [
  [6, 55], // info
  [5, 15], // notice
  [4, 12], // warning
  [3, 8], // err
  [7, 8], // debug
  [2, 1], // crit
  [1, 0.6], // alert
  [0, 0.4], // emerg
];

/** Short host names; RFC 5424 adds {@link DOMAIN}. */
const HOSTS = [
  "web",
  "api",
  "db",
  "cache",
  "lb",
  "auth",
  "mq",
  "worker",
  "batch",
  "edge",
];
const DOMAIN = ".prod.example.net";
const APPS = [
  "sshd",
  "sudo",
  "CRON",
  "systemd",
  "kernel",
  "nginx",
  "postgres",
  "dockerd",
  "kubelet",
  "haproxy",
  "postfix/smtpd",
  "named",
];
const TEMPLATES = [
  "Accepted publickey for deploy from 10.20.%d.%d port 5%d ssh2: ED25519 SHA256:Qm9vYmFy",
  "Failed password for invalid user admin from 203.0.113.%d port 4%d ssh2",
  "pam_unix(sudo:session): session opened for user root by ops(uid=10%d)",
  "(root) CMD (/usr/local/bin/backup.sh --incremental --target s3://backups/%d)",
  "Started Session %d of User deploy.",
  "GET /api/v1/orders/%d HTTP/1.1 200 5%d 0.0%d upstream=10.0.%d.%d:8080",
  "connection received: host=10.1.%d.%d port=5%d",
  "container %d exited with code 137 (OOMKilled)",
  "Readiness probe failed: HTTP probe failed with statuscode: 503 pod=api-%d",
  "TCP: request_sock_TCP: Possible SYN flooding on port %d. Sending cookies.",
  "client 192.0.2.%d#5%d: query: example.com IN A +E(0)K (10.0.0.%d)",
  "NOQUEUE: reject: RCPT from unknown[198.51.100.%d]: 450 4.7.1 Client host rejected",
];

/** A weighted table of `n` draws, so a pick is one random index. */
function weighted(pairs: [number, number][], n = 1000): number[] {
  const total = pairs.reduce((s, [, w]) => s + w, 0);
  const out: number[] = [];
  for (const [v, w] of pairs) {
    for (let i = 0; i < Math.max(1, Math.round((w / total) * n)); i++) out.push(v);
  }
  return out;
}

/** Writes syslog messages into preallocated buffers. */
export class SyslogWriter {
  readonly format: SyslogFormat;
  readonly messageSize: number;
  /** `<PRI>` (3164) or `<PRI>1 ` (5424) prefixes, by weighted draw. */
  readonly #pris: Uint8Array[];
  /** ` host app[pid]: ` (3164) or ` host app pid - - ` (5424). */
  readonly #origins: Uint8Array[];
  readonly #texts: Uint8Array[];
  readonly #seq: Uint8Array;
  readonly #clock: WallClock;
  #stamp = new Uint8Array(0);
  #stampSecond = -1;
  #rng: number;

  /** @throws {RangeError} on an unknown `timeZone`. */
  constructor(
    { format = "rfc3164", messageSize = 0, seqPrefix = "seq=", seed = 1, timeZone = "local" }:
      SyslogWriterOptions = {},
  ) {
    this.format = format;
    this.#clock = wallClock(timeZone);
    this.messageSize = messageSize;
    this.#rng = (seed >>> 0) || 1;
    const fac = weighted(FACILITIES, 100);
    const sev = weighted(SEVERITIES, 200);
    this.#pris = [];
    for (let i = 0; i < 256; i++) {
      const pri = fac[this.#next() % fac.length]! * 8 + sev[this.#next() % sev.length]!;
      this.#pris.push(enc.encode(format === "rfc3164" ? `<${pri}>` : `<${pri}>1 `));
    }
    this.#origins = [];
    for (let i = 0; i < 128; i++) {
      // §4.1.2: the 3164 HOSTNAME is the name without its domain; 5424 takes the FQDN.
      const host = `${HOSTS[this.#next() % HOSTS.length]}-${
        String(this.#next() % 40).padStart(2, "0")
      }${format === "rfc3164" ? "" : DOMAIN}`;
      const app = APPS[this.#next() % APPS.length]!;
      const pid = 300 + (this.#next() % 65000);
      this.#origins.push(
        enc.encode(
          format === "rfc3164" ? ` ${host} ${app}[${pid}]: ` : ` ${host} ${app} ${pid} - - `,
        ),
      );
    }
    this.#texts = [];
    for (let i = 0; i < 256; i++) {
      const t = TEMPLATES[this.#next() % TEMPLATES.length]!.replace(
        /%d/g,
        () => String(this.#next() % 250),
      );
      this.#texts.push(enc.encode(`${t} `));
    }
    this.#seq = enc.encode(seqPrefix);
  }

  /** xorshift32. */
  #next(): number {
    let x = this.#rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.#rng = x >>> 0);
  }

  #stampFor(ms: number): Uint8Array {
    const second = Math.floor(ms / 1000);
    if (second === this.#stampSecond) return this.#stamp;
    const p2 = (n: number) => String(n).padStart(2, "0");
    let text: string;
    if (this.format === "rfc3164") {
      const [month, day, h, m, s] = this.#clock(second * 1000);
      text = `${MONTHS[month]} ${String(day).padStart(2, " ")} ${p2(h)}:${p2(m)}:${p2(s)}`;
    } else {
      text = new Date(second * 1000).toISOString();
    }
    this.#stamp = enc.encode(text);
    this.#stampSecond = second;
    return this.#stamp;
  }

  /**
   * The longest message this writer produces with worker numbers below 10^10 and sequence
   * numbers below 2^53: the slot size a buffer needs. With `messageSize` set, that size, unless
   * header and tag alone are longer (a `message_size` too small for them is exceeded, never
   * written past).
   */
  get maxLength(): number {
    const longest = (a: Uint8Array[]) => a.reduce((m, x) => Math.max(m, x.length), 0);
    const frame = longest(this.#pris) + 24 + longest(this.#origins) + this.#seq.length + 10 + 1 +
      16;
    if (this.messageSize > 0) return Math.max(this.messageSize, frame);
    return frame + longest(this.#texts);
  }

  /**
   * Write one message at `buf[at]`.
   *
   * @param worker the sender's number (in the tag).
   * @param seq the message's number within its worker (in the tag).
   * @param nowMs wall-clock time for the timestamp.
   * @returns the message's length in bytes.
   */
  write(buf: Uint8Array, at: number, worker: number, seq: number, nowMs: number): number {
    const r = this.#next();
    const pri = this.#pris[r & 255]!;
    const origin = this.#origins[(r >>> 8) & 127]!;
    const text = this.#texts[(r >>> 16) & 255]!;
    const stamp = this.#stampFor(nowMs);
    let o = at;
    buf.set(pri, o);
    o += pri.length;
    buf.set(stamp, o);
    o += stamp.length;
    buf.set(origin, o);
    o += origin.length;
    const tagLen = this.#seq.length + digits(worker) + 1 + digits(seq);
    const size = this.messageSize;
    let room = text.length;
    if (size > 0) {
      // Pad with spaces (or cut the text) so the whole message is exactly `size` bytes.
      room = size - (o - at) - tagLen;
      if (room < 0) room = 0;
    }
    if (room === text.length) {
      buf.set(text, o);
      o += room;
    } else if (room < text.length) {
      // Cut: copy byte by byte (a subarray would allocate a view per message).
      for (let i = 0; i < room; i++) buf[o + i] = text[i]!;
      o += room;
    } else {
      buf.set(text, o);
      o += text.length;
      buf.fill(32, o, o + room - text.length);
      o += room - text.length;
    }
    buf.set(this.#seq, o);
    o += this.#seq.length;
    o = writeDigits(buf, o, worker);
    buf[o++] = 58; // ':'
    o = writeDigits(buf, o, seq);
    return o - at;
  }
}

function digits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

function writeDigits(buf: Uint8Array, at: number, n: number): number {
  const end = at + digits(n);
  let o = end;
  do {
    const q = Math.floor(n / 10);
    buf[--o] = 48 + (n - q * 10);
    n = q;
  } while (n > 0);
  return end;
}

/**
 * Find `<prefix><worker>:<seq>` at the end of a message (bytes from `at`, `len` long).
 *
 * @returns false when the message carries no tag; else fills `out` ([worker, seq]).
 */
export function parseSeqTag(
  buf: Uint8Array,
  at: number,
  len: number,
  prefix: Uint8Array,
  out: [number, number],
): boolean {
  // Scan back over digits ':' digits, then check the prefix.
  let o = at + len;
  while (o > at && (buf[o - 1] === 10 || buf[o - 1] === 13 || buf[o - 1] === 0)) o--;
  let seq = 0, mul = 1, n = 0;
  while (o > at && buf[o - 1]! >= 48 && buf[o - 1]! <= 57) {
    seq += (buf[--o]! - 48) * mul;
    mul *= 10;
    n++;
  }
  if (n === 0 || o <= at || buf[o - 1] !== 58) return false;
  o--;
  let worker = 0;
  mul = 1;
  n = 0;
  while (o > at && buf[o - 1]! >= 48 && buf[o - 1]! <= 57) {
    worker += (buf[--o]! - 48) * mul;
    mul *= 10;
    n++;
  }
  if (n === 0 || o - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (buf[o - prefix.length + i] !== prefix[i]) return false;
  }
  out[0] = worker;
  out[1] = seq;
  return true;
}
