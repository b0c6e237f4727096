/**
 * A raw Linux socket driven through libc FFI: connect/bind, kernel buffer sizes, and batched
 * sendmmsg/recvmmsg on a preallocated {@link MmsgVector}. Calls are synchronous (the issue
 * measured `nonblocking: true` FFI calls as far too slow), so blocking use belongs in a Worker.
 *
 * @example
 * ```ts
 * const libc = loadLibc()!;
 * const sock = FfiSocket.udp(libc, "127.0.0.1");
 * sock.connect("127.0.0.1", 5514);
 * const vec = new MmsgVector({ capacity: 4, slotSize: 64 });
 * vec.data.set(new TextEncoder().encode("<13>hello"), 0);
 * vec.setLength(0, 9);
 * sock.sendmmsg(vec, 0, 1);
 * sock.close();
 * ```
 * @module
 */

import { type Libc, LINUX } from "./libc.ts";
import type { MmsgVector } from "./mmsg_vector.ts";

/** A socket call failed; `errno` tells why. */
export class SocketError extends Error {
  constructor(message: string, readonly errno: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "SocketError";
  }
}

function parseIPv4(ip: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : undefined;
}

function parseIPv6(ip: string): Uint8Array | undefined {
  const s = ip.replace(/^\[|\]$/g, "");
  if (!s.includes(":")) return undefined;
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const words = (part: string) => (part === "" ? [] : part.split(":"));
  const head = words(halves[0]!);
  const tail = halves.length === 2 ? words(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const all = [...head, ...Array(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const w = all[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return undefined;
    const v = parseInt(w, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  return out;
}

/**
 * Encode an IP literal and port as a `sockaddr_in` / `sockaddr_in6`.
 *
 * @throws {TypeError} when `ip` is not an IPv4 or IPv6 literal.
 */
export function sockaddr(ip: string, port: number): Uint8Array {
  const v4 = parseIPv4(ip);
  if (v4) {
    const sa = new Uint8Array(16);
    new DataView(sa.buffer).setUint16(0, LINUX.AF_INET, true);
    new DataView(sa.buffer).setUint16(2, port, false);
    sa.set(v4, 4);
    return sa;
  }
  const v6 = parseIPv6(ip);
  if (v6) {
    const sa = new Uint8Array(28);
    new DataView(sa.buffer).setUint16(0, LINUX.AF_INET6, true);
    new DataView(sa.buffer).setUint16(2, port, false);
    sa.set(v6, 8);
    return sa;
  }
  throw new TypeError(`not an IP address literal: ${JSON.stringify(ip)}`);
}

/** A socket file descriptor with batched I/O through libc. */
export class FfiSocket {
  readonly #libc: Libc;
  readonly #fd: number;
  readonly #family: number;
  #closed = false;

  private constructor(libc: Libc, fd: number, family: number) {
    this.#libc = libc;
    this.#fd = fd;
    this.#family = family;
  }

  /**
   * Open a UDP socket of the family of `ip` (an IP literal the socket will talk to or bind).
   *
   * @throws {SocketError} when socket(2) fails.
   */
  static udp(libc: Libc, ip: string): FfiSocket {
    const family = parseIPv4(ip) ? LINUX.AF_INET : LINUX.AF_INET6;
    const fd = libc.symbols.socket(family, LINUX.SOCK_DGRAM | LINUX.SOCK_CLOEXEC, 0);
    if (fd < 0) {
      const e = libc.errno();
      throw new SocketError(`socket(udp) failed: ${libc.errnoName(e)}`, e);
    }
    return new FfiSocket(libc, fd, family);
  }

  /** The file descriptor. */
  get fd(): number {
    return this.#fd;
  }

  #fail(what: string): never {
    const e = this.#libc.errno();
    throw new SocketError(`${what} failed: ${this.#libc.errnoName(e)}`, e);
  }

  /**
   * Connect to `ip:port` (UDP: fixes the destination, so sendmmsg needs no addresses).
   *
   * @throws {SocketError} when connect(2) fails.
   */
  connect(ip: string, port: number): void {
    const sa = sockaddr(ip, port);
    if (this.#libc.symbols.connect(this.#fd, sa, sa.length) < 0) {
      this.#fail(`connect to ${ip}:${port}`);
    }
  }

  /**
   * Bind to `ip:port` (port 0 picks a free port; see {@link localPort}).
   *
   * @throws {SocketError} when bind(2) fails (e.g. EADDRINUSE).
   */
  bind(ip: string, port: number): void {
    const sa = sockaddr(ip, port);
    if (this.#libc.symbols.bind(this.#fd, sa, sa.length) < 0) this.#fail(`bind ${ip}:${port}`);
  }

  /** The locally bound port. */
  localPort(): number {
    const sa = new Uint8Array(28);
    const len = new Uint32Array([28]);
    if (this.#libc.symbols.getsockname(this.#fd, sa, new Uint8Array(len.buffer)) < 0) {
      this.#fail("getsockname");
    }
    return new DataView(sa.buffer).getUint16(2, false);
  }

  #setInt(level: number, name: number, value: number): boolean {
    const v = new Int32Array([value]);
    return this.#libc.symbols.setsockopt(this.#fd, level, name, new Uint8Array(v.buffer), 4) === 0;
  }

  #getInt(level: number, name: number): number {
    const v = new Int32Array(1);
    const len = new Uint32Array([4]);
    if (
      this.#libc.symbols.getsockopt(
        this.#fd,
        level,
        name,
        new Uint8Array(v.buffer),
        new Uint8Array(len.buffer),
      ) < 0
    ) this.#fail("getsockopt");
    return v[0]!;
  }

  /**
   * Ask for a kernel buffer of `bytes`: SO_xxxBUFFORCE first (root, ignores the sysctl cap), then
   * SO_xxxBUF (capped by net.core.{r,w}mem_max).
   *
   * @returns the size the kernel reports (Linux doubles the request for bookkeeping).
   */
  setBuffer(which: "send" | "recv", bytes: number): number {
    const [force, plain] = which === "send"
      ? [LINUX.SO_SNDBUFFORCE, LINUX.SO_SNDBUF]
      : [LINUX.SO_RCVBUFFORCE, LINUX.SO_RCVBUF];
    if (!this.#setInt(LINUX.SOL_SOCKET, force, bytes)) {
      this.#setInt(LINUX.SOL_SOCKET, plain, bytes);
    }
    return this.#getInt(LINUX.SOL_SOCKET, plain);
  }

  /**
   * UDP GSO: make every send longer than `size` bytes leave as datagrams of `size` bytes each
   * (setsockopt UDP_SEGMENT, Linux ≥ 4.18); 0 turns it off. A send then carries at most
   * {@link LINUX.UDP_MAX_SEGMENTS} segments and 65,507 bytes.
   *
   * @returns 0, or the errno why not (ENOPROTOOPT on older kernels, EINVAL).
   */
  setUdpSegment(size: number): number {
    return this.#setInt(LINUX.SOL_UDP, LINUX.UDP_SEGMENT, size) ? 0 : this.#libc.errno();
  }

  /** Set SO_REUSEADDR. */
  reuseAddress(): void {
    this.#setInt(LINUX.SOL_SOCKET, LINUX.SO_REUSEADDR, 1);
  }

  /**
   * Send slots `from`..`from+count-1` of `vec` in one sendmmsg(2).
   *
   * @returns messages sent (≥ 0), or `-errno` on failure.
   */
  sendmmsg(vec: MmsgVector, from: number, count: number): number {
    const n = this.#libc.symbols.sendmmsg(this.#fd, vec.from(from), count, 0);
    return n >= 0 ? n : -this.#libc.errno();
  }

  /**
   * Receive up to `count` datagrams into `vec` (lengths via `vec.received(i)`), without waiting.
   *
   * @returns messages received (≥ 0; 0 when none is queued), or `-errno` on failure.
   */
  recvmmsg(vec: MmsgVector, count: number): number {
    const n = this.#libc.symbols.recvmmsg(this.#fd, vec.headers, count, LINUX.MSG_DONTWAIT, null);
    if (n >= 0) return n;
    const e = this.#libc.errno();
    return e === LINUX.EAGAIN ? 0 : -e;
  }

  /** The address family (AF_INET or AF_INET6). */
  get family(): number {
    return this.#family;
  }

  /** Close the descriptor (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#libc.symbols.close(this.#fd);
  }
}
