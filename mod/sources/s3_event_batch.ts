/**
 * A batch of S3 event messages handled in one go, with an outcome per message: an AWS Lambda
 * invocation's SQS records (answered with `batchItemFailures`, partial batch failure) or the
 * events given on stdin. Each object named by a message is a unit; a message succeeds when every
 * object was delivered (or cannot be delivered for a reason redelivery cannot fix, counted and
 * logged) and fails, to be redelivered whole, when any object failed otherwise. We prefer a
 * duplicate line to a lost one.
 *
 * When `cut` aborts (the Lambda deadline is near), objects stop at their next record: what was
 * read is delivered, and a message carrying the record offset reached is re-queued (the
 * reference's "SQS re-queuing with offset"); its next run skips that many records. Objects the
 * cut came before are re-queued as they were. A started object whose cut made no progress is
 * reported as a failure instead, so SQS's redrive policy, not this code, decides when to give
 * up: nothing is discarded here.
 * @module
 */

import { GetQueueUrlCommand, SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { S3Client } from "@aws-sdk/client-s3";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { nonRecoverable } from "../pipeline/non_recoverable_error.ts";
import type { Source } from "../pipeline/types.ts";
import { type ObjectResume, openS3Object, type S3ObjectUnit } from "./s3_object.ts";
import { parseS3Event, type S3EventObject } from "./s3_sqs.ts";

/** One message of a batch. */
export interface EventMessage {
  /** The SQS message id (`itemIdentifier` in a partial batch failure). */
  id: string;
  body: string;
  /** The queue's ARN (`eventSourceARN` of a Lambda SQS record), for re-queuing. */
  sourceArn?: string;
}

/**
 * The messages of an event document: the records of a Lambda SQS event
 * (`{"Records":[{"eventSource":"aws:sqs","messageId":...,"body":...}]}`), else the document
 * itself (an S3 event, or an SNS notification wrapping one) as one message with id `fallbackId`.
 */
export function eventMessages(doc: unknown, fallbackId: string): EventMessage[] {
  const records = (doc as { Records?: unknown })?.Records;
  if (Array.isArray(records) && records.length > 0 && records.every(isSqsRecord)) {
    return records.map((r, i) => ({
      id: typeof r.messageId === "string" ? r.messageId : `${fallbackId}#${i}`,
      body: typeof r.body === "string" ? r.body : JSON.stringify(r.body),
      ...(typeof r.eventSourceARN === "string" && { sourceArn: r.eventSourceARN }),
    }));
  }
  return [{ id: fallbackId, body: JSON.stringify(doc) }];
}

function isSqsRecord(r: unknown): r is Record<string, unknown> {
  return typeof r === "object" && r !== null && (r as Record<string, unknown>).eventSource ===
      "aws:sqs";
}

/** How a message ended. */
export type MessageOutcome = "delivered" | "failed" | "undeliverable";

/** Re-queues the rest of an object; resolves once the new message is in the queue. */
export type Requeue = (
  message: EventMessage,
  object: S3EventObject,
  resume: ObjectResume,
) => Promise<void>;

/** Options for {@link S3EventBatch}. */
export interface S3EventBatchOptions {
  messages: EventMessage[];
  s3: S3Client;
  log: Logger;
  metrics: Registry;
  /** Aborting stops every object at its next record; the rest is re-queued with `requeue`. */
  cut?: AbortSignal;
  /** How to re-queue; without it a cut object fails its message (redelivered whole). */
  requeue?: Requeue;
}

interface Tracked {
  message: EventMessage;
  outcome: MessageOutcome;
  /** Objects not settled yet: a message left with some (shutdown) counts as failed. */
  pending: number;
}

/** The objects of a batch of event messages as units, with an outcome per message. */
export class S3EventBatch implements Source {
  readonly kind = "s3";
  readonly #o: S3EventBatchOptions;
  readonly #tracked: Tracked[] = [];
  readonly #units: [S3ObjectUnit, () => Promise<void>][] = [];
  readonly #counters;

  constructor(o: S3EventBatchOptions) {
    this.#o = o;
    this.#counters = {
      malformed: o.metrics.counter(
        "sqs_messages_malformed_total",
        "Queue messages that were not S3 events: deleted",
      ),
      undeliverable: o.metrics.counter(
        "sqs_objects_undeliverable_total",
        "Objects that failed for a reason redelivery cannot fix (logged): their message is deleted",
        ["reason"],
      ),
      requeued: o.metrics.counter(
        "sqs_objects_requeued_total",
        "Objects cut short (Lambda deadline) and re-queued with the record offset reached",
      ),
    };
    for (const message of o.messages) this.#add(message);
  }

  /** How each message ended (complete once the pipeline over {@link units} has returned). */
  outcomes(): { id: string; outcome: MessageOutcome }[] {
    return this.#tracked.map((t) => ({
      id: t.message.id,
      outcome: t.pending > 0 ? "failed" : t.outcome,
    }));
  }

  /** Ids of the messages to redeliver: a Lambda response's `batchItemFailures`. */
  failedIds(): string[] {
    return this.outcomes().filter((o) => o.outcome === "failed").map((o) => o.id);
  }

  async *units(signal: AbortSignal): AsyncIterable<S3ObjectUnit> {
    for (const [unit, cutBeforeStart] of this.#units) {
      // Not started before the cut (or shutdown): re-queue (or fail) it as it is.
      if (this.#o.cut?.aborted || signal.aborted) await cutBeforeStart();
      else yield unit;
    }
  }

  #add(message: EventMessage): void {
    const { log } = this.#o;
    const parsed = parseS3Event(message.body);
    const t: Tracked = { message, outcome: "delivered", pending: 0 };
    this.#tracked.push(t);
    if (parsed.kind === "malformed") {
      this.#counters.malformed.inc();
      log.error("message is not an S3 event: dropped", {
        message_id: message.id,
        reason: parsed.reason,
      });
      t.outcome = "undeliverable";
      return;
    }
    if (parsed.kind === "test") return;
    t.pending = parsed.objects.length;
    for (const o of parsed.objects) this.#units.push(this.#unit(t, o));
  }

  #unit(t: Tracked, o: S3EventObject): [S3ObjectUnit, () => Promise<void>] {
    const { s3, log, cut, requeue } = this.#o;
    const id = `s3://${o.bucket}/${o.key}`;
    let done = false;
    const settle = (failed?: Error) => {
      if (done) return;
      done = true;
      t.pending--;
      if (failed) {
        t.outcome = "failed";
        log.warn("object failed: its message will be redelivered", {
          unit: id,
          message_id: t.message.id,
          error: errorChain(failed),
        });
      }
    };
    const before = o.resume ?? { offset: 0, completed: [], requeues: 0 };
    const doRequeue = async (r: Omit<ObjectResume, "requeues">, started = true) => {
      const progressed = r.offset > before.offset ||
        r.completed.some((c) => !before.completed.includes(c));
      if (!requeue) return settle(new Error(`${id} was cut short and cannot be re-queued here`));
      if (started && !progressed) {
        return settle(new Error(`${id} was cut short at record ${r.offset} without progress`));
      }
      try {
        await requeue(t.message, o, { ...r, requeues: before.requeues + 1 });
        this.#counters.requeued.inc();
        log.info("object cut short by the deadline: re-queued with its record offset", {
          unit: id,
          message_id: t.message.id,
          offset: r.offset,
          completed: r.completed,
        });
        settle();
      } catch (e) {
        settle(new Error(`re-queue of ${id} at record ${r.offset} failed`, { cause: e }));
      }
    };
    const unit: S3ObjectUnit = {
      id,
      bucket: o.bucket,
      key: o.key,
      ...(o.time !== undefined && { time: o.time }),
      ...(o.size !== undefined && { size: o.size }),
      ...(o.resume && { resume: o.resume }),
      ...(cut && { cut }),
      attributes: { message_id: t.message.id },
      open: (signal) => openS3Object(s3, o.bucket, o.key, signal),
      ack: () => Promise.resolve(settle()),
      nack: (e) => {
        const permanent = nonRecoverable(e);
        if (!permanent) return Promise.resolve(settle(e));
        this.#counters.undeliverable.inc(1, { reason: permanent.reason });
        log.error("object cannot be delivered: its message is dropped", {
          unit: id,
          message_id: t.message.id,
          reason: permanent.reason,
          error: errorChain(e),
        });
        return Promise.resolve(settle());
      },
      requeue: doRequeue,
    };
    // Never started (the cut came first): passed on as it is.
    return [unit, () => doRequeue({ offset: before.offset, completed: before.completed }, false)];
  }
}

/**
 * A {@link Requeue} that sends the object's remainder to `queueUrl`, or to the queue the message
 * came from (its `eventSourceARN`): a direct S3 event for that one object with the reference's
 * `processing_metadata` and `ProcessingOffset`/`RetryCount` message attributes.
 */
export function sqsRequeue(sqs: SQSClient, queueUrl?: string): Requeue {
  const urls = new Map<string, Promise<string>>();
  const urlOf = (arn: string) => {
    let url = urls.get(arn);
    if (!url) {
      const [, , , , account, name] = arn.split(":");
      if (!name) throw new Error(`cannot re-queue: no queue_url and no queue ARN (got "${arn}")`);
      url = sqs.send(new GetQueueUrlCommand({ QueueName: name, QueueOwnerAWSAccountId: account }))
        .then((o) => o.QueueUrl!);
      url.catch(() => urls.delete(arn));
      urls.set(arn, url);
    }
    return url;
  };
  return async (message, o, resume) => {
    const url = queueUrl || await urlOf(message.sourceArn ?? "");
    const record = {
      eventVersion: "2.1",
      eventSource: "aws:s3",
      eventName: "ObjectCreated:Put",
      ...(o.time !== undefined && { eventTime: new Date(o.time).toISOString() }),
      s3: {
        bucket: { name: o.bucket },
        object: {
          key: encodeURIComponent(o.key).replace(/%20/g, "+").replace(/%2F/g, "/"),
          ...(o.size !== undefined && { size: o.size }),
        },
      },
    };
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: url,
        MessageBody: JSON.stringify({
          Records: [record],
          processing_metadata: {
            offset: resume.offset,
            retry_count: resume.requeues,
            completed_deliveries: resume.completed,
            requeued_at: new Date().toISOString(),
            original_message_id: message.id,
          },
        }),
        MessageAttributes: {
          ProcessingOffset: { DataType: "Number", StringValue: String(resume.offset) },
          RetryCount: { DataType: "Number", StringValue: String(resume.requeues) },
        },
      }),
    );
  };
}
