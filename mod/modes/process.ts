/**
 * Mode `process`: database log change events (from `discover`) → the new part of each file →
 * parsed records → OpenObserve. A member of the Kafka consumer group `group_id` on the events
 * topic (add members to scale out); each event becomes a unit of the data path whose bytes come
 * from RDS DownloadDBLogFilePortion, starting at the marker saved in the tracking table (or, with
 * `source: s3`, from the file's copy in S3 at `{prefix}{instance}/{file}`, from the byte offset
 * saved there). Lines are parsed by engine (PostgreSQL stderr with RDS's `%t:%r:%u@%d:[%p]:`
 * prefix; MySQL error, slow-query and general logs, picked by file name) into records; lines no
 * parser understands are kept as `message` with `parse_error: true`. Records go to OpenObserve,
 * stream `{engine}_{instance}` by default.
 *
 * Only after OpenObserve acknowledged a unit's last record is its progress saved and the event's
 * Kafka offset committed; a crash re-reads from the saved marker (duplicates, never a gap). Two
 * events of one file are never read at once: the second waits for the first to settle. Progress
 * is saved only over the marker the read started from, so a member that lost the event's
 * partition in a rebalance cannot move a newer marker back.
 *
 * A file RDS no longer has (rotated away or past retention while the event waited) cannot be
 * read: the event is counted (`process_files_vanished_total`), logged with the bytes left unread,
 * and committed past, instead of stopping its partition for good.
 * @module
 */

import { f, type Infer, parseValue } from "../config/spec.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { MysqlParser } from "../parsers/mysql.ts";
import { PostgresParser } from "../parsers/postgres.ts";
import type { LineParser, LogRecord } from "../parsers/record.ts";
import { LineStream } from "../pipeline/line_stream.ts";
import { batchSpec, processingSpec, runPipeline } from "../pipeline/run.ts";
import type { Source, Unit, UnitResult } from "../pipeline/types.ts";
import {
  OpenObserveSink,
  openobserveSpec,
  streamName,
  type StreamRecord,
  streamRecordSize,
} from "../sinks/openobserve.ts";
import { awsFields } from "../sources/aws.ts";
import { awsErrorName } from "../sources/aws_errors.ts";
import { KafkaSource, kafkaSourceSpec, type KafkaUnit } from "../sources/kafka.ts";
import { kafkaConnectionFields } from "../sources/kafka_client.ts";
import { type PortionProgress, Rds, rdsReadSpec } from "../sources/rds.ts";
import { LogTracking } from "../sources/rds_tracking.ts";
import type { LogFileChanged } from "./discover.ts";
import { defineMode } from "./mode.ts";

/** The `process:` config section. */
export const processSpec = f.object({
  kafka: f.object({
    ...kafkaConnectionFields,
    topic: f.string({ description: "Topic of discover's events", default: "aurora-logs" }),
    group_id: f.string({ description: "Consumer group", default: "aurora-log-processors" }),
  }, { description: "Where the change events come from" }),
  source: f.enum(["rds", "s3"] as const, {
    description: "rds: DownloadDBLogFilePortion; s3: the files' copies in a bucket",
    default: "rds",
  }),
  rds: rdsReadSpec,
  s3: f.object({
    ...awsFields,
    bucket: f.string({ description: "Bucket holding copies of the log files", default: "" }),
    prefix: f.string({ description: "Key prefix: {prefix}{instance}/{file}", default: "" }),
  }, { description: "With source: s3" }),
  dynamodb: f.object({ ...awsFields }, { description: "Where the tracking table is" }),
  tracking_table: f.string({
    description: "DynamoDB tracking table",
    default: "aurora-log-tracking",
  }),
  openobserve: openobserveSpec,
  processing: processingSpec,
  batch: f.object(batchSpec, { description: "Batches of records to OpenObserve" }),
}, {
  description: "Mode process: database log events → parsed records → OpenObserve",
  check: (c) =>
    c.source === "s3" && !c.s3.bucket
      ? [{ key: "s3.bucket", message: "is required with source: s3" }]
      : [],
});

type ProcessConfig = Infer<typeof processSpec>;

/** A parser for an engine's log file. */
export function parserFor(engine: string, file: string): LineParser {
  if (engine.includes("postgres")) return new PostgresParser();
  return new MysqlParser({ kind: MysqlParser.kindOf(file) ?? "auto" });
}

/** Why an event is not one: a reason, or the event. */
export function parseLogEvent(value: Uint8Array): LogFileChanged | string {
  let e: Partial<LogFileChanged>;
  try {
    e = JSON.parse(new TextDecoder().decode(value));
  } catch {
    return "not JSON";
  }
  if (typeof e !== "object" || e === null) return "not an object";
  for (const k of ["instance", "engine", "file"] as const) {
    if (typeof e[k] !== "string" || e[k] === "") return `no ${k}`;
  }
  if (typeof e.size !== "number" || e.size < 0) return "no size";
  return {
    type: "LogFileChanged",
    instance: e.instance!,
    engine: e.engine!,
    file: e.file!,
    previous_size: typeof e.previous_size === "number" ? e.previous_size : 0,
    size: e.size,
    last_written: String(e.last_written ?? ""),
    rotated: e.rotated === true,
  };
}

/** Turns discover's events into units that read each file's new part. */
class LogFileSource implements Source {
  readonly kind = "rds_logs";
  readonly #events: KafkaSource;
  readonly #c: ProcessConfig;
  readonly #rds: Rds | undefined;
  readonly #tracking: LogTracking;
  readonly #log: Logger;
  readonly #m;
  /** Per file: settles when its last unit settled. */
  readonly #lanes = new Map<string, Promise<void>>();
  readonly #s3: Promise<import("@aws-sdk/client-s3").S3Client> | undefined;

  constructor(
    events: KafkaSource,
    c: ProcessConfig,
    rds: Rds | undefined,
    tracking: LogTracking,
    log: Logger,
    metrics: Registry,
  ) {
    this.#events = events;
    this.#c = c;
    this.#rds = rds;
    this.#tracking = tracking;
    this.#log = log;
    this.#m = {
      invalid: metrics.counter("process_events_invalid_total", "Events that are not log events"),
      rotations: metrics.counter("process_rotations_total", "Files read again from their start"),
      vanished: metrics.counter(
        "process_files_vanished_total",
        "Events whose log file RDS no longer has (committed past, unread bytes logged)",
      ),
      linesCut: metrics.counter(
        "process_lines_cut_total",
        "Log lines longer than an RDS portion (1 MB), kept as RDS cut them",
      ),
      conflicts: metrics.counter(
        "process_progress_conflicts_total",
        "Progress not saved: another reader moved the file's marker first (rebalance)",
      ),
    };
    this.#s3 = c.source === "s3"
      ? (async () => {
        const { S3Client } = await import("@aws-sdk/client-s3");
        const { awsClientConfig } = await import("../sources/aws.ts");
        return new S3Client(await awsClientConfig(c.s3));
      })()
      : undefined;
  }

  async *units(signal: AbortSignal): AsyncIterable<Unit> {
    for await (const u of this.#events.units(signal)) {
      const e = parseLogEvent(u.value);
      if (typeof e === "string") {
        this.#m.invalid.inc();
        this.#log.error("event skipped: not a log file event", {
          topic: u.topic,
          partition: u.partition,
          offset: u.offset,
          reason: e,
        });
        await u.ack({ lines: 0, bytes: 0, consumed: 0, truncated: 0 });
        continue;
      }
      yield this.#unit(e, u);
    }
  }

  #unit(e: LogFileChanged, u: KafkaUnit): Unit {
    const lane = `${e.instance}/${e.file}`;
    const before = this.#lanes.get(lane) ?? Promise.resolve();
    let settle!: () => void;
    const mine = new Promise<void>((r) => settle = r);
    this.#lanes.set(lane, mine);
    mine.then(() => {
      if (this.#lanes.get(lane) === mine) this.#lanes.delete(lane);
    });
    const stream = streamName(this.#c.openobserve.stream, {
      engine: e.engine,
      instance: e.instance,
      file: e.file,
    });
    let start = { marker: "0", processed: 0 };
    let stored: string | undefined;
    let progress: PortionProgress | undefined;
    const finish = async (saveTo?: UnitResult) => {
      try {
        if (!saveTo) return;
        if (progress?.linesCut) this.#m.linesCut.inc(progress.linesCut);
        if (progress?.gone) {
          this.#m.vanished.inc();
          this.#log.error("log file no longer exists in RDS: its unread part is lost", {
            instance: e.instance,
            file: e.file,
            topic: u.topic,
            partition: u.partition,
            offset: u.offset,
            bytes_unread: Math.max(0, e.size - start.processed - saveTo.consumed),
          });
          return;
        }
        const saved = await this.#tracking.saveProgress(
          e.instance,
          e.file,
          progress?.marker ?? "0",
          start.processed + saveTo.consumed,
          stored,
        );
        if (!saved) {
          this.#m.conflicts.inc();
          this.#log.warn("progress not saved: another reader moved the marker first", {
            instance: e.instance,
            file: e.file,
            from: stored,
          });
        }
      } finally {
        settle();
      }
    };
    return {
      id: `rds://${e.instance}/${e.file}@${u.topic}/${u.partition}/${u.offset}`,
      attributes: { engine: e.engine, instance: e.instance, file: e.file, stream },
      ...(Date.parse(e.last_written) > 0 && { time: Date.parse(e.last_written) }),
      open: async (signal) => {
        await before;
        const t = await this.#tracking.get(e.instance, e.file);
        stored = t?.marker;
        start = { marker: t?.marker ?? "0", processed: t?.processed ?? 0 };
        if (e.rotated || start.processed > e.size) {
          this.#m.rotations.inc();
          this.#log.info("log file rotated: reading it from its start", {
            instance: e.instance,
            file: e.file,
            processed: start.processed,
            size: e.size,
          });
          start = { marker: "0", processed: 0 };
        }
        if (this.#s3) return await this.#openS3(e, start.processed, signal);
        const p = this.#rds!.portion(e.instance, e.file, start.marker, signal);
        progress = p.progress;
        return p.body;
      },
      ack: async (r) => {
        await finish(r);
        await u.ack(r);
      },
      nack: async (err) => {
        await finish();
        await u.nack(err);
      },
    };
  }

  async #openS3(e: LogFileChanged, from: number, signal: AbortSignal) {
    if (from >= e.size) return new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    const { GetObjectCommand } = await import("@aws-sdk/client-s3");
    const key = `${this.#c.s3.prefix}${e.instance}/${e.file}`;
    try {
      const res = await (await this.#s3!).send(
        new GetObjectCommand({
          Bucket: this.#c.s3.bucket,
          Key: key,
          ...(from > 0 && { Range: `bytes=${from}-` }),
        }),
        { abortSignal: signal },
      );
      return res.Body!.transformToWebStream() as ReadableStream<Uint8Array>;
    } catch (err) {
      // The copy is not longer than what was read yet (it lags behind RDS): nothing new now;
      // the next event of the file reads on from the same offset. A missing copy is retried.
      if (awsErrorName(err) === "InvalidRange") {
        return new ReadableStream<Uint8Array>({ start: (c) => c.close() });
      }
      throw new Error(`cannot read s3://${this.#c.s3.bucket}/${key} from byte ${from}`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    await this.#events.close?.();
  }
}

const enc = new TextEncoder();

export const processMode = defineMode({
  name: "process",
  summary: "Database log events → parsed records → OpenObserve",
  spec: processSpec,
  async run({ config: c, log, metrics, signal, health }) {
    const { topic, group_id, ...connection } = c.kafka;
    const events = await KafkaSource.connect({
      ...parseValue(kafkaSourceSpec, { topics: [topic], group_id }),
      ...connection,
    }, { log, metrics });
    const rds = c.source === "rds" ? await Rds.open(c.rds, log, metrics) : undefined;
    const tracking = await LogTracking.open(c.tracking_table, c.dynamodb);
    const parseErrors = metrics.counter(
      "process_parse_errors_total",
      "Lines kept as message with parse_error: true",
    );
    const records = metrics.counter("process_records_total", "Records parsed", ["engine"]);
    await runPipeline<StreamRecord>({
      source: new LogFileSource(events, c, rds, tracking, log, metrics),
      sink: new OpenObserveSink(c.openobserve, log, metrics),
      metrics,
      log,
      signal,
      health,
      processing: c.processing,
      batch: c.batch,
      sizeOf: streamRecordSize,
      frame: (unit) => {
        const a = unit.attributes!;
        const parser = parserFor(a.engine!, a.file!);
        const lines = new LineStream({ maxLineBytes: c.processing.max_line_bytes });
        const label = { engine: a.engine! };
        const encode = (out: StreamRecord[], r: LogRecord) => {
          if (r.parse_error) parseErrors.inc();
          const rec = {
            ...(typeof r.timestamp === "number" && { _timestamp: r.timestamp }),
            ...r,
            instance: a.instance,
            engine: a.engine,
            log_file: a.file,
          };
          out.push({ stream: a.stream!, json: enc.encode(JSON.stringify(rec)) });
        };
        // Lines → records in one step per chunk of lines (no stream hop per line).
        const toRecords = new TransformStream<Uint8Array[], StreamRecord[]>({
          transform: (chunk, ctrl) => {
            const out: StreamRecord[] = [];
            for (const line of chunk) for (const r of parser.push(line)) encode(out, r);
            if (out.length) {
              records.inc(out.length, label);
              ctrl.enqueue(out);
            }
          },
          flush: (ctrl) => {
            const out: StreamRecord[] = [];
            for (const r of parser.flush()) encode(out, r);
            if (out.length) {
              records.inc(out.length, label);
              ctrl.enqueue(out);
            }
          },
        });
        return { writable: lines.writable, readable: lines.readable.pipeThrough(toRecords) };
      },
    });
  },
});
