/**
 * Streaming an S3 object's body: never the whole object in memory.
 * @module
 */

import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";

/**
 * Open `s3://bucket/key` as a web ReadableStream.
 *
 * @throws {Error} naming the object when S3 fails or returns no body.
 */
export async function openS3Object(
  client: S3Client,
  bucket: string,
  key: string,
  signal: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  let res;
  try {
    res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), {
      abortSignal: signal,
    });
  } catch (e) {
    throw new Error(`failed to fetch s3://${bucket}/${key}`, { cause: e });
  }
  if (!res.Body) throw new Error(`failed to fetch s3://${bucket}/${key}: empty response body`);
  return res.Body.transformToWebStream() as ReadableStream<Uint8Array>;
}
