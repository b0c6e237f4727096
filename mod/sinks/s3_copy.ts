/**
 * Object-level delivery to S3: a server-side CopyObject of the source object into a destination
 * bucket/prefix (any region; credentials of the central role, one hop), keeping the source's
 * metadata and content headers and adding where it came from. Nothing passes through the agent.
 *
 * @example
 * ```ts
 * const copier = new S3Copier({ aws, roles, source: s3 });
 * await copier.copy({ bucket: "central", key: "c/ns/app/pod/f.json.gz" },
 *   { bucket: "tenant-logs", key: "ROSA/cluster-logs/ns/app/pod/f.json.gz" }, { "tenant-id": "ns" }, signal);
 * ```
 * @module
 */

import {
  CopyObjectCommand,
  HeadObjectCommand,
  type ObjectCannedACL,
  S3Client,
} from "@aws-sdk/client-s3";
import { NonRecoverableError } from "../pipeline/non_recoverable_error.ts";
import type { RetryOptions } from "../pipeline/retry.ts";
import { awsErrorName, retryAws } from "../sources/aws_errors.ts";
import type { AssumedRoles } from "./assumed_roles.ts";

/**
 * A key prefix in canonical form: no leading slash, no empty segments (`a//b` → `a/b/`), and a
 * trailing slash unless empty.
 */
export function normalizePrefix(prefix: string): string {
  const parts = prefix.split("/").filter((p) => p !== "");
  return parts.length === 0 ? "" : `${parts.join("/")}/`;
}

/** Options for {@link S3Copier}. */
export interface S3CopierOptions {
  /** Client options (endpoint, forcePathStyle, request handler) for destination clients. */
  aws: Record<string, unknown>;
  /** Destination credentials: the central role (one hop), else the agent's own. */
  roles: AssumedRoles;
  /** Reads the source object's metadata. */
  source: S3Client;
  /** Canned ACL of the copy; empty for none. @default "bucket-owner-full-control" */
  acl?: string;
  retry?: RetryOptions;
}

/** An object location. */
export interface S3Location {
  bucket: string;
  key: string;
  /** Region of the bucket (destinations). @default the client's region */
  region?: string;
}

/** Copies objects between buckets server-side. */
export class S3Copier {
  readonly #o: Required<S3CopierOptions>;
  readonly #clients = new Map<string, S3Client>();

  constructor(o: S3CopierOptions) {
    this.#o = { acl: "bucket-owner-full-control", retry: {}, ...o };
  }

  /**
   * Copy `from` to `to`, keeping the source's metadata and content headers and adding `metadata`.
   *
   * @returns the object's size in bytes.
   * @throws {NonRecoverableError} when the source is gone, the destination bucket does not exist
   *   or access is denied (retrying cannot help); {Error} for anything worth retrying later.
   */
  async copy(
    from: S3Location,
    to: S3Location,
    metadata: Record<string, string>,
    signal: AbortSignal,
  ): Promise<number> {
    const retry = { ...this.#o.retry, signal };
    const src = `s3://${from.bucket}/${from.key}`;
    const dst = `s3://${to.bucket}/${to.key}`;
    const head = await retryAws(
      () =>
        this.#o.source.send(new HeadObjectCommand({ Bucket: from.bucket, Key: from.key }), {
          abortSignal: signal,
        }),
      retry,
    ).catch((e) => {
      const code = awsErrorName(e);
      if (code === "NotFound" || code === "NoSuchKey" || code === "NoSuchBucket") {
        throw new NonRecoverableError(`${src} is gone (${code})`, {
          cause: e,
          reason: "object_gone",
        });
      }
      throw new Error(`HeadObject ${src} failed`, { cause: e });
    });
    const client = this.#client(to.region);
    await retryAws(
      () =>
        client.send(
          new CopyObjectCommand({
            Bucket: to.bucket,
            Key: to.key,
            CopySource: `${from.bucket}/${encodeURIComponent(from.key).replace(/%2F/g, "/")}`,
            MetadataDirective: "REPLACE",
            Metadata: { ...head.Metadata, ...metadata },
            ...(head.ContentType && { ContentType: head.ContentType }),
            ...(head.ContentEncoding && { ContentEncoding: head.ContentEncoding }),
            ...(head.ContentDisposition && { ContentDisposition: head.ContentDisposition }),
            ...(head.ContentLanguage && { ContentLanguage: head.ContentLanguage }),
            ...(head.CacheControl && { CacheControl: head.CacheControl }),
            ...(this.#o.acl && { ACL: this.#o.acl as ObjectCannedACL }),
          }),
          { abortSignal: signal },
        ),
      retry,
    ).catch((e) => {
      const code = awsErrorName(e);
      const msg = `CopyObject ${src} → ${dst} failed`;
      if (code === "NoSuchBucket" || code === "AccessDenied" || code === "NoSuchKey") {
        throw new NonRecoverableError(`${msg}: ${code}`, {
          cause: e,
          reason: code === "NoSuchKey"
            ? "object_gone"
            : code === "NoSuchBucket"
            ? "destination_bucket_missing"
            : "access_denied",
        });
      }
      throw new Error(msg, { cause: e });
    });
    return head.ContentLength ?? 0;
  }

  #client(region = ""): S3Client {
    let c = this.#clients.get(region);
    if (!c) {
      const roles = this.#o.roles;
      c = new S3Client({
        ...this.#o.aws,
        ...(region && { region }),
        maxAttempts: 1,
        // Without a central role: the agent's own credentials (the SDK's default chain).
        ...(roles.centralRoleArn && { credentials: async () => (await roles.central())! }),
      });
      this.#clients.set(region, c);
    }
    return c;
  }

  /** Release clients. */
  close(): void {
    for (const c of this.#clients.values()) c.destroy();
    this.#clients.clear();
  }
}
