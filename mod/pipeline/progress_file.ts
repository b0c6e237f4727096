/**
 * How far each unit in flight was delivered (items, contiguously from its start), in a small file
 * beside a source's state (`<state>.progress`), so a retried or restarted unit resumes after them:
 * a crash then re-sends about the batches that were in flight, not whole files.
 *
 * It changes with every delivered batch, so it is written as it changes (coalesced, one write at
 * a time: temp file + rename) but without fsync: a process crash (kill -9) keeps what was written
 * (the page cache survives it); a power loss may leave it old, empty or damaged, and then it is
 * ignored. Progress is an optimisation, never the record of what was delivered (the state file
 * is): a lost progress file costs duplicates, never a lost line.
 *
 * Format: `{"version":1,"progress":{"<unit key>":3000}}`.
 * @module
 */

import type { Logger } from "../log/logger.ts";

/** Per-unit delivered item counts, persisted beside a state file. */
export class ProgressFile {
  readonly path: string;
  readonly #log: Logger | undefined;
  #items = new Map<string, number>();
  #dirty = false;
  #writing: Promise<void> | undefined;
  #failing = false;

  /**
   * @param path the progress file (`<state file>.progress`).
   * @param log where a damaged file or a failed write is reported.
   */
  constructor(path: string, log?: Logger) {
    this.path = path;
    this.#log = log;
  }

  /** Read the file; a missing, empty or damaged one is an empty start (logged). */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        this.#log?.warn("progress file unreadable: units in flight are read whole", {
          progress_file: this.path,
          error: e,
        });
      }
      return;
    }
    try {
      const o = JSON.parse(text) as { progress?: Record<string, unknown> };
      for (const [id, n] of Object.entries(o.progress ?? {})) {
        if (typeof n === "number" && n >= 0 && Number.isFinite(n)) this.#items.set(id, n);
      }
    } catch (e) {
      this.#log?.warn("progress file damaged: units in flight are read whole", {
        progress_file: this.path,
        error: e,
      });
    }
  }

  /** Items of `id` delivered from its start; 0 when unknown. */
  get(id: string): number {
    return this.#items.get(id) ?? 0;
  }

  /** Ids with a count. */
  ids(): string[] {
    return [...this.#items.keys()];
  }

  /** Record that the first `items` items of `id` were delivered (written soon). */
  set(id: string, items: number): void {
    if (this.#items.get(id) === items) return;
    this.#items.set(id, items);
    this.#touch();
  }

  /** Forget `id` (done, or to be read whole). */
  delete(id: string): void {
    if (this.#items.delete(id)) this.#touch();
  }

  #touch(): void {
    this.#dirty = true;
    this.#writing ??= this.#writeLoop();
  }

  async #writeLoop(): Promise<void> {
    try {
      while (this.#dirty) {
        this.#dirty = false;
        const text = JSON.stringify({ version: 1, progress: Object.fromEntries(this.#items) });
        const tmp = `${this.path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
        try {
          await Deno.writeTextFile(tmp, text);
          await Deno.rename(tmp, this.path);
          this.#failing = false;
        } catch (e) {
          await Deno.remove(tmp).catch(() => {});
          if (!this.#failing) {
            this.#failing = true;
            this.#log?.warn("progress file write failed: a crash would re-send more", {
              progress_file: this.path,
              error: e,
            });
          }
          return;
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }

  /** Wait for the pending write (and write what changed since). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
    if (this.#dirty) await (this.#writing = this.#writeLoop());
  }
}
