/**
 * A small zip reader: lists entries and extracts one (stored or deflated), checking its CRC.
 * Enough to inspect a denort-<target>.zip before it goes into Deno's cache.
 * @module
 */

import { crc32 } from "./crc32.ts";

/** One entry of the central directory. */
export interface ZipEntry {
  /** Path inside the archive. */
  name: string;
  /** 0 stored, 8 deflated. */
  method: number;
  /** CRC-32 of the uncompressed bytes. */
  crc: number;
  compressedSize: number;
  size: number;
  /** Unix mode bits when the archive was made on Unix, else undefined. */
  mode: number | undefined;
  localHeaderOffset: number;
}

/**
 * Reads a zip archive held in memory.
 *
 * @example
 * ```ts
 * const zip = new ZipReader(await Deno.readFile("denort-x86_64-unknown-linux-gnu.zip"));
 * const denort = await zip.read("denort");
 * ```
 */
export class ZipReader {
  /** The archive's entries, in central-directory order. */
  readonly entries: ZipEntry[];
  #bytes: Uint8Array;
  #view: DataView;

  /**
   * @param bytes the whole archive.
   * @throws {TypeError} when `bytes` is not a zip archive (no end-of-central-directory record).
   */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const v = this.#view;
    let eocd = -1;
    for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 0xffff); i--) {
      if (v.getUint32(i, true) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new TypeError("not a zip archive: no end-of-central-directory record");
    const count = v.getUint16(eocd + 10, true);
    let at = v.getUint32(eocd + 16, true);
    const dec = new TextDecoder();
    this.entries = [];
    for (let n = 0; n < count; n++) {
      if (at + 46 > bytes.length || v.getUint32(at, true) !== 0x02014b50) {
        throw new TypeError(`corrupt zip: bad central directory entry ${n} at byte ${at}`);
      }
      const nameLen = v.getUint16(at + 28, true);
      const extraLen = v.getUint16(at + 30, true);
      const commentLen = v.getUint16(at + 32, true);
      const madeBy = v.getUint16(at + 4, true) >> 8;
      const external = v.getUint32(at + 38, true);
      this.entries.push({
        name: dec.decode(bytes.subarray(at + 46, at + 46 + nameLen)),
        method: v.getUint16(at + 10, true),
        crc: v.getUint32(at + 16, true),
        compressedSize: v.getUint32(at + 20, true),
        size: v.getUint32(at + 24, true),
        mode: madeBy === 3 ? (external >>> 16) & 0o7777 : undefined,
        localHeaderOffset: v.getUint32(at + 42, true),
      });
      at += 46 + nameLen + extraLen + commentLen;
    }
  }

  /**
   * Extract one entry.
   *
   * @param name the entry's path in the archive.
   * @returns its uncompressed bytes.
   * @throws {Error} when there is no such entry, its method is unsupported or its CRC is wrong.
   */
  async read(name: string): Promise<Uint8Array> {
    const e = this.entries.find((x) => x.name === name);
    if (!e) throw new Error(`zip has no entry "${name}"`);
    const v = this.#view;
    const at = e.localHeaderOffset;
    if (v.getUint32(at, true) !== 0x04034b50) {
      throw new Error(`corrupt zip: bad local header for "${name}" at byte ${at}`);
    }
    const start = at + 30 + v.getUint16(at + 26, true) + v.getUint16(at + 28, true);
    const raw = this.#bytes.subarray(start, start + e.compressedSize);
    let data: Uint8Array;
    if (e.method === 0) data = raw;
    else if (e.method === 8) {
      const s = ReadableStream.from([raw as Uint8Array<ArrayBuffer>]).pipeThrough(
        new DecompressionStream("deflate-raw"),
      );
      data = new Uint8Array(await new Response(s).arrayBuffer());
    } else throw new Error(`zip entry "${name}" uses unsupported method ${e.method}`);
    if (crc32(data) !== e.crc) throw new Error(`zip entry "${name}" fails its CRC check`);
    return data;
  }
}
