/**
 * A small HTTP log intake: accepts newline-delimited POST bodies (gzip request bodies too),
 * counts requests, lines and bytes, and optionally keeps the lines. The demo delivers to it, and
 * tests and benchmarks use it as the real HTTP receiver on the other end of the `http` sink.
 * @module
 */

import zlib from "node:zlib";

/** Options for {@link startReceiver}. */
export interface ReceiverOptions {
  /** @default "127.0.0.1" */
  hostname?: string;
  /** 0 picks a free port. @default 0 */
  port?: number;
  /** Keep every line received (tests compare multisets). @default false */
  keepLines?: boolean;
  /** Decide a response status per request (fault injection in tests). @default always 200 */
  status?: (requestNumber: number) => number;
}

/** Counts of what a receiver took. */
export interface ReceiverStats {
  requests: number;
  lines: number;
  bytes: number;
  rejected: number;
}

/** A running receiver. */
export interface Receiver {
  url: string;
  stats: ReceiverStats;
  lines: string[];
  close(): Promise<void>;
}

/**
 * Start a receiver.
 *
 * @returns the receiver; `close()` it when done.
 */
export function startReceiver(
  { hostname = "127.0.0.1", port = 0, keepLines = false, status }: ReceiverOptions = {},
): Receiver {
  const stats: ReceiverStats = { requests: 0, lines: 0, bytes: 0, rejected: 0 };
  const lines: string[] = [];
  const decoder = new TextDecoder();
  const server = Deno.serve({ hostname, port, onListen: () => {} }, async (req) => {
    const n = ++stats.requests;
    let body = new Uint8Array(await req.arrayBuffer());
    const code = status?.(n) ?? 200;
    if (code >= 300) {
      stats.rejected++;
      return new Response(`injected ${code}\n`, { status: code });
    }
    if (req.headers.get("content-encoding") === "gzip") {
      body = new Uint8Array(zlib.gunzipSync(body));
    }
    let count = 0;
    for (let i = body.indexOf(10); i >= 0; i = body.indexOf(10, i + 1)) count++;
    if (body.length > 0 && body[body.length - 1] !== 10) count++;
    stats.lines += count;
    stats.bytes += body.length;
    if (keepLines) {
      for (const l of decoder.decode(body).split("\n")) if (l !== "") lines.push(l);
    }
    return new Response(null, { status: 204 });
  });
  return {
    url: `http://${hostname}:${server.addr.port}`,
    stats,
    lines,
    close: () => server.shutdown(),
  };
}
