/**
 * Mode route: one gzip NDJSON object of Kubernetes-style records in S3 (moto) → agent process
 * (`route --input manual`, the compiled binary's permission set) → CloudWatch Logs (moto), read
 * back to check that every record arrived, in order.
 * @module
 */

import { join } from "node:path";
import { agentArgs, COMPILED_FLAGS, ROOT } from "../_agent.ts";
import { endpoints, logsClient, unavailableReason } from "../services/mod.ts";
import { gz, readBack, routeWorld, s3Event } from "../modes/_route_world.ts";
import { measured } from "./pipeline.ts";
import type { BenchRow } from "./row.ts";

/** End to end for one object of `records` records. */
export async function bench({ records = 200_000 } = {}): Promise<BenchRow[]> {
  const why = unavailableReason("aws");
  if (why) throw new Error(`route benchmark needs the test services: ${why}`);
  const w = await routeWorld();
  const group = w.group("bench");
  await w.cloudwatch("tenant-bench", group);
  const t0 = Date.now() - 3600_000;
  const lines: string[] = [];
  for (let i = 0; i < records; i++) {
    lines.push(JSON.stringify({
      timestamp: new Date(t0 + i).toISOString(),
      message: `GET /api/v1/items/${i} 200 ${i % 977}ms user=u${
        i % 1000
      } trace=${crypto.randomUUID()}`,
      kubernetes: { namespace_name: "tenant-bench", pod_name: "pod-1" },
    }));
  }
  const text = lines.join("\n") + "\n";
  await w.put("mc/tenant-bench/app/pod-1/big.json.gz", gz(text));
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(
    join(dir, "agent.yaml"),
    `status: {enabled: false}\nlog: {level: warn}\nroute:\n  input: manual\n  tenant_config_table: ${w.table}\n` +
      `  central_role_arn: arn:aws:iam::123456789012:role/central\n` +
      `  aws: {region: us-east-1, endpoint: "${endpoints.aws}", force_path_style: true}\n`,
  );
  await Deno.writeTextFile(
    join(dir, "event.json"),
    JSON.stringify(s3Event(w.bucket, "mc/tenant-bench/app/pod-1/big.json.gz")),
  );
  const t = performance.now();
  const run = await measured(
    [
      Deno.execPath(),
      ...agentArgs([
        "route",
        "--config",
        join(dir, "agent.yaml"),
        join(dir, "event.json"),
      ], COMPILED_FLAGS),
    ],
    ROOT,
  );
  const seconds = (performance.now() - t) / 1000;
  const back = await readBack(logsClient(), group, "pod-1");
  await Deno.remove(dir, { recursive: true });
  if (run.code !== 0 || back.length !== records || back.some((e, i) => e.timestamp !== t0 + i)) {
    throw new Error(
      `route run failed (exit ${run.code}, ${back.length}/${records} records): ${run.stderr}`,
    );
  }
  const mb = text.length / 1e6;
  return [{
    name: "route: S3 object → CloudWatch Logs (moto)",
    mbPerSec: mb / seconds,
    note: `${records} records, one tenant, all read back in order`,
    linesPerSec: Math.round(records / seconds),
    peakRssMB: Math.round(run.usage.maxRssKb / 1024),
    cpuSecondsPerGB: Number((run.usage.cpuSeconds / (mb / 1000)).toFixed(2)),
    seconds: Number(seconds.toFixed(2)),
  }];
}

if (import.meta.main) console.log(await bench());
