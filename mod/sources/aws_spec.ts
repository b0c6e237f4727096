/**
 * The config fields of an AWS connection, apart from aws.ts so that a spec can use them without
 * pulling the SDK's HTTP handler into the module graph (the demo's cold start).
 * @module
 */

import { f, type Infer } from "../config/spec.ts";

/** Fields of an AWS connection (spread into a component's spec). */
export const awsFields = {
  region: f.optional(f.string({
    description: "AWS region; when absent, the SDK's chain (AWS_REGION, profile) decides",
    example: "us-east-1",
  })),
  endpoint: f.optional(f.string({
    description: "Endpoint override for S3-compatible or local servers, e.g. http://127.0.0.1:9000",
    pattern: /^https?:\/\/\S+$/,
  })),
  force_path_style: f.bool({
    description: "Path-style S3 URLs (bucket in the path): needed by MinIO and moto",
    default: false,
  }),
};

/** An AWS connection's settings. */
export type AwsConfig = { [K in keyof typeof awsFields]: Infer<(typeof awsFields)[K]> };
