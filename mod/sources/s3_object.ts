/**
 * S3 objects as units of work: streaming an object's body (never the whole object in memory), and
 * the shape of a unit that names one object, shared by the SQS, Lambda and scan sources.
 * @module
 */

import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { NonRecoverableError } from "../pipeline/non_recoverable_error.ts";
import type { Source, Unit } from "../pipeline/types.ts";
import { awsErrorName } from "./aws_errors.ts";

/** Where an earlier, cut-short run of an object stopped (carried by a re-queued message). */
export interface ObjectResume {
  /** Records of the object already delivered: skip this many. */
  offset: number;
  /** Ids of object-level deliveries already done (an S3 copy), not to repeat. */
  completed: string[];
  /** How many times the object was re-queued so far. */
  requeues: number;
}

/** A unit that is one S3 object. */
export interface S3ObjectUnit extends Unit {
  readonly bucket: string;
  readonly key: string;
  /** Present when an earlier run delivered part of the object. */
  readonly resume?: ObjectResume;
  /** Aborted when the unit must stop early (a Lambda deadline); see {@link requeue}. */
  readonly cut?: AbortSignal;
  /**
   * Instead of ack: the first `offset` records were delivered and the rest must be re-queued.
   * Only units whose source can re-queue have it.
   */
  requeue?(resume: Omit<ObjectResume, "requeues">): Promise<void>;
}

/** A source of {@link S3ObjectUnit}s. */
export interface S3ObjectSource extends Source {
  units(signal: AbortSignal): AsyncIterable<S3ObjectUnit>;
}

/** An opened object: its body and what S3 said about it. */
export interface S3ObjectBody {
  body: ReadableStream<Uint8Array>;
  /** LastModified, ms since epoch. */
  lastModified?: number;
  size?: number;
}

/**
 * Open `s3://bucket/key`: its body as a web ReadableStream, with LastModified and size.
 *
 * @throws {NonRecoverableError} when the object or bucket does not exist (reason `object_gone`).
 * @throws {Error} naming the object for any other failure (worth retrying later).
 */
export async function getS3Object(
  client: S3Client,
  bucket: string,
  key: string,
  signal: AbortSignal,
): Promise<S3ObjectBody> {
  let res;
  try {
    res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), {
      abortSignal: signal,
    });
  } catch (e) {
    const name = awsErrorName(e);
    if (name === "NoSuchKey" || name === "NoSuchBucket") {
      throw new NonRecoverableError(`s3://${bucket}/${key} is gone (${name})`, {
        cause: e,
        reason: "object_gone",
      });
    }
    throw new Error(`failed to fetch s3://${bucket}/${key}`, { cause: e });
  }
  if (!res.Body) throw new Error(`failed to fetch s3://${bucket}/${key}: empty response body`);
  return {
    body: res.Body.transformToWebStream() as ReadableStream<Uint8Array>,
    ...(res.LastModified && { lastModified: res.LastModified.getTime() }),
    ...(res.ContentLength !== undefined && { size: res.ContentLength }),
  };
}

/**
 * Open `s3://bucket/key` as a web ReadableStream.
 *
 * @throws {NonRecoverableError} when the object is gone; {Error} naming the object otherwise.
 */
export async function openS3Object(
  client: S3Client,
  bucket: string,
  key: string,
  signal: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  return (await getS3Object(client, bucket, key, signal)).body;
}
