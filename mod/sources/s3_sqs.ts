/**
 * S3 objects announced by `ObjectCreated` notifications in an SQS queue, direct or wrapped by SNS
 * (`{"Type":"Notification","Message":"{\"Records\":[...]}"}`). Each record is a unit; a message
 * is deleted only when every object it names was fully delivered, and its visibility is extended
 * while they are in flight. This is how several agents share one bucket's work: they read one
 * queue, with no coordination of ours.
 *
 * A message that is not an S3 event (malformed JSON, no Records, the `s3:TestEvent`) is deleted,
 * counted and logged with the reason: retrying it cannot help; so is one whose objects all failed
 * for a reason redelivery cannot fix (a {@link NonRecoverableError}: object gone, unknown tenant).
 * A unit that fails otherwise leaves its message for redelivery (its visibility is reset so that
 * happens soon).
 *
 * A message re-queued after a cut-short run (see s3_event_batch.ts) carries
 * `processing_metadata: {offset, retry_count, completed_deliveries}`, the reference's format; its
 * objects come with `resume` set.
 * @module
 */

import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { S3Client } from "@aws-sdk/client-s3";
import { errorChain, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { nonRecoverable } from "../pipeline/non_recoverable_error.ts";
import { sleep } from "../pipeline/retry.ts";
import type { Source } from "../pipeline/types.ts";
import { type ObjectResume, openS3Object, type S3ObjectUnit } from "./s3_object.ts";
import type { SqsConfig } from "./s3_sqs_spec.ts";

/** One object named by an S3 event record. */
export interface S3EventObject {
  bucket: string;
  key: string;
  size?: number;
  /** ms since epoch. */
  time?: number;
  /** Where an earlier run stopped, from the message's `processing_metadata`. */
  resume?: ObjectResume;
}

/** The `processing_metadata` of a re-queued message, if any. */
function resumeOf(doc: Record<string, unknown>): ObjectResume | undefined {
  const m = doc.processing_metadata as Record<string, unknown> | undefined;
  if (!m || typeof m !== "object") return undefined;
  const offset = Number(m.offset ?? 0);
  const requeues = Number(m.retry_count ?? 0);
  const completed = Array.isArray(m.completed_deliveries)
    ? m.completed_deliveries.filter((d): d is string => typeof d === "string")
    : [];
  if (!Number.isSafeInteger(offset) || offset < 0) return undefined;
  return { offset, completed, requeues: Number.isSafeInteger(requeues) ? requeues : 0 };
}

/** What a queue message turned out to be. */
export type ParsedMessage =
  | { kind: "objects"; objects: S3EventObject[] }
  | { kind: "test" }
  | { kind: "malformed"; reason: string };

/**
 * Parse an SQS message body: an S3 event, an SNS notification wrapping one, or the S3 test event.
 * Keys are URL-decoded as S3 encodes them (`+` for space).
 */
export function parseS3Event(body: string, inherited?: ObjectResume): ParsedMessage {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (e) {
    return { kind: "malformed", reason: `not JSON: ${(e as Error).message}` };
  }
  const obj = doc as Record<string, unknown>;
  const resume = (obj && typeof obj === "object" && resumeOf(obj)) || inherited;
  if (obj && typeof obj === "object" && typeof obj.Message === "string") {
    return parseS3Event(obj.Message, resume); // SNS envelope
  }
  if (obj?.Event === "s3:TestEvent") return { kind: "test" };
  if (!obj || !Array.isArray(obj.Records)) {
    return { kind: "malformed", reason: "no Records array (not an S3 event notification)" };
  }
  const objects: S3EventObject[] = [];
  for (const [i, r] of (obj.Records as Record<string, unknown>[]).entries()) {
    const s3 = r?.s3 as { bucket?: { name?: string }; object?: { key?: string; size?: number } };
    const name = typeof r?.eventName === "string" ? r.eventName : "";
    if (name && !name.startsWith("ObjectCreated")) continue;
    if (!s3?.bucket?.name || typeof s3.object?.key !== "string") {
      return { kind: "malformed", reason: `Records[${i}] has no s3.bucket.name or s3.object.key` };
    }
    let key: string;
    try {
      key = decodeURIComponent(s3.object.key.replace(/\+/g, " "));
    } catch {
      return { kind: "malformed", reason: `Records[${i}] has a badly encoded key` };
    }
    const t = typeof r.eventTime === "string" ? Date.parse(r.eventTime) : NaN;
    objects.push({
      bucket: s3.bucket.name,
      key,
      ...(typeof s3.object.size === "number" && { size: s3.object.size }),
      ...(!Number.isNaN(t) && { time: t }),
      ...(resume && { resume }),
    });
  }
  return { kind: "objects", objects };
}

/** Options for {@link SqsS3Source}. */
export interface SqsS3SourceOptions {
  sqs: SQSClient;
  s3: S3Client;
  config: SqsConfig;
  log: Logger;
  metrics: Registry;
  /** Stop after a receive that returns no message (tests, backfills). @default false */
  untilEmpty?: boolean;
}

/** Units for the objects announced in an SQS queue. */
export class SqsS3Source implements Source {
  readonly kind = "s3";
  readonly #o: SqsS3SourceOptions;
  readonly #malformed;
  readonly #received;
  readonly #undeliverable;

  constructor(o: SqsS3SourceOptions) {
    if (!o.config.queue_url) throw new TypeError("sqs.queue_url is required for discovery: sqs");
    this.#o = o;
    this.#malformed = o.metrics.counter(
      "sqs_messages_malformed_total",
      "Queue messages that were not S3 events: deleted",
    );
    this.#received = o.metrics.counter("sqs_messages_received_total", "Queue messages received");
    this.#undeliverable = o.metrics.counter(
      "sqs_objects_undeliverable_total",
      "Objects that failed for a reason redelivery cannot fix (logged): their message is deleted",
      ["reason"],
    );
  }

  async *units(signal: AbortSignal): AsyncIterable<S3ObjectUnit> {
    const { sqs, config, log } = this.#o;
    while (!signal.aborted) {
      let messages: Message[];
      try {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: config.queue_url,
            MaxNumberOfMessages: config.max_messages,
            WaitTimeSeconds: Math.round(config.wait_time / 1000),
            VisibilityTimeout: Math.round(config.visibility_timeout / 1000),
          }),
          { abortSignal: signal },
        );
        messages = out.Messages ?? [];
      } catch (e) {
        if (signal.aborted) return;
        log.error("SQS receive failed: retrying", { queue: config.queue_url, error: e });
        await sleep(2000, signal);
        continue;
      }
      if (messages.length === 0 && this.#o.untilEmpty) return;
      for (const m of messages) {
        this.#received.inc();
        const parsed = parseS3Event(m.Body ?? "");
        if (parsed.kind !== "objects" || parsed.objects.length === 0) {
          if (parsed.kind === "malformed") {
            this.#malformed.inc();
            log.error("SQS message is not an S3 event: deleted", {
              message_id: m.MessageId,
              reason: parsed.reason,
            });
          }
          await this.#delete(m);
          continue;
        }
        yield* this.#unitsOf(m, parsed.objects);
      }
    }
  }

  #unitsOf(m: Message, objects: S3EventObject[]): S3ObjectUnit[] {
    const { sqs, s3, config, log } = this.#o;
    let remaining = objects.length;
    let failed: Error | undefined;
    // Keep the message invisible while its objects are in flight.
    const extend = setInterval(() => {
      sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: config.queue_url,
          ReceiptHandle: m.ReceiptHandle,
          VisibilityTimeout: Math.round(config.visibility_timeout / 1000),
        }),
      ).catch((e) =>
        log.warn("visibility extension failed", { message_id: m.MessageId, error: e })
      );
    }, config.visibility_timeout / 2);
    const settle = async () => {
      if (--remaining > 0) return;
      clearInterval(extend);
      if (!failed) return await this.#delete(m);
      // Redeliver soon rather than after the whole visibility timeout.
      await sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: config.queue_url,
          ReceiptHandle: m.ReceiptHandle,
          VisibilityTimeout: 0,
        }),
      ).catch(() => {});
    };
    return objects.map((o) => ({
      id: `s3://${o.bucket}/${o.key}`,
      bucket: o.bucket,
      key: o.key,
      ...(o.time !== undefined && { time: o.time }),
      ...(o.size !== undefined && { size: o.size }),
      ...(o.resume && { resume: o.resume }),
      attributes: { message_id: m.MessageId ?? "" },
      open: (signal) => openS3Object(s3, o.bucket, o.key, signal),
      ack: () => settle(),
      nack: (e) => {
        const permanent = nonRecoverable(e);
        if (permanent) {
          // Redelivery cannot help: count it, say why, and let the message go once the rest is done.
          this.#undeliverable.inc(1, { reason: permanent.reason });
          log.error("object cannot be delivered: its message will be deleted", {
            unit: `s3://${o.bucket}/${o.key}`,
            message_id: m.MessageId,
            reason: permanent.reason,
            error: errorChain(e),
          });
        } else failed ??= e;
        return settle();
      },
    }));
  }

  async #delete(m: Message): Promise<void> {
    try {
      await this.#o.sqs.send(
        new DeleteMessageCommand({
          QueueUrl: this.#o.config.queue_url,
          ReceiptHandle: m.ReceiptHandle,
        }),
      );
    } catch (e) {
      // Not deleted: it comes back and its objects are sent again (a duplicate, never a loss).
      this.#o.log.warn("SQS delete failed: the message will be redelivered", {
        message_id: m.MessageId,
        error: errorChain(e),
      });
    }
  }
}
