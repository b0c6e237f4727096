/**
 * Amazon RDS as a log source: the instances (filtered by engine, identifier prefix and tags),
 * their log files (DescribeDBLogFiles: name, size, LastWritten) and a file's new part
 * (DownloadDBLogFilePortion from a marker, page by page). Every call waits its turn on a shared
 * token bucket (`rate_limit` calls per second) and is retried with backoff when RDS throttles,
 * the limit the reference ran into with many instances.
 *
 * The SDK is loaded on first use, so modes that do not read RDS do not pay for it.
 * @module
 */

import type { RDSClient } from "@aws-sdk/client-rds";
import { f, type Infer } from "../config/spec.ts";
import type { Logger } from "../log/logger.ts";
import { isRetryable, retry } from "../pipeline/retry.ts";
import { TokenBucket } from "../pipeline/token_bucket.ts";
import { awsClientConfig, awsFields } from "./aws.ts";
import { awsErrorName } from "./aws_errors.ts";

/** The engines whose logs the parsers know. */
export const ENGINES = ["aurora-postgresql", "aurora-mysql", "postgres", "mysql"] as const;
/** A supported engine. */
export type Engine = (typeof ENGINES)[number];

/** The `rds:` settings. */
export const rdsSpec = f.object({
  ...awsFields,
  engines: f.list(f.enum(ENGINES, { description: "engine" }), {
    description: "Only instances of these engines",
    default: [...ENGINES],
    minItems: 1,
  }),
  identifier_prefix: f.string({
    description: "Only instances whose identifier starts with this",
    default: "",
  }),
  tags: f.record(f.string({ description: "tag value" }), {
    description: "Only instances with all these tags (key: value)",
    default: {},
  }),
  rate_limit: f.number({
    description: "RDS API calls per second at most (shared by all calls of this process)",
    default: 5,
    min: 0.1,
  }),
}, { description: "Which RDS instances, and how fast to ask" });

/** RDS settings. */
export type RdsConfig = Infer<typeof rdsSpec>;

/** An instance whose logs are collected. */
export interface DbInstance {
  id: string;
  engine: Engine;
}

/** One log file of an instance. */
export interface DbLogFile {
  name: string;
  size: number;
  /** LastWritten, ms since the epoch. */
  lastWritten: number;
}

/** RDS calls, paced and retried. */
export class Rds {
  readonly #client: RDSClient;
  readonly #sdk: typeof import("@aws-sdk/client-rds");
  readonly #bucket: TokenBucket;
  readonly #c: RdsConfig;
  readonly #log: Logger;
  /** Called on every throttled call (count it). */
  onThrottle: () => void = () => {};

  private constructor(
    sdk: typeof import("@aws-sdk/client-rds"),
    client: RDSClient,
    c: RdsConfig,
    log: Logger,
  ) {
    this.#sdk = sdk;
    this.#client = client;
    this.#c = c;
    this.#log = log;
    this.#bucket = new TokenBucket(
      c.rate_limit,
      Math.max(1, c.rate_limit),
      () => performance.now(),
    );
  }

  /** A client from the SDK's default credential chain and `c`'s region/endpoint. */
  static async open(c: RdsConfig, log: Logger): Promise<Rds> {
    const sdk = await import("@aws-sdk/client-rds");
    return new Rds(sdk, new sdk.RDSClient({ ...await awsClientConfig(c), maxAttempts: 1 }), c, log);
  }

  async #call<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return await retry(async () => {
      for (;;) {
        const n = this.#bucket.take(1);
        if (n) break;
        await new Promise((r) => setTimeout(r, Math.max(1, this.#bucket.msUntil(1))));
      }
      return await fn();
    }, {
      max_retries: 8,
      initial_backoff: 200,
      max_backoff: 20_000,
      signal,
      retryable: (e) => isThrottle(e) || isRetryable(e),
      onRetry: (e, attempt, wait) => {
        if (isThrottle(e)) this.onThrottle();
        this.#log.warn(`RDS ${what} failed; retrying`, {
          attempt,
          wait_ms: Math.round(wait),
          error: e,
        });
      },
    });
  }

  /** Instances matching engines, identifier prefix and tags. */
  async instances(signal?: AbortSignal): Promise<DbInstance[]> {
    const out: DbInstance[] = [];
    let marker: string | undefined;
    const engines = new Set<string>(this.#c.engines);
    const wantTags = Object.entries(this.#c.tags);
    do {
      const r = await this.#call(
        "DescribeDBInstances",
        () =>
          this.#client.send(
            new this.#sdk.DescribeDBInstancesCommand({
              Marker: marker,
              Filters: [{ Name: "engine", Values: [...engines] }],
            }),
            { abortSignal: signal },
          ),
        signal,
      );
      for (const db of r.DBInstances ?? []) {
        const id = db.DBInstanceIdentifier;
        if (!id || !db.Engine || !engines.has(db.Engine)) continue;
        if (!id.startsWith(this.#c.identifier_prefix)) continue;
        const tags = new Map((db.TagList ?? []).map((t) => [t.Key, t.Value]));
        if (!wantTags.every(([k, v]) => tags.get(k) === v)) continue;
        out.push({ id, engine: db.Engine as Engine });
      }
      marker = r.Marker;
    } while (marker);
    return out;
  }

  /** An instance's log files. */
  async logFiles(instance: string, signal?: AbortSignal): Promise<DbLogFile[]> {
    const out: DbLogFile[] = [];
    let marker: string | undefined;
    do {
      const r = await this.#call(
        "DescribeDBLogFiles",
        () =>
          this.#client.send(
            new this.#sdk.DescribeDBLogFilesCommand({
              DBInstanceIdentifier: instance,
              Marker: marker,
            }),
            { abortSignal: signal },
          ),
        signal,
      );
      for (const lf of r.DescribeDBLogFiles ?? []) {
        if (!lf.LogFileName) continue;
        out.push({ name: lf.LogFileName, size: lf.Size ?? 0, lastWritten: lf.LastWritten ?? 0 });
      }
      marker = r.Marker;
    } while (marker);
    return out;
  }

  /**
   * A log file from `marker` ("0": its start) as a byte stream, page by page;
   * `progress.marker` is where the next read continues once the stream is done.
   */
  portion(
    instance: string,
    file: string,
    marker: string,
    signal: AbortSignal,
  ): { body: ReadableStream<Uint8Array>; progress: { marker: string } } {
    const progress = { marker };
    const enc = new TextEncoder();
    let done = false;
    const body = new ReadableStream<Uint8Array>({
      pull: async (ctrl) => {
        if (done) return ctrl.close();
        const r = await this.#call(
          "DownloadDBLogFilePortion",
          () =>
            this.#client.send(
              new this.#sdk.DownloadDBLogFilePortionCommand({
                DBInstanceIdentifier: instance,
                LogFileName: file,
                Marker: progress.marker,
              }),
              { abortSignal: signal },
            ),
          signal,
        );
        if (r.LogFileData) ctrl.enqueue(enc.encode(r.LogFileData));
        if (r.Marker) progress.marker = r.Marker;
        if (!r.AdditionalDataPending) {
          done = true;
          ctrl.close();
        }
      },
    }, { highWaterMark: 0 });
    return { body, progress };
  }
}

/** RDS said slow down. */
export function isThrottle(e: unknown): boolean {
  const n = awsErrorName(e);
  return n === "Throttling" || n === "ThrottlingException" || n === "RequestLimitExceeded" ||
    n === "TooManyRequestsException";
}

/** A stable shard of an instance: FNV-1a of its identifier mod `count`. */
export function shardOf(id: string, count: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % count;
}
