/**
 * The few libc calls that Deno does not expose (sendmmsg, recvmmsg, setsockopt, poll; mallopt;
 * kill(pid, 0) without --allow-run),
 * bound through Deno FFI. Linux only (x86_64 and aarch64 share the struct layouts used here).
 * Each thread (main or Worker) loads its own binding, since errno is per thread.
 *
 * @example
 * ```ts
 * const libc = loadLibc();
 * if (libc) console.log(libc.symbols.socket(2, 2, 0));
 * ```
 * @module
 */

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  poll: { parameters: ["buffer", "usize", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  // glibc's allocator (gc_governor.ts: tuneMalloc)
  mallopt: { parameters: ["i32", "i32"], result: "i32" },
  malloc_trim: { parameters: ["usize"], result: "i32" },
} as const;

/** Linux constants used by the socket code. */
export const LINUX = {
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_DGRAM: 2,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_SNDBUFFORCE: 32,
  SO_RCVBUFFORCE: 33,
  SOL_UDP: 17,
  /** UDP GSO: setsockopt(SOL_UDP, UDP_SEGMENT, size) splits each send into size-byte datagrams. */
  UDP_SEGMENT: 103,
  /** UDP GSO: at most this many segments per send (the kernel's UDP_MAX_SEGMENTS, ≥ 4.18). */
  UDP_MAX_SEGMENTS: 64,
  MSG_DONTWAIT: 0x40,
  MSG_TRUNC: 0x20,
  POLLIN: 1,
  EINTR: 4,
  EAGAIN: 11,
  EPERM: 1,
  ESRCH: 3,
  ECONNREFUSED: 111,
  ENOBUFS: 105,
  EIO: 5,
  EINVAL: 22,
  EMSGSIZE: 90,
  ENOPROTOOPT: 92,
} as const;

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  9: "EBADF",
  11: "EAGAIN",
  13: "EACCES",
  22: "EINVAL",
  90: "EMSGSIZE",
  92: "ENOPROTOOPT",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  101: "ENETUNREACH",
  105: "ENOBUFS",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
};

/** The bound libc: raw symbols plus `errno()`. */
export interface Libc {
  readonly symbols: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** errno of the last failed call on this thread. */
  errno(): number;
  /** `EAGAIN (11)`-style name of an errno value. */
  errnoName(code: number): string;
}

let cached: Libc | null | undefined;

/**
 * Bind libc on this thread, once.
 *
 * @returns the binding, or undefined when not on Linux or FFI is not permitted (callers then
 * fall back to node:dgram).
 */
export function loadLibc(): Libc | undefined {
  if (cached !== undefined) return cached ?? undefined;
  cached = null;
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    return undefined;
  }
  const where = lib.symbols.__errno_location();
  if (where === null) return undefined;
  const view = new Deno.UnsafePointerView(where);
  cached = {
    symbols: lib.symbols,
    errno: () => view.getInt32(),
    errnoName: (code) => `${ERRNO_NAMES[code] ?? "errno"} (${code})`,
  };
  return cached;
}
