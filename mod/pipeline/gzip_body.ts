/**
 * Compressing a request body for sinks that send `Content-Encoding: gzip` (http, openobserve).
 * @module
 */

import zlib from "node:zlib";

/**
 * gzip `body` at `level` (1: fastest, ~4x faster than 6 for a somewhat larger body).
 * The async form runs on libuv's thread pool: compression overlaps decoding and parsing on the
 * main thread.
 *
 * @param body the bytes to compress.
 * @param level zlib level, 1–9.
 * @returns one gzip member.
 * @example
 * ```ts
 * const payload = await gzipBody(new TextEncoder().encode("[]"), 1);
 * ```
 */
export function gzipBody(body: Uint8Array, level: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    zlib.gzip(
      body,
      { level },
      (e, out) =>
        e ? reject(e) : resolve(new Uint8Array(out.buffer, out.byteOffset, out.byteLength)),
    )
  );
}
