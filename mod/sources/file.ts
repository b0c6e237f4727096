/**
 * The `file` source: a directory on disk treated like a bucket (on-prem log directories, the
 * demo). Every file below `path` (optionally only under `prefix`, only names matching
 * `pattern`) is an object: read once, whole, streamed, oldest first (by the `<unix_ts>_` in its
 * name when it has one, else by modification time), and recorded as done in the checkpoint
 * store once every line of it was delivered. A file must be older than `delay_window` by both
 * its name's time and its modification time (so one still being written waits).
 *
 * Watch mode (the default) scans again every `scan_interval`; `once` ends after one pass.
 * Checkpoint keys are paths relative to `path`, so the directory may be mounted elsewhere.
 * Entries of files that are gone are pruned, so the state stays as large as the directory.
 * Skipped: names starting with a dot (rsync/editor temp files), the state file itself,
 * directories reached through symlinks (no loops). Files reached through symlinks are read.
 * Other entries skipped are logged at debug once each and counted in
 * `file_entries_skipped_total{reason}`: `special_file` (FIFO, socket, device), `symlink_loop`,
 * `broken_symlink`, `symlink_to_directory`, `outside_layout` (a name `pattern` does not match:
 * stream reads only files inside `year=/month=/day=` partitions, so a stray `manifest.json` is
 * not sent).
 * A file with lines cut at `max_line_bytes` is logged once, with the offset of the first cut line.
 *
 * A file whose delivery failed (a destination down, a sink gave up) is not recorded and is read
 * again at the next scan (in watch mode), resuming after the lines already delivered (the
 * checkpoint keeps that count for files in flight); with `once` it stays unread and the run
 * reports it. A file that failed for good (unreadable, corrupt gzip, refused by the destination)
 * is quarantined: recorded in the checkpoint's `quarantined`, not read again until
 * `edge-agent <mode> requeue file:///path` (or its entry is deleted from the state file).
 * @module
 */

import { basename, join, matchesGlob, relative, resolve, sep } from "node:path";
import { f, type Infer } from "../config/spec.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter, Registry } from "../metrics/registry.ts";
import { CheckpointStore } from "../pipeline/checkpoint.ts";
import { takeRequeues } from "../pipeline/failure_policy.ts";
import { NonRecoverableError } from "../pipeline/non_recoverable_error.ts";
import { sleep } from "../pipeline/retry.ts";
import type { QuarantineRecord, Source, Unit } from "../pipeline/types.ts";
import { fileTime } from "./file_time.ts";

/** The `file:` source config section. */
export const fileSourceSpec = f.object({
  path: f.string({
    description: "Directory treated like a bucket",
    default: "/var/log/edge-agent/incoming",
  }),
  prefix: f.string({
    description:
      "Only files whose path below `path` starts with this, like an S3 prefix (e.g. year=2025/month=10/)",
    default: "",
    allowEmpty: true,
  }),
  pattern: f.string({
    description:
      "Glob file names must match (*.gz); with a / it applies to the path below `path` (year=*/**/*.gz)",
    default: "*",
  }),
  scan_interval: f.duration({
    description: "How often to look for new files",
    default: "15s",
    min: "10ms",
  }),
  delay_window: f.duration({
    description: "Only files at least this old (name time and modification time) are read",
    default: "60s",
  }),
  once: f.bool({ description: "Read what is there now, then end (backfills)", default: false }),
}, { description: "Local directory source" });

/** The `file:` source config. */
export type FileSourceConfig = Infer<typeof fileSourceSpec>;

/** Options for {@link FileSource}. */
export interface FileSourceOptions {
  /** The directory. */
  root: string;
  /** Where delivered files are recorded; ignored when `store` is given. */
  stateFile?: string;
  /** A checkpoint store to use (loaded by the source; flushed, not closed, on close). */
  store?: CheckpointStore;
  /** Only paths below `root` starting with this. @default "" */
  prefix?: string;
  /** Glob on the file name, or on the path below `root` when it contains "/". @default "*" */
  pattern?: string;
  /** @default 15_000 */
  scanInterval?: number;
  /** @default 60_000 */
  delayWindow?: number;
  /** One scan, then end. @default false */
  once?: boolean;
  /** Checkpoint writes are coalesced over this many ms. @default 1000 */
  checkpointInterval?: number;
  log: Logger;
  /** Counts skipped entries (`file_entries_skipped_total`). */
  metrics?: Registry;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/** A file ready to be read. */
export interface FoundFile {
  /** Absolute path. */
  path: string;
  /** Path below the root, "/"-separated: the checkpoint key. */
  rel: string;
  /** Ms since epoch: the name's timestamp, else the modification time. */
  time: number;
  size: number;
}

/**
 * A file's bytes as a byte stream (readable into the caller's buffers). A read that fails
 * (EIO, EACCES) would fail the same way next time: it errors the stream with a
 * {@link NonRecoverableError} (reason `unreadable`) naming the file and byte offset.
 */
function readFile(f: Deno.FsFile, path: string): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    type: "bytes",
    autoAllocateChunkSize: 64 * 1024,
    async pull(c) {
      const req = c.byobRequest!;
      const v = req.view!;
      let n: number | null;
      try {
        n = await f.read(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      } catch (e) {
        f.close();
        throw new NonRecoverableError(
          `cannot read ${path} at byte ${offset}: ${(e as Error).message}`,
          { cause: e, reason: "unreadable" },
        );
      }
      if (n === null) {
        f.close();
        c.close();
        req.respond(0);
        return;
      }
      offset += n;
      req.respond(n);
    },
    cancel: () => f.close(),
  });
}

/** Yields the files of a directory tree as units. */
export class FileSource implements Source {
  readonly kind = "file";
  readonly #root: string;
  readonly #prefix: string;
  readonly #pattern: string;
  readonly #patternOnPath: boolean;
  readonly #scanInterval: number;
  readonly #delayWindow: number;
  readonly #once: boolean;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #store: CheckpointStore;
  readonly #ownStore: boolean;
  #inflight = new Map<string, number>();
  /** Files found and not yet handed out, or whose last attempt failed, with their time. */
  #waiting = new Map<string, number>();
  /** Entries already reported as skipped (each is logged and counted once). */
  #skipped = new Set<string>();
  readonly #skips: Counter | undefined;
  #loaded = false;
  #scans = 0;

  /**
   * @param options the directory, where to checkpoint, and how often to look.
   * @throws {TypeError} when neither `stateFile` nor `store` is given.
   */
  constructor(
    {
      root,
      stateFile,
      store,
      prefix = "",
      pattern = "*",
      scanInterval = 15_000,
      delayWindow = 60_000,
      once = false,
      checkpointInterval = 1000,
      log,
      metrics,
      now = Date.now,
    }: FileSourceOptions,
  ) {
    if (!store && !stateFile) throw new TypeError("file source needs a stateFile or a store");
    this.#root = resolve(root);
    this.#prefix = prefix.replace(/^\/+/, "");
    this.#pattern = pattern;
    this.#patternOnPath = pattern.includes("/");
    this.#scanInterval = scanInterval;
    this.#delayWindow = delayWindow;
    this.#once = once;
    this.#log = log;
    this.#now = now;
    this.#skips = metrics?.counter(
      "file_entries_skipped_total",
      "Directory entries not read, by reason (special_file, symlink_loop, broken_symlink, symlink_to_directory, outside_layout)",
      ["reason"],
    );
    this.#ownStore = !store;
    this.#store = store ??
      new CheckpointStore(resolve(stateFile!), { flushInterval: checkpointInterval, log, now });
  }

  /** The checkpoint store (done files). */
  get store(): CheckpointStore {
    return this.#store;
  }

  /** Whether a directory (rel path, "/"-terminated, "" for the root) can hold prefix matches. */
  #descend(relDir: string): boolean {
    return relDir.startsWith(this.#prefix) || this.#prefix.startsWith(relDir);
  }

  /** Log (debug) and count a skipped entry, once per path. */
  #skip(rel: string, reason: string, error?: unknown): void {
    const key = `${reason}:${rel}`;
    if (this.#skipped.has(key)) return;
    this.#skipped.add(key);
    this.#skips?.inc(1, { reason });
    this.#log.debug("entry skipped", { path: rel, reason, ...(error ? { error } : {}) });
  }

  #matches(rel: string, name: string): boolean {
    if (!rel.startsWith(this.#prefix)) return false;
    if (this.#pattern === "*") return true;
    return matchesGlob(this.#patternOnPath ? rel : name, this.#pattern);
  }

  /**
   * The files ready to be read now, oldest first; prunes checkpoint entries of files gone.
   *
   * @throws {Error} naming the directory when it cannot be listed.
   */
  async scan(): Promise<FoundFile[]> {
    const out: FoundFile[] = [];
    const present = new Set<string>();
    const cutoff = this.#now() - this.#delayWindow;
    const statePath = this.#store.path;
    const stateName = basename(statePath);
    const walk = async (dir: string, relDir: string): Promise<void> => {
      const entries: Deno.DirEntry[] = [];
      try {
        for await (const e of Deno.readDir(dir)) entries.push(e);
      } catch (e) {
        if (relDir === "") throw e;
        this.#log.warn("cannot list a directory: skipped", { dir, error: e });
        return;
      }
      for (const e of entries) {
        if (e.name.startsWith(".")) continue;
        const path = join(dir, e.name);
        const rel = relDir + e.name;
        if (e.isDirectory) {
          if (this.#descend(rel + "/")) await walk(path, rel + "/");
          continue;
        }
        if (!e.isFile && !e.isSymlink) {
          this.#skip(rel, "special_file");
          continue;
        }
        if (e.name.startsWith(stateName) && (path === statePath || path.startsWith(statePath))) {
          continue;
        }
        if (!this.#matches(rel, e.name)) {
          if (rel.startsWith(this.#prefix)) this.#skip(rel, "outside_layout");
          continue;
        }
        present.add(rel);
        if (this.#store.isDone(rel) || this.#inflight.has(rel)) continue;
        let st: Deno.FileInfo;
        try {
          st = await Deno.stat(path); // follows a symlink
        } catch (err) {
          if (err instanceof Deno.errors.FilesystemLoop) this.#skip(rel, "symlink_loop", err);
          else if (e.isSymlink && err instanceof Deno.errors.NotFound) {
            this.#skip(rel, "broken_symlink");
          } // else gone since listed
          continue;
        }
        if (!st.isFile) {
          this.#skip(rel, st.isDirectory ? "symlink_to_directory" : "special_file");
          continue;
        }
        const mtime = st.mtime?.getTime() ?? 0;
        const named = fileTime(e.name);
        const time = named !== undefined ? named * 1000 : mtime;
        if (Math.max(time, mtime) > cutoff) continue; // maybe still being written
        out.push({ path, rel, time, size: st.size });
      }
    };
    try {
      await walk(this.#root, "");
    } catch (e) {
      throw new Error(`cannot list ${this.#root}: ${(e as Error).message}`, { cause: e });
    }
    this.#scans++;
    for (const rel of [...this.#waiting.keys()]) if (!present.has(rel)) this.#waiting.delete(rel);
    for (const f of out) this.#waiting.set(f.rel, f.time);
    const pruned = this.#store.prune((id) => id.startsWith(this.#prefix) && !present.has(id));
    if (pruned > 0) this.#log.debug("forgot files that are gone", { files: pruned });
    return out.sort((a, b) => a.time - b.time || (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  }

  /**
   * The files, as units, oldest first; ends after one pass with `once`, else when `signal`
   * aborts.
   *
   * @throws {Error} when the checkpoint cannot be loaded or the directory cannot be listed on
   *   the first scan (later scan failures are logged and retried).
   */
  async *units(signal: AbortSignal): AsyncIterable<Unit> {
    if (!this.#loaded) {
      await this.#store.load();
      this.#loaded = true;
    }
    while (!signal.aborted) {
      await this.#takeRequeues();
      let found: FoundFile[] = [];
      try {
        found = await this.scan();
      } catch (e) {
        if (this.#once || this.#scans === 0) throw e;
        this.#log.error("scan failed: retrying at the next interval", {
          root: this.#root,
          error: e,
        });
      }
      for (const file of found) {
        if (signal.aborted) return;
        if (this.#store.isDone(file.rel) || this.#inflight.has(file.rel)) continue;
        this.#inflight.set(file.rel, file.time);
        this.#waiting.delete(file.rel);
        yield this.#unit(file);
      }
      if (this.#once) return;
      await sleep(this.#scanInterval, signal);
    }
  }

  /** Ids asked for by `requeue`: no longer done nor quarantined, read at this scan. */
  async #takeRequeues(): Promise<void> {
    let ids: string[];
    try {
      ids = await takeRequeues(this.#store.path);
    } catch (e) {
      this.#log.error("cannot take re-queued units", { error: e });
      return;
    }
    for (const id of ids) {
      const rel = id.startsWith("file://")
        ? relative(this.#root, id.slice("file://".length)).split(sep).join("/")
        : id;
      if (this.#store.requeue(rel)) this.#log.info("re-queued: will be read again", { unit: id });
      else this.#log.warn("requeue: not quarantined here, nothing to do", { unit: id });
    }
  }

  /** The files quarantined, as recorded in the checkpoint. */
  quarantined(): QuarantineRecord[] {
    return [...this.#store.quarantined()].map(([, r]) => r);
  }

  /** The oldest file handed out or failed and not yet done (ms since epoch). */
  oldestPending(): number | undefined {
    let oldest: number | undefined;
    for (const t of [...this.#inflight.values(), ...this.#waiting.values()]) {
      if (oldest === undefined || t < oldest) oldest = t;
    }
    return oldest;
  }

  #unit(file: FoundFile): Unit {
    const resume = this.#store.getProgress(file.rel);
    return {
      id: `file://${file.path}`,
      time: file.time,
      size: file.size,
      attributes: { path: file.rel },
      ...(resume > 0 && { resumeItems: resume }),
      progress: (items) => this.#store.setProgress(file.rel, items),
      open: async () => {
        let f: Deno.FsFile;
        try {
          f = await Deno.open(file.path, { read: true });
        } catch (e) {
          const gone = e instanceof Deno.errors.NotFound;
          throw new NonRecoverableError(`cannot open ${file.path}: ${(e as Error).message}`, {
            cause: e,
            reason: gone ? "gone" : "unreadable",
          });
        }
        return readFile(f, file.path);
      },
      ack: (result) => {
        this.#inflight.delete(file.rel);
        if (result.truncated > 0) {
          this.#log.warn("lines longer than max_line_bytes were cut", {
            file: file.rel,
            offset: result.truncatedAt,
            lines_cut: result.truncated,
          });
        }
        this.#store.markDone(file.rel, {
          lines: result.lines + (result.resumed ?? 0),
          consumed: result.consumed,
        });
        return Promise.resolve();
      },
      quarantine: (record, result) => {
        this.#inflight.delete(file.rel);
        this.#store.markQuarantined(file.rel, record, {
          lines: result.lines + (result.resumed ?? 0),
          consumed: result.consumed,
        });
        return Promise.resolve();
      },
      nack: () => {
        this.#inflight.delete(file.rel);
        this.#waiting.set(file.rel, file.time);
        return Promise.resolve();
      },
    };
  }

  /** Write the checkpoint (close it when the source made it). */
  async close(): Promise<void> {
    if (this.#ownStore) await this.#store.close();
    else await this.#store.flush();
  }
}
