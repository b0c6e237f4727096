/**
 * CloudWatch Logs sink: events addressed to log streams, possibly in other accounts, delivered
 * with PutLogEvents within the service's limits (see cloudwatch_batches.ts). A target's role is
 * assumed in two hops (see assumed_roles.ts) and its clients and credentials are cached. A
 * missing log group or stream is created on first use when allowed. Throttling, 5xx and network
 * failures are retried by retry.ts (the SDK's own retries are off); events the service refuses
 * (`rejectedLogEventsInfo`: too old, too new, expired) and events refused up front are counted
 * per reason, never silently lost.
 *
 * A failing target fails only its own events: with `onOutcome` set, each target's outcome is
 * reported there and `write` resolves; without it, `write` rejects with a {@link SinkError}.
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
import { type Batch, type Sink, SinkError } from "../pipeline/types.ts";
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

/** What happened to one target's events in one write. */
export interface TargetOutcome {
  target: CloudWatchTarget;
  events: readonly CloudWatchEvent[];
  /** Events accepted by CloudWatch Logs. */
  delivered: number;
  /** Message bytes accepted. */
  bytes: number;
  /** Events not accepted, by reason (refused up front or by the service). */
  rejected: Partial<Record<RejectReason, number>>;
  /** Set when the target failed (some events may have been delivered before). */
  error?: Error;
  /** Whether retrying later may help (false: bad parameters, missing group that may not be created). */
  recoverable?: boolean;
}

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
  /** Receives each target's outcome; when set, a failing target does not fail the write. */
  onOutcome?: (outcome: TargetOutcome) => void;
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
  readonly #o:
    & Required<Omit<CloudWatchLogsSinkOptions, "onOutcome" | "retry">>
    & Pick<CloudWatchLogsSinkOptions, "onOutcome">
    & { retry: RetryOptions };
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

  async write(batch: Batch<CloudWatchEvent>, signal: AbortSignal): Promise<void> {
    const groups = new Map<string, CloudWatchEvent[]>();
    for (const e of batch.items) {
      const g = groups.get(e.target.key);
      if (g) g.push(e);
      else groups.set(e.target.key, [e]);
    }
    const failures: TargetOutcome[] = [];
    const queue = [...groups.values()];
    const worker = async () => {
      for (let events = queue.shift(); events; events = queue.shift()) {
        const outcome = await this.deliver(events[0]!.target, events, signal);
        if (this.#o.onOutcome) this.#o.onOutcome(outcome);
        else if (outcome.error) failures.push(outcome);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#o.concurrency, queue.length) }, worker));
    if (failures.length > 0) {
      const first = failures[0]!;
      throw new SinkError(
        `CloudWatch Logs delivery failed for ${failures.length} stream(s), first ${
          name(first.target)
        }: ${errorChain(first.error)}`,
        { cause: first.error, retryable: failures.some((f) => f.recoverable) },
      );
    }
  }

  /** Deliver one target's events; never throws: the outcome says what happened. */
  async deliver(
    target: CloudWatchTarget,
    events: readonly CloudWatchEvent[],
    signal: AbortSignal,
  ): Promise<TargetOutcome> {
    const out: TargetOutcome = { target, events, delivered: 0, bytes: 0, rejected: {} };
    const now = this.#o.now();
    const sendable: CloudWatchEvent[] = [];
    for (const e of events) {
      const why = e.bytes === 0 ? "empty" : refusal(e.timestamp, now);
      if (why) out.rejected[why] = (out.rejected[why] ?? 0) + 1;
      else sendable.push(e.bytes > this.#o.maxEventBytes ? this.#truncate(e) : e);
    }
    if (Object.keys(out.rejected).length > 0) {
      this.#o.log.warn("CloudWatch Logs would refuse some events: not sent, counted", {
        stream: name(target),
        ...out.rejected,
      });
    }
    try {
      const client = this.#client(target);
      for (const req of planPutLogEvents(sendable, { maxEvents: this.#o.maxBatchSize })) {
        const info = await this.#put(client, target, req, signal);
        let accepted = req.length;
        let acceptedBytes = 0;
        for (const e of req) acceptedBytes += e.bytes;
        if (info) {
          for (const [i, e] of req.entries()) {
            const why = rejectedReason(info, i);
            if (!why) continue;
            out.rejected[why] = (out.rejected[why] ?? 0) + 1;
            accepted--;
            acceptedBytes -= e.bytes;
          }
          this.#o.log.warn("CloudWatch Logs rejected some events", {
            stream: name(target),
            ...info,
          });
        }
        out.delivered += accepted;
        out.bytes += acceptedBytes;
      }
    } catch (e) {
      out.error = e instanceof Error ? e : new Error(String(e));
      out.recoverable = nonRecoverable(e) === undefined;
    }
    return out;
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
