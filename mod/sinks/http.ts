/**
 * The `http` sink: POST batches of lines (newline-delimited body, optionally gzip) round-robin
 * over several endpoints on keep-alive connections. An endpoint that fails is skipped for a
 * cooldown that grows while it keeps failing and comes back into rotation as soon as an attempt
 * on it succeeds; a failed batch is retried on the next healthy endpoint (retry.ts decides how
 * often and how long to wait, honouring Retry-After on 429/503).
 * @module
 */

import zlib from "node:zlib";
import { f, type Infer } from "../config/spec.ts";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import {
  isRetryable,
  parseRetryAfter,
  retry,
  RetryableError,
  retryableStatus,
  retrySpec,
} from "../pipeline/retry.ts";
import { batchSpec } from "../pipeline/run.ts";
import { type Batch, type Sink, SinkError } from "../pipeline/types.ts";
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
  headers: f.record(f.string({ description: "header value", allowEmpty: true }), {
    description: "Extra request headers (auth tokens: use ${ENV} or ${credential:NAME})",
    secret: true,
  }),
  gzip: f.bool({ description: "gzip the request body (Content-Encoding: gzip)", default: false }),
  content_type: f.string({
    description: "Content-Type of the request body",
    default: "application/x-ndjson",
  }),
  retry: retrySpec,
}, { description: "HTTP sink: batches of lines POSTed to log intakes" });

/** The `http:` config. */
export type HttpSinkConfig = Infer<typeof httpSinkSpec>;

interface Endpoint {
  url: string;
  failures: number;
  /** Skipped until this time (ms since epoch). */
  downUntil: number;
}

const NL = 10;

/** Join lines into one newline-delimited body (one copy). */
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

/** POSTs line batches to HTTP endpoints. */
export class HttpSink implements Sink<Uint8Array> {
  readonly kind = "http";
  readonly #c: HttpSinkConfig;
  readonly #endpoints: Endpoint[];
  readonly #client: Deno.HttpClient;
  readonly #log: Logger;
  readonly #health: Health | undefined;
  readonly #errors;
  readonly #duration;
  readonly #up;
  #next = 0;
  /** Body buffers of finished requests, reused: less garbage per GB sent. */
  #pool: Uint8Array[] = [];

  constructor(
    config: HttpSinkConfig,
    { metrics, log, health }: { metrics: Registry; log: Logger; health?: Health },
  ) {
    this.#c = config;
    this.#endpoints = config.endpoints.map((url) => ({ url, failures: 0, downUntil: 0 }));
    this.#client = Deno.createHttpClient({
      poolMaxIdlePerHost: config.max_idle_conns,
      poolIdleTimeout: config.idle_conn_timeout,
    });
    this.#log = log;
    this.#health = health;
    this.#errors = metrics.counter("http_errors_total", "Failed HTTP attempts", ["endpoint"]);
    this.#duration = metrics.histogram(
      "http_request_duration_seconds",
      "HTTP request duration, successful or not",
    );
    this.#up = metrics.gauge("http_endpoint_up", "1 while an endpoint is in rotation", [
      "endpoint",
    ]);
    for (const e of this.#endpoints) {
      this.#up.set(1, { endpoint: e.url });
      health?.set(`http:${e.url}`, true);
    }
  }

  /** The next endpoint in rotation, skipping those cooling down (all down: the soonest back). */
  #pick(): Endpoint {
    const now = Date.now();
    const n = this.#endpoints.length;
    for (let i = 0; i < n; i++) {
      const e = this.#endpoints[(this.#next + i) % n]!;
      if (e.downUntil <= now) {
        this.#next = (this.#next + i + 1) % n;
        return e;
      }
    }
    return this.#endpoints.reduce((a, b) => (b.downUntil < a.downUntil ? b : a));
  }

  #markDown(e: Endpoint, why: string): void {
    e.failures++;
    const cooldown = Math.min(30_000, 500 * 2 ** Math.min(e.failures - 1, 6));
    e.downUntil = Date.now() + cooldown;
    this.#up.set(0, { endpoint: e.url });
    this.#health?.set(`http:${e.url}`, false, why);
  }

  #markUp(e: Endpoint): void {
    if (e.failures > 0 || e.downUntil > 0) {
      this.#log.info("endpoint back in rotation", { endpoint: e.url });
    }
    e.failures = 0;
    e.downUntil = 0;
    this.#up.set(1, { endpoint: e.url });
    this.#health?.set(`http:${e.url}`, true);
  }

  async write(batch: Batch<Uint8Array>, signal: AbortSignal): Promise<void> {
    const pooled = this.#pool.pop() ?? new Uint8Array(this.#c.batch_bytes + 64 * 1024);
    let body = joinLines(batch.items, batch.bytes, pooled);
    const headers: Record<string, string> = {
      ...this.#c.headers,
      "content-type": this.#c.content_type,
    };
    if (this.#c.gzip) {
      body = new Uint8Array(zlib.gzipSync(body, { level: 1 }));
      headers["content-encoding"] = "gzip";
    }
    let attempts = 0;
    try {
      await retry(async () => {
        attempts++;
        const e = this.#pick();
        const started = performance.now();
        try {
          const res = await fetch(e.url, {
            method: "POST",
            body: body as Uint8Array<ArrayBuffer>,
            headers,
            client: this.#client,
            signal: AbortSignal.any([signal, AbortSignal.timeout(this.#c.timeout)]),
          });
          await res.body?.cancel();
          this.#duration.observe((performance.now() - started) / 1000);
          if (res.ok) {
            this.#markUp(e);
            return;
          }
          throw new RetryableError(`${e.url} answered ${res.status} ${res.statusText}`, {
            retryable: retryableStatus(res.status),
            retryAfter: parseRetryAfter(res.headers.get("retry-after")),
          });
        } catch (err) {
          this.#duration.observe((performance.now() - started) / 1000);
          this.#errors.inc(1, { endpoint: e.url });
          const why = errorChain(err);
          if (isRetryable(err)) this.#markDown(e, why);
          this.#log.warn("HTTP send failed", {
            endpoint: e.url,
            error: why,
            lines: batch.items.length,
          });
          throw err;
        }
      }, { ...this.#c.retry, signal });
      // The request is answered, so its body was sent: the buffer can carry the next batch.
      this.#pool.push(pooled);
    } catch (e) {
      this.#pool.push(pooled);
      throw new SinkError(
        `gave up on a batch of ${batch.items.length} lines after ${attempts} attempt(s): ${
          errorChain(e)
        }`,
        { cause: e, retryable: isRetryable(e) },
      );
    }
  }

  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }
}
