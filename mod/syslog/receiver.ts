/**
 * The dummy SIEM's loop: listen on a range of ports, count messages and bytes per port, read each
 * message's sequence tag and account for loss, duplicates and reordering exactly
 * ({@link SequenceTracker}).
 *
 * UDP: one socket a port with an 8 MiB kernel buffer, poll(2) over all of them, and recvmmsg(2)
 * through FFI, synchronously, 256 datagrams a call (node:dgram allocates 64 KiB per datagram
 * and cannot size the kernel buffer; it is the fallback off Linux). TCP: RFC 6587 octet counting
 * or newline-delimited frames, per connection. Runs on its own thread (receive_worker.ts); the
 * stop flag is in a SharedArrayBuffer and snapshots go out through `report`.
 * @module
 */

import { FfiSocket } from "../pipeline/ffi_socket.ts";
import { LINUX, loadLibc } from "../pipeline/libc.ts";
import { MmsgVector } from "../pipeline/mmsg_vector.ts";
import { sleep } from "../pipeline/retry.ts";
import { parseSeqTag } from "./message.ts";
import { type SequenceCounts, SequenceTracker } from "./sequence.ts";

/** What a receiver is told. */
export interface ReceiverInit {
  host: string;
  ports: number[];
  protocol: "udp" | "tcp";
  /** Kernel receive buffer per socket (UDP). */
  rcvbuf: number;
  seqPrefix: string;
  /** Use recvmmsg through FFI when possible. */
  ffi: boolean;
  /** Milliseconds between snapshots. */
  reportMs: number;
  /** Int32 stop flag at index 0 (from {@link receiverControl}). */
  control: SharedArrayBuffer;
}

/** What a receiver has seen. */
export interface ReceiverSnapshot {
  /** Per port: messages and bytes. */
  ports: Record<string, { messages: number; bytes: number }>;
  messages: number;
  bytes: number;
  /** Messages without a sequence tag. */
  untagged: number;
  /** Datagrams cut because they were larger than the receive slot. */
  truncated: number;
  /** Per sender (worker) and in total. */
  workers: Record<string, SequenceCounts>;
  total: SequenceCounts;
  /** Kernel receive buffer actually granted (UDP), bytes. */
  rcvbuf: number;
  /** Whether recvmmsg through FFI is in use. */
  ffi: boolean;
  /** Milliseconds since the receiver started. */
  elapsedMs: number;
  final: boolean;
}

/** A control block for a receiver: its stop flag. */
export function receiverControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(8);
}

/** Tell a receiver to stop (it sends a final snapshot). */
export function stopReceiver(control: SharedArrayBuffer): void {
  Atomics.store(new Int32Array(control), 0, 1);
}

const SLOT = 2048;

/**
 * Receive until stopped; `report` gets a snapshot every `reportMs` and a final one.
 *
 * @param ready called once every port is bound (with the ports).
 * @throws {Error} when a port cannot be bound.
 */
export async function runReceiver(
  init: ReceiverInit,
  report: (s: ReceiverSnapshot) => void,
  ready: (ports: number[]) => void = () => {},
): Promise<void> {
  const stop = new Int32Array(init.control);
  const stopped = () => Atomics.load(stop, 0) === 1;
  const tracker = new SequenceTracker();
  const prefix = new TextEncoder().encode(init.seqPrefix);
  const counts = init.ports.map(() => ({ messages: 0, bytes: 0 }));
  const state = { untagged: 0, truncated: 0, rcvbuf: 0, ffi: false };
  const start = performance.now();
  const snapshot = (final: boolean): ReceiverSnapshot => {
    const { workers, total } = tracker.summary();
    const ports: ReceiverSnapshot["ports"] = {};
    let messages = 0, bytes = 0;
    init.ports.forEach((p, i) => {
      ports[p] = { ...counts[i]! };
      messages += counts[i]!.messages;
      bytes += counts[i]!.bytes;
    });
    return {
      ports,
      messages,
      bytes,
      untagged: tracker.untagged,
      truncated: state.truncated,
      workers,
      total,
      rcvbuf: state.rcvbuf,
      ffi: state.ffi,
      elapsedMs: performance.now() - start,
      final,
    };
  };
  const tag: [number, number] = [0, 0];
  const see = (buf: Uint8Array, at: number, len: number, port: number) => {
    const c = counts[port]!;
    c.messages++;
    c.bytes += len;
    if (parseSeqTag(buf, at, len, prefix, tag)) tracker.see(tag[0], tag[1]);
    else tracker.untagged++;
  };

  const libc = init.protocol === "udp" && init.ffi ? loadLibc() : undefined;
  if (init.protocol === "tcp") await tcp(init, see, stopped, snapshot, report, ready);
  else if (libc) {
    state.ffi = true;
    udpFfi(init, libc, see, state, stopped, snapshot, report, ready);
  } else await udpDgram(init, see, state, stopped, snapshot, report, ready);
  report(snapshot(true));
}

type See = (buf: Uint8Array, at: number, len: number, port: number) => void;

function udpFfi(
  init: ReceiverInit,
  libc: NonNullable<ReturnType<typeof loadLibc>>,
  see: See,
  state: { truncated: number; rcvbuf: number },
  stopped: () => boolean,
  snapshot: (final: boolean) => ReceiverSnapshot,
  report: (s: ReceiverSnapshot) => void,
  ready: (ports: number[]) => void,
): void {
  const socks: FfiSocket[] = [];
  try {
    for (const port of init.ports) {
      const s = FfiSocket.udp(libc, init.host);
      socks.push(s);
      s.reuseAddress();
      state.rcvbuf = s.setBuffer("recv", init.rcvbuf);
      s.bind(init.host, port);
    }
    const bound = socks.map((s) => s.localPort());
    ready(bound);
    // struct pollfd { int fd; short events; short revents; }
    const pfds = new Uint8Array(8 * socks.length);
    const pv = new DataView(pfds.buffer);
    socks.forEach((s, i) => {
      pv.setInt32(i * 8, s.fd, true);
      pv.setInt16(i * 8 + 4, LINUX.POLLIN, true);
    });
    const vec = new MmsgVector({ capacity: 256, slotSize: SLOT });
    const nfds = BigInt(socks.length);
    let next = performance.now() + init.reportMs;
    while (!stopped()) {
      const r = libc.symbols.poll(pfds, nfds, 100);
      if (r > 0) {
        for (let i = 0; i < socks.length; i++) {
          if ((pv.getInt16(i * 8 + 6, true) & LINUX.POLLIN) === 0) continue;
          for (;;) {
            const n = socks[i]!.recvmmsg(vec, vec.capacity);
            if (n <= 0) break;
            for (let j = 0; j < n; j++) {
              if (vec.flags(j) & LINUX.MSG_TRUNC) state.truncated++;
              see(vec.data, vec.offset(j), Math.min(vec.received(j), SLOT), i);
            }
            if (n < vec.capacity) break;
          }
        }
      }
      const now = performance.now();
      if (now >= next) {
        report(snapshot(false));
        next = now + init.reportMs;
      }
    }
  } finally {
    for (const s of socks) s.close();
  }
}

/** Until stopped (checked every 100 ms), call `report` every `reportMs`. */
async function reportUntilStopped(
  reportMs: number,
  stopped: () => boolean,
  report: () => void,
): Promise<void> {
  let next = performance.now() + reportMs;
  while (!stopped()) {
    await sleep(Math.min(100, reportMs));
    if (performance.now() >= next) {
      report();
      next = performance.now() + reportMs;
    }
  }
}

async function udpDgram(
  init: ReceiverInit,
  see: See,
  _state: { truncated: number; rcvbuf: number },
  stopped: () => boolean,
  snapshot: (final: boolean) => ReceiverSnapshot,
  report: (s: ReceiverSnapshot) => void,
  ready: (ports: number[]) => void,
): Promise<void> {
  const dgram = await import("node:dgram");
  const socks = await Promise.all(
    init.ports.map((port, i) =>
      new Promise<import("node:dgram").Socket>((resolve, reject) => {
        const s = dgram.createSocket({ type: init.host.includes(":") ? "udp6" : "udp4" });
        s.on("message", (msg: Uint8Array) => see(msg, 0, msg.length, i));
        s.once("error", reject);
        s.bind(port, init.host, () => resolve(s));
      })
    ),
  );
  ready(socks.map((s) => s.address().port));
  await reportUntilStopped(init.reportMs, stopped, () => report(snapshot(false)));
  for (const s of socks) s.close();
}

async function tcp(
  init: ReceiverInit,
  see: See,
  stopped: () => boolean,
  snapshot: (final: boolean) => ReceiverSnapshot,
  report: (s: ReceiverSnapshot) => void,
  ready: (ports: number[]) => void,
): Promise<void> {
  const listeners = init.ports.map((port) => Deno.listen({ hostname: init.host, port }));
  ready(listeners.map((l) => (l.addr as Deno.NetAddr).port));
  const conns = new Set<Deno.Conn>();
  const serve = async (l: Deno.Listener, i: number) => {
    for await (const conn of l) {
      conns.add(conn);
      readFrames(conn, (buf, at, len) => see(buf, at, len, i)).finally(() => conns.delete(conn));
    }
  };
  const serving = listeners.map((l, i) => serve(l, i).catch(() => {}));
  await reportUntilStopped(init.reportMs, stopped, () => report(snapshot(false)));
  for (const l of listeners) l.close();
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
  await Promise.all(serving);
}

/**
 * Read syslog frames from a TCP stream: RFC 6587 octet counting (`LEN SP MSG`) when a frame
 * starts with a digit, else a line up to LF (non-transparent framing).
 */
export async function readFrames(
  conn: Deno.Conn,
  frame: (buf: Uint8Array, at: number, len: number) => void,
): Promise<void> {
  let buf = new Uint8Array(256 * 1024);
  let start = 0, end = 0;
  const chunk = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) break;
      if (end + n > buf.length) {
        const keep = end - start;
        const next = keep + n > buf.length ? new Uint8Array((keep + n) * 2) : buf;
        next.set(buf.subarray(start, end), 0);
        buf = next;
        start = 0;
        end = keep;
      }
      buf.set(chunk.subarray(0, n), end);
      end += n;
      for (;;) {
        if (start >= end) break;
        const c = buf[start]!;
        if (c >= 48 && c <= 57) {
          let p = start, len = 0;
          while (p < end && buf[p]! >= 48 && buf[p]! <= 57) len = len * 10 + (buf[p++]! - 48);
          if (p >= end) break; // the length is not complete yet
          if (buf[p] !== 32) throw new Error(`bad octet-counting frame at byte ${p}`);
          if (p + 1 + len > end) break;
          frame(buf, p + 1, len);
          start = p + 1 + len;
        } else {
          const nl = buf.indexOf(10, start);
          if (nl < 0 || nl >= end) break;
          if (nl > start) frame(buf, start, nl - start);
          start = nl + 1;
        }
      }
      if (start === end) start = end = 0;
    }
  } catch {
    /* connection reset: what arrived is counted */
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}
