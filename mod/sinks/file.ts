/**
 * The `file` sink: batches appended to a file as newline-delimited lines.
 *
 * Durability: with `sync: true` (the default) a batch is acknowledged only after its bytes were
 * written and `fdatasync`ed, so an acked unit's lines survive a power loss. Batches that arrive
 * while a sync runs are written together and share the next fdatasync (group commit), so the
 * cost is one sync per group, not per batch. With `sync: false` a batch is acked once the OS
 * has it (survives a crash of the agent, not of the machine).
 *
 * Batches are appended in the order they are handed over. A write that fails part-way is cut
 * back (the file is truncated to where the group started), so the file never holds half a
 * batch; the batch fails with a retryable SinkError and its units are read again later.
 *
 * Rotation: the sink does not rotate. When the file is renamed away (logrotate without
 * copytruncate), the next batch notices and creates a new file at `path`.
 * @module
 */

import { dirname } from "node:path";
import { f, type Infer } from "../config/spec.ts";
import { errorChain } from "../log/logger.ts";
import { batchSpec } from "../pipeline/run.ts";
import { type Batch, type Sink, SinkError } from "../pipeline/types.ts";
import { joinLines } from "./http.ts";

/** The `file:` sink config section. */
export const fileSinkSpec = f.object({
  path: f.string({
    description: "File to append lines to (created with its directory when missing)",
    example: "/var/log/edge-agent/out.ndjson",
  }),
  sync: f.bool({
    description:
      "fdatasync before acknowledging (batches written together share one sync). Off: acked once the OS has the bytes; a power loss may lose the last seconds",
    default: true,
  }),
  ...batchSpec,
}, { description: "file sink: lines appended to a local file" });

/** The `file:` sink config. */
export type FileSinkConfig = Infer<typeof fileSinkSpec>;

/** Options for {@link FileSink}. */
export interface FileSinkOptions {
  /** The file. */
  path: string;
  /** fdatasync each group of batches before acknowledging them. @default true */
  sync?: boolean;
  /** Permissions of a file the sink creates. @default 0o640 */
  mode?: number;
}

interface Pending {
  body: Uint8Array;
  lines: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Appends line batches to a file. */
export class FileSink implements Sink<Uint8Array> {
  readonly kind = "file";
  readonly #path: string;
  readonly #sync: boolean;
  readonly #mode: number;
  #file: Deno.FsFile | undefined;
  #queue: Pending[] = [];
  #draining: Promise<void> | undefined;
  #closed = false;

  /** @param options where to write and how durably. */
  constructor({ path, sync = true, mode = 0o640 }: FileSinkOptions) {
    if (!path) throw new TypeError("file sink needs a path: got an empty string");
    this.#path = path;
    this.#sync = sync;
    this.#mode = mode;
  }

  /**
   * Append one batch; resolves once it is written (and synced, with `sync`).
   *
   * @throws {SinkError} naming the path when the write or sync fails (retryable), or when the
   *   sink is closed.
   */
  write(batch: Batch<Uint8Array>, signal: AbortSignal): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        // Shutting down: the lines were not refused (not for the dead letter); read again later.
        new SinkError(`file sink ${this.#path} is closed`, { retryable: true, reason: "closed" }),
      );
    }
    if (signal.aborted) {
      return Promise.reject(
        new SinkError(`write to ${this.#path} aborted before it started`, { cause: signal.reason }),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#queue.push({
      body: joinLines(batch.items, batch.bytes),
      lines: batch.items.length,
      resolve,
      reject,
    });
    this.#draining ??= this.#drain();
    return promise;
  }

  /** Write queued batches group by group: all of a group's bytes, then one fdatasync. */
  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) await this.#writeGroup(this.#queue.splice(0));
    } finally {
      // Cleared in the same tick the queue is seen empty: a write() after this starts a drain.
      this.#draining = undefined;
    }
  }

  async #writeGroup(group: Pending[]): Promise<void> {
    let start = -1;
    try {
      const file = await this.#open();
      start = (await file.stat()).size;
      for (const p of group) {
        for (let o = 0; o < p.body.length;) o += await file.write(p.body.subarray(o));
      }
      if (this.#sync) await file.syncData();
      for (const p of group) p.resolve();
    } catch (e) {
      const lines = group.reduce((n, p) => n + p.lines, 0);
      if (start >= 0) await this.#file?.truncate(start).catch(() => {});
      this.#file?.close();
      this.#file = undefined;
      const err = new SinkError(
        `cannot append ${group.length} batch(es), ${lines} lines, to ${this.#path}: ${
          errorChain(e)
        }`,
        { cause: e, retryable: true },
      );
      for (const p of group) p.reject(err);
    }
  }

  /** The open file; reopened when the path no longer names it (rotated away). */
  async #open(): Promise<Deno.FsFile> {
    if (this.#file) {
      const [open, named] = await Promise.all([
        this.#file.stat(),
        Deno.stat(this.#path).catch(() => undefined),
      ]);
      if (named && named.ino === open.ino && named.dev === open.dev) return this.#file;
      this.#file.close();
      this.#file = undefined;
    }
    await Deno.mkdir(dirname(this.#path), { recursive: true });
    this.#file = await Deno.open(this.#path, {
      append: true,
      create: true,
      mode: this.#mode,
    });
    return this.#file;
  }

  /** Wait for queued batches, then close the file. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#draining) await this.#draining;
    this.#file?.close();
    this.#file = undefined;
  }
}
