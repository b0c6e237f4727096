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
 * Each portion of a file (one DownloadDBLogFilePortion answer) is a unit of the data path. Only
 * after OpenObserve acknowledged a portion's last record, and the portions before it were saved,
 * is its progress saved: the marker after it and the parser's context there (the record still
 * being folded, the MySQL slow log's current database, ...), so the next read continues exactly
 * where this one stopped. The event's Kafka offset is committed after its last portion. A crash
 * re-reads from the last saved portion: what was in flight is sent twice, nothing is lost (we
 * prefer a duplicate to a gap). Two events of one file are never read at once: the second waits
 * for the first to settle. Progress is saved only over the marker the portion started from, so a
 * member that lost the event's partition in a rebalance cannot move a newer marker back.
 *
 * A file RDS no longer has (rotated away or past retention while the event waited) cannot be
 * read: the event is counted (`process_files_vanished_total`), logged with the bytes left unread,
 * and committed past, instead of stopping its partition for good.
 * @module
 */

import { f, type Infer, parseValue } from "../config/spec.ts";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { MysqlParser } from "../parsers/mysql.ts";
import { PostgresParser } from "../parsers/postgres.ts";
import type { LogRecord, ParserContext } from "../parsers/record.ts";
import { type LineAt, TextLines } from "../parsers/text_lines.ts";
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
import type { KafkaSource, KafkaUnit } from "../sources/kafka.ts";
import { kafkaConnectionFields, kafkaGroupFields, kafkaSourceSpec } from "../sources/kafka_spec.ts";
import { Rds, rdsReadSpec } from "../sources/rds.ts";
import { LogTracking } from "../sources/rds_tracking.ts";
import type { LogFileChanged } from "../sources/events.ts";
import { defineMode } from "./mode.ts";

/** The `process:` config section. */
export const processSpec = f.object({
  kafka: f.object({
    ...kafkaConnectionFields,
    // A SIGTERM leaves the group at once; after a SIGKILL the partitions wait session_timeout.
    ...kafkaGroupFields,
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

/** A parser for an engine's log file, continuing from `context` (a previous read's). */
export function parserFor(
  engine: string,
  file: string,
  context?: ParserContext,
): PostgresParser | MysqlParser {
  if (engine.includes("postgres")) return new PostgresParser({ context });
  return new MysqlParser({ kind: MysqlParser.kindOf(file) ?? "auto", context });
}

/**
 * Largest parser context saved beside a marker (JSON characters). A record still being folded
 * at the end of a portion is part of it; a larger one (a multi-line record over 64 KiB) is sent
 * at the portion's end instead, and a continuation of it in the next portion becomes a record of
 * its own.
 */
const MAX_CONTEXT_CHARS = 64 << 10;

/**
 * Lines parsed and encoded in one go (see the frame): at most this many, and fewer once they
 * hold `CHARS_AT_ONCE` characters, so that their JSON usually fits the sink's reused buffers.
 */
const LINES_AT_ONCE = 256;
const CHARS_AT_ONCE = 40_000;

/** A context saved as JSON; none when it is missing or unreadable (a fresh parser). */
function parseContext(json: string | undefined): ParserContext | undefined {
  if (json === undefined) return undefined;
  try {
    const c = JSON.parse(json);
    return typeof c === "object" && c !== null && !Array.isArray(c) ? c : undefined;
  } catch {
    return undefined;
  }
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

/** What the frame of a portion's unit needs: the file's parser, shared by its portions. */
export interface PortionFrame {
  /** Parses the file's lines, portion after portion (one at a time). */
  readonly parser: PostgresParser | MysqlParser;
  /** The portion is the event's last: the frame flushes the parser at its end. */
  readonly last: boolean;
  /** The frame is done with the portion's lines: the parser's context after them (JSON). */
  inputDone(context: string): void;
}

/** `data` in views of `size` bytes (a portion framed a slice at a time, not in one go). */
function* slices(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let o = 0; o < data.byteLength; o += size) yield data.subarray(o, o + size);
}

/** A settable promise. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/** Units handed from the events' readers to the pipeline, in the order they were made. */
class UnitQueue {
  readonly #items: Unit[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  /** Queue a unit; once the queue is closed it is released un-acked at once. */
  push(unit: Unit): void {
    if (this.#closed) {
      unit.nack(new Error("shutting down: not read")).catch(() => {});
      return;
    }
    this.#items.push(unit);
    this.#wake?.();
  }

  /** No more units: the iteration ends once the queued ones are taken. */
  end(): void {
    this.#closed = true;
    this.#wake?.();
  }

  /** Release the units nobody took (shutdown). */
  drain(): void {
    this.#closed = true;
    for (const unit of this.#items.splice(0)) {
      unit.nack(new Error("shutting down: not read")).catch(() => {});
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Unit> {
    for (;;) {
      const unit = this.#items.shift();
      if (unit) {
        yield unit;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((r) => this.#wake = r);
      this.#wake = undefined;
    }
  }
}

/** Sums of a unit's results. */
const addResults = (a: UnitResult, b: UnitResult): UnitResult => ({
  lines: a.lines + b.lines,
  bytes: a.bytes + b.bytes,
  consumed: a.consumed + b.consumed,
  truncated: a.truncated + b.truncated,
});

/**
 * Turns discover's events into units of the data path, one per portion of a file's new part
 * (one DownloadDBLogFilePortion answer; with `source: s3`, the whole new part). Each portion's
 * ack saves the file's progress, its marker and the parser's context there, once the portions
 * before it are saved; the event's offset is committed when its last portion is saved. A kill
 * re-reads from the last saved portion: at most what was in flight is sent twice.
 */
class LogFileSource implements Source {
  readonly kind = "rds_logs";
  readonly #events: KafkaSource;
  readonly #c: ProcessConfig;
  readonly #rds: Rds | undefined;
  readonly #tracking: LogTracking;
  readonly #log: Logger;
  readonly #m;
  /** Per file: settles when its last event settled. */
  readonly #lanes = new Map<string, Promise<void>>();
  readonly #frames = new WeakMap<Unit, PortionFrame>();
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
        const { s3DownloadConfig } = await import("../sources/aws.ts");
        return new S3Client(await s3DownloadConfig(c.s3));
      })()
      : undefined;
  }

  /** The parser and portion state of one of this source's units. */
  frameOf(unit: Unit): PortionFrame {
    const f = this.#frames.get(unit);
    if (!f) throw new TypeError(`not a unit of the rds_logs source: ${unit.id}`);
    return f;
  }

  async *units(signal: AbortSignal): AsyncIterable<Unit> {
    const queue = new UnitQueue();
    // Events being read: at most worker_count at once (an event holds a slot until its last
    // portion's lines are parsed), as one unit each held a worker before.
    const reading = new Set<Promise<void>>();
    const pump: Promise<void> = (async () => {
      try {
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
          while (reading.size >= this.#c.processing.worker_count) await Promise.race(reading);
          const read = this.#read(e, u, queue, signal).finally(() => reading.delete(read));
          reading.add(read);
        }
      } finally {
        await Promise.all(reading);
        queue.end();
      }
    })();
    pump.catch(() => {}); // surfaced below; when the pipeline stopped early, nobody waits
    try {
      yield* queue;
      await pump;
    } finally {
      queue.drain();
    }
  }

  /**
   * Read one event's new part, portion by portion; resolves once its last portion's lines are
   * parsed (its acks follow). Settles the event: acked once every portion was saved, nacked
   * (read again later, from the last saved portion) when one failed.
   */
  async #read(e: LogFileChanged, u: KafkaUnit, queue: UnitQueue, signal: AbortSignal) {
    const lane = `${e.instance}/${e.file}`;
    const before = this.#lanes.get(lane) ?? Promise.resolve();
    const mine = deferred<void>();
    this.#lanes.set(lane, mine.promise);
    mine.promise.then(() => {
      if (this.#lanes.get(lane) === mine.promise) this.#lanes.delete(lane);
    });
    const where = { instance: e.instance, file: e.file };
    // The chain of saves: each portion's waits for the one before; false once one failed or
    // lost to another reader.
    let saved: Promise<boolean> = Promise.resolve(true);
    let total: UnitResult = { lines: 0, bytes: 0, consumed: 0, truncated: 0 };
    let failure: Error | undefined;
    try {
      await before;
      const t = await this.#tracking.get(e.instance, e.file);
      let from = t?.marker;
      let at = { marker: t?.marker ?? "0", processed: t?.processed ?? 0 };
      let context = t?.context;
      if (e.rotated || at.processed > e.size) {
        this.#m.rotations.inc();
        this.#log.info("log file rotated: reading it from its start", {
          ...where,
          processed: at.processed,
          size: e.size,
        });
        at = { marker: "0", processed: 0 };
        context = undefined;
      }
      const parser = parserFor(e.engine, e.file, parseContext(context));
      const reader = this.#s3 ? undefined : this.#rds!.reader(e.instance, e.file);
      const stream = streamName(this.#c.openobserve.stream, {
        engine: e.engine,
        instance: e.instance,
        file: e.file,
      });
      let conflict = false;
      /** Portions acked, by number. */
      const acks: boolean[] = [];
      for (let n = 0;; n++) {
        if (failure) break;
        if (signal.aborted) {
          failure = new Error("shutting down: the rest of the file is read after a restart");
          break;
        }
        const start = at;
        const portion = { last: true, marker: start.marker, gone: false, linesCut: 0, bytes: 0 };
        const input = deferred<string | Error>();
        const acked = deferred<UnitResult | Error>();
        const unit: Unit = {
          id: `rds://${e.instance}/${e.file}@${u.topic}/${u.partition}/${u.offset}#${n}`,
          attributes: { engine: e.engine, instance: e.instance, file: e.file, stream },
          ...(Date.parse(e.last_written) > 0 && { time: Date.parse(e.last_written) }),
          open: async (sig) => {
            if (this.#s3) return await this.#openS3(e, start.processed, sig);
            const p = await reader!.read(start.marker, sig);
            // (an empty answer that does not move the marker ends the read too, not a loop)
            portion.last = !p.more || p.gone ||
              (p.data.byteLength === 0 && p.marker === start.marker);
            portion.marker = p.marker;
            portion.gone = p.gone;
            portion.linesCut = p.linesCut;
            portion.bytes = p.data.byteLength;
            return ReadableStream.from(slices(p.data, 64 << 10));
          },
          ack: async (r) => {
            acks[n] = true;
            acked.resolve(r);
            if (!await mySave && !conflict) {
              throw new Error(`progress of ${lane} not saved: ${errorChain(failure)}`);
            }
          },
          nack: (err) => {
            failure ??= err;
            acked.resolve(err);
            input.resolve(err);
            return Promise.resolve();
          },
        };
        const mySave = saved.then(async (ok) => {
          const r = await acked.promise;
          if (r instanceof Error) {
            failure ??= r;
            return false;
          }
          total = addResults(total, r);
          if (!ok || portion.gone) return ok;
          // The next portion is acked already: its save covers this one (saves keep up with
          // acks however slow the table is).
          if (acks[n + 1]) return true;
          const context = await input.promise;
          if (context instanceof Error) return false;
          const processed = start.processed + r.consumed;
          let stored;
          try {
            stored = await this.#tracking.saveProgress(
              e.instance,
              e.file,
              portion.marker,
              processed,
              from,
              context === "{}" ? undefined : context,
            );
          } catch (err) {
            // The table is unreachable: the event is read again later, from the last save.
            failure ??= new Error(`cannot save the progress of ${lane}`, { cause: err });
            return false;
          }
          if (!stored) {
            conflict = true;
            this.#m.conflicts.inc();
            this.#log.warn("progress not saved: another reader moved the marker first", {
              ...where,
              from,
            });
            return false;
          }
          from = portion.marker;
          return true;
        });
        saved = mySave;
        this.#frames.set(unit, {
          parser,
          get last() {
            return portion.last;
          },
          inputDone: (context) => input.resolve(context),
        });
        queue.push(unit);
        if (await input.promise instanceof Error) break;
        if (portion.linesCut) this.#m.linesCut.inc(portion.linesCut);
        if (portion.gone) {
          this.#m.vanished.inc();
          this.#log.error("log file no longer exists in RDS: its unread part is lost", {
            ...where,
            topic: u.topic,
            partition: u.partition,
            offset: u.offset,
            bytes_unread: Math.max(0, e.size - start.processed),
          });
        }
        if (portion.last || conflict) break;
        at = { marker: portion.marker, processed: start.processed + portion.bytes };
      }
    } catch (err) {
      failure ??= err instanceof Error ? err : new Error(String(err));
    }
    // The event settles once its portions did, in the background: the slot is free now.
    // A portion lost to another reader (a rebalance) is theirs now: acked, as before.
    saved.then(async () => {
      if (failure) await u.nack(failure);
      else await u.ack(total);
    }).catch((err) => this.#log.error("event not settled", { ...where, error: err }))
      .finally(() => mine.resolve());
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

export const processMode = defineMode({
  name: "process",
  summary: "Database log events → parsed records → OpenObserve",
  spec: processSpec,
  // Its garbage is mostly request bodies (gzip's output and fetch's copy of it) that outlive
  // the young generation: a full collection each 12 MB, not 24, held peak RSS at 151-152 MB
  // instead of 161-165 (200 MB of PostgreSQL log), for 7 collections instead of 5.
  gcStepBytes: 12_000_000,
  async run({ config: c, log, metrics, signal, health }) {
    const { topic, group_id, ...connection } = c.kafka;
    // The Kafka client loads with the mode that uses it (kafka_spec.ts says why).
    const { KafkaSource } = await import("../sources/kafka.ts");
    const events = await KafkaSource.connect({
      ...parseValue(kafkaSourceSpec, { topics: [topic], group_id }),
      ...connection,
    }, { log, metrics });
    const rds = c.source === "rds" ? await Rds.open(c.rds, log, metrics) : undefined;
    const tracking = await LogTracking.open(c.tracking_table, c.dynamodb);
    // The pipeline counts the cuts of its own framer; this mode frames text itself.
    const linesTruncated = metrics.counter("lines_truncated_total", "Lines cut at max_line_bytes");
    const parseErrors = metrics.counter(
      "process_parse_errors_total",
      "Lines kept as message with parse_error: true",
    );
    const recordsTotal = metrics.counter("process_records_total", "Records parsed", ["engine"]);
    const source = new LogFileSource(events, c, rds, tracking, log, metrics);
    const sink = new OpenObserveSink(c.openobserve, log, metrics);
    await runPipeline<StreamRecord>({
      source,
      sink,
      metrics,
      log,
      signal,
      health,
      processing: c.processing,
      batch: c.batch,
      sizeOf: streamRecordSize,
      frame: (unit) => {
        const a = unit.attributes!;
        const portion = source.frameOf(unit);
        const parser = portion.parser;
        const lines = new TextLines({ maxLineBytes: c.processing.max_line_bytes });
        const label = { engine: a.engine! };
        let ctrl!: TransformStreamDefaultController<StreamRecord[]>;
        /** Emits the records parsed since the last emit, as one item of the sink. */
        let emit: () => void;
        /** Feeds a line where it is in a decoded chunk. */
        let push: LineAt;
        /** The event's last portion ended: emits the record still being folded. */
        let flushParser: () => void;
        if (parser instanceof PostgresParser) {
          // PostgreSQL: the parser writes the records' JSON itself, the source fields with each
          // (encoded once per portion); every few hundred lines its bytes go to the sink as one
          // item (copied into one of the sink's reused buffers). The record still being folded
          // stays in the parser, across emits, chunks and portions.
          const fields = JSON.stringify({
            instance: a.instance,
            engine: a.engine,
            log_file: a.file,
          });
          parser.recordSuffix = new TextEncoder().encode(`,${fields.slice(1, -1)}`);
          let errors = parser.parseErrors;
          const take = (json: Uint8Array, count: number) => {
            ctrl.enqueue([sink.encodeJson(json, count, a.stream!)]);
            recordsTotal.inc(count, label);
            parseErrors.inc(parser.parseErrors - errors);
            errors = parser.parseErrors;
          };
          emit = () => parser.takeJson(take);
          push = (text, from, to, ascii) => {
            parser.pushLine(text, from, to, ascii);
            line(to - from);
          };
          flushParser = () => {
            parser.endRecord();
            emit();
          };
        } else {
          // A few hundred lines at a time: their records are encoded and gone before the next
          // ones are made, so they die young (a whole portion's records at once outlived the
          // young generation and were copied and promoted).
          const records: LogRecord[] = [];
          const emitRecords = (list: LogRecord[]) => {
            if (!list.length) return;
            // The parser's records are ours: their source fields are added in place (no copy).
            for (const r of list) {
              if (r.parse_error) parseErrors.inc();
              r.instance = a.instance;
              r.engine = a.engine;
              r.log_file = a.file;
            }
            const out = sink.encode(list, a.stream!)!;
            recordsTotal.inc(list.length, label);
            list.length = 0;
            ctrl.enqueue([out]);
          };
          emit = () => emitRecords(records);
          // MySQL's parser cuts the lines out itself.
          push = (text, from, to) => {
            for (const r of parser.pushText(text.slice(from, to))) records.push(r);
            line(to - from);
          };
          flushParser = () => emitRecords(parser.flush());
        }
        let lineCount = 0, chars = 0;
        const line = (length: number) => {
          chars += length;
          if (++lineCount === LINES_AT_ONCE || chars >= CHARS_AT_ONCE) {
            emit();
            lineCount = chars = 0;
          }
        };
        const chunkDone = () => {
          emit();
          lineCount = chars = 0;
        };
        // Bytes → text lines (a chunk decoded at once) → records, in one step per chunk. The
        // parser carries on into the file's next portion; it is flushed at the event's last one.
        return new TransformStream<Uint8Array, StreamRecord[]>({
          transform: (chunk, c) => {
            ctrl = c;
            lines.eachLine(chunk, push);
            chunkDone();
          },
          flush: (c) => {
            ctrl = c;
            lines.endLine(push);
            chunkDone();
            if (lines.linesTruncated) linesTruncated.inc(lines.linesTruncated);
            if (portion.last) flushParser();
            let context = JSON.stringify(parser.context?.() ?? {});
            if (context.length > MAX_CONTEXT_CHARS) {
              flushParser();
              context = JSON.stringify(parser.context?.() ?? {});
            }
            portion.inputDone(context);
          },
        });
      },
    });
  },
});
