// AssumedRoles against moto's STS, through the recording proxy.
import assert from "node:assert/strict";
import { AssumedRoles } from "../../mod/sinks/assumed_roles.ts";
import { serviceTest } from "../services/mod.ts";
import { startAwsProxy } from "./_aws_proxy.ts";

serviceTest("AssumedRoles() renews credentials shortly before they expire", ["aws"], async () => {
  const proxy = startAwsProxy();
  try {
    let now = Date.now();
    const roles = new AssumedRoles({
      aws: { region: "us-east-1", endpoint: proxy.url },
      centralRoleArn: "arn:aws:iam::111111111111:role/central",
      durationSeconds: 900,
      refreshBefore: 300_000,
      now: () => now,
    });
    const a = await roles.central();
    assert.equal((await roles.central())?.accessKeyId, a?.accessKeyId);
    now = a!.expiration.getTime() - 299_000; // within 5 minutes of expiry
    const b = await roles.central();
    assert.notEqual(b?.accessKeyId, a?.accessKeyId);
    assert.equal(proxy.of("AssumeRole").length, 2);
  } finally {
    await proxy.close();
  }
});

serviceTest("AssumedRoles() shares one STS call between concurrent requests", ["aws"], async () => {
  const proxy = startAwsProxy();
  try {
    const roles = new AssumedRoles({ aws: { region: "us-east-1", endpoint: proxy.url } });
    const got = await Promise.all(
      Array.from({ length: 5 }, () => roles.tenant("arn:aws:iam::222222222222:role/t", "x")),
    );
    assert.equal(new Set(got.map((c) => c.accessKeyId)).size, 1);
    assert.equal(proxy.of("AssumeRole").length, 1, "no central role: one hop");
    assert.equal(await roles.account(), "123456789012", "GetCallerIdentity when no central role");
  } finally {
    await proxy.close();
  }
});
