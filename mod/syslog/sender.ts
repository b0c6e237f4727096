/**
 * One generator worker: writes syslog messages into a preallocated vector and sends them to one
 * target port, paced against the run's absolute schedule (schedule.ts: what was sent vs rate ×
 * time since the first send, a stall made up by a bounded burst), until its duration (also
 * counted from the first send) ends or it is told to stop.
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
import { type Libc, LINUX, loadLibc } from "../pipeline/libc.ts";
import { MmsgVector } from "../pipeline/mmsg_vector.ts";
import { sleep } from "../pipeline/retry.ts";
import { type SyslogFormat, SyslogWriter } from "./message.ts";
import { Schedule } from "./schedule.ts";

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
  /** When this worker's first message is due after its first send (ms): workers interleave. */
  phaseMs: number;
  /** Most time's worth of messages made up after a stall (ms); the rest is given up. */
  catchUpMs: number;
  /** Stop after this many milliseconds; 0: until stopped. */
  durationMs: number;
  format: SyslogFormat;
  /** Zone of RFC 3164 timestamps: "local", "UTC" or an IANA name. */
  timeZone: string;
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
const GIVEN_UP = 8;
const COUNTERS = 9;

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
  /**
   * Messages its schedule gave up: owed beyond `catchUpMs` worth after a stall. Never numbered,
   * so not losses: the sender could not keep up.
   */
  givenUp: number;
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
    givenUp: f[GIVEN_UP]!,
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
 * A sender's pacing: its {@link Schedule}, deadline and stop flag. The clock starts at the first
 * take (the first send), so the duration and the schedule count from there: setup owes nothing.
 */
class Pace {
  #start = 0;
  /** Until the first send, setup's start + duration, so a sender that never sends still stops. */
  #deadline: number;
  readonly #duration: number;
  /** How long past the end a sender may go on sending what was due before it. */
  readonly #grace: number;
  readonly #schedule?: Schedule;
  /** Send at least this many at once when paced (about 2 ms worth), so pacing costs few wakeups. */
  readonly #step: number;
  readonly #batch: number;
  readonly #flags: Int32Array;
  readonly #stats: Float64Array;
  /** Taken but not sent (batches cut short), and so given up. */
  #unsent = 0;

  constructor(init: SenderInit, flags: Int32Array, stats: Float64Array) {
    this.#duration = init.durationMs > 0 ? init.durationMs : Infinity;
    this.#deadline = performance.now() + this.#duration;
    this.#grace = init.catchUpMs;
    this.#schedule = init.rate > 0
      ? new Schedule(init.rate, () => performance.now(), {
        phaseMs: init.phaseMs,
        catchUpMs: init.catchUpMs,
      })
      : undefined;
    this.#step = this.#schedule
      ? Math.max(1, Math.min(init.batch, Math.ceil(init.rate / 500)))
      : init.batch;
    this.#batch = init.batch;
    this.#flags = flags;
    this.#stats = stats;
  }

  /**
   * Told to stop, or the duration is over and every message due before its end went (a sender
   * stalled over the end still sends those: rate × duration in all). `pending`: a batch taken
   * before the end is not all sent yet (the kernel refused part of it for a while): it goes on,
   * for at most `catchUpMs` past the end.
   */
  stopped(pending = false): boolean {
    if (Atomics.load(this.#flags, STOP) === 1) return true;
    const now = performance.now();
    if (now < this.#deadline) return false;
    if (now >= this.#deadline + this.#grace) return true;
    return !pending && (!this.#schedule || this.#schedule.owedBefore(this.#deadline) === 0);
  }

  /** Count `n` taken messages that will not go (a batch cut short) as given up. */
  giveUp(n: number): void {
    this.#unsent += n;
    this.#stats[GIVEN_UP] = (this.#schedule?.givenUp ?? 0) + this.#unsent;
  }

  /**
   * The sender stops: unless told to, what was due before the end and did not go (its last
   * `catchUpMs` ran out) is given up too, so sent + given up = rate × duration.
   */
  end(): void {
    if (!this.#schedule || this.#start === 0 || Atomics.load(this.#flags, STOP) === 1) return;
    this.giveUp(this.#schedule.take(Infinity, this.#deadline));
  }

  /**
   * How many may go now (0: none yet, or the duration is over), of those due before the end;
   * the first call starts the clock.
   */
  take(): number {
    const now = performance.now();
    if (this.#start === 0) {
      // The schedule and the end count from the same instant: all due before the end go.
      this.#schedule?.start(now);
      this.#start = now;
      this.#deadline = now + this.#duration;
      this.#stats[STARTED] = performance.timeOrigin + now;
    }
    if (this.#schedule) {
      const n = this.#schedule.take(this.#batch, this.#deadline);
      this.#stats[GIVEN_UP] = this.#schedule.givenUp + this.#unsent;
      return n;
    }
    return now >= this.#deadline ? 0 : this.#batch;
  }

  /** Milliseconds until a step's worth may go, at most 100 and not past the deadline. */
  wait(): number {
    if (!this.#schedule) return 0;
    return Math.min(
      this.#schedule.msUntil(this.#step),
      Math.max(0, this.#deadline - performance.now()),
      100,
    );
  }
}

/** What every sender needs: its counters, writer, resolved host and pacing. */
interface Setup {
  init: SenderInit;
  host: string;
  writer: SyslogWriter;
  flags: Int32Array;
  stats: Float64Array;
  pace: Pace;
}

async function setUp(init: SenderInit): Promise<Setup> {
  const writer = new SyslogWriter({
    format: init.format,
    timeZone: init.timeZone,
    messageSize: init.messageSize,
    seqPrefix: init.seqPrefix,
    seed: init.id + 1,
  });
  const host = await resolveHost(init.host);
  const flags = new Int32Array(init.control, 0, 2);
  const stats = new Float64Array(init.control, 8, COUNTERS);
  const pace = new Pace(init, flags, stats);
  return { init, host, writer, flags, stats, pace };
}

function finish(stats: Float64Array): void {
  stats[ENDED] = performance.timeOrigin + performance.now();
  stats[DONE] = 1;
}

/**
 * Run one sender until its duration ends or {@link stopSender}. Counters are in `init.control`.
 *
 * @throws {Error} on a socket error other than transient ones (refused, no buffer space).
 */
export async function runSender(init: SenderInit): Promise<void> {
  const failures = await runSenders([init]);
  if (failures.length) throw failures[0]!.error;
}

/** A sender that failed while others on its thread went on. */
export interface SenderFailure {
  id: number;
  error: Error;
}

/**
 * Run several senders on this thread until each one's duration ends or {@link stopSender}.
 * UDP through FFI: one synchronous loop that gives each sender a batch in turn (and blocks the
 * thread while none may send); otherwise each sender's own async loop, side by side.
 *
 * @returns the senders that failed (a socket error other than transient ones), with why.
 */
export async function runSenders(inits: SenderInit[]): Promise<SenderFailure[]> {
  const failures: SenderFailure[] = [];
  const setups: Setup[] = [];
  for (const init of inits) {
    try {
      setups.push(await setUp(init));
    } catch (e) {
      finish(new Float64Array(init.control, 8, COUNTERS));
      failures.push({ id: init.id, error: e instanceof Error ? e : new Error(String(e)) });
    }
  }
  const ffi = (x: Setup) => x.init.protocol === "udp" && x.init.ffi;
  const libc = setups.some(ffi) ? loadLibc() : undefined;
  const sync = libc ? setups.filter(ffi) : [];
  const async = setups.filter((x) => !sync.includes(x));
  await Promise.all(async.map(async (x) => {
    try {
      if (x.init.protocol === "tcp") await tcp(x, allowance(x.pace));
      else await udpDgram(x, allowance(x.pace));
    } catch (e) {
      failures.push({ id: x.init.id, error: e instanceof Error ? e : new Error(String(e)) });
    } finally {
      x.pace.end();
      finish(x.stats);
    }
  }));
  const senders: FfiUdpSender[] = [];
  for (const x of sync) {
    try {
      senders.push(new FfiUdpSender(x, libc!));
    } catch (e) {
      finish(x.stats);
      failures.push({ id: x.init.id, error: e instanceof Error ? e : new Error(String(e)) });
    }
  }
  if (senders.length) failures.push(...runFfi(senders));
  return failures;
}

type Allowance = (sleep: (ms: number) => Promise<void>) => number | Promise<number>;

/** How many to send now; sleeps until some may go. */
function allowance(pace: Pace): Allowance {
  return (sleep) => {
    const n = pace.take();
    return n > 0 ? n : sleep(pace.wait()).then(() => 0);
  };
}

/**
 * The FFI senders of one thread, each a batch in turn; while none may send, the thread blocks
 * (on the first sender's control block, which {@link stopSender} wakes).
 */
function runFfi(senders: FfiUdpSender[]): SenderFailure[] {
  const failures: SenderFailure[] = [];
  const active = [...senders];
  const wake = senders[0]!.flags;
  while (active.length) {
    let wait = 100;
    for (let i = 0; i < active.length; i++) {
      const s = active[i]!;
      let ms: number;
      try {
        if (s.stopped()) {
          s.close();
          active.splice(i--, 1);
          continue;
        }
        ms = s.step();
      } catch (e) {
        s.close();
        active.splice(i--, 1);
        failures.push({ id: s.id, error: e instanceof Error ? e : new Error(String(e)) });
        continue;
      }
      if (ms < wait) wait = ms;
    }
    if (wait > 0 && active.length) Atomics.wait(wake, SLEEP, 0, wait);
  }
  return failures;
}

/** The largest UDP payload over IPv4 (65,535 − 20 − 8): a GSO send's bound. */
const MAX_UDP_PAYLOAD = 65_507;

/** sendmmsg errors that mean the kernel or the path will not take GSO sends: fall back. */
const GSO_REFUSED: number[] = [LINUX.EINVAL, LINUX.EMSGSIZE, LINUX.EIO, LINUX.ENOPROTOOPT];

/**
 * One UDP sender through sendmmsg(2), driven a batch at a time by {@link runFfi}: a batch is
 * written once, then sent over as many steps as the kernel needs (it may refuse for lack of
 * buffer space, or because nobody listens), and numbers advance only by what it took.
 */
class FfiUdpSender {
  readonly id: number;
  readonly flags: Int32Array;
  readonly #x: Setup;
  readonly #libc: Libc;
  readonly #sock: FfiSocket;
  readonly #size: number;
  readonly #segs: number;
  readonly #vec: MmsgVector;
  readonly #supers: MmsgVector;
  #gso: boolean;
  #seq = 0;
  /** The batch being sent: its messages, how many went, and its bytes. */
  #n = 0;
  #done = 0;
  #bytes = 0;
  #whole = false;
  /** Not before this time (performance.now()): a retry's backoff. */
  #resumeAt = 0;
  #closed = false;

  constructor(x: Setup, libc: Libc) {
    this.#x = x;
    this.id = x.init.id;
    this.flags = x.flags;
    this.#libc = libc;
    x.stats[FFI] = 1;
    const { init, writer } = x;
    const sock = this.#sock = FfiSocket.udp(libc, x.host);
    try {
      sock.setBuffer("send", 4 << 20);
      sock.connect(x.host, init.port);
    } catch (e) {
      sock.close();
      throw e;
    }
    const size = this.#size = writer.maxLength;
    // GSO: a header carries `segs` messages back to back, which the kernel cuts every `size`
    // bytes; only when every message is exactly `size` bytes (message_size set, not exceeded).
    const segs = this.#segs = Math.min(LINUX.UDP_MAX_SEGMENTS, Math.floor(MAX_UDP_PAYLOAD / size));
    this.#gso = init.gso && init.messageSize > 0 && size === init.messageSize && segs >= 2 &&
      sock.setUdpSegment(size) === 0;
    const groups = Math.ceil(init.batch / segs);
    // One buffer, two views: a header per message, and, with GSO, a header per `segs`.
    const data = new Uint8Array(this.#gso ? groups * segs * size : init.batch * size);
    this.#vec = new MmsgVector({ capacity: init.batch, slotSize: size, data });
    this.#supers = this.#gso
      ? new MmsgVector({ capacity: groups, slotSize: segs * size, data })
      : this.#vec;
    x.stats[GSO] = this.#gso ? 1 : 0;
  }

  stopped(): boolean {
    return this.#x.pace.stopped(this.#done < this.#n);
  }

  /**
   * Send what may go now: the rest of the current batch, or a new one.
   *
   * @returns milliseconds before it should be called again (0: at once).
   * @throws {Error} on a socket error other than transient ones.
   */
  step(): number {
    const now = performance.now();
    if (now < this.#resumeAt) return this.#resumeAt - now;
    if (this.#done === this.#n) {
      const n = this.#x.pace.take();
      if (n === 0) return this.#x.pace.wait();
      this.#write(n);
    }
    const { stats, init, host } = this.#x;
    const vec = this.#vec, supers = this.#supers, segs = this.#segs, n = this.#n;
    while (this.#done < n) {
      let r: number;
      if (this.#gso && this.#whole) {
        // A header is all or nothing, so `done` is a multiple of `segs` here.
        const first = this.#done / segs;
        r = this.#sock.sendmmsg(supers, first, Math.ceil(n / segs) - first);
        if (r > 0) {
          this.#done = Math.min(n, (first + r) * segs);
          continue;
        }
        if (GSO_REFUSED.includes(-r)) {
          // The path will not take GSO sends (e.g. a segment above the route's MTU): one
          // datagram per header from here on, the same messages and numbers.
          this.#gso = false;
          stats[GSO] = 0;
          this.#sock.setUdpSegment(0);
          continue;
        }
      } else {
        r = this.#sock.sendmmsg(vec, this.#done, n - this.#done);
        if (r > 0) {
          this.#done += r;
          continue;
        }
      }
      if (r === 0 || r === -LINUX.EAGAIN || r === -LINUX.ENOBUFS || r === -LINUX.EINTR) {
        return this.#retryIn(0.2);
      }
      if (r === -LINUX.ECONNREFUSED) {
        // The target port answered ICMP unreachable: nobody listens (yet). Count and retry.
        stats[ERRORS]!++;
        return this.#retryIn(10);
      }
      throw new Error(`sendmmsg to ${host}:${init.port} failed: ${this.#libc.errnoName(-r)}`);
    }
    this.#seq += n;
    stats[SENT] = this.#seq;
    stats[BYTES]! += this.#bytes;
    return 0;
  }

  #retryIn(ms: number): number {
    this.#resumeAt = performance.now() + ms;
    return ms;
  }

  /** Write the next `n` messages, numbered from the next unsent one. */
  #write(n: number): void {
    const { init, writer } = this.#x;
    const vec = this.#vec, size = this.#size, segs = this.#segs;
    const now = Date.now();
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const len = writer.write(vec.data, vec.offset(i), init.id, this.#seq + i, now);
      vec.setLength(i, len);
      bytes += len;
    }
    // Every message is at most `size` bytes: they total n × size only if all are that size.
    this.#whole = this.#gso && bytes === n * size;
    if (this.#whole) {
      for (let k = 0; k * segs < n; k++) {
        this.#supers.setLength(k, (Math.min(n, (k + 1) * segs) - k * segs) * size);
      }
    }
    this.#n = n;
    this.#done = 0;
    this.#bytes = bytes;
  }

  /** Count what went of a batch cut short, and close the socket (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const { stats } = this.#x;
    if (this.#done < this.#n) {
      this.#seq += this.#done;
      stats[SENT] = this.#seq;
      stats[BYTES]! += sizeOf(this.#vec, this.#done);
      this.#x.pace.giveUp(this.#n - this.#done);
      this.#n = this.#done;
    }
    this.#x.pace.end();
    this.#sock.close();
    finish(stats);
  }
}

/** Bytes of the first `n` messages of a batch (the lengths set for them). */
function sizeOf(vec: MmsgVector, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += vec.length(i);
  return s;
}

async function udpDgram(
  { init, host, writer, stats, pace }: Setup,
  allowance: Allowance,
): Promise<void> {
  const stopped = () => pace.stopped();
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
  { init, host, writer, stats, pace }: Setup,
  allowance: Allowance,
): Promise<void> {
  const stopped = () => pace.stopped();
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
