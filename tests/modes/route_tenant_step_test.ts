// The route's tenant step: how a unit's failure reaches its source (what deletes an SQS message).
import assert from "node:assert/strict";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { RouteMetrics } from "../../mod/modes/route_metrics.ts";
import { corruptObject, TenantStep } from "../../mod/modes/route_tenant_step.ts";
import { TenantDirectory } from "../../mod/modes/route_tenants.ts";
import { DecodeError } from "../../mod/pipeline/gzip.ts";
import { nonRecoverable, NonRecoverableError } from "../../mod/pipeline/non_recoverable_error.ts";
import { AssumedRoles } from "../../mod/sinks/assumed_roles.ts";
import { S3Copier } from "../../mod/sinks/s3_copy.ts";
import type { S3ObjectSource, S3ObjectUnit } from "../../mod/sources/s3_object.ts";
import { awsTestConfig, dynamoClient, s3Client } from "../services/mod.ts";

const log = new Logger({ write: () => {} });

Deno.test("corruptObject() names a damaged or cut gzip member corrupt_object, with the offset; nothing else", () => {
  const cut = corruptObject(
    "s3://b/k",
    new Error("failed to read s3://b/k", {
      cause: new DecodeError("gzip member truncated", 1234),
    }),
  );
  assert.equal(cut?.reason, "corrupt_object");
  assert.match(cut!.message, /^s3:\/\/b\/k is corrupt at byte 1234: gzip member truncated/);
  // As the pipeline reports a quarantined unit to a source without quarantine().
  const quarantined = new NonRecoverableError("bad CRC", { reason: "corrupt_gzip" });
  assert.equal(corruptObject("s3://b/k", quarantined)?.reason, "corrupt_object");
  assert.equal(corruptObject("s3://b/k", new Error("socket hang up")), undefined);
  assert.equal(
    corruptObject("s3://b/k", new NonRecoverableError("x", { reason: "unknown_tenant" })),
    undefined,
  );
});

Deno.test("TenantStep: a unit given up after max_attempts leaves its message for redelivery; a corrupt one has it deleted", async () => {
  const c = awsTestConfig();
  const aws = { region: c.region, endpoint: c.endpoint, forcePathStyle: true };
  const metrics = new Registry();
  const routeMetrics = new RouteMetrics(metrics);
  const step = new TenantStep({
    s3: s3Client(),
    tenants: new TenantDirectory({ client: dynamoClient(), metrics, log }),
    copier: new S3Copier({ aws, roles: new AssumedRoles({ aws }), source: s3Client() }),
    metrics: routeMetrics,
    log,
  });
  const nacked: Error[] = [];
  const unit = (key: string): S3ObjectUnit => ({
    id: `s3://b/${key}`,
    bucket: "b",
    key,
    open: () => Promise.reject(new Error("not opened in this test")),
    ack: () => Promise.resolve(),
    nack: (e) => {
      nacked.push(e);
      return Promise.resolve();
    },
  });
  const inner: S3ObjectSource = {
    kind: "s3",
    async *units() {
      yield unit("a/b/c/d/1.gz");
      yield unit("a/b/c/d/2.gz");
    },
  };
  const units = await Array.fromAsync(step.source(inner).units(new AbortController().signal));
  await units[0]!.nack(
    new NonRecoverableError("failed 5 times (max_attempts 5)", { reason: "max_attempts" }),
  );
  await units[1]!.nack(new NonRecoverableError("bad CRC", { reason: "corrupt_gzip" }));
  assert.equal(nonRecoverable(nacked[0]), undefined, "left for SQS's redrive policy");
  assert.equal(nonRecoverable(nacked[1])?.reason, "corrupt_object", "message deleted");
  assert.equal(step.retryLater, 1);
  assert.equal(
    metrics.counter("route_objects_undeliverable_total", "").get({ reason: "corrupt_object" }),
    1,
  );
});
