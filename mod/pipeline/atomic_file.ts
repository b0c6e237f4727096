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
 * Remove the temp files {@link writeFileAtomic} (or a progress file) left beside `path` when its
 * writer was killed mid-write (kill -9). A temp file of another process is stale when that
 * process is gone (Linux: no /proc/<pid>); where /proc cannot be read (the agent's permission set
 * refuses it), when it is older than `minAgeMs`: a live writer's temp file lives for the
 * milliseconds of one write. Call it at start and again at close (by then a temp file a killed
 * predecessor left a moment before the start is old enough).
 *
 * @returns how many were removed.
 */
export async function removeStaleTemps(path: string, minAgeMs = 2000): Promise<number> {
  const prefix = `${basename(path)}.tmp-`;
  const dir = dirname(path);
  let n = 0;
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile || !e.name.startsWith(prefix)) continue;
      const pid = Number(/^(\d+)-/.exec(e.name.slice(prefix.length))?.[1]);
      if (!pid || pid === Deno.pid) continue;
      const file = join(dir, e.name);
      let stale: boolean;
      try {
        await Deno.stat(`/proc/${pid}`);
        stale = false; // its writer still runs
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) stale = true;
        else {
          // /proc not readable here: judge by age.
          const mtime = (await Deno.stat(file).catch(() => undefined))?.mtime?.getTime();
          stale = mtime !== undefined && Date.now() - mtime > minAgeMs;
        }
      }
      if (stale) await Deno.remove(file).then(() => n++, () => {});
    }
  } catch {
    // An unreadable directory shows up when the file is read or written.
  }
  return n;
}
