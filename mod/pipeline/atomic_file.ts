/**
 * Crash-safe file replacement: write a temp file beside the target, fsync it, rename it over the
 * target, fsync the directory. A reader (or a restart after a crash) sees the old content or the
 * new one, never a half-written file.
 * @module
 */

import { basename, dirname, join } from "node:path";
import { LINUX, loadLibc } from "./libc.ts";

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
 * process is gone: `kill(pid, 0)` through libc says ESRCH (Deno refuses /proc, and
 * `Deno.kill`, to the agent's permission set). Without libc (not Linux, or no FFI), /proc is
 * asked, and where that is refused too, a temp file older than `minAgeMs` is stale: a live
 * writer's temp file lives for the milliseconds of one write. Call it at start and again at
 * close.
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
      if (await writerGone(pid, file, minAgeMs)) await Deno.remove(file).then(() => n++, () => {});
    }
  } catch {
    // An unreadable directory shows up when the file is read or written.
  }
  return n;
}

/** Whether process `pid`, which wrote temp file `file`, has ended (see removeStaleTemps). */
async function writerGone(pid: number, file: string, minAgeMs: number): Promise<boolean> {
  const libc = loadLibc();
  if (libc) {
    // Beyond Linux's largest pid no process can be; an i32 would wrap to a process group.
    if (pid > 0x3fffff) return true;
    if (libc.symbols.kill(pid, 0) === 0) return false;
    return libc.errno() === LINUX.ESRCH; // EPERM: it runs, as another user
  }
  try {
    await Deno.stat(`/proc/${pid}`);
    return false;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return true;
  }
  const mtime = (await Deno.stat(file).catch(() => undefined))?.mtime?.getTime();
  return mtime !== undefined && Date.now() - mtime > minAgeMs;
}
