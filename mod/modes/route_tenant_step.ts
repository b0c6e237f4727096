/**
 * Mode `route`'s tenant step, between a source of S3 object units and the data path: for each
 * object, its tenant's wanted deliveries (route_tenants.ts) become an {@link ObjectPlan}; the S3
 * copies are done when the unit opens, and the object is opened only when a CloudWatch Logs
 * destination wants its records (route_events.ts turns them into events for route_sink.ts).
 *
 * Acknowledgement: a unit is acked once every batch carrying its events settled (events refused
 * for good were dead-lettered by the pipeline); a unit cut short by a Lambda deadline is
 * re-queued with the record offset reached. An S3 copy failing for good (missing bucket) is
 * counted and logged and does not hold the object. A corrupt object (a gzip member cut short or
 * damaged) is permanent: its good records go out once, it is counted as `corrupt_object`, and its
 * source deletes its message. Every other failure leaves the message for redelivery, including
 * a unit the pipeline gave up on after `max_attempts` (SQS's redrive policy decides then).
 * @module
 */

import type { S3Client } from "@aws-sdk/client-s3";
import { errorChain, type Logger } from "../log/logger.ts";
import { DecodeError } from "../pipeline/gzip.ts";
import { nonRecoverable, NonRecoverableError } from "../pipeline/non_recoverable_error.ts";
import { RetryableError } from "../pipeline/retry.ts";
import type { Source, Unit, UnitResult } from "../pipeline/types.ts";
import type { CloudWatchTarget } from "../sinks/cloudwatch_logs.ts";
import { normalizePrefix, type S3Copier } from "../sinks/s3_copy.ts";
import { getS3Object, type S3ObjectSource, type S3ObjectUnit } from "../sources/s3_object.ts";
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
export interface Target extends CloudWatchTarget {
  readonly tenant: string;
  readonly destination: string;
}

/** What the tenant step decided for one object, and how far its reading got. */
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

/** A unit of the tenant step: its plan is set once it is opened. */
export interface RoutedUnit extends Unit {
  /** Aborted when the unit must stop early (a Lambda deadline). */
  readonly cut?: AbortSignal;
  /** Set by `open`. */
  plan?: ObjectPlan;
}

/** Options for {@link TenantStep}. */
export interface TenantStepOptions {
  /** Reads source objects (a download client: see s3DownloadConfig). */
  s3: S3Client;
  tenants: TenantDirectory;
  copier: S3Copier;
  metrics: RouteMetrics;
  log: Logger;
  /** Region of destinations without `target_region`. */
  region?: string;
  /** Prefix of S3 copies when a config has none. @default "ROSA/cluster-logs/" */
  defaultPrefix?: string;
}

const EMPTY = () => new ReadableStream<Uint8Array>({ start: (c) => c.close() });

/** The decoder's reasons for input that will never decode (see pipeline/gzip.ts). */
const DECODE_REASONS = new Set(["corrupt_gzip", "truncated_gzip", "not_gzip"]);

/**
 * When `e` says the object itself is corrupt (a gzip member damaged or cut short): a
 * NonRecoverableError with reason `corrupt_object`, naming the object and the byte offset.
 *
 * @param id the object's unit id, for the message.
 * @param e what the unit failed with.
 * @returns the permanent error, or undefined when the object is not known to be corrupt.
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

/** Resolves each object's tenant and deliveries; does its S3 copies. */
export class TenantStep {
  readonly #o: Required<Omit<TenantStepOptions, "region">> & Pick<TenantStepOptions, "region">;
  /** Units that failed in a way worth retrying (left for redelivery, not acked). */
  retryLater = 0;

  constructor(o: TenantStepOptions) {
    this.#o = { defaultPrefix: "ROSA/cluster-logs/", ...o };
  }

  /**
   * `inner`'s units, routed.
   *
   * @param inner the source of S3 object units (SQS, Lambda, manual, scan).
   * @returns a source of {@link RoutedUnit}s.
   */
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

  #wrap(inner: S3ObjectUnit): RoutedUnit {
    // deno-lint-ignore no-this-alias
    const step = this;
    const m = this.#o.metrics;
    const unit: RoutedUnit = {
      id: inner.id,
      ...(inner.time !== undefined && { time: inner.time }),
      ...(inner.size !== undefined && { size: inner.size }),
      ...(inner.attributes && { attributes: inner.attributes }),
      ...(inner.cut && { cut: inner.cut }),
      open: (signal: AbortSignal) => this.#open(unit, inner, signal),
      async ack(result: UnitResult): Promise<void> {
        const plan = unit.plan;
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
        let permanent = corrupt ?? nonRecoverable(e);
        if (permanent?.reason === "max_attempts") {
          // Failing many times (a tenant table, a copy destination or STS down) says nothing
          // about the object: SQS's redrive policy decides when to give up, not us.
          permanent = undefined;
          e = new RetryableError(`${unit.id} failed again: left for redelivery`, { cause: e });
        }
        if (permanent) m.undeliverable.inc(1, { reason: permanent.reason });
        else step.retryLater++;
        // A corrupt object is permanent: its source deletes the message once the rest is done.
        return inner.nack(corrupt ?? e);
      },
    };
    return unit;
  }

  /** Resolve the tenant, do the S3 copies, and open the object when CloudWatch wants records. */
  async #open(
    unit: RoutedUnit,
    inner: S3ObjectUnit,
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    const { tenants, metrics: m, log } = this.#o;
    const info = parseObjectKey(inner.key);
    const wanted = (await tenants.deliveries(info.tenantId, signal))
      .filter((d) => wantsApplication(d, info.application));
    const resume = inner.resume ?? { offset: 0, completed: [], requeues: 0 };
    const cw = wanted.filter((d): d is CloudWatchDelivery => d.type === "cloudwatch");
    const plan = unit.plan = new ObjectPlan(
      info,
      cw.map((d) => this.#target(d, info)),
      [...resume.completed],
      resume.offset,
    );
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
