/**
 * CloudWatch Logs sink: events addressed to log streams, possibly in other accounts, delivered
 * with PutLogEvents within the service's limits (see cloudwatch_batches.ts). A target's role is
 * assumed in two hops (see assumed_roles.ts) and its clients and credentials are cached. A
 * missing log group or stream is created on first use when allowed. Throttling, 5xx and network
 * failures are retried by retry.ts (the SDK's own retries are off).
 *
 * What `write` reports, per the data path's contract (types.ts):
 * - events refused for good (`rejectedLogEventsInfo`: too old, too new, expired; those refused up
 *   front for their time or for being empty; every event of a stream that fails for good: bad
 *   parameters, a missing group or stream that may not be created) → a {@link BatchError} naming
 *   them with their reason, everything else of the batch delivered;
 * - a stream failing for a reason a later try may fix (after `retry.max_retries`) → a retryable
 *   {@link SinkError}: the whole batch is retried later, and the streams already delivered get
 *   their events again (we prefer a duplicate to a loss).
 *
 * @example
 * ```ts
 * const sink = new CloudWatchLogsSink({ aws, roles, metrics, log });
 * const target = { key: "g|s", logGroup: "/app/logs", logStream: "pod-1" };
 * await sink.write({ items: [{ target, timestamp: Date.now(), message: "hi", bytes: 2 }], bytes: 28 }, signal);
 * ```
 * @module
 */

import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  PutLogEventsCommand,
  type RejectedLogEventsInfo,
} from "@aws-sdk/client-cloudwatch-logs";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { nonRecoverable, NonRecoverableError } from "../pipeline/non_recoverable_error.ts";
import type { RetryOptions } from "../pipeline/retry.ts";
import {
  type Batch,
  BatchError,
  type FailedItem,
  type Sink,
  SinkError,
} from "../pipeline/types.ts";
import { awsErrorName, isAwsThrottling, retryAws } from "../sources/aws_errors.ts";
import type { AssumedRoles } from "./assumed_roles.ts";
import {
  planPutLogEvents,
  PUT_LOG_EVENTS,
  refusal,
  type TimedEvent,
} from "./cloudwatch_batches.ts";

/** A log stream to deliver to. */
export interface CloudWatchTarget {
  /** Identifies the stream and the way to reach it; events with the same key are sent together. */
  readonly key: string;
  readonly logGroup: string;
  readonly logStream: string;
  /** Region of the log group. @default the sink's region */
  readonly region?: string;
  /** Role to assume (through the central role). @default none: the agent's own credentials */
  readonly roleArn?: string;
  /** ExternalId for the role. @default the central account id */
  readonly externalId?: string;
}

/** One event for a target. `bytes` is the message's UTF-8 length. */
export interface CloudWatchEvent extends TimedEvent {
  readonly target: CloudWatchTarget;
}

/** Why events were not accepted. */
export type RejectReason = "too_old" | "too_new" | "expired" | "empty";

/** Options for {@link CloudWatchLogsSink}. */
export interface CloudWatchLogsSinkOptions {
  /** Client options (region, endpoint, request handler); credentials come from `roles`. */
  aws: Record<string, unknown>;
  roles: AssumedRoles;
  metrics: Registry;
  log: Logger;
  /** Create a missing log group. @default true */
  createLogGroup?: boolean;
  /** Create a missing log stream. @default true */
  createLogStream?: boolean;
  /** Events per PutLogEvents request (≤ 10,000). @default 10000 */
  maxBatchSize?: number;
  /** Longer messages are cut to this many UTF-8 bytes (counted). @default 262118 */
  maxEventBytes?: number;
  /** Targets of one write delivered at once. @default 4 */
  concurrency?: number;
  retry?: RetryOptions;
  /** Clock. @default Date.now */
  now?: () => number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 length of a string without encoding it. */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 2; // a surrogate pair: 4 bytes for 2 UTF-16 units
      i++;
    } else n += 2;
  }
  return n;
}

/** Delivers events to CloudWatch Logs streams. */
export class CloudWatchLogsSink implements Sink<CloudWatchEvent> {
  readonly kind = "cloudwatch";
  readonly #o: Required<Omit<CloudWatchLogsSinkOptions, "retry">> & { retry: RetryOptions };
  readonly #clients = new Map<string, CloudWatchLogsClient>();
  readonly #m;

  constructor(o: CloudWatchLogsSinkOptions) {
    this.#o = {
      createLogGroup: true,
      createLogStream: true,
      maxBatchSize: PUT_LOG_EVENTS.maxEvents,
      maxEventBytes: 262_144 - PUT_LOG_EVENTS.eventOverhead,
      concurrency: 4,
      now: Date.now,
      retry: {},
      ...o,
    };
    if (!Number.isInteger(this.#o.maxBatchSize) || this.#o.maxBatchSize < 1) {
      throw new RangeError(
        `max_batch_size must be a positive integer: got ${this.#o.maxBatchSize}`,
      );
    }
    const m = o.metrics;
    this.#m = {
      requests: m.counter("cloudwatch_logs_requests_total", "PutLogEvents requests sent"),
      retries: m.counter(
        "cloudwatch_logs_retries_total",
        "PutLogEvents and create calls retried, by reason (throttled, transient)",
        ["reason"],
      ),
      created: m.counter("cloudwatch_logs_created_total", "Log groups and streams created"),
      truncated: m.counter(
        "cloudwatch_logs_events_truncated_total",
        "Messages cut to max_event_bytes",
      ),
    };
  }

  /**
   * Deliver a batch: each stream's events in PutLogEvents requests, up to `concurrency` streams
   * at once.
   *
   * @throws {BatchError} naming the events refused for good and, marked `retryable`, those of
   * streams that failed for a reason a later try may fix while other streams went through (the
   * rest was delivered).
   * @throws {SinkError} (`retryable: true`) when every stream failed for such a reason.
   */
  async write(batch: Batch<CloudWatchEvent>, signal: AbortSignal): Promise<void> {
    const groups = new Map<string, number[]>();
    for (const [i, e] of batch.items.entries()) {
      const g = groups.get(e.target.key);
      if (g) g.push(i);
      else groups.set(e.target.key, [i]);
    }
    const failed: FailedItem[] = [];
    let retryable: Error | undefined;
    let streamsFailed = 0;
    const queue = [...groups.values()];
    const worker = async () => {
      for (let indices = queue.shift(); indices; indices = queue.shift()) {
        try {
          failed.push(...await this.#deliver(batch.items, indices, signal));
        } catch (e) {
          // This stream may go through later; the others' events are not sent again for it.
          retryable ??= e as Error;
          streamsFailed++;
          const message = errorChain(e);
          for (const index of indices) {
            failed.push({ index, reason: "retryable", message, retryable: true });
          }
        }
      }
    };
    const streams = groups.size;
    await Promise.all(Array.from({ length: Math.min(this.#o.concurrency, queue.length) }, worker));
    if (retryable && streamsFailed === streams) {
      throw new SinkError(`CloudWatch Logs: ${errorChain(retryable)}`, {
        cause: retryable,
        retryable: true,
      });
    }
    if (failed.length > 0) {
      failed.sort((a, b) => a.index - b.index);
      const later = failed.filter((f) => f.retryable).length;
      throw new BatchError(
        `CloudWatch Logs: ${
          failed.length - later
        } of ${batch.items.length} events refused for good, ${later} to retry (${streamsFailed} of ${streams} streams failing${
          retryable ? `: ${errorChain(retryable)}` : ""
        }); the rest delivered`,
        failed,
      );
    }
  }

  /**
   * Deliver one stream's events (`indices` into `items`, all for one target).
   *
   * @returns the events refused for good, with their reason.
   * @throws the stream's error when a later try may succeed.
   */
  async #deliver(
    items: readonly CloudWatchEvent[],
    indices: readonly number[],
    signal: AbortSignal,
  ): Promise<FailedItem[]> {
    const target = items[indices[0]!]!.target;
    const failed: FailedItem[] = [];
    const refused: Partial<Record<RejectReason, number>> = {};
    const refuse = (index: number, reason: RejectReason | string, message: string) => {
      failed.push({ index, reason, message });
      refused[reason as RejectReason] = (refused[reason as RejectReason] ?? 0) + 1;
    };
    const now = this.#o.now();
    // Sendable events, and where each came from in the batch (the plan sorts them).
    const indexOf = new Map<CloudWatchEvent, number>();
    for (const i of indices) {
      const e = items[i]!;
      const why = e.bytes === 0 ? "empty" : refusal(e.timestamp, now);
      if (why) {
        refuse(i, why, `${name(target)}: not sent, CloudWatch Logs refuses ${why} events`);
      } else indexOf.set(e.bytes > this.#o.maxEventBytes ? this.#truncate(e) : e, i);
    }
    if (failed.length > 0) {
      this.#o.log.warn("CloudWatch Logs would refuse some events: not sent", {
        stream: name(target),
        ...refused,
      });
    }
    const requests = planPutLogEvents([...indexOf.keys()], { maxEvents: this.#o.maxBatchSize });
    let sent = 0;
    try {
      const client = this.#client(target);
      for (; sent < requests.length; sent++) {
        const req = requests[sent]!;
        const info = await this.#put(client, target, req, signal);
        if (!info) continue;
        for (const [i, e] of req.entries()) {
          const why = rejectedReason(info, i);
          if (why) refuse(indexOf.get(e)!, why, `${name(target)}: rejected by CloudWatch Logs`);
        }
        this.#o.log.warn("CloudWatch Logs rejected some events", {
          stream: name(target),
          ...info,
        });
      }
    } catch (e) {
      const permanent = nonRecoverable(e);
      if (!permanent) throw e;
      // Refused for good: this request's events and those of the requests not sent.
      for (const req of requests.slice(sent)) {
        for (const ev of req) refuse(indexOf.get(ev)!, permanent.reason, errorChain(e));
      }
    }
    return failed;
  }

  async #put(
    client: CloudWatchLogsClient,
    target: CloudWatchTarget,
    events: CloudWatchEvent[],
    signal: AbortSignal,
  ): Promise<RejectedLogEventsInfo | undefined> {
    const input = {
      logGroupName: target.logGroup,
      logStreamName: target.logStream,
      logEvents: events.map((e) => ({ timestamp: e.timestamp, message: e.message })),
    };
    for (let created = false;; created = true) {
      try {
        const res = await this.#retry(() => {
          this.#m.requests.inc();
          return client.send(new PutLogEventsCommand(input), { abortSignal: signal });
        }, signal);
        const info = res.rejectedLogEventsInfo;
        return info && Object.keys(info).length > 0 ? info : undefined;
      } catch (e) {
        const code = awsErrorName(e);
        if (code === "ResourceNotFoundException" && !created) {
          await this.#create(client, target, signal);
          continue;
        }
        const msg = `PutLogEvents to ${name(target)} failed`;
        if (code === "InvalidParameterException") {
          throw new NonRecoverableError(msg, { cause: e, reason: "invalid_parameter" });
        }
        throw new Error(msg, { cause: e });
      }
    }
  }

  /** Create the stream, and its group first when that is missing (and allowed). */
  async #create(client: CloudWatchLogsClient, target: CloudWatchTarget, signal: AbortSignal) {
    const call = (cmd: CreateLogGroupCommand | CreateLogStreamCommand, kind: string) =>
      this.#retry(() => client.send(cmd as CreateLogStreamCommand, { abortSignal: signal }), signal)
        .then(() => {
          this.#m.created.inc(1, { kind });
          this.#o.log.info(`created log ${kind}`, { stream: name(target) });
        }, (e) => {
          if (awsErrorName(e) !== "ResourceAlreadyExistsException") throw e;
        });
    const group = { logGroupName: target.logGroup };
    const stream = () =>
      call(new CreateLogStreamCommand({ ...group, logStreamName: target.logStream }), "stream");
    if (!this.#o.createLogStream) {
      throw new NonRecoverableError(
        `log stream ${name(target)} does not exist and create_log_stream is off`,
        { reason: "missing_log_stream" },
      );
    }
    try {
      await stream();
    } catch (e) {
      if (awsErrorName(e) !== "ResourceNotFoundException") throw e;
      if (!this.#o.createLogGroup) {
        throw new NonRecoverableError(
          `log group ${target.logGroup} does not exist and create_log_group is off`,
          { cause: e, reason: "missing_log_group" },
        );
      }
      await call(new CreateLogGroupCommand(group), "group");
      await stream();
    }
  }

  #retry<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    return retryAws(fn, {
      ...this.#o.retry,
      signal,
      onRetry: (e, attempt, wait) => {
        this.#m.retries.inc(1, { reason: isAwsThrottling(e) ? "throttled" : "transient" });
        this.#o.log.debug("CloudWatch Logs call retried", { attempt, wait_ms: Math.round(wait) });
      },
    });
  }

  #client(t: CloudWatchTarget): CloudWatchLogsClient {
    const key = `${t.region ?? ""}|${t.roleArn ?? ""}|${t.externalId ?? ""}`;
    let c = this.#clients.get(key);
    if (!c) {
      const roles = this.#o.roles;
      const roleArn = t.roleArn;
      c = new CloudWatchLogsClient({
        ...this.#o.aws,
        ...(t.region && { region: t.region }),
        maxAttempts: 1,
        ...(roleArn && {
          credentials: async () => roles.tenant(roleArn, t.externalId ?? await roles.account()),
        }),
      });
      this.#clients.set(key, c);
    }
    return c;
  }

  #truncate(e: CloudWatchEvent): CloudWatchEvent {
    this.#m.truncated.inc();
    // Cut at a character boundary at or below the limit.
    let message = decoder.decode(encoder.encode(e.message).subarray(0, this.#o.maxEventBytes));
    if (message.endsWith("\uFFFD")) message = message.slice(0, -1);
    return { ...e, message, bytes: utf8Length(message) };
  }

  close(): Promise<void> {
    for (const c of this.#clients.values()) c.destroy();
    this.#clients.clear();
    return Promise.resolve();
  }
}

function name(t: CloudWatchTarget): string {
  return `${t.logGroup}:${t.logStream}${t.region ? ` (${t.region})` : ""}`;
}

function rejectedReason(info: RejectedLogEventsInfo, i: number): RejectReason | undefined {
  if (info.tooOldLogEventEndIndex !== undefined && i <= info.tooOldLogEventEndIndex) {
    return "too_old";
  }
  if (info.expiredLogEventEndIndex !== undefined && i <= info.expiredLogEventEndIndex) {
    return "expired";
  }
  if (info.tooNewLogEventStartIndex !== undefined && i >= info.tooNewLogEventStartIndex) {
    return "too_new";
  }
  return undefined;
}
