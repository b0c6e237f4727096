/**
 * The `stdout` sink: each batch written as newline-delimited lines to a WritableStream (the
 * process's stdout by default), in the order batches are handed over. A batch is acknowledged
 * once the stream accepted its bytes. Pipes to `jq`, `head` or another agent; when the reader
 * goes away (EPIPE) every further batch fails with reason `closed`: retryable, since the lines
 * were not refused (they are not for the dead letter) and a later run may deliver them.
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import { errorChain } from "../log/logger.ts";
import { batchSpec } from "../pipeline/run.ts";
import { type Batch, type Sink, SinkError } from "../pipeline/types.ts";
import { joinLines } from "./http.ts";

/** The `stdout:` config section: only batching (how often lines are written). */
export const stdoutSinkSpec = f.object({ ...batchSpec }, {
  description: "stdout sink: lines written to standard output",
});

/** The `stdout:` config. */
export type StdoutSinkConfig = Infer<typeof stdoutSinkSpec>;

/** Options for {@link StdoutSink}. */
export interface StdoutSinkOptions {
  /** Where lines go. It is not closed by `close()` (its owner closes it). @default Deno.stdout.writable */
  writable?: WritableStream<Uint8Array>;
}

/** Writes line batches to a byte stream. */
export class StdoutSink implements Sink<Uint8Array> {
  readonly kind = "stdout";
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #last: Promise<void> = Promise.resolve();
  #closed = false;

  /** @param options the stream to write to. */
  constructor({ writable = Deno.stdout.writable }: StdoutSinkOptions = {}) {
    this.#writer = writable.getWriter();
  }

  /**
   * Write one batch; resolves once the stream took it. Concurrent calls are written in call
   * order.
   *
   * @throws {SinkError} (retryable, reason `closed`) when the stream failed or the sink was closed.
   */
  async write(batch: Batch<Uint8Array>, signal: AbortSignal): Promise<void> {
    if (this.#closed) {
      throw new SinkError("stdout sink is closed", { retryable: true, reason: "closed" });
    }
    if (signal.aborted) {
      throw new SinkError("stdout write aborted before it started", { cause: signal.reason });
    }
    const written = this.#writer.write(joinLines(batch.items, batch.bytes));
    this.#last = written.catch(() => {});
    try {
      await written;
    } catch (e) {
      throw new SinkError(
        `cannot write a batch of ${batch.items.length} lines to stdout: ${errorChain(e)}`,
        { cause: e, retryable: true, reason: "closed" },
      );
    }
  }

  /** Wait for pending writes and release the stream (not closing it). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#last;
    this.#writer.releaseLock();
  }
}
