/**
 * Mode `route`'s parser: a routed object's decoded bytes → its JSON records (NDJSON or an array,
 * see JsonRecordsParser) → one CloudWatch Logs event per record and CloudWatch destination of
 * its {@link ObjectPlan}. Records an earlier run delivered (a re-queued object's offset) are
 * skipped; when the unit's `cut` aborts (a Lambda deadline), reading stops at the next record and
 * the plan records where.
 * @module
 */

import type { Logger } from "../log/logger.ts";
import type { Counter } from "../metrics/registry.ts";
import { JsonRecordsParser } from "../parsers/json_records.ts";
import type { LogRecord } from "../parsers/record.ts";
import { extractTimestamp } from "../parsers/timestamp.ts";
import { LineStream } from "../pipeline/line_stream.ts";
import { type CloudWatchEvent, utf8Length } from "../sinks/cloudwatch_logs.ts";
import { PUT_LOG_EVENTS } from "../sinks/cloudwatch_batches.ts";
import type { RouteMetrics } from "./route_metrics.ts";
import type { ObjectPlan, RoutedUnit, Target } from "./route_tenant_step.ts";

/** One record on its way to one CloudWatch destination. */
export interface RouteEvent extends CloudWatchEvent {
  readonly target: Target;
}

/**
 * A {@link RouteEvent} as the parser makes it; in the dead letter (JSON) it is its destination
 * and record, without the role it is delivered with.
 */
class Event implements RouteEvent {
  constructor(
    readonly target: Target,
    readonly timestamp: number,
    readonly message: string,
    readonly bytes: number,
  ) {}

  toJSON() {
    const t = this.target;
    return {
      tenant: t.tenant,
      destination: t.destination,
      log_group: t.logGroup,
      log_stream: t.logStream,
      timestamp: this.timestamp,
      message: this.message,
    };
  }
}

/** Encoded size of an event as PutLogEvents counts it (for batching). */
export const routeEventSize = (e: RouteEvent): number => e.bytes + PUT_LOG_EVENTS.eventOverhead;

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

/** Options for {@link RouteEventStream}. */
export interface RouteEventStreamOptions {
  metrics: RouteMetrics;
  /** `lines_truncated_total`. */
  truncated: Counter;
  log: Logger;
  /** Longest line; a one-line JSON array longer than this is cut. @default 16777216 */
  maxLineBytes?: number;
}

/**
 * Decoded bytes of a routed unit → its events, one array per chunk.
 *
 * @example
 * ```ts
 * await body.pipeThrough(new RouteEventStream(unit, { metrics, truncated, log })).pipeTo(sink);
 * ```
 */
export class RouteEventStream implements TransformStream<Uint8Array, RouteEvent[]> {
  readonly #lines: LineStream;
  readonly #readable: ReadableStream<RouteEvent[]>;

  /**
   * @param unit a unit of the tenant step, opened (its plan set).
   * @param options where counts and logs go.
   * @throws {Error} when the unit was not opened by the tenant step.
   */
  constructor(
    unit: RoutedUnit,
    { metrics, truncated, log, maxLineBytes = 16 << 20 }: RouteEventStreamOptions,
  ) {
    const plan = unit.plan;
    if (!plan) throw new Error(`${unit.id} was not opened by the tenant step`);
    const lines = this.#lines = new LineStream({ maxLineBytes });
    const parser = new JsonRecordsParser({ maxRecordChars: maxLineBytes });
    const cut = unit.cut;
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
        eventsOf(plan, record, out);
      }
    };
    const finish = () => {
      if (lines.linesTruncated) truncated.inc(lines.linesTruncated);
      if (parser.malformed === 0) return;
      metrics.malformed.inc(parser.malformed, { tenant: plan.info.tenantId });
      log.warn("lines that are not JSON records were skipped", {
        unit: unit.id,
        malformed: parser.malformed,
        first: parser.errors.slice(0, 3).map((e) => `line ${e.line}: ${e.message}`),
      });
    };
    this.#readable = lines.readable.pipeThrough(
      new TransformStream<Uint8Array[], RouteEvent[]>({
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
          finish();
        },
      }),
    );
  }

  get readable(): ReadableStream<RouteEvent[]> {
    return this.#readable;
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#lines.writable;
  }
}

/** The next record of `plan`'s object → one event per target (none when delivered before). */
function eventsOf(plan: ObjectPlan, record: LogRecord, out: RouteEvent[]): void {
  const index = plan.records++;
  if (index < plan.startOffset) return;
  const timestamp = extractTimestamp(record, plan.fallbackTime)!;
  const message = messageOf(record);
  const bytes = utf8Length(message);
  for (const target of plan.targets) out.push(new Event(target, timestamp, message, bytes));
}
