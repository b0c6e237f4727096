/**
 * The routing step of mode `route`, between a source of S3 object units and the shared data
 * path: for each object, its tenant's wanted deliveries (route_tenants.ts); S3 copies done when
 * the unit opens; the object's JSON records (NDJSON or an array, see JsonRecordsParser) turned
 * into CloudWatch Logs events, one per record and CloudWatch destination, for the sink.
 *
 * Acknowledgement follows the data path's contract (pipeline/types.ts): the CloudWatch Logs sink
 * reports events refused for good (too old, too new, expired, empty, a stream that fails for good)
 * in a BatchError, which the pipeline dead-letters while the rest of the object goes on; a
 * destination failing for a reason worth retrying fails the batch, so its units are nacked and
 * their messages redelivered. The sink seen by the pipeline counts both per tenant and
 * destination on the way back. An S3 copy failing for good (missing bucket) is counted and logged
 * and does not hold the object. A corrupt object (a gzip member cut short or damaged) is
 * permanent: its good records go out once, it is counted as `corrupt_object`, and its message is
 * deleted.
 * @module
 */

import type { S3Client } from "@aws-sdk/client-s3";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { JsonRecordsParser } from "../parsers/json_records.ts";
import type { LogRecord } from "../parsers/record.ts";
import { extractTimestamp } from "../parsers/timestamp.ts";
import { LineStream } from "../pipeline/line_stream.ts";
import { nonRecoverable, NonRecoverableError } from "../pipeline/non_recoverable_error.ts";
import { DecodeError } from "../pipeline/gzip.ts";
import {
  type Batch,
  BatchError,
  type FailedItem,
  type Sink,
  type Source,
  type Unit,
  type UnitResult,
} from "../pipeline/types.ts";
import { getS3Object, type S3ObjectSource, type S3ObjectUnit } from "../sources/s3_object.ts";
import {
  type CloudWatchEvent,
  type CloudWatchLogsSink,
  type CloudWatchTarget,
  utf8Length,
} from "../sinks/cloudwatch_logs.ts";
import { normalizePrefix, type S3Copier } from "../sinks/s3_copy.ts";
import { PUT_LOG_EVENTS } from "../sinks/cloudwatch_batches.ts";
import type { RouteMetrics } from "./route_metrics.ts";
import {
  type CloudWatchDelivery,
  type ObjectKeyInfo,
  parseObjectKey,
  type S3Delivery,
  type TenantDirectory,
  wantsApplication,
} from "./route_tenants.ts";

/** A CloudWatch destination of one object. */
interface Target extends CloudWatchTarget {
  readonly tenant: string;
  readonly destination: string;
}

/** One record on its way to one CloudWatch destination. */
export interface RouteEvent extends CloudWatchEvent {
  readonly target: Target;
  readonly plan: ObjectPlan;
}

/** What the router decided for one object, and how far its reading got. */
export class ObjectPlan {
  readonly info: ObjectKeyInfo;
  readonly targets: Target[];
  /** Object-level deliveries done (S3 copies), carried into a re-queue. */
  readonly completed: string[];
  /** Records before this index were delivered by an earlier run: skipped. */
  readonly startOffset: number;
  /** Timestamp of records that carry none (the object's LastModified). */
  fallbackTime = Date.now();
  /** Index of the next record of the object. */
  records = 0;
  /** Set when reading stopped early (a cut): the first record not delivered. */
  cutAt: number | undefined;

  constructor(info: ObjectKeyInfo, targets: Target[], completed: string[], startOffset: number) {
    this.info = info;
    this.targets = targets;
    this.completed = completed;
    this.startOffset = startOffset;
  }
}

/** Options for {@link Router}. */
export interface RouterOptions {
  /** Reads source objects. */
  s3: S3Client;
  tenants: TenantDirectory;
  copier: S3Copier;
  /** The CloudWatch Logs sink. */
  cloudwatch: CloudWatchLogsSink;
  metrics: RouteMetrics;
  registry: Registry;
  log: Logger;
  /** Region of destinations without `target_region`. */
  region?: string;
  /** Prefix of S3 copies when a config has none. @default "ROSA/cluster-logs/" */
  defaultPrefix?: string;
  /** Longest line; a one-line JSON array longer than this is cut. @default 16777216 */
  maxLineBytes?: number;
}

/** Fields Vector adds that are left out of a message built from a whole record (the reference's). */
const VECTOR_FIELDS = new Set([
  "cluster_id",
  "namespace",
  "application",
  "pod_name",
  "ingest_timestamp",
  "timestamp",
  "kubernetes",
]);

/** A record's CloudWatch message: its `message` (JSON unless a string), else the record without Vector's fields. */
export function messageOf(record: LogRecord): string {
  const m = record.message;
  if (typeof m === "string") return m;
  if (m !== undefined) return JSON.stringify(m);
  const rest: LogRecord = {};
  for (const [k, v] of Object.entries(record)) if (!VECTOR_FIELDS.has(k)) rest[k] = v;
  return JSON.stringify(rest);
}

const EMPTY = () => new ReadableStream<Uint8Array>({ start: (c) => c.close() });

/** Reasons of events CloudWatch Logs refuses (counted as rejected, not as failed deliveries). */
const REFUSALS = new Set(["too_old", "too_new", "expired", "empty"]);

/** The decoder's reasons for input that will never decode (see pipeline/gzip.ts). */
const DECODE_REASONS = new Set(["corrupt_gzip", "truncated_gzip", "not_gzip"]);

/**
 * When `e` says the object itself is corrupt (a gzip member damaged or cut short): a
 * NonRecoverableError with reason `corrupt_object`, naming the object and the byte offset.
 *
 * @param id the object's unit id, for the message.
 * @param e what the unit failed with.
 */
export function corruptObject(id: string, e: unknown): NonRecoverableError | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; depth++) {
    const decode = cur instanceof DecodeError;
    if (decode || (cur instanceof NonRecoverableError && DECODE_REASONS.has(cur.reason))) {
      const at = decode ? ` at byte ${(cur as DecodeError).offset}` : "";
      return new NonRecoverableError(`${id} is corrupt${at}: ${cur.message}`, {
        cause: e,
        reason: "corrupt_object",
      });
    }
    cur = cur.cause;
  }
  return undefined;
}

/** Routes S3 object units to their tenants' destinations. */
export class Router {
  readonly #o: Required<Omit<RouterOptions, "region">> & Pick<RouterOptions, "region">;
  readonly #plans = new WeakMap<Unit, ObjectPlan>();
  readonly #truncated;
  /** Units that failed in a way worth retrying (left for redelivery, not acked). */
  retryLater = 0;

  constructor(o: RouterOptions) {
    this.#o = { defaultPrefix: "ROSA/cluster-logs/", maxLineBytes: 16 << 20, ...o };
    this.#truncated = o.registry.counter("lines_truncated_total", "Lines cut at max_line_bytes");
  }

  /** `inner`'s units, routed. */
  source(inner: S3ObjectSource): Source {
    const wrap = (u: S3ObjectUnit) => this.#wrap(u);
    return {
      kind: inner.kind,
      async *units(signal) {
        for await (const u of inner.units(signal)) yield wrap(u);
      },
      close: () => inner.close?.() ?? Promise.resolve(),
    };
  }

  /**
   * The data path's sink: the CloudWatch Logs sink (kept open across runs: its owner closes it),
   * with what it reports counted per tenant and destination on the way back.
   */
  sink(): Sink<RouteEvent> {
    const cw = this.#o.cloudwatch;
    return {
      kind: cw.kind,
      write: async (batch: Batch<RouteEvent>, signal: AbortSignal) => {
        try {
          await cw.write(batch, signal);
          this.#count(batch.items, []);
        } catch (e) {
          if (e instanceof BatchError) this.#count(batch.items, e.failed);
          else if (!signal.aborted) this.#countFailed(batch.items);
          throw e;
        }
      },
      close: () => Promise.resolve(),
    };
  }

  /** Encoded size of an event as PutLogEvents counts it. */
  readonly sizeOf = (e: RouteEvent): number => e.bytes + PUT_LOG_EVENTS.eventOverhead;

  /** Count a delivered batch: its events, less `failed` (refused for good, by reason). */
  #count(items: readonly RouteEvent[], failed: readonly FailedItem[]): void {
    const m = this.#o.metrics;
    const refused = new Set<number>();
    const streams = new Set<Target>();
    for (const f of failed) {
      refused.add(f.index);
      const t = items[f.index]!.target;
      const labels = { tenant: t.tenant, destination: t.destination };
      if (REFUSALS.has(f.reason)) m.rejected.inc(1, { ...labels, reason: f.reason });
      else {
        // The stream failed for good (bad parameters, a missing group that may not be created).
        m.failedRecords.inc(1, labels);
        if (!streams.has(t)) m.failures.inc(1, { ...labels, recoverable: "false" });
        streams.add(t);
      }
    }
    const delivered = new Map<Target, { n: number; bytes: number }>();
    for (const [i, e] of items.entries()) {
      if (refused.has(i)) continue;
      const d = delivered.get(e.target) ?? { n: 0, bytes: 0 };
      d.n++;
      d.bytes += e.bytes;
      delivered.set(e.target, d);
    }
    for (const [t, d] of delivered) {
      const labels = { tenant: t.tenant, destination: t.destination };
      m.delivered.inc(d.n, labels);
      m.bytes.inc(d.bytes, labels);
    }
  }

  /** Count a batch that failed in a way worth retrying (its units are retried). */
  #countFailed(items: readonly RouteEvent[]): void {
    const m = this.#o.metrics;
    const per = new Map<Target, number>();
    for (const e of items) per.set(e.target, (per.get(e.target) ?? 0) + 1);
    for (const [t, n] of per) {
      const labels = { tenant: t.tenant, destination: t.destination };
      m.failedRecords.inc(n, labels);
      m.failures.inc(1, { ...labels, recoverable: "true" });
    }
  }

  /** Decoded bytes of a routed unit → its events (one array per chunk). */
  readonly frame = (unit: Unit): TransformStream<Uint8Array, RouteEvent[]> => {
    const plan = this.#plans.get(unit);
    if (!plan) throw new Error(`${unit.id} was not opened by the router`);
    const lines = new LineStream({ maxLineBytes: this.#o.maxLineBytes });
    const parser = new JsonRecordsParser({ maxRecordChars: this.#o.maxLineBytes });
    const cut = (unit as S3ObjectUnit).cut;
    let controller!: TransformStreamDefaultController<RouteEvent[]>;
    let ended = false;
    const stop = () => {
      if (ended) return;
      ended = true;
      plan.cutAt = Math.max(plan.records, plan.startOffset);
      controller.terminate();
    };
    const emit = (records: LogRecord[], out: RouteEvent[]) => {
      for (const record of records) {
        if (cut?.aborted) return stop();
        const index = plan.records++;
        if (index < plan.startOffset) continue;
        const timestamp = extractTimestamp(record, plan.fallbackTime)!;
        const message = messageOf(record);
        const bytes = utf8Length(message);
        for (const target of plan.targets) {
          out.push({ target, timestamp, message, bytes, plan });
        }
      }
    };
    const records = new TransformStream<Uint8Array[], RouteEvent[]>({
      start: (c) => {
        controller = c;
        if (cut?.aborted) stop();
        else cut?.addEventListener("abort", stop, { once: true });
      },
      transform: (chunk, c) => {
        if (ended) return;
        const out: RouteEvent[] = [];
        for (const line of chunk) {
          emit(parser.push(line), out);
          if (ended) break;
        }
        if (out.length > 0) c.enqueue(out);
      },
      flush: (c) => {
        if (ended) return;
        const out: RouteEvent[] = [];
        emit(parser.flush(), out);
        if (out.length > 0) c.enqueue(out);
        ended = true;
        cut?.removeEventListener("abort", stop);
        this.#finish(unit, plan, parser, lines);
      },
    });
    // A frame is a writable end and a readable end; pipeThrough needs nothing more.
    return {
      writable: lines.writable,
      readable: lines.readable.pipeThrough(records),
    } as unknown as TransformStream<Uint8Array, RouteEvent[]>;
  };

  #finish(unit: Unit, plan: ObjectPlan, parser: JsonRecordsParser, lines: LineStream): void {
    if (lines.linesTruncated) this.#truncated.inc(lines.linesTruncated);
    if (parser.malformed === 0) return;
    this.#o.metrics.malformed.inc(parser.malformed, { tenant: plan.info.tenantId });
    this.#o.log.warn("lines that are not JSON records were skipped", {
      unit: unit.id,
      malformed: parser.malformed,
      first: parser.errors.slice(0, 3).map((e) => `line ${e.line}: ${e.message}`),
    });
  }

  #wrap(inner: S3ObjectUnit): Unit {
    const plans = this.#plans;
    // deno-lint-ignore no-this-alias
    const router = this;
    const open = (signal: AbortSignal) => this.#open(unit, inner, signal);
    const m = this.#o.metrics;
    const unit: Unit = {
      id: inner.id,
      ...(inner.time !== undefined && { time: inner.time }),
      ...(inner.size !== undefined && { size: inner.size }),
      ...(inner.attributes && { attributes: inner.attributes }),
      ...(inner.cut && { cut: inner.cut }),
      open,
      async ack(result: UnitResult): Promise<void> {
        const plan = plans.get(unit);
        if (plan?.cutAt !== undefined && inner.requeue) {
          return await inner.requeue({ offset: plan.cutAt, completed: plan.completed });
        }
        for (const t of plan?.targets ?? []) {
          m.objects.inc(1, { tenant: t.tenant, destination: t.destination });
        }
        return await inner.ack(result);
      },
      nack(e: Error) {
        const corrupt = corruptObject(unit.id, e);
        const permanent = corrupt ?? nonRecoverable(e);
        if (permanent) m.undeliverable.inc(1, { reason: permanent.reason });
        else router.retryLater++;
        // A corrupt object is permanent: its source deletes the message once the rest is done.
        return inner.nack(corrupt ?? e);
      },
    };
    return unit;
  }

  /** Resolve the tenant, do the S3 copies, and open the object when CloudWatch wants records. */
  async #open(
    unit: Unit,
    inner: S3ObjectUnit,
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    const { tenants, metrics: m, log } = this.#o;
    const info = parseObjectKey(inner.key);
    const wanted = (await tenants.deliveries(info.tenantId, signal))
      .filter((d) => wantsApplication(d, info.application));
    const resume = inner.resume ?? { offset: 0, completed: [], requeues: 0 };
    const cw = wanted.filter((d): d is CloudWatchDelivery => d.type === "cloudwatch");
    const plan = new ObjectPlan(
      info,
      cw.map((d) => this.#target(d, info)),
      [...resume.completed],
      resume.offset,
    );
    this.#plans.set(unit, plan);
    if (wanted.length === 0) {
      m.filtered.inc(1, { tenant: info.tenantId });
      log.debug("no delivery config wants this application", {
        unit: unit.id,
        tenant: info.tenantId,
        application: info.application,
      });
      return EMPTY();
    }
    for (const d of wanted) {
      if (d.type === "s3" && !plan.completed.includes(d.id)) {
        await this.#copy(inner, info, d, signal);
        plan.completed.push(d.id);
      }
    }
    if (plan.targets.length === 0) return EMPTY();
    const obj = await getS3Object(this.#o.s3, inner.bucket, inner.key, signal);
    plan.fallbackTime = obj.lastModified ?? inner.time ?? Date.now();
    return obj.body;
  }

  #target(d: CloudWatchDelivery, info: ObjectKeyInfo): Target {
    const region = d.region ?? this.#o.region;
    const key = [region, d.roleArn, d.externalId, d.logGroup, info.podName].join("|");
    return {
      key,
      logGroup: d.logGroup,
      logStream: info.podName,
      roleArn: d.roleArn,
      ...(region && { region }),
      ...(d.externalId && { externalId: d.externalId }),
      tenant: info.tenantId,
      destination: d.id,
    };
  }

  /** One S3 delivery: failures worth retrying throw (the unit fails); others are counted. */
  async #copy(inner: S3ObjectUnit, info: ObjectKeyInfo, d: S3Delivery, signal: AbortSignal) {
    const { copier, metrics: m, log } = this.#o;
    const labels = { tenant: info.tenantId, destination: d.id };
    const prefix = normalizePrefix(d.prefix ?? this.#o.defaultPrefix);
    const key = `${prefix}${info.tenantId}/${info.application}/${info.podName}/${info.file}`;
    const region = d.region ?? this.#o.region;
    try {
      const size = await copier.copy(
        { bucket: inner.bucket, key: inner.key },
        { bucket: d.bucket, key, ...(region && { region }) },
        {
          "source-bucket": inner.bucket,
          "source-key": inner.key,
          "tenant-id": info.tenantId,
          "application": info.application,
          "pod-name": info.podName,
          "delivery-timestamp": String(Math.floor(Date.now() / 1000)),
        },
        signal,
      );
      m.objects.inc(1, labels);
      m.bytes.inc(size, labels);
    } catch (e) {
      const permanent = nonRecoverable(e);
      m.failures.inc(1, { ...labels, recoverable: String(!permanent) });
      if (!permanent || permanent.reason === "object_gone") throw e;
      log.error("S3 delivery failed for good: counted, not retried", {
        ...labels,
        unit: inner.id,
        error: errorChain(e),
      });
    }
  }
}
