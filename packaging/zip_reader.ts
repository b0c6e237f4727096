/**
 * Reading one file out of a zip archive (a denort-<target>.zip, before it goes into Deno's
 * cache), with fflate. fflate does not check entries' CRC-32s; what is read here is checked
 * afterwards for what it must be (denort.ts: a Linux executable of the wanted target).
 * @module
 */

import { unzipSync } from "fflate";

/**
 * The contents of the entry `name` of the zip archive `bytes`.
 *
 * @param bytes the whole archive.
 * @param name the entry's path inside the archive.
 * @returns the entry's uncompressed bytes.
 * @throws {TypeError} when `bytes` is not a zip archive, or has no entry `name`.
 * @example
 * ```ts
 * const zip = await Deno.readFile("denort-x86_64-unknown-linux-gnu.zip");
 * const denort = unzipEntry(zip, "denort");
 * ```
 */
export function unzipEntry(bytes: Uint8Array, name: string): Uint8Array {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, { filter: (f) => f.name === name });
  } catch (e) {
    throw new TypeError(`not a readable zip archive: ${(e as Error).message}`, { cause: e });
  }
  const data = files[name];
  if (!data) throw new TypeError(`no entry "${name}" in the zip archive`);
  return data;
}
