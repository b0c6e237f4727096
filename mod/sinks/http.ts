/**
 * The `http` sink: POST batches of lines (newline-delimited body, optionally gzip) round-robin
 * over several endpoints on keep-alive connections.
 *
 * Endpoint health: an endpoint whose request fails (network error, timeout, 408/429/5xx) leaves
 * the rotation for a cooldown (0.5 s, doubling on each further failure, at most 30 s; a
 * Retry-After answer sets it to the server's wish, capped at `retry.max_backoff`). When the
 * cooldown is over, one request at a time probes it (the others keep using healthy endpoints);
 * the first success puts it back into rotation. A failed batch is retried on the next healthy
 * endpoint; retry.ts decides how often and how long to wait.
 *
 * What an answer means is decided in retry.ts ({@link httpVerdict}):
 * - 413 Payload Too Large: the batch is split in halves, and halves again, until each part goes
 *   through; a single line still too large is reported in a {@link BatchError} (`too_large`)
 *   while the rest is delivered.
 * - 400, 422 (any 4xx other than 401/403/404/408/411/413/429): the content is refused for good: a
 *   {@link SinkError} with `retryable: false`, reason `rejected` (after a split, a BatchError with
 *   the refused part's lines). Nothing is retried; the pipeline dead-letters the lines.
 * - 401, 403, 404: a configuration problem (token, URL, permissions). The endpoint leaves the
 *   rotation, readiness says why, and the batch is retried with backoff without limit (not counted
 *   against `max_retries`) until the configuration is fixed or shutdown; one warning a minute per
 *   endpoint, not one per try.
 *
 * Header values are never logged (they carry tokens); the `headers` config field is secret.
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import {
  httpVerdict,
  isRefusal,
  isRetryable,
  parseRetryAfter,
  retry,
  RetryableError,
  retrySpec,
} from "../pipeline/retry.ts";
import { gzipBody } from "../pipeline/gzip_body.ts";
import { batchSpec } from "../pipeline/run.ts";
import {
  type Batch,
  BatchError,
  type FailedItem,
  type Sink,
  SinkError,
} from "../pipeline/types.ts";
import type { Health } from "../status/health.ts";

/** The `http:` config section (the reference streamer's keys, plus ours). */
export const httpSinkSpec = f.object({
  endpoints: f.list(
    f.string({ description: "Intake URL", pattern: /^https?:\/\/\S+$/ }),
    {
      description: "HTTP endpoints, used round-robin; a failing one is skipped until it recovers",
      default: ["http://127.0.0.1:8080"],
      minItems: 1,
    },
  ),
  ...batchSpec,
  timeout: f.duration({ description: "Per-request timeout", default: "30s", min: "1ms" }),
  max_idle_conns: f.int({
    description: "Idle keep-alive connections kept per endpoint",
    default: 100,
    min: 0,
  }),
  idle_conn_timeout: f.duration({
    description: "Close a keep-alive connection idle this long",
    default: "90s",
  }),
  method: f.enum(["POST", "PUT"] as const, { description: "HTTP method", default: "POST" }),
  headers: f.record(f.string({ description: "header value", allowEmpty: true }), {
    description: "Extra request headers (auth tokens: use ${ENV} or ${credential:NAME})",
    secret: true,
  }),
  chunked: f.bool({
    description:
      "Send bodies with chunked transfer encoding (Deno's fetch copies a body sent with Content-Length: ~batch_bytes of garbage per request). An endpoint answering 411 Length Required gets Content-Length from then on; off: always Content-Length",
    default: true,
  }),
  gzip: f.bool({ description: "gzip the request body (Content-Encoding: gzip)", default: false }),
  gzip_level: f.int({
    description:
      "gzip level when gzip is on: 1 is ~4x faster than 6 (~600 vs ~150 MB/s per core) for a larger body",
    default: 1,
    min: 1,
    max: 9,
  }),
  content_type: f.string({
    description: "Content-Type of the request body",
    default: "application/x-ndjson",
  }),
  retry: retrySpec,
}, {
  description: "HTTP sink: batches of lines POSTed to log intakes",
  check: (v) => {
    const seen = new Set<string>();
    const dups = v.endpoints.filter((e) => seen.size === seen.add(e).size);
    return dups.length ? [`endpoints must be distinct: ${dups.join(", ")} listed twice`] : [];
  },
});

/** The `http:` config. */
export type HttpSinkConfig = Infer<typeof httpSinkSpec>;

/** Options for {@link HttpSink}. */
export interface HttpSinkOptions {
  metrics: Registry;
  log: Logger;
  /** Gets one component, `http endpoints`: ready while at least one endpoint is in rotation. */
  health?: Health;
}

/** First cooldown of a failing endpoint; doubles per further failure up to {@link COOLDOWN_MAX}. */
const COOLDOWN_MIN = 500;
const COOLDOWN_MAX = 30_000;
/** Response bytes read so the connection can be reused; past this it is dropped instead. */
const DRAIN_LIMIT = 1 << 20;
/** A configuration problem (401, 403, 404) is logged at most once per this long per endpoint. */
const CONFIG_WARN_EVERY = 60_000;

class Endpoint {
  readonly url: string;
  /** The URL without credentials or query (tokens hide there): for logs and metric labels. */
  readonly label: string;
  /** Consecutive failures; 0 = healthy. */
  failures = 0;
  /** Out of rotation until this time (ms since epoch). */
  downUntil = 0;
  /** Not to be sent to before this time (ms since epoch): the server's Retry-After. */
  notBefore = 0;
  /** When it was last marked down (performance.now()), to not escalate on stale requests. */
  downAt = -Infinity;
  /** A probe request is in flight (only one at a time while recovering). */
  probing = false;
  /** Bodies go with Content-Length (`chunked: false`, or the endpoint answered 411). */
  lengthRequired: boolean;
  /** Why it is out of rotation (for readiness). */
  lastError = "";
  /** When a configuration problem was last logged (performance.now()), and answers since. */
  configWarnedAt = -Infinity;
  configSuppressed = 0;
  constructor(url: string, chunked: boolean) {
    this.url = url;
    this.label = safeUrl(url);
    this.lengthRequired = !chunked;
  }
}

/** `url` without user:password and query string; unchanged when it has neither. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password && !u.search) return url;
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(invalid url)";
  }
}

const NL = 10;

/**
 * Join lines into one newline-delimited body: each line followed by "\n", one copy.
 *
 * @param items the lines, without newlines.
 * @param bytes the body size when known (sum of lengths + one newline each).
 * @param into a buffer to write into when it is large enough (reused across batches).
 * @returns the body (a view of `into` when it was used).
 */
export function joinLines(items: Uint8Array[], bytes?: number, into?: Uint8Array): Uint8Array {
  let size = bytes ?? 0;
  if (bytes === undefined) { for (const l of items) size += l.length + 1; }
  const body = into && into.length >= size ? into.subarray(0, size) : new Uint8Array(size);
  let o = 0;
  for (const l of items) {
    body.set(l, o);
    o += l.length;
    body[o++] = NL;
  }
  return o === size ? body : body.subarray(0, o);
}

/**
 * `body` as a one-chunk stream: fetch sends it with chunked transfer encoding and without copying
 * it (a Uint8Array body is copied whole on every request), so the data path's reused batch
 * buffer goes out as it is.
 */
function once(body: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(body);
      c.close();
    },
  });
}

/** Read a response body up to DRAIN_LIMIT (so keep-alive can reuse the connection). */
async function drain(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  let read = 0;
  let head = "";
  try {
    while (read < DRAIN_LIMIT) {
      const { value, done } = await reader.read();
      if (done) return head;
      if (head.length < 200) head += new TextDecoder().decode(value.subarray(0, 200));
      read += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // A body that breaks off after the status line changes nothing about the answer.
  }
  return head;
}

/** Why a request failed, for the `reason` label: a status code, `timeout` or `network`. */
function reasonOf(e: unknown): string {
  if (e instanceof RetryableError && e.status !== undefined) return String(e.status);
  if (e instanceof DOMException && e.name === "TimeoutError") return "timeout";
  if (e instanceof DOMException && e.name === "AbortError") return "aborted";
  return "network";
}

/** A batch's newline-joined body, cut at line boundaries without copying. */
class Parts {
  readonly count: number;
  readonly #items: Uint8Array[];
  readonly #body: Uint8Array;
  /** Offset of each line in the body, and the body's length at the end (built on first cut). */
  #offsets: Uint32Array | undefined;

  constructor(items: Uint8Array[], body: Uint8Array) {
    this.count = items.length;
    this.#items = items;
    this.#body = body;
  }

  /** Lines [lo, hi), each followed by "\n". */
  body(lo: number, hi: number): Uint8Array {
    if (lo === 0 && hi === this.count) return this.#body;
    const offsets = this.#offsets ??= this.#index();
    return this.#body.subarray(offsets[lo], offsets[hi]);
  }

  #index(): Uint32Array {
    const offsets = new Uint32Array(this.count + 1);
    let o = 0;
    for (let i = 0; i < this.count; i++) {
      offsets[i] = o;
      o += this.#items[i]!.length + 1;
    }
    offsets[this.count] = o;
    return offsets;
  }
}

/** POSTs line batches to HTTP endpoints. */
export class HttpSink implements Sink<Uint8Array> {
  readonly kind = "http";
  readonly #c: HttpSinkConfig;
  readonly #endpoints: Endpoint[];
  readonly #client: Deno.HttpClient;
  readonly #log: Logger;
  readonly #health: Health | undefined;
  readonly #headers: Record<string, string>;
  readonly #errors;
  readonly #duration;
  readonly #up;
  #next = 0;
  /** Body buffers of answered requests, reused: less garbage per GB sent. */
  #pool: Uint8Array[] = [];

  /**
   * @param config the `http:` section, parsed by {@link httpSinkSpec}.
   * @param options where metrics, logs and health go.
   */
  constructor(config: HttpSinkConfig, { metrics, log, health }: HttpSinkOptions) {
    if (config.endpoints.length === 0) throw new TypeError("http sink needs at least one endpoint");
    this.#c = config;
    this.#endpoints = config.endpoints.map((url) => new Endpoint(url, config.chunked));
    this.#client = Deno.createHttpClient({
      poolMaxIdlePerHost: config.max_idle_conns,
      poolIdleTimeout: config.idle_conn_timeout,
    });
    this.#log = log;
    this.#health = health;
    this.#headers = { ...config.headers, "content-type": config.content_type };
    if (config.gzip) this.#headers["content-encoding"] = "gzip";
    this.#errors = metrics.counter("http_errors_total", "Failed HTTP attempts", [
      "endpoint",
      "reason",
    ]);
    this.#duration = metrics.histogram(
      "http_request_duration_seconds",
      "HTTP request duration, successful or not",
    );
    this.#up = metrics.gauge("http_endpoint_up", "1 while an endpoint is in rotation", [
      "endpoint",
    ]);
    for (const e of this.#endpoints) this.#up.set(1, { endpoint: e.label });
    this.#reportHealth();
  }

  /**
   * The endpoint for the next request: healthy ones round-robin; a recovering one whose cooldown
   * is over is taken by one request at a time (the probe). When none is available, the one back
   * soonest (the retry policy then paces the requests), skipping any whose server asked us to
   * wait (Retry-After). Undefined when every endpoint asked us to wait.
   */
  #pick(now: number): Endpoint | undefined {
    const n = this.#endpoints.length;
    for (let i = 0; i < n; i++) {
      const e = this.#endpoints[(this.#next + i) % n]!;
      if (e.downUntil > now || e.notBefore > now || (e.failures > 0 && e.probing)) continue;
      this.#next = (this.#next + i + 1) % n;
      if (e.failures > 0) e.probing = true;
      return e;
    }
    let best: Endpoint | undefined;
    for (const e of this.#endpoints) {
      if (e.notBefore <= now && (!best || e.downUntil < best.downUntil)) best = e;
    }
    return best;
  }

  /**
   * How long a retry should wait (ms): 0 when a healthy endpoint can take it now, undefined when
   * only recovering ones can (the backoff decides), else until the first Retry-After ends.
   */
  #retryWait(now: number): number | undefined {
    let soonest = Infinity;
    let fallback = false;
    for (const e of this.#endpoints) {
      if (e.notBefore > now) soonest = Math.min(soonest, e.notBefore - now);
      else if (e.downUntil <= now && !(e.failures > 0 && e.probing)) return 0;
      else fallback = true;
    }
    return fallback ? undefined : soonest;
  }

  #markDown(
    e: Endpoint,
    startedAt: number,
    why: string,
    retryAfter: number | undefined,
    quiet = false,
  ): void {
    e.lastError = why;
    // Requests sent before the endpoint was marked down fail too: one outage, one escalation.
    if (startedAt >= e.downAt || retryAfter !== undefined) {
      e.failures++;
      let cooldown = Math.min(COOLDOWN_MAX, COOLDOWN_MIN * 2 ** Math.min(e.failures - 1, 16));
      if (retryAfter !== undefined) {
        cooldown = Math.min(retryAfter, this.#c.retry.max_backoff);
        e.notBefore = Date.now() + cooldown;
      }
      e.downUntil = Math.max(e.downUntil, Date.now() + cooldown);
      e.downAt = performance.now();
      if (e.failures === 1 && !quiet) {
        this.#log.warn("HTTP endpoint out of rotation", {
          endpoint: e.label,
          error: why,
          cooldown_ms: Math.round(cooldown),
        });
      } else {
        this.#log.debug("HTTP endpoint still failing", { endpoint: e.label, error: why });
      }
    }
    this.#up.set(0, { endpoint: e.label });
    this.#reportHealth();
  }

  #markUp(e: Endpoint): void {
    if (e.failures > 0) this.#log.info("HTTP endpoint back in rotation", { endpoint: e.label });
    e.failures = 0;
    e.downUntil = 0;
    e.lastError = "";
    e.configWarnedAt = -Infinity;
    e.configSuppressed = 0;
    this.#up.set(1, { endpoint: e.label });
    this.#reportHealth();
  }

  #reportHealth(): void {
    if (!this.#health) return;
    const down = this.#endpoints.filter((e) => e.failures > 0);
    this.#health.set(
      "http endpoints",
      down.length < this.#endpoints.length,
      down.length
        ? `out of rotation: ${down.map((e) => `${e.label} (${e.lastError})`).join(", ")}`
        : undefined,
    );
  }

  /** A configuration problem: one warning a minute per endpoint, the others counted in it. */
  #configWarn(e: Endpoint, status: number, why: string): void {
    const now = performance.now();
    if (now - e.configWarnedAt < CONFIG_WARN_EVERY) {
      e.configSuppressed++;
      return;
    }
    this.#log.warn(
      "HTTP endpoint refuses our requests: a configuration problem (URL, headers, token, permissions); retrying until it is fixed",
      {
        endpoint: e.label,
        status,
        error: why,
        ...(e.configSuppressed > 0 && { answers_since_last_warning: e.configSuppressed }),
      },
    );
    e.configWarnedAt = now;
    e.configSuppressed = 0;
  }

  /**
   * One request to one endpoint; throws a RetryableError (or fetch's error) when it fails: with
   * `retryable: false` and the status for a refusal (413, 400, ...), with `configuration: true`
   * for 401/403/404.
   */
  async #send(e: Endpoint, body: Uint8Array, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    try {
      const res = await fetch(e.url, {
        method: this.#c.method,
        body: e.lengthRequired ? body as Uint8Array<ArrayBuffer> : once(body),
        headers: this.#headers,
        client: this.#client,
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.#c.timeout)]),
      });
      const text = await drain(res);
      this.#duration.observe((performance.now() - started) / 1000, { endpoint: e.label });
      if (res.ok) {
        e.probing = false;
        this.#markUp(e);
        return;
      }
      if (res.status === 411 && !e.lengthRequired) {
        // The intake wants Content-Length: send it that from now on, and this batch again now.
        e.lengthRequired = true;
        e.probing = false;
        this.#log.warn("HTTP endpoint requires Content-Length: chunked bodies off for it", {
          endpoint: e.label,
        });
        throw new RetryableError(`${e.label} answered 411 Length Required`, {
          status: 411,
          retryAfter: 0,
          retryable: true,
        });
      }
      const retryAfter = res.status === 429 || res.status === 503
        ? parseRetryAfter(res.headers.get("retry-after"))
        : undefined;
      const snippet = text.trim().slice(0, 200);
      const verdict = httpVerdict(res.status);
      throw new RetryableError(
        `${e.label} answered ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ""}`,
        { status: res.status, retryAfter, configuration: verdict === "configuration" },
      );
    } catch (err) {
      e.probing = false;
      if (!(err instanceof RetryableError)) {
        this.#duration.observe((performance.now() - started) / 1000, { endpoint: e.label });
      }
      if (signal.aborted) throw err; // shutting down: not the endpoint's fault
      this.#errors.inc(1, { endpoint: e.label, reason: reasonOf(err) });
      if (err instanceof RetryableError && err.status === 411 && err.retryable) throw err;
      if (err instanceof RetryableError && err.configuration) {
        this.#markDown(e, started, errorChain(err), undefined, true);
        this.#configWarn(e, err.status!, errorChain(err));
        throw err;
      }
      if (err instanceof RetryableError && !err.retryable) {
        this.#markUp(e); // it answered: up, only this content is refused
        throw err;
      }
      if (isRetryable(err)) {
        const retryAfter = err instanceof RetryableError ? err.retryAfter : undefined;
        this.#markDown(e, started, errorChain(err), retryAfter);
        // Another endpoint may take the batch now: wait only while every one asked us to.
        if (retryAfter !== undefined) {
          throw new RetryableError((err as Error).message, {
            cause: err,
            status: (err as RetryableError).status,
            retryAfter: this.#retryWait(Date.now()),
          });
        }
      }
      throw err;
    }
  }

  /**
   * POST one batch; resolves once an endpoint answered 2xx for every line of it.
   *
   * @throws {BatchError} when lines were refused for good after a 413 split (the rest delivered).
   * @throws {SinkError} after `retry.max_retries` retries (`retryable: true`), on a refusal of the
   *   whole batch (400, 422: `retryable: false`, reason `rejected`), or when `signal` aborts.
   */
  async write(batch: Batch<Uint8Array>, signal: AbortSignal): Promise<void> {
    // The data path hands over the newline-joined body; other callers get one built here.
    const pooled = batch.body
      ? undefined
      : this.#pool.pop() ?? new Uint8Array(this.#c.batch_bytes + 64 * 1024);
    try {
      const body = batch.body ?? joinLines(batch.items, batch.bytes, pooled);
      const failed: FailedItem[] = [];
      await this.#deliver(new Parts(batch.items, body), 0, batch.items.length, failed, signal);
      if (failed.length > 0) {
        throw new BatchError(
          `${failed.length} of ${batch.items.length} lines refused for good (${
            failed[0]!.reason
          }: ${failed[0]!.message}); the rest delivered`,
          failed,
        );
      }
    } finally {
      // Every request on it was answered or aborted: the buffer can carry the next batch.
      if (pooled) this.#pool.push(pooled);
    }
  }

  /**
   * Deliver lines [lo, hi) of a batch; a 413 splits the range in halves. Lines refused for good
   * after a split are added to `failed`; a refusal of the whole batch throws.
   */
  async #deliver(
    parts: Parts,
    lo: number,
    hi: number,
    failed: FailedItem[],
    signal: AbortSignal,
  ): Promise<void> {
    try {
      await this.#post(parts.body(lo, hi), hi - lo, signal);
    } catch (e) {
      const status = e instanceof SinkError && e.cause instanceof RetryableError
        ? e.cause.status
        : undefined;
      const verdict = status === undefined || (e as SinkError).retryable
        ? undefined
        : httpVerdict(status);
      if (verdict === "too_large" && hi - lo > 1) {
        const mid = lo + Math.floor((hi - lo) / 2);
        await this.#deliver(parts, lo, mid, failed, signal);
        await this.#deliver(parts, mid, hi, failed, signal);
        return;
      }
      const whole = lo === 0 && hi === parts.count;
      if (verdict === undefined || (whole && verdict !== "too_large")) throw e;
      const reason = verdict === "too_large" ? "too_large" : "rejected";
      const message = errorChain((e as SinkError).cause);
      for (let i = lo; i < hi; i++) failed.push({ index: i, reason, message });
    }
  }

  /** One body through the retry policy; throws a SinkError once it gives up. */
  async #post(part: Uint8Array, lines: number, signal: AbortSignal): Promise<void> {
    let attempts = 0;
    try {
      const body = this.#c.gzip ? await gzipBody(part, this.#c.gzip_level) : part;
      await retry(() => {
        const now = Date.now();
        const e = this.#pick(now);
        if (!e) {
          // Every endpoint asked us to wait (Retry-After): wait for the soonest, no request.
          return Promise.reject(
            new RetryableError(
              `every endpoint asked to retry later (Retry-After)`,
              { retryAfter: this.#retryWait(now) },
            ),
          );
        }
        attempts++;
        return this.#send(e, body, signal);
      }, { ...this.#c.retry, signal });
    } catch (e) {
      // Only the intake's refusal of this content is for good; anything else may pass later.
      const retryable = !isRefusal(e) || signal.aborted;
      throw new SinkError(
        `gave up on a batch of ${lines} lines after ${attempts} attempt(s): ${errorChain(e)}`,
        { cause: e, retryable },
      );
    }
  }

  /** Close the keep-alive connections. */
  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }
}
