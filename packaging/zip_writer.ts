/**
 * Writing zip archives (the Lambda deployment package) with fflate's zip container. Each entry
 * is deflated by node:zlib (native; fflate's own JavaScript deflate took about five times as
 * long on a 96 MB binary) and handed to fflate as a precompressed entry with its CRC-32 from
 * node:zlib.
 * @module
 */

import { Zip, type ZipInputFile } from "fflate";
import zlib from "node:zlib";

/** One file to put in a zip. */
export interface ZipFile {
  /** Path inside the archive, `/`-separated, no leading slash. */
  name: string;
  /** The file's contents. */
  data: Uint8Array;
  /** Unix permission bits. @default 0o644 */
  mode?: number;
  /**
   * Modification time, as local time (zip keeps DOS date and time, 2-second precision).
   * @default 1980-01-01 00:00 (reproducible)
   */
  mtime?: Date;
}

/**
 * Build a zip archive in memory. Entries are deflated unless that makes them larger, and carry
 * their Unix mode ("made by Unix"), so `bootstrap` stays executable when Lambda unpacks it.
 *
 * @param files the files, in archive order.
 * @returns the archive's bytes.
 * @throws {RangeError} when a name is empty or absolute.
 * @example
 * ```ts
 * const zip = zipFiles([{ name: "bootstrap", data: binary, mode: 0o755 }]);
 * await Deno.writeFile("dist/route-lambda.zip", zip);
 * ```
 */
export function zipFiles(files: ZipFile[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  let failed: Error | undefined;
  const zip = new Zip((err, chunk) => {
    if (err) failed ??= err;
    else chunks.push(chunk);
  });
  for (const { name, data, mode = 0o644, mtime = new Date(1980, 0, 1) } of files) {
    if (name === "" || name.startsWith("/")) {
      throw new RangeError(`zip entry names must be relative: got "${name}"`);
    }
    const deflated = new Uint8Array(zlib.deflateRawSync(data));
    const stored = deflated.length >= data.length;
    const entry: ZipInputFile = {
      filename: name,
      size: data.length,
      crc: zlib.crc32(data),
      compression: stored ? 0 : 8,
      os: 3, // made by Unix: attrs carry the mode
      attrs: ((0o100000 | (mode & 0o7777)) << 16) >>> 0, // regular file + mode
      mtime,
    };
    zip.add(entry);
    entry.ondata!(null, (stored ? data : deflated) as Uint8Array<ArrayBuffer>, true);
  }
  zip.end();
  if (failed) throw failed;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
