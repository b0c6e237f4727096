import assert from "node:assert/strict";
import { PutItemCommand } from "@aws-sdk/client-dynamodb";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import {
  parseDelivery,
  parseObjectKey,
  TenantDirectory,
  wantsApplication,
} from "../../mod/modes/route_tenants.ts";
import { NonRecoverableError } from "../../mod/pipeline/non_recoverable_error.ts";
import { dynamoClient, freshTable, serviceTest } from "../services/mod.ts";

Deno.test("parseObjectKey() reads cluster/namespace/application/pod/file", () => {
  assert.deepEqual(parseObjectKey("mc-1/tenant-a/api/api-7f9c/1700000000-abc.json.gz"), {
    clusterId: "mc-1",
    namespace: "tenant-a",
    tenantId: "tenant-a",
    application: "api",
    podName: "api-7f9c",
    file: "1700000000-abc.json.gz",
  });
  assert.equal(parseObjectKey("c/n/a/p/extra/f.gz").file, "extra/f.gz");
});

Deno.test("parseObjectKey() rejects keys outside the layout as non-recoverable", () => {
  for (
    const [key, why] of [
      ["c/n/a/f.json.gz", /4 segment/],
      ["c//a/p/f.json.gz", /namespace \(segment 2\) is empty/],
      ["c/n/ /p/f.json.gz", /application \(segment 3\) is empty/],
      ["c/n/a/p/", /names no file/],
      ["f.json.gz", /1 segment/],
    ] as const
  ) {
    assert.throws(
      () => parseObjectKey(key),
      (e) => e instanceof NonRecoverableError && e.reason === "invalid_key" && why.test(e.message),
      key,
    );
  }
});

Deno.test("parseDelivery() validates each config on its own", () => {
  const cw = {
    tenant_id: "t",
    type: "cloudwatch",
    log_group_name: "/t/logs",
    log_distribution_role_arn: "arn:aws:iam::2:role/r",
    desired_logs: ["api"],
  };
  assert.deepEqual(parseDelivery(cw), {
    type: "cloudwatch",
    id: "cloudwatch:/t/logs",
    logGroup: "/t/logs",
    roleArn: "arn:aws:iam::2:role/r",
    desiredLogs: ["api"],
  });
  assert.deepEqual(parseDelivery({ ...cw, log_distribution_role_arn: " " }), {
    error: "cloudwatch config missing or empty required field: log_distribution_role_arn",
  });
  assert.deepEqual(parseDelivery({ type: "s3" }), {
    error: "s3 config missing or empty required field: bucket_name",
  });
  assert.deepEqual(parseDelivery({ type: "kinesis" }), {
    error: 'unknown delivery type "kinesis" (cloudwatch or s3)',
  });
  assert.deepEqual(parseDelivery({}), { error: "missing 'type' field" });
  assert.equal(parseDelivery({ ...cw, enabled: false }), undefined);
  const s3 = parseDelivery({ type: "s3", bucket_name: "b", bucket_prefix: "x//y" });
  assert.ok(s3 && !("error" in s3) && s3.type === "s3" && s3.prefix === "x//y");
  assert.ok(s3 && !("error" in s3) && wantsApplication(s3, "anything"), "no desired_logs: all");
  const cwd = parseDelivery(cw);
  assert.ok(cwd && !("error" in cwd));
  assert.equal(wantsApplication(cwd, "api"), true);
  assert.equal(wantsApplication(cwd, "worker"), false);
});

const S = (s: string) => ({ S: s });

serviceTest(
  "TenantDirectory() disables only the invalid config, caches lookups, knows unknown tenants",
  ["aws"],
  async () => {
    const table = await freshTable("tenant_id", "type");
    const db = dynamoClient();
    const put = (item: Record<string, unknown>) =>
      db.send(new PutItemCommand({ TableName: table, Item: item as never }));
    await put({
      tenant_id: S("tenant-a"),
      type: S("cloudwatch"),
      log_group_name: S("/a/logs"),
      log_distribution_role_arn: S("arn:aws:iam::222222222222:role/a"),
      desired_logs: { L: [S("api"), S("web")] },
      enabled: { BOOL: true },
    });
    await put({ tenant_id: S("tenant-a"), type: S("s3"), enabled: { BOOL: true } }); // no bucket
    await put({
      tenant_id: S("tenant-off"),
      type: S("s3"),
      bucket_name: S("b"),
      enabled: { BOOL: false },
    });
    let now = 1_000_000;
    const metrics = new Registry();
    const dir = new TenantDirectory({
      client: db,
      table,
      ttl: 60_000,
      metrics,
      log: new Logger({ write: () => {} }),
      now: () => now,
    });
    const a = await dir.deliveries("tenant-a");
    assert.deepEqual(a.map((d) => d.id), ["cloudwatch:/a/logs"]);
    assert.deepEqual(a[0]!.desiredLogs, ["api", "web"]);
    assert.equal(
      metrics.counter("route_tenant_configs_invalid_total", "").get({
        tenant: "tenant-a",
        type: "s3",
      }),
      1,
    );
    await dir.deliveries("tenant-a");
    assert.equal(dir.queries, 1, "cached");
    now += 61_000;
    await dir.deliveries("tenant-a");
    assert.equal(dir.queries, 2, "looked up again after the TTL");
    for (const t of ["nobody", "tenant-off"]) {
      await assert.rejects(
        dir.deliveries(t),
        (e) => e instanceof NonRecoverableError && e.reason === "unknown_tenant",
      );
    }
    await assert.rejects(dir.deliveries("nobody"));
    assert.equal(dir.queries, 4, "an unknown tenant is cached too");
  },
);
