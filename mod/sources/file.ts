/**
 * The `file` source: a directory on disk treated like a bucket (on-prem log directories, the
 * demo). Files are objects: each is read once, whole, oldest first (by the `<unix_ts>_` in its
 * name when it has one, else by modification time), and recorded in the state file once every
 * line of it was delivered. Files younger than `delay_window` wait for a later scan.
 * @module
 */

import { join, relative } from "node:path";
import type { Logger } from "../log/logger.ts";
import { writeFileAtomic } from "../pipeline/atomic_file.ts";
import { sleep } from "../pipeline/retry.ts";
import type { Source, Unit } from "../pipeline/types.ts";
import { fileTime } from "./file_time.ts";

/** Options for {@link FileSource}. */
export interface FileSourceOptions {
  /** The directory. */
  root: string;
  /** Where delivered files are recorded (atomically replaced JSON). */
  stateFile: string;
  /** @default 15_000 */
  scanInterval?: number;
  /** @default 60_000 */
  delayWindow?: number;
  /** One scan, then end. @default false */
  once?: boolean;
  log: Logger;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

interface Found {
  path: string;
  rel: string;
  time: number;
  size: number;
}

/** Yields the files of a directory tree as units. */
export class FileSource implements Source {
  readonly kind = "file";
  readonly #o: Required<FileSourceOptions>;
  #done = new Map<string, number>();
  #inflight = new Set<string>();
  #saving: Promise<void> = Promise.resolve();

  constructor(o: FileSourceOptions) {
    this.#o = { scanInterval: 15_000, delayWindow: 60_000, once: false, now: Date.now, ...o };
  }

  async #load(): Promise<void> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#o.stateFile);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw new Error(`cannot read state file ${this.#o.stateFile}`, { cause: e });
    }
    try {
      const state = JSON.parse(text) as { done?: Record<string, number> };
      for (const [k, v] of Object.entries(state.done ?? {})) this.#done.set(k, v);
    } catch (e) {
      throw new Error(
        `state file ${this.#o.stateFile} is not valid JSON (delete it to read every file again)`,
        { cause: e },
      );
    }
  }

  #save(): Promise<void> {
    const snapshot = JSON.stringify({ done: Object.fromEntries(this.#done) }, null, 1) + "\n";
    this.#saving = this.#saving.then(() => writeFileAtomic(this.#o.stateFile, snapshot));
    return this.#saving;
  }

  /** The files ready to read now, oldest first. */
  async scan(): Promise<Found[]> {
    const out: Found[] = [];
    const present = new Set<string>();
    const walk = async (dir: string) => {
      for await (const e of Deno.readDir(dir)) {
        const path = join(dir, e.name);
        if (e.isDirectory) await walk(path);
        else if (e.isFile) {
          const rel = relative(this.#o.root, path);
          present.add(rel);
          if (this.#done.has(rel) || this.#inflight.has(rel)) continue;
          const st = await Deno.stat(path);
          const named = fileTime(e.name);
          const time = named !== undefined ? named * 1000 : (st.mtime?.getTime() ?? 0);
          const written = Math.max(time, named !== undefined ? 0 : (st.mtime?.getTime() ?? 0));
          if (written > this.#o.now() - this.#o.delayWindow) continue;
          out.push({ path, rel, time, size: st.size });
        }
      }
    };
    try {
      await walk(this.#o.root);
    } catch (e) {
      throw new Error(`cannot list ${this.#o.root}`, { cause: e });
    }
    // Forget files that are gone, so the state stays bounded.
    let pruned = false;
    for (const k of this.#done.keys()) {
      if (!present.has(k)) {
        this.#done.delete(k);
        pruned = true;
      }
    }
    if (pruned) await this.#save();
    return out.sort((a, b) => a.time - b.time || (a.rel < b.rel ? -1 : 1));
  }

  async *units(signal: AbortSignal): AsyncIterable<Unit> {
    await this.#load();
    while (!signal.aborted) {
      for (const f of await this.scan()) {
        if (signal.aborted) return;
        this.#inflight.add(f.rel);
        yield this.#unit(f);
      }
      if (this.#o.once) return;
      await sleep(this.#o.scanInterval, signal);
    }
  }

  #unit(f: Found): Unit {
    return {
      id: `file://${f.path}`,
      time: f.time,
      size: f.size,
      open: async () => {
        const file = await Deno.open(f.path, { read: true });
        return file.readable;
      },
      ack: async () => {
        this.#inflight.delete(f.rel);
        this.#done.set(f.rel, f.size);
        await this.#save();
      },
      nack: () => {
        this.#inflight.delete(f.rel);
        return Promise.resolve();
      },
    };
  }

  async close(): Promise<void> {
    await this.#saving;
  }
}
