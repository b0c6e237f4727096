// S3Copier against moto's S3 (and STS for the central role), through the recording proxy.
import assert from "node:assert/strict";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { AssumedRoles } from "../../mod/sinks/assumed_roles.ts";
import { normalizePrefix, S3Copier } from "../../mod/sinks/s3_copy.ts";
import { NonRecoverableError } from "../../mod/pipeline/non_recoverable_error.ts";
import { endpoints, freshBucket, s3Client, serviceTest } from "../services/mod.ts";
import { startAwsProxy } from "./_aws_proxy.ts";

Deno.test("normalizePrefix() drops empty segments and ends with one slash", () => {
  assert.equal(normalizePrefix("ROSA/cluster-logs"), "ROSA/cluster-logs/");
  assert.equal(normalizePrefix("/a//b///"), "a/b/");
  assert.equal(normalizePrefix("logs/"), "logs/");
  assert.equal(normalizePrefix(""), "");
  assert.equal(normalizePrefix("/"), "");
});

serviceTest(
  "S3Copier() copies server-side keeping metadata and content headers, adding the source's",
  ["aws"],
  async () => {
    const proxy = startAwsProxy();
    try {
      const [src, dst] = [await freshBucket("src"), await freshBucket("dst")];
      const key = "mc-1/tenant-a/api/api-7f9/1700000000-x y+z.json.gz";
      await s3Client().send(
        new PutObjectCommand({
          Bucket: src,
          Key: key,
          Body: "payload",
          ContentType: "application/json",
          ContentEncoding: "gzip",
          Metadata: { "vector-host": "node-3" },
        }),
      );
      const aws = { region: "us-east-1", endpoint: proxy.url, forcePathStyle: true };
      const roles = new AssumedRoles({
        aws,
        centralRoleArn: "arn:aws:iam::123456789012:role/central",
      });
      const copier = new S3Copier({ aws, roles, source: s3Client() });
      const size = await copier.copy(
        { bucket: src, key },
        { bucket: dst, key: "ROSA/cluster-logs/tenant-a/api/api-7f9/1700000000-x y+z.json.gz" },
        { "tenant-id": "tenant-a", "source-key": key },
        new AbortController().signal,
      );
      assert.equal(size, 7);
      const head = await s3Client().send(
        new HeadObjectCommand({
          Bucket: dst,
          Key: "ROSA/cluster-logs/tenant-a/api/api-7f9/1700000000-x y+z.json.gz",
        }),
      );
      assert.deepEqual(head.Metadata, {
        "vector-host": "node-3",
        "tenant-id": "tenant-a",
        "source-key": key,
      });
      assert.equal(head.ContentType, "application/json");
      assert.equal(head.ContentEncoding, "gzip");
      const copy = proxy.of(
        `PUT /${dst}/ROSA/cluster-logs/tenant-a/api/api-7f9/1700000000-x%20y%2Bz.json.gz`,
      );
      assert.equal(copy.length, 1);
      assert.match(copy[0]!.accessKeyId, /^ASIA/, "copied with the central role's credentials");
      copier.close();
    } finally {
      await proxy.close();
    }
  },
);

serviceTest("S3Copier() reports a missing destination bucket or source as non-recoverable", [
  "aws",
], async () => {
  const src = await freshBucket("src");
  await s3Client().send(new PutObjectCommand({ Bucket: src, Key: "a/b/c/d/e", Body: "x" }));
  const aws = { region: "us-east-1", endpoint: endpoints.aws, forcePathStyle: true };
  const copier = new S3Copier({ aws, roles: new AssumedRoles({ aws }), source: s3Client() });
  const signal = new AbortController().signal;
  await assert.rejects(
    copier.copy(
      { bucket: src, key: "a/b/c/d/e" },
      { bucket: "no-such-bucket-xyz", key: "k" },
      {},
      signal,
    ),
    (e) => e instanceof NonRecoverableError && e.reason === "destination_bucket_missing",
  );
  await assert.rejects(
    copier.copy({ bucket: src, key: "gone" }, { bucket: src, key: "k" }, {}, signal),
    (e) => e instanceof NonRecoverableError && e.reason === "object_gone",
  );
  copier.close();
});
