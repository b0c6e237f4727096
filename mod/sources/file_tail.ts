/**
 * The `tail` source: follow files that are still being written and that get rotated, as hosts
 * and sidecars have them (today's `file` source treats a directory like a bucket of immutable
 * objects; this one does not).
 *
 * - **Which files**: the `include` globs minus the `exclude` globs, expanded again every
 *   `poll_interval` and whenever a watched directory reports a new, renamed or removed entry
 *   (`Deno.watchFs`, inotify on Linux; polling alone when watching is off or fails).
 * - **Identity**: a file is its device and inode, checked against a hash of its first
 *   `fingerprint_bytes` (as Vector does): a renamed file keeps its identity and its offset; an
 *   inode reused by a new file, or a file whose head changed, is a new file. A new inode whose
 *   head hash equals a file that was truncated or is gone is that file's copy (copytruncate, a
 *   move across file systems) and continues from its offset.
 * - **Units**: a unit is a byte range of one file, from the file's read position up to the last
 *   newline (at most `max_read_bytes`); the next unit of a file starts when the previous one was
 *   read, so a file's lines enter the batches in order. A last line without its newline waits for
 *   it, or for `line_timeout`. With `multiline.start_pattern`, a unit also ends before the last
 *   record start seen, so a stack trace still being written is not split (records over 64 KiB
 *   may be).
 * - **Checkpoints**: a file's offset moves only over ranges whose every line was delivered
 *   (acked), in order; written once the previous write is done (or within
 *   `checkpoint_interval`). A kill -9 re-sends what was delivered but not yet checkpointed: the
 *   batches in flight and those delivered ahead of the oldest one in flight (plus what was acked
 *   within `checkpoint_interval`, when one is set). We prefer a duplicate line to a lost one.
 * - **Rotation**: rename (`app.log` → `app.log.1`, new `app.log`): the old inode is read to its
 *   end through its open handle, the new one from 0. Copytruncate: a file smaller than its
 *   offset was truncated; it is read from 0 and counted (`tail_files_truncated_total`), and its
 *   copy continues from the old offset. Deleted while being read: read to its end through the
 *   open handle. A file renamed out of the globs or deleted is closed once it is read to its end
 *   and has not grown for `rotate_wait`.
 * - **Compressed rotations**: a gzip file whose decompressed first bytes hash like a file
 *   already followed (`app.log.2.gz`) is a rotation of it, already read through the plain file:
 *   skipped and counted (`tail_compressed_skipped_total`). Other gzip files are read once, whole,
 *   once they have not changed for `rotate_wait`.
 * - **Bounded**: at most `max_open_files` handles (the least recently read closed first; a file
 *   whose name is gone keeps its handle until it is read); files gone for `forget_after` are
 *   dropped from the checkpoint.
 *
 * Checkpoint (`state.files` of the state file): `[{ path, dev, ino, head_len, head_hash, offset,
 * seen, compressed?, retired? }]`, `offset` being the first byte not yet delivered.
 * @module
 */

import { createHash } from "node:crypto";
import { resolve } from "node:path";
import zlib from "node:zlib";
import { f, type Infer } from "../config/spec.ts";
import type { Logger } from "../log/logger.ts";
import { Registry } from "../metrics/registry.ts";
import { CheckpointStore } from "../pipeline/checkpoint.ts";
import { MultilineStream } from "../pipeline/multiline_stream.ts";
import { nonRecoverable } from "../pipeline/non_recoverable_error.ts";
import { globBase, globToRegExp } from "./file_glob.ts";
import type { Source, Unit } from "../pipeline/types.ts";

/** The `tail:` source config section. */
export const tailSourceSpec = f.object({
  include: f.list(f.string({ description: "A glob" }), {
    description:
      "Files to follow: globs (*, ?, [abc], ** across directories), absolute or relative to the config file",
    default: ["/var/log/app/*.log"],
    minItems: 1,
  }),
  exclude: f.list(f.string({ description: "A glob" }), {
    description: "Files matching these globs are not followed",
    default: [],
  }),
  poll_interval: f.duration({
    description:
      "How often the globs are expanded; every file is stat'ed at each poll without file system events, at every tenth with them (events report growth, renames and truncation sooner)",
    default: "1s",
    min: "10ms",
  }),
  watch: f.bool({
    description: "Wake on file system events (Deno.watchFs: inotify) between polls",
    default: true,
  }),
  read_coalesce: f.duration({
    description:
      "A file that grew by less than 64 KiB since its last read waits this long after that read for more (fewer, larger units when an application writes often)",
    default: "100ms",
  }),
  line_timeout: f.duration({
    description: "A last line without its newline is sent once it has waited this long",
    default: "5s",
  }),
  rotate_wait: f.duration({
    description:
      "A file renamed out of the globs or deleted is read to its end and closed once it has not grown for this long; unknown gzip files are read once unchanged this long",
    default: "5s",
  }),
  fingerprint_bytes: f.int({
    description:
      "Bytes at the head of a file whose hash, with device and inode, identifies it (and recognises its copies and gzip rotations)",
    default: 256,
    min: 16,
    max: 65536,
  }),
  max_open_files: f.int({
    description: "Open file handles at most; the least recently read are closed first",
    default: 1024,
    min: 1,
  }),
  max_read_bytes: f.size({
    description:
      "Bytes of one file per unit (one ack and checkpoint step); longer lines are split here",
    default: "1MiB",
    min: 1024,
  }),
  forget_after: f.duration({
    description: "Files gone this long are dropped from the checkpoint",
    default: "24h",
  }),
  checkpoint_interval: f.duration({
    description:
      "Checkpoint writes are coalesced over this long. 0s: written as soon as the previous write is done, so a kill -9 re-sends only the batches in flight; longer also re-sends what was acked within it, for fewer writes",
    default: "0s",
  }),
  multiline: f.object({
    start_pattern: f.string({
      description:
        "A regular expression matching the first line of a record: other lines are joined to the record before them (stack traces). Empty: a line is a record",
      default: "",
      allowEmpty: true,
      check: (v) => {
        try {
          new RegExp(v);
          return undefined;
        } catch (e) {
          return `not a regular expression: ${(e as Error).message}`;
        }
      },
    }),
    separator: f.string({
      description:
        "Put between joined lines (a newline would end the record on the wire: bodies are newline-delimited)",
      default: "\\n",
    }),
  }, { description: "Multi-line records" }),
}, { description: "Tail source (source: tail): follow growing, rotating files" });

/** The `tail:` source config. */
export type TailSourceConfig = Infer<typeof tailSourceSpec>;

/** Options for {@link TailSource} besides its config. */
export interface TailSourceOptions {
  /** The checkpoint file. */
  stateFile: string;
  /** Relative globs are resolved against this (the config file's directory). @default cwd */
  baseDir?: string;
  log: Logger;
  /** @default a private registry */
  metrics?: Registry;
  /** Longer lines (and records) are cut here. @default 1048576 */
  maxLineBytes?: number;
}

/** A checkpointed file (the state file's `files` entries). */
interface FileRecord {
  path: string;
  dev: number;
  ino: number;
  head_len: number;
  head_hash: string;
  offset: number;
  seen: number;
  compressed?: boolean;
  retired?: boolean;
}

/** A range handed out as a unit, until it is acked. */
interface Range {
  start: number;
  end: number;
  acked: boolean;
}

/** One followed file (an inode with a head). */
class Tracked {
  path: string;
  dev: number;
  ino: number;
  headLen = 0;
  headHash = "";
  compressed = false;
  /** Read to the end once (compressed files). */
  done = false;
  /** Its inode now holds other content (truncated, replaced): kept for its copy to adopt. */
  retired = false;
  /** First byte not yet delivered (checkpointed). */
  committed = 0;
  /** Where the next unit starts. */
  next = 0;
  size = 0;
  mtime = 0;
  /** Size when its head was last checked. */
  checkedSize = -1;
  /** Found at a path matching the globs in the last scan. */
  present = false;
  seen = Date.now();
  lastGrowth = Date.now();
  handle: Deno.FsFile | undefined;
  lastActive = 0;
  /** A unit's bytes are being read. */
  busy = false;
  pending: Range[] = [];
  /** Bumped when the read position is reset: acks of older units are ignored. */
  gen = 0;
  /** Since when the bytes at `next` wait for a newline (or a record start); their size then. */
  heldAt: number | undefined;
  heldSize = 0;
  /** After a failed unit, not before this time. */
  retryAt = 0;
  /** When its last unit was handed out (ms since epoch). */
  lastRead = 0;

  constructor(path: string, dev: number, ino: number) {
    this.path = path;
    this.dev = dev;
    this.ino = ino;
  }

  get key(): string {
    return `${this.dev}:${this.ino}`;
  }

  record(): FileRecord {
    return {
      path: this.path,
      dev: this.dev,
      ino: this.ino,
      head_len: this.headLen,
      head_hash: this.headHash,
      offset: this.committed,
      seen: this.seen,
      ...(this.compressed && { compressed: true }),
      ...(this.retired && { retired: true }),
    };
  }
}

/** Growth that is read at once, without waiting `read_coalesce`. */
const COALESCE_BYTES = 64 * 1024;
const hashOf = (b: Uint8Array) => createHash("sha1").update(b).digest("hex").slice(0, 20);
const isGzip = (b: Uint8Array) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;

/** Read up to `len` bytes at `at` through `h` (fewer at the end of the file). */
async function readAt(h: Deno.FsFile, at: number, len: number, into?: Uint8Array) {
  const buf = into && into.length >= len ? into.subarray(0, len) : new Uint8Array(len);
  await h.seek(at, Deno.SeekMode.Start);
  let n = 0;
  while (n < len) {
    const r = await h.read(buf.subarray(n));
    if (r === null || r === 0) break;
    n += r;
  }
  return buf.subarray(0, n);
}

/** The first `len` bytes of `path`, if it still is the file `dev`:`ino`. */
async function readHead(path: string, dev: number, ino: number, len: number) {
  let h: Deno.FsFile;
  try {
    h = await Deno.open(path, { read: true });
  } catch {
    return undefined;
  }
  try {
    const st = await h.stat();
    return st.dev === dev && st.ino === ino ? await readAt(h, 0, len) : undefined;
  } finally {
    h.close();
  }
}

/** Follows the files matching globs as they grow and rotate; a unit is a byte range of one. */
export class TailSource implements Source {
  readonly kind = "tail";
  readonly #c: TailSourceConfig;
  readonly #include: string[];
  readonly #includeRe: RegExp[];
  readonly #exclude: RegExp[];
  readonly #log: Logger;
  readonly #store: CheckpointStore;
  readonly #startRe: RegExp | undefined;
  readonly #maxLineBytes: number;
  /** Every file known (live, gone and retired), in round-robin order. */
  #files: Tracked[] = [];
  /** Live files by `dev:ino`. */
  #byInode = new Map<string, Tracked>();
  #byPath = new Map<string, Tracked>();
  /** New inodes whose head equals a live file's: a copy in the making? Since when. */
  #deferred = new Map<string, number>();
  #cursor = 0;
  #open = 0;
  #openPeak = 0;
  #scanDue = true;
  /** Identities changed in this scan: write them once at its end. */
  #changed = false;
  #dirty = new Set<string>();
  #wake: PromiseWithResolvers<void> | undefined;
  #watcher: Deno.FsWatcher | undefined;
  /** File system events are arriving: most polls need not stat known files. */
  #watching = false;
  #modifyTimer: ReturnType<typeof setTimeout> | undefined;
  #scratch = new Uint8Array(64 * 1024);
  readonly #state = { toJSON: () => this.#records() };
  readonly #m;

  /**
   * @param config the `tail:` section.
   * @param options where to checkpoint, where relative globs start, logging and metrics.
   */
  constructor(config: TailSourceConfig, options: TailSourceOptions) {
    const { stateFile, baseDir = Deno.cwd(), log, metrics = new Registry() } = options;
    this.#c = config;
    this.#include = config.include.map((g) => resolve(baseDir, g));
    this.#includeRe = this.#include.map(globToRegExp);
    this.#exclude = config.exclude.map((g) => globToRegExp(resolve(baseDir, g)));
    this.#log = log;
    this.#maxLineBytes = options.maxLineBytes ?? 1 << 20;
    this.#startRe = config.multiline.start_pattern
      ? new RegExp(config.multiline.start_pattern)
      : undefined;
    this.#store = new CheckpointStore(resolve(stateFile), {
      flushInterval: config.checkpoint_interval,
      log,
      metrics,
    });
    this.#m = {
      truncated: metrics.counter(
        "tail_files_truncated_total",
        "Files found smaller than their offset (copytruncate) or with a new head: read from 0",
      ),
      rotated: metrics.counter(
        "tail_files_rotated_total",
        "Followed files found under a new name, or copied (rename or copytruncate rotation)",
      ),
      compressedSkipped: metrics.counter(
        "tail_compressed_skipped_total",
        "gzip files recognised by fingerprint as rotations of files already read",
      ),
      timedOut: metrics.counter(
        "tail_partial_lines_sent_total",
        "Last lines sent without their newline after line_timeout",
      ),
      open: metrics.gauge("tail_files_open", "Open file handles"),
      tracked: metrics.gauge("tail_files_tracked", "Files known (followed, gone or retired)"),
    };
  }

  /** The most handles that were open at once. */
  get openFilesPeak(): number {
    return this.#openPeak;
  }

  /**
   * The pipeline's framer when records span lines (`multiline.start_pattern`), else undefined.
   */
  get frame(): (() => MultilineStream) | undefined {
    const re = this.#startRe;
    if (!re) return undefined;
    return () =>
      new MultilineStream({
        startPattern: re,
        separator: this.#c.multiline.separator,
        maxRecordBytes: this.#maxLineBytes,
      });
  }

  #poke(): void {
    this.#wake?.resolve();
  }

  async *units(signal: AbortSignal): AsyncIterable<Unit> {
    await this.#store.load();
    this.#restore();
    const onAbort = () => this.#poke();
    signal.addEventListener("abort", onAbort);
    if (this.#c.watch) this.#startWatch();
    try {
      // A scan (every poll_interval, or on a directory event) stats every file: the next one
      // is due no sooner than twice its own duration, so thousands of files still leave most of
      // the time to reading. While file system events arrive, nine polls in ten stat only the
      // names not seen before (renames, truncations and growth come as events).
      let nextScan = 0;
      let polls = 0;
      while (!signal.aborted) {
        if (this.#scanDue || Date.now() >= nextScan) {
          const full = this.#scanDue || !this.#watching || ++polls % 10 === 0;
          this.#scanDue = false;
          const began = Date.now();
          await this.#scan(full);
          const took = Date.now() - began;
          this.#log.debug("scan", { took_ms: took, files: this.#files.length });
          nextScan = Date.now() + Math.max(this.#c.poll_interval - took, 2 * took);
        } else if (this.#dirty.size) {
          const paths = [...this.#dirty];
          this.#dirty.clear();
          for (const p of paths) {
            const t = this.#byPath.get(p);
            if (t) await this.#refresh(t);
            else this.#scanDue = true;
          }
        }
        const unit = await this.#nextUnit();
        if (unit) {
          yield unit;
          continue;
        }
        // Nothing to read: sleep until an event, an ack, a timeout or the next poll.
        this.#wake = Promise.withResolvers();
        const wait = Math.max(1, Math.min(this.#nextDeadline(), nextScan) - Date.now());
        const timer = setTimeout(() => this.#poke(), wait);
        await this.#wake.promise;
        clearTimeout(timer);
        this.#wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** The earliest moment a held line or a gone file needs a look without any event. */
  #nextDeadline(): number {
    const now = Date.now();
    let at = Infinity;
    for (const t of this.#files) {
      const held = t.heldAt === undefined ? Infinity : t.heldAt + this.#c.line_timeout;
      if (held > now) at = Math.min(at, held);
      if (t.retryAt > now) at = Math.min(at, t.retryAt);
      const coalesced = t.lastRead + this.#c.read_coalesce;
      if (t.size > t.next && coalesced > now) at = Math.min(at, coalesced);
    }
    return at;
  }

  #startWatch(): void {
    const dirs = new Set<string>();
    let recursive = false;
    for (const g of this.#include) {
      const { base, depth } = globBase(g);
      dirs.add(base);
      if (depth > 1) recursive = true;
    }
    try {
      this.#watcher = Deno.watchFs([...dirs], { recursive });
      this.#watching = true;
    } catch (e) {
      this.#log.info("file system events not available: polling only", {
        dirs: [...dirs],
        poll_interval_ms: this.#c.poll_interval,
        error: e,
      });
      return;
    }
    (async () => {
      for await (const ev of this.#watcher!) {
        // Only paths the globs match matter (not the state file's own writes, for one).
        const paths = ev.paths.filter((p) => this.#includeRe.some((re) => re.test(p)));
        if (paths.length === 0) continue;
        if (ev.kind !== "modify") {
          this.#scanDue = true;
          this.#poke();
          continue;
        }
        // Writes come in bursts of events: look at the files they touched once per
        // read_coalesce, not once per event.
        for (const p of paths) this.#dirty.add(p);
        this.#modifyTimer ??= setTimeout(() => {
          this.#modifyTimer = undefined;
          this.#poke();
        }, this.#c.read_coalesce);
      }
    })().catch((e) => {
      this.#watching = false;
      this.#log.warn("file system events stopped: polling only", { error: e });
    });
  }

  #restore(): void {
    const saved = this.#store.get<FileRecord[]>("files") ?? [];
    for (const r of saved) {
      const t = new Tracked(r.path, r.dev, r.ino);
      t.headLen = r.head_len;
      t.headHash = r.head_hash;
      t.committed = t.next = r.offset;
      t.seen = r.seen;
      t.compressed = r.compressed ?? false;
      t.done = t.compressed;
      t.retired = r.retired ?? false;
      this.#files.push(t);
      if (!t.retired) this.#byInode.set(t.key, t);
    }
    this.#store.set("files", this.#state);
    this.#m.tracked.set(this.#files.length);
  }

  #records(): FileRecord[] {
    return this.#files.map((t) => t.record());
  }

  #persist(): void {
    this.#store.set("files", this.#state);
  }

  /** Paths matching the globs now. */
  async #expand(): Promise<string[]> {
    const out = new Set<string>();
    const state = this.#store.path;
    for (const [i, pattern] of this.#include.entries()) {
      const { base, depth } = globBase(pattern);
      const re = this.#includeRe[i]!;
      const walk = async (dir: string, left: number): Promise<void> => {
        let entries: Deno.DirEntry[];
        try {
          entries = await Array.fromAsync(Deno.readDir(dir));
        } catch {
          return; // not there (yet), or unreadable
        }
        for (const e of entries) {
          const path = dir === "/" ? `/${e.name}` : `${dir}/${e.name}`;
          if (e.isDirectory) {
            if (left > 1) await walk(path, left - 1);
            continue;
          }
          if (path === state || path.startsWith(`${state}.tmp-`)) continue;
          if (!re.test(path)) continue;
          if (this.#exclude.some((x) => x.test(path))) continue;
          out.add(path);
        }
      };
      await walk(base, depth);
    }
    return [...out];
  }

  /**
   * Expand the globs and reconcile what is found with what is known; unless `full`, a name that
   * held a followed file at the last scan is taken to hold it still (events report otherwise).
   */
  async #scan(full = true): Promise<void> {
    const now = Date.now();
    const found = new Set<Tracked>();
    const byPath = new Map<string, Tracked>();
    for (const path of await this.#expand()) {
      const known = full ? undefined : this.#byPath.get(path);
      if (known?.present && !known.retired && !found.has(known)) {
        known.seen = now;
        found.add(known);
        byPath.set(path, known);
        continue;
      }
      let st: Deno.FileInfo;
      try {
        st = await Deno.stat(path);
      } catch {
        continue; // gone since listed
      }
      if (!st.isFile || st.dev === null || st.ino === null) continue;
      const key = `${st.dev}:${st.ino}`;
      let t = this.#byInode.get(key);
      if (t && found.has(t)) continue; // a second name (hard link) of a file already found
      if (t && !t.compressed && !(await this.#sameFile(t, path, st.size))) {
        this.#retire(t, "truncated or replaced");
        t = undefined;
      }
      if (!t) {
        t = await this.#discover(path, st);
        if (!t) continue;
      }
      if (t.path !== path && t.present) {
        this.#m.rotated.inc();
        this.#log.debug("file renamed", { from: t.path, to: path });
      }
      t.path = path;
      t.present = true;
      if (!t.compressed) t.done = false;
      t.seen = now;
      t.mtime = st.mtime?.getTime() ?? now;
      if (st.size > t.size) t.lastGrowth = now;
      t.size = Math.max(t.size, st.size); // a stat older than a read is not a shrink
      found.add(t);
      byPath.set(path, t);
    }
    this.#byPath = byPath;
    for (const t of this.#files) {
      if (!found.has(t) && t.present) {
        t.present = false;
        this.#log.debug("file gone from the globs: read to its end", {
          path: t.path,
          offset: t.next,
        });
      }
      if (!t.present && t.handle && !t.busy) await this.#refresh(t);
    }
    // Forget what is gone for good: no handle, nothing in flight, unseen for forget_after.
    const before = this.#files.length;
    this.#files = this.#files.filter((t) => {
      if (t.present || t.handle || t.busy || t.pending.length) return true;
      if (now - t.seen < this.#c.forget_after) return true;
      if (this.#byInode.get(t.key) === t) this.#byInode.delete(t.key);
      return false;
    });
    if (this.#files.length !== before || this.#changed) this.#persist();
    this.#changed = false;
    for (const k of this.#deferred.keys()) {
      if (!this.#byInode.has(k) && now - this.#deferred.get(k)! > 10 * this.#c.rotate_wait) {
        this.#deferred.delete(k);
      }
    }
    this.#m.tracked.set(this.#files.length);
  }

  /**
   * Whether the inode still holds `t`'s content: not smaller than what was handed out, and the
   * same head (checked when the size changed). Extends the head hash while the file is shorter
   * than `fingerprint_bytes`.
   */
  async #sameFile(t: Tracked, path: string, size: number): Promise<boolean> {
    if (size < t.next) {
      // The stat may predate a read that has gone further since: look again.
      const st = await Deno.stat(path).catch(() => undefined);
      if (!st || st.ino !== t.ino || st.dev !== t.dev) return true; // the next scan sees it
      size = st.size;
      if (size < t.next) return false;
    }
    if (size === t.checkedSize) return true;
    // Through a handle of its own: the file's handle may be in the middle of a unit.
    const head = await readHead(path, t.dev, t.ino, Math.min(size, this.#c.fingerprint_bytes));
    if (!head) return true; // cannot look now: next scan
    if (head.length < t.headLen) return false;
    if (t.headLen > 0 && hashOf(head.subarray(0, t.headLen)) !== t.headHash) return false;
    if (head.length > t.headLen) {
      t.headLen = head.length;
      t.headHash = hashOf(head);
      this.#changed = true;
    }
    t.checkedSize = size;
    return true;
  }

  /** Its inode holds other content now: keep the old identity (a copy may adopt its offset). */
  #retire(t: Tracked, why: string): void {
    this.#m.truncated.inc();
    this.#log.info(`file ${why}: read from 0`, { path: t.path, offset: t.next });
    // In-flight ranges still move its offset when acked: its copy starts after them.
    t.retired = true;
    t.present = false;
    if (this.#byInode.get(t.key) === t) this.#byInode.delete(t.key);
    if (t.handle && !t.busy) this.#close(t);
    this.#changed = true;
  }

  /** A file not known by its inode: new, a copy of a known one, or a compressed rotation. */
  async #discover(path: string, st: Deno.FileInfo): Promise<Tracked | undefined> {
    const key = `${st.dev}:${st.ino}`;
    const t = new Tracked(path, st.dev!, st.ino!);
    t.size = 0;
    const h = await this.#handle(t, path, st);
    if (!h) return undefined; // could not open it: next scan
    const first = await readAt(h, 0, Math.min(st.size, this.#c.fingerprint_bytes));
    if (isGzip(first)) {
      const head = await this.#gzipHead(h);
      if (!head) { // not even its header yet: look again later
        this.#close(t);
        return undefined;
      }
      t.compressed = true;
      t.headLen = head.length;
      t.headHash = hashOf(head);
      const of = this.#rotationOf(head);
      if (of) {
        t.done = true;
        t.committed = t.next = st.size;
        this.#m.compressedSkipped.inc();
        this.#log.info("compressed rotation of a file already read: skipped", {
          path,
          of: of.path,
        });
        this.#close(t);
      }
    } else {
      t.headLen = first.length;
      t.headHash = hashOf(first);
      t.checkedSize = st.size;
      if (t.headLen === this.#c.fingerprint_bytes) {
        const same = this.#files.find((o) =>
          o !== t && !o.compressed && o.headLen === t.headLen && o.headHash === t.headHash
        );
        if (same && !same.retired && same.present) {
          // Two live files with one head: a copy being made (copytruncate) or a new file with
          // the same header. Wait for the original's truncation, at most rotate_wait.
          const since = this.#deferred.get(key) ?? Date.now();
          this.#deferred.set(key, since);
          if (Date.now() - since < this.#c.rotate_wait) {
            this.#close(t);
            return undefined;
          }
        } else if (same) {
          if (same.busy || same.pending.length) { // its last ranges are not settled yet
            this.#close(t);
            return undefined;
          }
          // A copy of a file that was truncated or is gone: go on from where that one was.
          t.committed = t.next = same.committed;
          this.#m.rotated.inc();
          this.#log.info("copy of a followed file: continuing from its offset", {
            path,
            of: same.path,
            offset: same.committed,
          });
          this.#files = this.#files.filter((o) => o !== same);
          if (this.#byInode.get(same.key) === same) this.#byInode.delete(same.key);
          if (same.handle) this.#close(same);
        }
      }
    }
    this.#deferred.delete(key);
    this.#files.push(t);
    this.#byInode.set(key, t);
    this.#changed = true;
    return t;
  }

  /** The first `fingerprint_bytes` of a gzip file's content (fewer if it is shorter). */
  async #gzipHead(h: Deno.FsFile): Promise<Uint8Array | undefined> {
    const raw = await readAt(h, 0, 64 * 1024);
    try {
      const out = zlib.gunzipSync(raw, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      return new Uint8Array(
        out.buffer,
        out.byteOffset,
        Math.min(out.length, this.#c.fingerprint_bytes),
      );
    } catch {
      return undefined;
    }
  }

  /** The known plain file whose head the decompressed `head` starts with. */
  #rotationOf(head: Uint8Array): Tracked | undefined {
    // Heads of the same length: both full fingerprints, or both whole short files.
    const hash = hashOf(head);
    return this.#files.find((o) =>
      !o.compressed && o.headLen > 0 && o.headLen === head.length && o.headHash === hash
    );
  }

  /**
   * `t`'s open handle, opened by `path` if needed (checked to be `t`'s inode), closing the least
   * recently read files' handles beyond `max_open_files`. Undefined when it cannot be opened.
   */
  async #handle(t: Tracked, path = t.path, st?: Deno.FileInfo): Promise<Deno.FsFile | undefined> {
    if (t.handle) return t.handle;
    if (this.#open >= this.#c.max_open_files) this.#evict();
    if (this.#open >= this.#c.max_open_files) return undefined; // every handle is in use
    let h: Deno.FsFile;
    try {
      h = await Deno.open(path, { read: true });
    } catch {
      return undefined;
    }
    const hs = await h.stat();
    if (hs.dev !== (st?.dev ?? t.dev) || hs.ino !== (st?.ino ?? t.ino)) {
      h.close(); // the name points at another file now
      return undefined;
    }
    t.handle = h;
    t.lastActive = performance.now();
    this.#open++;
    this.#openPeak = Math.max(this.#openPeak, this.#open);
    this.#m.open.set(this.#open);
    return h;
  }

  /** Close handles of files still reachable by name, least recently read first. */
  #evict(): void {
    let victim: Tracked | undefined;
    for (const t of this.#files) {
      if (!t.handle || t.busy || !t.present) continue;
      if (!victim || t.lastActive < victim.lastActive) victim = t;
    }
    if (victim) this.#close(victim);
  }

  #close(t: Tracked): void {
    if (!t.handle) return;
    try {
      t.handle.close();
    } catch { /* already closed */ }
    t.handle = undefined;
    this.#open--;
    this.#m.open.set(this.#open);
  }

  /** Update a file's size: through its handle (works once its name is gone), else its path. */
  async #refresh(t: Tracked): Promise<void> {
    let st: Deno.FileInfo;
    try {
      st = t.handle ? await t.handle.stat() : await Deno.stat(t.path);
    } catch {
      return;
    }
    if (!t.handle && (st.ino !== t.ino || st.dev !== t.dev)) return;
    const size = st.size;
    t.mtime = st.mtime?.getTime() ?? t.mtime; // the units' time, for processing_lag_seconds
    if (size > t.size) t.lastGrowth = Date.now();
    if (size < t.next && t.present && !t.retired) this.#scanDue = true; // truncated
    t.size = size;
  }

  /** The next unit of some file with bytes to read, round-robin; undefined when none. */
  async #nextUnit(): Promise<Unit | undefined> {
    const n = this.#files.length;
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      const t = this.#files[(this.#cursor + i) % n]!;
      if (!this.#ready(t, now)) {
        if (this.#finished(t, now)) this.#close(t);
        continue;
      }
      this.#cursor = (this.#cursor + i + 1) % n;
      const unit = await this.#unit(t, now);
      if (unit) return unit;
    }
    return undefined;
  }

  #ready(t: Tracked, now: number): boolean {
    if (t.busy || t.retired || t.done || t.retryAt > now) return false;
    if (!t.present && !t.handle) return false;
    if (t.compressed) return now - t.lastGrowth >= this.#c.rotate_wait && t.pending.length === 0;
    if (t.size <= t.next) return false;
    // A little growth soon after a read waits a moment for more: fewer, larger units.
    if (t.size - t.next < COALESCE_BYTES && now < t.lastRead + this.#c.read_coalesce) return false;
    return t.heldAt === undefined || t.size > t.heldSize ||
      now - t.heldAt >= this.#c.line_timeout;
  }

  /** A file whose name is gone, read to its end and quiet for rotate_wait: close it. */
  #finished(t: Tracked, now: number): boolean {
    return !!t.handle && !t.present && !t.busy && t.size <= t.next &&
      now - t.lastGrowth >= this.#c.rotate_wait;
  }

  /** A unit for `t`'s next bytes, or undefined when they must wait (a partial line). */
  async #unit(t: Tracked, now: number): Promise<Unit | undefined> {
    const h = await this.#handle(t);
    if (!h) {
      if (!t.present) t.done = true; // gone and closed: nothing more can be read
      return undefined;
    }
    const start = t.next;
    let end: number;
    if (t.compressed) end = t.size;
    else {
      const limit = Math.min(t.size, start + this.#c.max_read_bytes);
      const timedOut = t.heldAt !== undefined && now - t.heldAt >= this.#c.line_timeout;
      end = timedOut ? limit : await this.#cut(h, start, limit);
      if (end === start && limit - start >= this.#c.max_read_bytes) end = limit; // a huge line
      if (end === start) {
        t.heldAt ??= now;
        t.heldSize = t.size;
        return undefined;
      }
      if (timedOut) this.#m.timedOut.inc();
      if (end < t.size && limit === t.size) {
        if (t.heldAt === undefined || timedOut) t.heldAt = now;
        t.heldSize = t.size;
      } else t.heldAt = undefined;
    }
    return this.#makeUnit(t, h, start, end);
  }

  /**
   * Where a unit over [start, limit) ends: after its last newline, and with a start pattern
   * before the last record start (within the last 64 KiB); `start` when nothing is complete.
   */
  async #cut(h: Deno.FsFile, start: number, limit: number): Promise<number> {
    const block = this.#scratch.length;
    let nl = -1;
    let buf: Uint8Array = new Uint8Array(0);
    let at = limit;
    while (at > start && nl < 0) {
      const from = Math.max(start, at - block);
      buf = await readAt(h, from, at - from, this.#scratch);
      const i = buf.lastIndexOf(10);
      if (i >= 0) nl = from + i;
      at = from;
    }
    if (nl < 0) return start;
    const end = nl + 1;
    if (!this.#startRe) return end;
    // The last line start (after a newline in this block, or `start`) that begins a record.
    const from = Math.max(start, end - block);
    buf = await readAt(h, from, end - from, this.#scratch);
    let lineEnd = buf.length - 1; // the newline ending the last line
    while (lineEnd > 0) {
      const prev = buf.lastIndexOf(10, lineEnd - 1);
      if (prev < 0 && from > start) break; // the line starts before this block
      const s = prev + 1;
      if (
        this.#startRe.test(new TextDecoder().decode(buf.subarray(s, Math.min(lineEnd, s + 1024))))
      ) {
        return from + s > start ? from + s : start;
      }
      if (prev < 0) break;
      lineEnd = prev;
    }
    return from > start ? end : start; // no record start: a long record goes in pieces
  }

  #makeUnit(t: Tracked, h: Deno.FsFile, start: number, end: number): Unit {
    t.busy = true;
    t.lastActive = performance.now();
    t.lastRead = Date.now();
    const gen = t.gen;
    const range: Range = { start, end, acked: false };
    t.pending.push(range);
    let pos = start;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      t.busy = false;
      if (t.gen === gen) t.next = pos;
      if (t.retired && t.handle) this.#close(t);
      this.#refresh(t).finally(() => this.#poke());
    };
    return {
      id: `file://${t.path}@${start}-${end}`,
      time: t.mtime,
      size: end - start,
      attributes: { path: t.path },
      open: () =>
        Promise.resolve(
          new ReadableStream({
            type: "bytes",
            autoAllocateChunkSize: 64 * 1024,
            pull: async (c) => {
              const req = c.byobRequest!;
              const v = req.view!;
              const want = Math.min(v.byteLength, end - pos);
              let n: number | null = null;
              if (want > 0) {
                await h.seek(pos, Deno.SeekMode.Start);
                n = await h.read(new Uint8Array(v.buffer, v.byteOffset, want));
              }
              if (n === null || n === 0) {
                release();
                c.close();
                req.respond(0);
                return;
              }
              pos += n;
              req.respond(n);
            },
            cancel: () => release(),
          }),
        ),
      ack: (r) => {
        release();
        if (t.gen !== gen) return Promise.resolve();
        range.end = start + r.consumed;
        range.acked = true;
        while (t.pending[0]?.acked) t.committed = t.pending.shift()!.end;
        if (t.compressed) {
          t.done = true;
          if (!t.busy) this.#close(t); // read once: its handle is not needed any more
        }
        this.#persist();
        this.#poke();
        return Promise.resolve();
      },
      nack: (e) => {
        release();
        if (t.compressed && nonRecoverable(e)) {
          // A gzip file that cannot be read (corrupt, not gzip) is not tried again.
          this.#log.error("gzip file cannot be read: not tried again", { path: t.path, error: e });
          t.done = true;
          t.pending = [];
          if (!t.busy) this.#close(t);
        } else if (t.gen === gen) {
          // Read again from the first range not delivered; later ranges may be sent twice.
          t.gen++;
          t.pending = [];
          t.next = t.committed;
          t.heldAt = undefined;
          t.retryAt = Date.now() + this.#c.poll_interval;
        }
        this.#poke();
        return Promise.resolve();
      },
    };
  }

  /** Stop watching, close the files, write the checkpoint. */
  async close(): Promise<void> {
    clearTimeout(this.#modifyTimer);
    try {
      this.#watcher?.close();
    } catch { /* closed */ }
    for (const t of this.#files) this.#close(t);
    this.#poke();
    await this.#store.close();
  }
}
