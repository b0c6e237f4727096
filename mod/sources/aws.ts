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
