/**
 * The AWS connection settings every AWS client of the agent shares. Credentials always come from
 * the SDK's default chain (environment, shared config/profile, container and instance metadata,
 * SSO); `endpoint` points a client at an S3-compatible or local server (MinIO, moto).
 * @module
 */

import type { FetchHttpHandler } from "@smithy/fetch-http-handler";
import type { AwsConfig } from "./aws_spec.ts";

export { type AwsConfig, awsFields } from "./aws_spec.ts";

/**
 * The options object AWS SDK v3 clients take, from an {@link AwsConfig}. Requests go through
 * Deno's fetch (the SDK's FetchHttpHandler) rather than the node:http emulation: object bodies
 * then arrive as native web streams, which measured less memory and CPU per GB.
 */
export async function awsClientConfig(c: AwsConfig): Promise<{
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  requestHandler: FetchHttpHandler;
}> {
  // Loaded with the SDK, only when an AWS client is made.
  const { FetchHttpHandler } = await import("@smithy/fetch-http-handler");
  return {
    requestHandler: new FetchHttpHandler({ keepAlive: true }),
    ...(c.region && { region: c.region }),
    ...(c.endpoint && { endpoint: c.endpoint }),
    ...(c.force_path_style && { forcePathStyle: true }),
  };
}

/**
 * The options of an S3 client that downloads objects, for every mode that reads them (stream,
 * route, process): {@link awsClientConfig} with the SDK's response checksum check only where an
 * operation requires it (`WHEN_REQUIRED`). Two reasons. An object stored with
 * `Content-Encoding: gzip` and a checksum (boto3 adds CRC32 by default; Vector writes such
 * objects) arrives inflated by fetch, so the stored checksum of the gzip bytes can never match:
 * the check failed after the data was delivered, and the object was sent again and again. And
 * the default (`WHEN_SUPPORTED`) wraps every body in a JavaScript checksum stream, which costs
 * CPU and hides fetch's byte stream from the data path's reused buffers. gzip members carry a
 * CRC32 each, checked by the decoder; TLS protects plain objects in transit.
 *
 * @param c the connection settings.
 * @returns S3Client options.
 */
export async function s3DownloadConfig(c: AwsConfig): Promise<
  Awaited<ReturnType<typeof awsClientConfig>> & { responseChecksumValidation: "WHEN_REQUIRED" }
> {
  return { ...await awsClientConfig(c), responseChecksumValidation: "WHEN_REQUIRED" };
}
