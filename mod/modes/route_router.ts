/**
 * The routing step of mode `route`, between a source of S3 object units and the shared data
 * path: for each object, its tenant's wanted deliveries (route_tenants.ts); S3 copies done when
 * the unit opens; the object's JSON records (NDJSON or an array, see JsonRecordsParser) turned
 * into CloudWatch Logs events, one per record and CloudWatch destination, for the sink.
 *
 * Acknowledgement: a unit is acked only when every destination took its data. A destination
 * failing for a reason worth retrying fails only the units whose events it held (the sink reports
 * per stream), so their messages are redelivered and the others' are not; a destination failing
 * for good (bad parameters, missing bucket) is counted and logged and does not hold the object.
 * @module
 */

import type { S3Client } from "@aws-sdk/client-s3";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { JsonRecordsParser } from "../parsers/json_records.ts";
import type { LogRecord } from "../parsers/record.ts";
import { extractTimestamp } from "../parsers/timestamp.ts";
import { LineStream } from "../pipeline/line_stream.ts";
import { nonRecoverable } from "../pipeline/non_recoverable_error.ts";
import type { Batch, Sink, Source, Unit, UnitResult } from "../pipeline/types.ts";
import { getS3Object, type S3ObjectSource, type S3ObjectUnit } from "../sources/s3_object.ts";
import {
  type CloudWatchEvent,
  type CloudWatchLogsSink,
  type CloudWatchTarget,
  type TargetOutcome,
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
  /** A destination failed in a way worth retrying: the unit is nacked. */
  failure: Error | undefined;

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
  /** The CloudWatch Logs sink; its `onOutcome` must call {@link Router.outcome}. */
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

  /** The data path's sink: the CloudWatch Logs sink, kept open across runs (its owner closes it). */
  sink(): Sink<RouteEvent> {
    const cw = this.#o.cloudwatch;
    return {
      kind: cw.kind,
      write: (batch: Batch<RouteEvent>, signal: AbortSignal) => cw.write(batch, signal),
      close: () => Promise.resolve(),
    };
  }

  /** Encoded size of an event as PutLogEvents counts it. */
  readonly sizeOf = (e: RouteEvent): number => e.bytes + PUT_LOG_EVENTS.eventOverhead;

  /** Account for one stream's outcome (the CloudWatch sink's `onOutcome`). */
  outcome(o: TargetOutcome): void {
    const { metrics: m, log } = this.#o;
    const t = o.target as Target;
    const labels = { tenant: t.tenant, destination: t.destination };
    if (o.delivered) m.delivered.inc(o.delivered, labels);
    if (o.bytes) m.bytes.inc(o.bytes, labels);
    for (const [reason, n] of Object.entries(o.rejected)) {
      m.rejected.inc(n, { ...labels, reason });
    }
    if (!o.error) return;
    let rejected = 0;
    for (const n of Object.values(o.rejected)) rejected += n ?? 0;
    const failed = o.events.length - o.delivered - rejected;
    m.failedRecords.inc(failed, labels);
    m.failures.inc(1, { ...labels, recoverable: String(o.recoverable) });
    if (o.recoverable) { for (const e of o.events as RouteEvent[]) e.plan.failure ??= o.error; }
    log.error(
      o.recoverable
        ? "CloudWatch Logs delivery failed: its objects will be retried"
        : "CloudWatch Logs delivery failed for good: counted, not retried",
      { ...labels, stream: `${t.logGroup}:${t.logStream}`, events: failed, error: o.error },
    );
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
        if (plan?.failure) {
          // A destination failed after the data path delivered the batches: fail the unit.
          router.retryLater++;
          await inner.nack(plan.failure);
          throw plan.failure;
        }
        if (plan?.cutAt !== undefined && inner.requeue) {
          return await inner.requeue({ offset: plan.cutAt, completed: plan.completed });
        }
        for (const t of plan?.targets ?? []) {
          m.objects.inc(1, { tenant: t.tenant, destination: t.destination });
        }
        return await inner.ack(result);
      },
      nack(e: Error) {
        const permanent = nonRecoverable(e);
        if (permanent) m.undeliverable.inc(1, { reason: permanent.reason });
        else router.retryLater++;
        return inner.nack(e);
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
