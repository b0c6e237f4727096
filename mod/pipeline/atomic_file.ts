/**
 * Crash-safe file replacement: write a temp file beside the target, fsync it, rename it over the
 * target, fsync the directory. A reader (or a restart after a crash) sees the old content or the
 * new one, never a half-written file.
 * @module
 */

import { basename, dirname, join } from "node:path";

/**
 * Atomically replace `path` with `data`.
 *
 * @param path the file to replace (its directory must exist).
 * @param data the new content.
 * @throws {Error} naming the path when any step fails; the old file is then left intact.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      let off = 0;
      while (off < bytes.length) off += await file.write(bytes.subarray(off));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const dir = await Deno.open(dirname(path), { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}

/**
 * Remove the temp files {@link writeFileAtomic} left beside `path` when its writer was killed
 * mid-write (kill -9): those whose process is gone (Linux: no /proc/<pid>). Without /proc
 * nothing is removed (a dead writer cannot be told from a live one).
 *
 * @returns how many were removed.
 */
export async function removeStaleTemps(path: string): Promise<number> {
  const prefix = `${basename(path)}.tmp-`;
  const dir = dirname(path);
  try {
    await Deno.stat("/proc/self");
  } catch {
    return 0;
  }
  let n = 0;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !e.name.startsWith(prefix)) continue;
      const pid = Number(/^(\d+)-/.exec(e.name.slice(prefix.length))?.[1]);
      if (!pid || pid === Deno.pid) continue;
      try {
        await Deno.stat(`/proc/${pid}`);
        continue; // its writer still runs
      } catch {
        await Deno.remove(join(dir, e.name)).then(() => n++, () => {});
      }
    }
  } catch {
    // An unreadable directory shows up when the file is read or written.
  }
  return n;
}
