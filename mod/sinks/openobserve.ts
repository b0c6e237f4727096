/**
 * Sink `openobserve`: records as JSON arrays to OpenObserve's ingestion API,
 * `POST {url}/api/{org}/{stream}/_json`, with basic auth, optionally gzip-compressed. Items are
 * already-encoded JSON records tagged with their stream (the stream name is templated per unit,
 * e.g. `{engine}_{instance}`), so one batch may become one request per stream. Answers mean
 * what they mean for every HTTP intake (retry.ts, `httpVerdict`): 408, 429, 5xx and network
 * errors are retried (Retry-After honoured); 401, 403 and 404 are a configuration problem, retried
 * without limit until the signal aborts, with one warning a minute; any other 4xx (a persistent
 * 400) refuses the stream's records for good: they are reported to the pipeline (a
 * {@link BatchError} naming them when other streams of the batch went through, else a
 * {@link SinkError} with `retryable: false`), which dead-letters them; they are not sent again.
 *
 * OpenObserve's answer `{"code":200,"status":[{"name":…,"successful":N,"failed":M}]}` gives counts
 * per stream, not which records failed. When every record of a stream failed, they are reported
 * as a BatchError; when only some did, they cannot be named: they are counted and logged (sending
 * the stream again would duplicate the successful ones).
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { detachWhole } from "../pipeline/gc_governor.ts";
import { gzipBody } from "../pipeline/gzip_body.ts";
import {
  httpVerdict,
  isConfigurationError,
  isRefusal,
  parseRetryAfter,
  retry,
  RetryableError,
  retrySpec,
} from "../pipeline/retry.ts";
import {
  type Batch,
  BatchError,
  type FailedItem,
  type Sink,
  SinkError,
} from "../pipeline/types.ts";

/** The `openobserve:` config section of a mode. */
export const openobserveSpec = f.object({
  url: f.string({
    description: "OpenObserve base URL",
    default: "http://127.0.0.1:5080",
    pattern: /^https?:\/\/\S+$/,
  }),
  org: f.string({ description: "Organization", default: "default" }),
  stream: f.string({
    description: "Stream name template: {engine}, {instance}, {file} from the event",
    default: "{engine}_{instance}",
  }),
  user: f.string({ description: "Basic auth user", default: "root@example.com" }),
  password: f.string({
    description: "Basic auth password (use ${credential:NAME} or ${ENV})",
    default: "",
    secret: true,
  }),
  gzip: f.bool({ description: "gzip request bodies", default: true }),
  gzip_level: f.int({
    description: "gzip level when gzip is on: 1 is several times faster than 6 for a larger body",
    default: 1,
    min: 1,
    max: 9,
  }),
  timeout: f.duration({ description: "Request timeout", default: "30s" }),
  retry: retrySpec,
}, { description: "OpenObserve ingestion (JSON API)" });

/** Settings of {@link OpenObserveSink}. */
export type OpenObserveConfig = Infer<typeof openobserveSpec>;

/**
 * Records on their way to one stream: one record's JSON object, or several joined by commas
 * (`{...},{...}`, `count` of them), as they go into the request's JSON array; encoded, or as
 * text (encoded into the request body).
 * A framer that makes many records at once hands them on as one item of text: one object and one
 * string per group, on the garbage-collected heap, instead of an object and a buffer per record
 * (buffers are memory outside the heap, freed only when a collection finds them unreachable).
 */
export interface StreamRecord {
  stream: string;
  json: Uint8Array | string;
  /**
   * Records in `json`.
   * @default {1}
   */
  count?: number;
}

/** Body buffers: at least a default batch (1 MiB) and its separators; larger ones not kept. */
const MIN_POOLED = (1 << 20) + (64 << 10);
const MAX_POOLED = 16 << 20;
/** A configuration problem (401, 403, 404) is logged at most once per this long. */
const CONFIG_WARN_EVERY = 60_000;

const enc = new TextEncoder();

/** Length of JSON text or bytes: bytes, or characters (as many bytes for ASCII; fewer otherwise). */
const sizeOf = (json: Uint8Array | string): number =>
  typeof json === "string" ? json.length : json.byteLength;

/**
 * Size of a {@link StreamRecord} in a JSON array: its JSON and a comma (text counted in
 * characters, its bytes when ASCII).
 */
export const streamRecordSize = (r: StreamRecord): number => sizeOf(r.json) + 1;

/** Fill `{name}` placeholders from `values`; names without a value stay empty. */
export function streamName(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => values[k] ?? "")
    // OpenObserve stream names: lowercase letters, digits and underscores.
    .toLowerCase().replace(/[^a-z0-9_]/g, "_");
}

/**
 * Join JSON records into one JSON array, `[a,b,c]`, in one copy (text is encoded into it).
 *
 * @param records the records' JSON, bytes or text (or comma-joined groups of them).
 * @param into a buffer to write into when it is large enough (reused across requests).
 * @returns the body (a view of `into` when it was used).
 */
export function joinJsonArray(records: (Uint8Array | string)[], into?: Uint8Array): Uint8Array {
  const size = jsonArraySize(records);
  let body = into && into.length >= size ? into : new Uint8Array(size);
  /** Room for `n` more bytes after `o` (text with non-ASCII characters takes more than `size`). */
  const room = (o: number, n: number) => {
    if (o + n <= body.length) return;
    const bigger = new Uint8Array(Math.max(body.length * 2, o + n));
    bigger.set(body.subarray(0, o));
    body = bigger;
  };
  body[0] = 91; // [
  let o = 1;
  for (let i = 0; i < records.length; i++) {
    if (i) body[o++] = 44; // ,
    const r = records[i]!;
    if (typeof r === "string") {
      let read = 0;
      while (read < r.length) {
        // At least one byte per character; a character up to 3 bytes per UTF-16 unit.
        room(o, read === 0 ? r.length + 1 : (r.length - read) * 3 + 1);
        const done = enc.encodeInto(read === 0 ? r : r.slice(read), body.subarray(o));
        read += done.read;
        o += done.written;
      }
    } else {
      room(o, r.byteLength + 1);
      body.set(r, o);
      o += r.byteLength;
    }
  }
  room(o, 1);
  body[o++] = 93; // ]
  return body.subarray(0, o);
}

/** Bytes of `records` joined into a JSON array (text: at least this many). */
export function jsonArraySize(records: (Uint8Array | string)[]): number {
  let size = 2 + Math.max(0, records.length - 1);
  for (const r of records) size += sizeOf(r);
  return size;
}

/** Size of the reused buffers records are encoded into (a group of a few hundred records). */
const GROUP_BUFFER = 64 << 10;
/** Group buffers kept for reuse: enough for the batches in flight. */
const MAX_FREE_GROUPS = 64;

/**
 * Buffers that groups of records are encoded into, reused once their request was answered 2xx.
 * The records' JSON then costs no garbage: text on the heap outlived the young generation (a
 * batch waits for its request) and was promoted, and fresh buffers were memory outside the heap,
 * freed only by a later collection; either way the process held its whole output for a while.
 */
class GroupBuffers {
  readonly #free: Uint8Array[] = [];
  /** The buffers handed out (a group's JSON is a view of its start). */
  readonly #ours = new WeakSet<ArrayBufferLike>();

  /** `text` encoded, in a reused buffer when it fits one. */
  encode(text: string): Uint8Array {
    if (text.length > GROUP_BUFFER) return enc.encode(text);
    const buf = this.#free.pop() ?? new Uint8Array(GROUP_BUFFER);
    const { read, written } = enc.encodeInto(text, buf);
    if (read < text.length) {
      // Non-ASCII text longer in bytes than the buffer.
      this.#free.push(buf);
      return enc.encode(text);
    }
    this.#ours.add(buf.buffer);
    return buf.subarray(0, written);
  }

  /** A copy of `bytes`, in a reused buffer when it fits one. */
  copy(bytes: Uint8Array): Uint8Array {
    if (bytes.length > GROUP_BUFFER) return bytes.slice();
    const buf = this.#free.pop() ?? new Uint8Array(GROUP_BUFFER);
    buf.set(bytes);
    this.#ours.add(buf.buffer);
    return buf.subarray(0, bytes.length);
  }

  /** `json` is sent: its buffer (if one of ours) can carry another group. */
  release(json: Uint8Array | string): void {
    if (typeof json === "string" || !this.#ours.has(json.buffer)) return;
    this.#ours.delete(json.buffer);
    if (this.#free.length < MAX_FREE_GROUPS) {
      this.#free.push(new Uint8Array(json.buffer, 0, GROUP_BUFFER));
    }
  }
}

/** Posts batches of records to OpenObserve. */
export class OpenObserveSink implements Sink<StreamRecord> {
  readonly kind = "openobserve";
  readonly #c: OpenObserveConfig;
  readonly #log: Logger;
  readonly #auth: string;
  readonly #m;
  #pool: Uint8Array[] = [];
  readonly #groups = new GroupBuffers();
  /** When a configuration problem was last logged (performance.now()). */
  #configWarnedAt = -Infinity;

  constructor(c: OpenObserveConfig, log: Logger, metrics: Registry) {
    this.#c = c;
    this.#log = log;
    this.#auth = "Basic " + btoa(`${c.user}:${c.password}`);
    this.#m = {
      requests: metrics.counter("openobserve_requests_total", "Ingestion requests answered 2xx"),
      failed: metrics.counter(
        "openobserve_records_failed_total",
        "Records OpenObserve answered as failed",
      ),
      ok: metrics.counter("openobserve_records_successful_total", "Records ingested"),
      retries: metrics.counter("openobserve_retries_total", "Requests sent again"),
    };
  }

  /**
   * Records as one item of this sink, `{...},{...}` (a JSON array without its brackets): one
   * `JSON.stringify` and one encoding for all of them, into a buffer the sink reuses once the
   * item was delivered.
   *
   * @param records the records (JSON-serializable objects).
   * @param stream the stream they go to.
   * @returns the item, or `undefined` for no records.
   */
  encode(records: unknown[], stream: string): StreamRecord | undefined {
    if (records.length === 0) return undefined;
    const array = JSON.stringify(records);
    return {
      stream,
      json: this.#groups.encode(array.slice(1, array.length - 1)),
      count: records.length,
    };
  }

  /**
   * Records already written as JSON, `{...},{...}` (UTF-8, `count` of them), as one item of this
   * sink: copied into a buffer the sink reuses once the item was delivered (`json` may be reused
   * by the caller as soon as this returns).
   *
   * @param json the records' JSON objects joined by commas (a JSON array without its brackets).
   * @param count how many records `json` holds.
   * @param stream the stream they go to.
   */
  encodeJson(json: Uint8Array, count: number, stream: string): StreamRecord {
    return { stream, json: this.#groups.copy(json), count };
  }

  /**
   * Deliver a batch: one request per stream.
   *
   * @throws {BatchError} naming the records of the streams refused for good (the others were
   *   delivered); {SinkError} with `retryable: false` when every record was refused, with
   *   `retryable: true` once a stream's retries ran out or `signal` aborted.
   */
  async write(batch: Batch<StreamRecord>, signal: AbortSignal): Promise<void> {
    const byStream = new Map<string, number[]>();
    for (const [i, r] of batch.items.entries()) {
      let list = byStream.get(r.stream);
      if (!list) byStream.set(r.stream, list = []);
      list.push(i);
    }
    const failed: FailedItem[] = [];
    let refusal: SinkError | undefined;
    let failedRecords = 0, allRecords = 0;
    for (const [stream, indices] of byStream) {
      const records = indices.map((i) => batch.items[i]!.json);
      // An item may carry several records (see StreamRecord).
      let count = 0;
      for (const i of indices) count += batch.items[i]!.count ?? 1;
      allRecords += count;
      let message: string | undefined;
      try {
        const answer = await this.#post(stream, records, count, signal);
        if (answer.failed === count) message = answer.error ?? "every record failed";
      } catch (e) {
        if (!(e instanceof SinkError) || e.retryable) throw e;
        refusal ??= e;
        message = errorChain(e.cause);
      }
      if (message !== undefined) {
        for (const index of indices) failed.push({ index, reason: "rejected", message });
        failedRecords += count;
      } else {
        // Delivered: the items' buffers can carry new records (refused items are left to the
        // garbage collector: the pipeline writes them to the dead letter).
        for (const r of records) this.#groups.release(r);
      }
    }
    if (failed.length === 0) return;
    if (failed.length === batch.items.length && refusal) throw refusal;
    throw new BatchError(
      `openobserve: ${failedRecords} of ${allRecords} records refused for good (${
        failed[0]!.message
      }); the rest delivered`,
      failed,
    );
  }

  /** One stream's records (or groups of them: `count` records) in one request; its answer's counts. */
  async #post(
    stream: string,
    records: (Uint8Array | string)[],
    count: number,
    signal: AbortSignal,
  ): Promise<{ failed: number; error?: string }> {
    const c = this.#c;
    // Bodies are built in reused buffers (as the http sink's): one per request in flight.
    const need = jsonArraySize(records);
    let pooled = this.#pool.pop();
    if (!pooled || pooled.length < need) pooled = new Uint8Array(Math.max(need, MIN_POOLED));
    const body = joinJsonArray(records, pooled);
    const payload = c.gzip ? await gzipBody(body, c.gzip_level) : body;
    // Compressed: the body's buffer can carry the next request's at once (one such buffer for
    // all the requests in flight, not one each: ~1 MB each of peak RSS).
    if (c.gzip) this.#recycle(pooled);
    const url = `${c.url.replace(/\/+$/, "")}/api/${encodeURIComponent(c.org)}/${
      encodeURIComponent(stream)
    }/_json`;
    const headers: Record<string, string> = {
      authorization: this.#auth,
      "content-type": "application/json",
    };
    if (c.gzip) headers["content-encoding"] = "gzip";
    let answer: {
      status?: { name?: string; successful?: number; failed?: number; error?: string }[];
    };
    try {
      answer = await retry(async () => {
        const res = await fetch(url, {
          method: "POST",
          headers,
          body: payload as Uint8Array<ArrayBuffer>,
          signal: AbortSignal.any([signal, AbortSignal.timeout(c.timeout)]),
        });
        const text = await res.text();
        if (!res.ok) {
          throw new RetryableError(
            `${url} answered ${res.status} ${res.statusText}: ${text.slice(0, 200)}`,
            {
              status: res.status,
              retryAfter: parseRetryAfter(res.headers.get("retry-after")),
              configuration: httpVerdict(res.status) === "configuration",
            },
          );
        }
        try {
          return JSON.parse(text);
        } catch {
          return {};
        }
      }, {
        ...c.retry,
        signal,
        onRetry: (e, attempt, wait) => {
          this.#m.retries.inc();
          if (isConfigurationError(e)) {
            if (performance.now() - this.#configWarnedAt < CONFIG_WARN_EVERY) return;
            this.#configWarnedAt = performance.now();
            this.#log.warn(
              "openobserve refuses our requests: a configuration problem (url, org, user, password); retrying until it is fixed",
              { stream, error: e },
            );
            return;
          }
          this.#log.warn("openobserve request failed; retrying", {
            stream,
            attempt,
            wait_ms: Math.round(wait),
            error: e,
          });
        },
      });
    } catch (e) {
      // Refused for good only when OpenObserve refused the content (a 4xx that is not retried);
      // shutting down, retries run out or anything unexpected: a later try may succeed.
      throw new SinkError(
        `openobserve: ${count} records to stream ${stream} not delivered: ${errorChain(e)}`,
        {
          cause: e,
          retryable: signal.aborted || !isRefusal(e),
        },
      );
    } finally {
      // Every request on it was answered or aborted: the buffer can carry the next body; a
      // compressed copy is freed now, not at the next full collection (it outlived the young
      // generation while the request was in flight).
      if (c.gzip) detachWhole(payload);
      else this.#recycle(pooled);
    }
    this.#m.requests.inc();
    let failed = 0, ok = 0;
    for (const s of answer.status ?? []) {
      failed += s.failed ?? 0;
      ok += s.successful ?? 0;
    }
    if (answer.status === undefined) ok = count;
    this.#m.ok.inc(ok);
    const errors = (answer.status ?? []).map((s) => s.error).filter((e) => e !== undefined);
    if (failed > 0) {
      this.#m.failed.inc(failed);
      // All failed: the caller reports them (dead letter). Some: they cannot be named.
      if (failed < count) {
        this.#log.error("openobserve rejected some records (it does not say which)", {
          stream,
          failed,
          successful: ok,
          errors: errors.slice(0, 5),
        });
      }
    }
    return { failed, ...(errors[0] !== undefined && { error: errors[0] }) };
  }

  /** `body` can carry another request's body (large ones are not kept). */
  #recycle(body: Uint8Array): void {
    if (body.length <= MAX_POOLED) this.#pool.push(body);
  }

  async close(): Promise<void> {}
}
