/**
 * A guard in front of `Deno.serve`, which has neither a header-read timeout nor a connection cap
 * (300 connections trickling a header byte at a time all stayed open 45 s and more). The guard
 * owns the public socket: it accepts at most `maxConnections` at once (more get a 503 and are
 * closed), closes a connection whose request head has not arrived within `headerTimeout`, and
 * closes one whose request has not been answered within `requestTimeout`. A complete head is
 * passed, with the rest of the bytes, to the `Deno.serve` handler listening on an ephemeral
 * loopback port, with `Connection: close` (one request per connection, so every request's head
 * is timed); WebSocket upgrades keep their connection and are not cut by `requestTimeout`.
 * @module
 */

/** Options for {@link serveGuarded}. */
export interface GuardedServerOptions {
  hostname: string;
  port: number;
  /** Longest wait for a request's head (request line and headers). @default 10_000 */
  headerTimeout?: number;
  /** Longest time from a request's head to the end of its answer (not WebSockets). @default 30_000 */
  requestTimeout?: number;
  /** Connections open at once; more are answered 503 and closed. @default 100 */
  maxConnections?: number;
  /** Largest request head. @default 16_384 */
  maxHeaderBytes?: number;
  /** Stops the server. */
  signal?: AbortSignal;
  /** What a handler's exception answers. */
  onError?: (e: unknown) => Response | Promise<Response>;
}

/** A running server. */
export interface GuardedServer {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Resolves once it stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /** Stop listening and close every connection. */
  shutdown(): Promise<void>;
}

const encoder = new TextEncoder();
const HEAD_END = [13, 10, 13, 10];

function headEnd(buf: Uint8Array, from: number): number {
  outer: for (let i = Math.max(0, from - 3); i + 4 <= buf.length; i++) {
    for (let j = 0; j < 4; j++) if (buf[i + j] !== HEAD_END[j]) continue outer;
    return i;
  }
  return -1;
}

function close(c: Deno.Conn): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

async function answerAndClose(conn: Deno.Conn, status: string): Promise<void> {
  try {
    await conn.write(
      encoder.encode(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`),
    );
  } catch {
    // the client is gone
  }
  close(conn);
}

/**
 * Serve `handler` on `hostname:port` behind the guard.
 *
 * @param options where to listen and the limits.
 * @param handler a plain `(req: Request) => Response` handler.
 * @returns the running server.
 * @throws {Deno.errors.AddrInUse} and the like, at once, when the address cannot be bound.
 */
export function serveGuarded(
  {
    hostname,
    port,
    headerTimeout = 10_000,
    requestTimeout = 30_000,
    maxConnections = 100,
    maxHeaderBytes = 16_384,
    signal,
    onError,
  }: GuardedServerOptions,
  handler: (req: Request) => Response | Promise<Response>,
): GuardedServer {
  const listener = Deno.listen({ hostname, port });
  const stopInner = new AbortController();
  let inner: Deno.HttpServer<Deno.NetAddr>;
  try {
    inner = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: stopInner.signal,
      onListen: () => {},
      ...(onError && { onError }),
    }, handler);
  } catch (e) {
    listener.close();
    throw e;
  }
  const conns = new Set<Deno.Conn>();
  let stopping = false;

  const handle = async (conn: Deno.Conn): Promise<void> => {
    const headTimer = setTimeout(() => close(conn), headerTimeout);
    let buf = new Uint8Array(0);
    let end = -1;
    const chunk = new Uint8Array(4096);
    try {
      while (end < 0) {
        const n = await conn.read(chunk);
        if (n === null) return;
        const next = new Uint8Array(buf.length + n);
        next.set(buf);
        next.set(chunk.subarray(0, n), buf.length);
        const from = buf.length;
        buf = next;
        end = headEnd(buf, from);
        if (end > maxHeaderBytes || (end < 0 && buf.length > maxHeaderBytes)) {
          return await answerAndClose(conn, "431 Request Header Fields Too Large");
        }
      }
    } catch {
      return; // closed by the header timeout, or reset
    } finally {
      clearTimeout(headTimer);
    }
    let head = new TextDecoder().decode(buf.subarray(0, end));
    const upgrade = /^upgrade\s*:/im.test(head);
    if (!upgrade) head = head.replace(/\r\nconnection\s*:[^\r]*/gi, "") + "\r\nconnection: close";
    let upstream: Deno.TcpConn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: inner.addr.port });
    } catch {
      return await answerAndClose(conn, "503 Service Unavailable");
    }
    const requestTimer = upgrade ? undefined : setTimeout(() => {
      close(conn);
      close(upstream);
    }, requestTimeout);
    try {
      await upstream.write(encoder.encode(head + "\r\n\r\n"));
      if (buf.length > end + 4) await upstream.write(buf.subarray(end + 4));
      const up = conn.readable.pipeTo(upstream.writable).catch(() => {});
      const down = upstream.readable.pipeTo(conn.writable).catch(() => {});
      // The answer ends the exchange (with `connection: close` the server closes after it); an
      // upgraded connection ends when either side does.
      await (upgrade ? Promise.race([up, down]) : down);
    } catch {
      // either side went away
    } finally {
      clearTimeout(requestTimer);
      close(upstream);
    }
  };

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        if (stopping) {
          close(conn);
          break;
        }
        if (conns.size >= maxConnections) {
          void answerAndClose(conn, "503 Service Unavailable");
          continue;
        }
        conns.add(conn);
        handle(conn).catch(() => {}).finally(() => {
          conns.delete(conn);
          close(conn);
        });
      }
    } catch {
      // the listener was closed
    }
  })();

  let stopped = () => {};
  const finished = new Promise<void>((resolve) => stopped = resolve);
  const shutdown = async () => {
    if (!stopping) {
      stopping = true;
      try {
        listener.close();
      } catch {
        // already closed
      }
      for (const c of conns) close(c);
      stopInner.abort();
    }
    await Promise.all([accepting, inner.finished]);
    stopped();
  };
  if (signal?.aborted) void shutdown();
  else signal?.addEventListener("abort", () => void shutdown(), { once: true });
  return { addr: listener.addr as Deno.NetAddr, finished, shutdown };
}
