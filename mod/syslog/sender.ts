/**
 * One generator worker: writes syslog messages into a preallocated vector and sends them to one
 * target port, paced by a token bucket, until its duration ends or it is told to stop.
 *
 * UDP goes through sendmmsg(2) by FFI (256 messages a call) where libc can be loaded, else
 * through node:dgram. When every message has the same size (`messageSize` set and not exceeded),
 * the FFI path uses UDP GSO (`UDP_SEGMENT`): one header of sendmmsg carries up to 64 messages
 * that the kernel sends as separate datagrams, so the syscall and the stack's per-send work are
 * paid once per 64; it falls back to one datagram per header when the kernel refuses it. TCP frames messages with RFC 6587 octet counting (`LEN SP MSG`) and
 * reconnects with backoff. Runs synchronously on its thread (a Worker, see generate_worker.ts):
 * control and counters live in a SharedArrayBuffer, so the main thread reads them without
 * messages and stops the loop by a flag.
 *
 * Sequence numbers only advance by what the kernel accepted: a message that could not be sent
 * is sent again with the same number, so a receiver's gaps are real losses.
 * @module
 */

import { FfiSocket } from "../pipeline/ffi_socket.ts";
import { LINUX, loadLibc } from "../pipeline/libc.ts";
import { MmsgVector } from "../pipeline/mmsg_vector.ts";
import { sleep } from "../pipeline/retry.ts";
import { type SyslogFormat, SyslogWriter } from "./message.ts";
import { TokenBucket } from "../pipeline/token_bucket.ts";

/** What a sender is told. */
export interface SenderInit {
  /** Worker number (in every message's tag). */
  id: number;
  /** Target host: an IP literal or a name (resolved once). */
  host: string;
  port: number;
  protocol: "udp" | "tcp";
  /** This worker's messages per second; 0: as fast as possible. */
  rate: number;
  /** Stop after this many milliseconds; 0: until stopped. */
  durationMs: number;
  format: SyslogFormat;
  /** Pad every message to this many bytes; 0: natural size. */
  messageSize: number;
  seqPrefix: string;
  /** Messages per send call. */
  batch: number;
  /** Use sendmmsg through FFI when possible. */
  ffi: boolean;
  /** Use UDP GSO on the FFI path when every message has the same size and the kernel allows. */
  gso: boolean;
  /** From {@link senderControl}. */
  control: SharedArrayBuffer;
}

/** Offsets in the control buffer: Int32 flags, then Float64 counters. */
const STOP = 0, SLEEP = 1;
const SENT = 0, BYTES = 1, ERRORS = 2, DONE = 3, STARTED = 4, FFI = 5, ENDED = 6, GSO = 7;
const COUNTERS = 8;

/** A control block for one sender: a stop flag and its counters. */
export function senderControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(8 + 8 * COUNTERS);
}

/** What a sender has done so far (read from its control block). */
export interface SenderCounters {
  sent: number;
  bytes: number;
  errors: number;
  done: boolean;
  /** When the sender started sending: ms since the epoch, sub-millisecond (0 before). */
  startedAt: number;
  /** When it stopped sending (0 before). */
  endedAt: number;
  /** Whether sendmmsg through FFI is in use. */
  ffi: boolean;
  /** Whether UDP GSO is in use (false before the socket is set up, and after a fallback). */
  gso: boolean;
}

/** Read a sender's counters. */
export function readSender(control: SharedArrayBuffer): SenderCounters {
  const f = new Float64Array(control, 8, COUNTERS);
  return {
    sent: f[SENT]!,
    bytes: f[BYTES]!,
    errors: f[ERRORS]!,
    done: f[DONE] === 1,
    startedAt: f[STARTED]!,
    endedAt: f[ENDED]!,
    ffi: f[FFI] === 1,
    gso: f[GSO] === 1,
  };
}

/** Tell a sender to stop after its current batch. */
export function stopSender(control: SharedArrayBuffer): void {
  const i = new Int32Array(control, 0, 2);
  Atomics.store(i, STOP, 1);
  Atomics.notify(i, SLEEP);
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

async function resolveHost(host: string): Promise<string> {
  if (IPV4.test(host) || host.includes(":")) return host;
  if (host === "localhost") return "127.0.0.1";
  const [a] = await Deno.resolveDns(host, "A");
  if (!a) throw new Error(`cannot resolve ${host}`);
  return a;
}

/**
 * Run one sender until its duration ends or {@link stopSender}. Counters are in `init.control`.
 *
 * @throws {Error} on a socket error other than transient ones (refused, no buffer space).
 */
export async function runSender(init: SenderInit): Promise<void> {
  const flags = new Int32Array(init.control, 0, 2);
  const stats = new Float64Array(init.control, 8, COUNTERS);
  const writer = new SyslogWriter({
    format: init.format,
    messageSize: init.messageSize,
    seqPrefix: init.seqPrefix,
    seed: init.id + 1,
  });
  const host = await resolveHost(init.host);
  const start = performance.now();
  stats[STARTED] = performance.timeOrigin + start;
  const deadline = init.durationMs > 0 ? start + init.durationMs : Infinity;
  const bucket = init.rate > 0
    ? new TokenBucket(init.rate, Math.max(init.batch, init.rate / 100), () => performance.now())
    : undefined;
  // Send at least this many at once when paced (about 2 ms worth), so pacing costs few wakeups.
  const step = bucket ? Math.max(1, Math.min(init.batch, Math.ceil(init.rate / 500))) : init.batch;
  const stopped = () => Atomics.load(flags, STOP) === 1 || performance.now() >= deadline;
  /** How many to send now; sleeps (blocking this thread) until some may go. */
  const allowance = (sleep: (ms: number) => void | Promise<void>) => {
    if (!bucket) return init.batch;
    const n = bucket.take(init.batch);
    if (n > 0) return n;
    const ms = Math.min(bucket.msUntil(step), Math.max(0, deadline - performance.now()), 100);
    const slept = sleep(ms);
    return slept ? slept.then(() => 0) : 0;
  };
  try {
    const libc = init.protocol === "udp" && init.ffi ? loadLibc() : undefined;
    if (init.protocol === "tcp") await tcp(init, host, writer, stats, stopped, allowance);
    else if (libc) {
      stats[FFI] = 1;
      udpFfi(init, host, libc, writer, stats, flags, stopped, allowance);
    } else await udpDgram(init, host, writer, stats, stopped, allowance);
  } finally {
    stats[ENDED] = performance.timeOrigin + performance.now();
    stats[DONE] = 1;
  }
}

type Allowance = (sleep: (ms: number) => void | Promise<void>) => number | Promise<number>;

/** The largest UDP payload over IPv4 (65,535 − 20 − 8): a GSO send's bound. */
const MAX_UDP_PAYLOAD = 65_507;

/** sendmmsg errors that mean the kernel or the path will not take GSO sends: fall back. */
const GSO_REFUSED: number[] = [LINUX.EINVAL, LINUX.EMSGSIZE, LINUX.EIO, LINUX.ENOPROTOOPT];

function udpFfi(
  init: SenderInit,
  host: string,
  libc: NonNullable<ReturnType<typeof loadLibc>>,
  writer: SyslogWriter,
  stats: Float64Array,
  flags: Int32Array,
  stopped: () => boolean,
  allowance: Allowance,
): void {
  const sock = FfiSocket.udp(libc, host);
  try {
    sock.setBuffer("send", 4 << 20);
    sock.connect(host, init.port);
    const size = writer.maxLength;
    // GSO: a header carries `segs` messages back to back, which the kernel cuts every `size`
    // bytes; only when every message is exactly `size` bytes (message_size set, not exceeded).
    const segs = Math.min(LINUX.UDP_MAX_SEGMENTS, Math.floor(MAX_UDP_PAYLOAD / size));
    let gso = init.gso && init.messageSize > 0 && size === init.messageSize && segs >= 2 &&
      sock.setUdpSegment(size) === 0;
    const groups = Math.ceil(init.batch / segs);
    // One buffer, two views: a header per message (vec), and, with GSO, a header per `segs`.
    const data = new Uint8Array(gso ? groups * segs * size : init.batch * size);
    const vec = new MmsgVector({ capacity: init.batch, slotSize: size, data });
    const supers = gso ? new MmsgVector({ capacity: groups, slotSize: segs * size, data }) : vec;
    stats[GSO] = gso ? 1 : 0;
    const block = (ms: number) => {
      if (ms > 0) Atomics.wait(flags, SLEEP, 0, ms);
    };
    let seq = 0;
    while (!stopped()) {
      const n = allowance(block) as number;
      if (n === 0) continue;
      const now = Date.now();
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        const len = writer.write(vec.data, vec.offset(i), init.id, seq + i, now);
        vec.setLength(i, len);
        bytes += len;
      }
      // Every message is at most `size` bytes: they total n × size only if all are that size.
      const whole = gso && bytes === n * size;
      const heads = Math.ceil(n / segs);
      if (whole) {
        for (let k = 0; k < heads; k++) {
          supers.setLength(k, (Math.min(n, (k + 1) * segs) - k * segs) * size);
        }
      }
      let done = 0;
      while (done < n) {
        let r: number;
        if (gso && whole) {
          // A header is all or nothing, so `done` is a multiple of `segs` here.
          const first = done / segs;
          r = sock.sendmmsg(supers, first, heads - first);
          if (r > 0) {
            done = Math.min(n, (first + r) * segs);
            continue;
          }
          if (GSO_REFUSED.includes(-r)) {
            // The path will not take GSO sends (e.g. a segment above the route's MTU): one
            // datagram per header from here on, the same messages and numbers.
            gso = false;
            stats[GSO] = 0;
            sock.setUdpSegment(0);
            continue;
          }
        } else {
          r = sock.sendmmsg(vec, done, n - done);
          if (r > 0) {
            done += r;
            continue;
          }
        }
        if (r === 0 || r === -LINUX.EAGAIN || r === -LINUX.ENOBUFS || r === -LINUX.EINTR) {
          block(0.2);
        } else if (r === -LINUX.ECONNREFUSED) {
          // The target port answered ICMP unreachable: nobody listens (yet). Count and retry.
          stats[ERRORS]!++;
          block(10);
        } else {
          throw new Error(`sendmmsg to ${host}:${init.port} failed: ${libc.errnoName(-r)}`);
        }
        if (stopped()) break;
      }
      seq += done;
      stats[SENT] = seq;
      stats[BYTES]! += done === n ? bytes : sizeOf(vec, done);
    }
  } finally {
    sock.close();
  }
}

/** Bytes of the first `n` messages of a batch (the lengths set for them). */
function sizeOf(vec: MmsgVector, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += vec.length(i);
  return s;
}

async function udpDgram(
  init: SenderInit,
  host: string,
  writer: SyslogWriter,
  stats: Float64Array,
  stopped: () => boolean,
  allowance: Allowance,
): Promise<void> {
  const dgram = await import("node:dgram");
  const sock = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.connect(init.port, host, () => resolve());
  });
  const buf = new Uint8Array(writer.maxLength);
  let seq = 0;
  try {
    while (!stopped()) {
      const n = await allowance(sleep);
      const now = Date.now();
      for (let i = 0; i < n; i++) {
        const len = writer.write(buf, 0, init.id, seq, now);
        const ok = await new Promise<boolean>((r) =>
          sock.send(buf.slice(0, len), (e: Error | null) => r(!e))
        );
        if (!ok) {
          stats[ERRORS]!++;
          await sleep(10);
          i--;
          continue;
        }
        seq++;
        stats[SENT] = seq;
        stats[BYTES]! += len;
      }
    }
  } finally {
    sock.close();
  }
}

async function tcp(
  init: SenderInit,
  host: string,
  writer: SyslogWriter,
  stats: Float64Array,
  stopped: () => boolean,
  allowance: Allowance,
): Promise<void> {
  const slot = writer.maxLength;
  const scratch = new Uint8Array(slot);
  const out = new Uint8Array(init.batch * (slot + 12));
  let conn: Deno.TcpConn | undefined;
  let backoff = 100;
  let seq = 0;
  try {
    while (!stopped()) {
      if (!conn) {
        try {
          conn = await Deno.connect({ hostname: host, port: init.port });
          conn.setNoDelay(false);
          backoff = 100;
        } catch {
          stats[ERRORS]!++;
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 5000);
          continue;
        }
      }
      const n = await allowance(sleep);
      if (n === 0) continue;
      const now = Date.now();
      let o = 0, bytes = 0;
      for (let i = 0; i < n; i++) {
        const len = writer.write(scratch, 0, init.id, seq + i, now);
        // RFC 6587 octet counting: MSG-LEN SP SYSLOG-MSG.
        o = writeAscii(out, o, len);
        out[o++] = 32;
        out.set(scratch.subarray(0, len), o);
        o += len;
        bytes += len;
      }
      try {
        let w = 0;
        while (w < o) w += await conn.write(out.subarray(w, o));
        seq += n;
        stats[SENT] = seq;
        stats[BYTES]! += bytes;
      } catch {
        // Reconnect; the batch goes again (a receiver may see part of it twice, as duplicates).
        stats[ERRORS]!++;
        try {
          conn.close();
        } catch { /* already closed */ }
        conn = undefined;
      }
    }
  } finally {
    try {
      conn?.close();
    } catch { /* already closed */ }
  }
}

function writeAscii(buf: Uint8Array, at: number, n: number): number {
  const s = String(n);
  for (let i = 0; i < s.length; i++) buf[at + i] = s.charCodeAt(i);
  return at + s.length;
}
