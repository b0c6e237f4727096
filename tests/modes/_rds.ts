/**
 * Helpers for the discover/process tests: run `discover --once` as a real process against the
 * fake RDS (tests/sources/_fake_rds.ts), moto's DynamoDB and the real Kafka.
 * @module
 */

import { agentCommand } from "../_agent.ts";
import { endpoints } from "../services/mod.ts";

/** `edge-agent discover --once` with the agent's permission set. */
export async function discoverOnce(config: Record<string, unknown>, extra: string[] = []) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/agent.yaml`, JSON.stringify(config));
  const out = await agentCommand(
    ["discover", "--once", "--no-status", "--config", `${dir}/agent.yaml`, ...extra],
    {
      stdout: "piped",
      stderr: "piped",
    },
  ).output();
  await Deno.remove(dir, { recursive: true });
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** A discover config against the fake RDS, moto's DynamoDB and the real Kafka. */
export function discoverConfig(rds: string, table: string, topic: string) {
  return {
    discover: {
      rds: { endpoint: rds, region: "us-east-1", rate_limit: 200 },
      dynamodb: { endpoint: endpoints.aws, region: "us-east-1" },
      tracking_table: table,
      kafka: { brokers: endpoints.kafka, topic },
    },
  };
}
