/**
 * A small zip writer: enough for a Lambda deployment package (deflated entries, Unix modes).
 * @module
 */

import { crc32 } from "./crc32.ts";

/** One file to put in a zip. */
export interface ZipFile {
  /** Path inside the archive, `/`-separated, no leading slash. */
  name: string;
  /** The file's contents. */
  data: Uint8Array;
  /** Unix permission bits. @default 0o644 */
  mode?: number;
  /** Modification time (zip keeps 2-second DOS precision). @default 1980-01-01 (reproducible) */
  mtime?: Date;
}

async function deflateRaw(data: Uint8Array): Promise<Uint8Array> {
  const stream = ReadableStream.from([data as Uint8Array<ArrayBuffer>]).pipeThrough(
    new CompressionStream("deflate-raw"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function dosDateTime(d: Date): [time: number, date: number] {
  const year = Math.max(1980, d.getUTCFullYear());
  return [
    (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
    ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
  ];
}

/**
 * Build a zip archive in memory. Entries are deflated unless that makes them larger, and carry
 * their Unix mode ("made by Unix"), so `bootstrap` stays executable when Lambda unpacks it.
 * Archives are limited to 4 GiB and 65,535 entries (no zip64).
 *
 * @param files the files, in archive order.
 * @returns the archive's bytes.
 * @throws {RangeError} when a name is empty or absolute, or the archive would need zip64.
 * @example
 * ```ts
 * const zip = await zipFiles([{ name: "bootstrap", data: binary, mode: 0o755 }]);
 * await Deno.writeFile("dist/route-lambda.zip", zip);
 * ```
 */
export async function zipFiles(files: ZipFile[]): Promise<Uint8Array> {
  if (files.length > 0xffff) throw new RangeError(`too many zip entries: got ${files.length}`);
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const { name, data, mode = 0o644, mtime = new Date(Date.UTC(1980, 0, 1)) } of files) {
    if (name === "" || name.startsWith("/")) {
      throw new RangeError(`zip entry names must be relative: got "${name}"`);
    }
    const nameBytes = enc.encode(name);
    const deflated = await deflateRaw(data);
    const stored = deflated.length >= data.length;
    const body = stored ? data : deflated;
    const crc = crc32(data);
    const [time, date] = dosDateTime(mtime);
    if (data.length > 0xfffffffe || offset + body.length > 0xfffffffe) {
      throw new RangeError(`zip would exceed 4 GiB at "${name}" (zip64 is not supported)`);
    }
    const local = new Uint8Array(30 + nameBytes.length);
    const l = new DataView(local.buffer);
    l.setUint32(0, 0x04034b50, true);
    l.setUint16(4, 20, true); // version needed: 2.0 (deflate)
    l.setUint16(6, 0x0800, true); // UTF-8 names
    l.setUint16(8, stored ? 0 : 8, true);
    l.setUint16(10, time, true);
    l.setUint16(12, date, true);
    l.setUint32(14, crc, true);
    l.setUint32(18, body.length, true);
    l.setUint32(22, data.length, true);
    l.setUint16(26, nameBytes.length, true);
    local.set(nameBytes, 30);

    const central = new Uint8Array(46 + nameBytes.length);
    const c = new DataView(central.buffer);
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, (3 << 8) | 20, true); // made by Unix, spec 2.0
    c.setUint16(6, 20, true);
    c.setUint16(8, 0x0800, true);
    c.setUint16(10, stored ? 0 : 8, true);
    c.setUint16(12, time, true);
    c.setUint16(14, date, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, body.length, true);
    c.setUint32(24, data.length, true);
    c.setUint16(28, nameBytes.length, true);
    c.setUint32(38, ((0o100000 | (mode & 0o7777)) << 16) >>> 0, true); // regular file + mode
    c.setUint32(42, offset, true);
    central.set(nameBytes, 46);

    locals.push(local, body);
    centrals.push(central);
    offset += local.length + body.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = new Uint8Array(22);
  const e = new DataView(end.buffer);
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, files.length, true);
  e.setUint16(10, files.length, true);
  e.setUint32(12, centralSize, true);
  e.setUint32(16, offset, true);
  const out = new Uint8Array(offset + centralSize + end.length);
  let at = 0;
  for (const part of [...locals, ...centrals, end]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
