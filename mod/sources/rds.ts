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
import { f, type Infer, parseValue } from "../config/spec.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { isRetryable, retry, sleep } from "../pipeline/retry.ts";
import { TokenBucket } from "../pipeline/token_bucket.ts";
import { awsClientConfig, awsFields } from "./aws.ts";
import { awsErrorName } from "./aws_errors.ts";
import { takeXmlText } from "./rds_log_data.ts";

/** The engines whose logs the parsers know. */
export const ENGINES = ["aurora-postgresql", "aurora-mysql", "postgres", "mysql"] as const;
/** A supported engine. */
export type Engine = (typeof ENGINES)[number];

const rateLimit = f.number({
  description: "RDS API calls per second at most (shared by all calls of this process)",
  default: 5,
  min: 0.1,
});

/** The `rds:` settings of `discover`: which instances, and how fast to ask. */
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
  rate_limit: rateLimit,
}, { description: "Which RDS instances, and how fast to ask" });

/** The `rds:` settings of `process`: where log files are read, and how fast. */
export const rdsReadSpec = f.object({
  ...awsFields,
  rate_limit: rateLimit,
  lines_per_call: f.int({
    description:
      "NumberOfLines asked per DownloadDBLogFilePortion call at most; fewer when RDS cuts a portion at 1 MB",
    default: 10000,
    min: 1,
    max: 10000,
  }),
}, { description: "Where the log files are read (DownloadDBLogFilePortion), and how fast" });

/** RDS settings: `discover`'s or `process`'s. */
export type RdsConfig = Infer<typeof rdsSpec> | Infer<typeof rdsReadSpec>;

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

/** How far `Rds.portion()` got, and what it met on the way. */
export interface PortionProgress {
  /** Where the next read continues once the stream is done. */
  marker: string;
  /** RDS answered that the file (or its instance) no longer exists: the stream ended there. */
  gone: boolean;
  /** Lines longer than one portion (1 MB), kept as RDS cut them. */
  linesCut: number;
}

/** One answer of DownloadDBLogFilePortion: whole lines, and where the next one starts. */
export interface Portion {
  /**
   * The lines, UTF-8, each with its newline: a view of the reader's buffer, valid until its next
   * `read` (a 1 MB answer is not allocated anew per call).
   */
  data: Uint8Array;
  /** Where the next portion starts. */
  marker: string;
  /** RDS has more of the file after it (AdditionalDataPending). */
  more: boolean;
  /** RDS answered that the file (or its instance) no longer exists: `data` is empty. */
  gone: boolean;
  /** Lines longer than one portion (1 MB), kept as RDS cut them. */
  linesCut: number;
}

/** Reads one log file portion by portion: {@linkcode Rds.reader}. */
export interface PortionReader {
  /**
   * The portion at `marker` ("0": the file's start). RDS answers at most 1 MB a call: a portion
   * whose lines are longer is cut there, ends with "[Your log message was truncated]", and its
   * marker points past the lines asked for, so the rest of them would be lost. Each call asks for
   * `lines_per_call` lines at most and for fewer when the last ones were long (aiming at 90% of
   * the limit); a cut portion is asked again from the same marker with fewer lines, down to one.
   * A single line longer than 1 MB cannot be read whole through this API: it is kept as RDS cut
   * it and counted in `linesCut`.
   */
  read(marker: string, signal: AbortSignal): Promise<Portion>;
}

/** The text RDS puts where it cut a portion at its 1 MB limit. */
const CUT = /\n? ?\[Your log message was truncated\]\n?$/;
/** RDS's limit on one portion; `portion()` aims below it. */
const PORTION_LIMIT = 1 << 20;

/** RDS calls, paced and retried. */
export class Rds {
  readonly #client: RDSClient;
  readonly #sdk: typeof import("@aws-sdk/client-rds");
  readonly #bucket: TokenBucket;
  readonly #c: RdsConfig;
  readonly #log: Logger;
  readonly #m;

  private constructor(
    sdk: typeof import("@aws-sdk/client-rds"),
    client: RDSClient,
    c: RdsConfig,
    log: Logger,
    metrics: Registry,
  ) {
    this.#m = {
      throttled: metrics.counter("rds_throttled_total", "RDS calls throttled and retried"),
      cut: metrics.counter(
        "rds_portions_cut_total",
        "Portions RDS cut at 1 MB, asked again with fewer lines",
      ),
    };
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

  /**
   * A client from the SDK's default credential chain and `c`'s region/endpoint; throttled calls
   * and cut portions are counted in `metrics` (`rds_throttled_total`, `rds_portions_cut_total`).
   */
  static async open(c: RdsConfig, log: Logger, metrics: Registry): Promise<Rds> {
    const sdk = await import("@aws-sdk/client-rds");
    return new Rds(
      sdk,
      new sdk.RDSClient({ ...await awsClientConfig(c), maxAttempts: 1 }),
      c,
      log,
      metrics,
    );
  }

  async #call<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return await retry(async () => {
      for (;;) {
        const n = this.#bucket.take(1);
        if (n) break;
        signal?.throwIfAborted();
        await sleep(Math.max(1, this.#bucket.msUntil(1)), signal);
      }
      return await fn();
    }, {
      max_retries: 8,
      initial_backoff: 200,
      max_backoff: 20_000,
      signal,
      retryable: (e) => isThrottle(e) || isRetryable(e),
      onRetry: (e, attempt, wait) => {
        if (isThrottle(e)) this.#m.throttled.inc();
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
    const c = "engines" in this.#c ? this.#c : parseValue(rdsSpec, {});
    const engines = new Set<string>(c.engines);
    const wantTags = Object.entries(c.tags);
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
        if (!id.startsWith(c.identifier_prefix)) continue;
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
   * A reader of one log file, portion by portion (see {@linkcode PortionReader.read}); it
   * remembers how long the file's lines were, to ask for fewer of them when they are long.
   */
  reader(instance: string, file: string): PortionReader {
    const max = "lines_per_call" in this.#c ? this.#c.lines_per_call : 10000;
    const state: ReaderState = { lines: max, limit: PORTION_LIMIT, max };
    return { read: (marker, signal) => this.#read(state, instance, file, marker, signal) };
  }

  /**
   * A log file from `marker` ("0": its start) as one byte stream, portion by portion;
   * `progress.marker` is where the next read continues once the stream is done. See
   * {@linkcode PortionReader.read}.
   */
  portion(
    instance: string,
    file: string,
    marker: string,
    signal: AbortSignal,
  ): { body: ReadableStream<Uint8Array>; progress: PortionProgress } {
    const progress: PortionProgress = { marker, gone: false, linesCut: 0 };
    const reader = this.reader(instance, file);
    let done = false;
    const body = new ReadableStream<Uint8Array>({
      pull: async (ctrl) => {
        if (done) return ctrl.close();
        const p = await reader.read(progress.marker, signal);
        progress.marker = p.marker;
        progress.gone = p.gone;
        progress.linesCut += p.linesCut;
        if (p.data.byteLength) ctrl.enqueue(p.data.slice()); // the reader reuses its buffer
        if (!p.more) {
          done = true;
          ctrl.close();
        }
      },
    }, { highWaterMark: 0 });
    return { body, progress };
  }

  async #read(
    state: ReaderState,
    instance: string,
    file: string,
    marker: string,
    signal: AbortSignal,
  ): Promise<Portion> {
    let linesCut = 0;
    for (;;) {
      let r;
      let raw: Uint8Array | undefined;
      try {
        r = await this.#call(
          "DownloadDBLogFilePortion",
          () => {
            const cmd = new this.#sdk.DownloadDBLogFilePortionCommand({
              DBInstanceIdentifier: instance,
              LogFileName: file,
              Marker: marker,
              NumberOfLines: state.lines,
            });
            // Between the transport and the SDK's deserializer: the log text is taken out of
            // the answer as bytes (see rds_log_data.ts); the SDK reads what is left.
            cmd.middlewareStack.add(
              (next) => async (args) => {
                const out = await next(args);
                const res = out.response as { statusCode?: number; body?: unknown };
                if (res.statusCode !== 200 || !(res.body instanceof ReadableStream)) return out;
                const xml = await readInto(res.body as ReadableStream<Uint8Array>, state);
                const taken = takeXmlText(xml, "LogFileData");
                raw = taken?.text ?? new Uint8Array(0);
                res.body = taken?.rest ?? xml;
                return out;
              },
              { step: "deserialize", priority: "low", name: "edgeAgentLogFileData" },
            );
            return this.#client.send(cmd, { abortSignal: signal });
          },
          signal,
        );
      } catch (e) {
        if (!isGone(e)) throw e;
        return { data: new Uint8Array(0), marker, more: false, gone: true, linesCut };
      }
      let data = raw ?? new TextEncoder().encode(r.LogFileData ?? "");
      const cut = cutAt(data);
      if (cut >= 0) {
        data = data.subarray(0, cut);
        const whole = countLines(data, false);
        state.limit = Math.min(state.limit, data.byteLength);
        if (state.lines > 1) {
          // Cut at 1 MB: the marker RDS returned skips the rest. Ask again for fewer lines.
          this.#m.cut.inc();
          state.lines = Math.max(1, Math.min(state.lines - 1, Math.floor(whole * 0.9)));
          continue;
        }
        linesCut++;
        this.#log.warn("a log line longer than an RDS portion (1 MB) is kept cut", {
          instance,
          file,
          marker,
        });
        const line = new Uint8Array(data.byteLength + 1);
        line.set(data);
        line[data.byteLength] = 10;
        data = line;
      } else if (data.byteLength > 0 && r.AdditionalDataPending) {
        // More to come: RDS answered all the lines asked for (the last portion needs no tuning).
        const perLine = data.byteLength / state.lines;
        state.lines = Math.max(1, Math.min(state.max, Math.floor(state.limit * 0.9 / perLine)));
      }
      return {
        data,
        marker: r.Marker || marker,
        more: r.AdditionalDataPending === true,
        gone: false,
        linesCut,
      };
    }
  }
}

/** A reader's state: how many lines to ask for, and the buffer its answers are read into. */
interface ReaderState {
  lines: number;
  limit: number;
  max: number;
  /** Reused for every answer: the previous portion is consumed before the next is asked for. */
  buffer?: Uint8Array;
}

/** An answer's body in the reader's buffer (grown when too small): a view of it. */
async function readInto(body: ReadableStream<Uint8Array>, state: ReaderState): Promise<Uint8Array> {
  let buf = state.buffer ?? new Uint8Array(PORTION_LIMIT + (PORTION_LIMIT >> 2));
  let n = 0;
  for await (const chunk of body) {
    if (n + chunk.byteLength > buf.byteLength) {
      const bigger = new Uint8Array(Math.max(buf.byteLength * 2, n + chunk.byteLength));
      bigger.set(buf.subarray(0, n));
      buf = bigger;
    }
    buf.set(chunk, n);
    n += chunk.byteLength;
  }
  state.buffer = buf;
  return buf.subarray(0, n);
}

/** Where the text RDS puts at a cut (see CUT) begins in `data`, or -1. */
function cutAt(data: Uint8Array): number {
  const tailFrom = Math.max(0, data.byteLength - 64);
  const tail = new TextDecoder().decode(data.subarray(tailFrom));
  const m = CUT.exec(tail);
  if (m === null) return -1;
  return data.byteLength - new TextEncoder().encode(tail.slice(m.index)).byteLength;
}

/** Lines in `data`: its newlines, plus a last unterminated line when `partial`. */
function countLines(data: Uint8Array, partial: boolean): number {
  let n = 0;
  for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, i + 1)) n++;
  return partial && data.byteLength > 0 && data[data.byteLength - 1] !== 10 ? n + 1 : n;
}

/** RDS said the log file or its instance does not exist (any more). */
export function isGone(e: unknown): boolean {
  const n = awsErrorName(e);
  return n === "DBLogFileNotFoundFault" || n === "DBInstanceNotFound" ||
    n === "DBInstanceNotFoundFault";
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
