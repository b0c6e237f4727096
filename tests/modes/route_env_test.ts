// The reference router's environment variables: they fill what the config file leaves out.
import assert from "node:assert/strict";
import { ConfigError, validateText } from "../../mod/config/load.ts";
import { routeSpec } from "../../mod/modes/route.ts";
import { ROUTE_ENV, withRouteEnv } from "../../mod/modes/route_env.ts";
import { agentCommand } from "../_agent.ts";
import { awsTestConfig, logsClient, serviceTest } from "../services/mod.ts";
import { CENTRAL, readBack, routeWorld } from "./_route_world.ts";

const REFERENCE_ENV: Record<string, string> = {
  EXECUTION_MODE: "sqs",
  TENANT_CONFIG_TABLE: "tenants-from-env",
  SQS_QUEUE_URL: "https://sqs.us-east-1.amazonaws.com/123456789/queue",
  CENTRAL_LOG_DISTRIBUTION_ROLE_ARN: "arn:aws:iam::123456789:role/CentralRole",
  AWS_REGION: "eu-west-1",
  MAX_BATCH_SIZE: "500",
  RETRY_ATTEMPTS: "3",
  SOURCE_BUCKET: "test-logs",
  SCAN_INTERVAL: "10",
};

/** The route section parsed from `yaml` with `env` as the environment. */
function parse(yaml: string, env: Record<string, string>, overrides?: Record<string, unknown>) {
  const spec = withRouteEnv(routeSpec, (k) => env[k]);
  return validateText(spec, yaml, "route.yaml", overrides ? { overrides } : {});
}

Deno.test("withRouteEnv(): every reference variable sets its key when the file leaves it out", () => {
  assert.equal(ROUTE_ENV.length, 9);
  const c = parse("", REFERENCE_ENV);
  assert.equal(c.input, "sqs");
  assert.equal(c.tenant_config_table, "tenants-from-env");
  assert.equal(c.queue_url, REFERENCE_ENV.SQS_QUEUE_URL);
  assert.equal(c.central_role_arn, REFERENCE_ENV.CENTRAL_LOG_DISTRIBUTION_ROLE_ARN);
  assert.equal(c.aws.region, "eu-west-1");
  assert.equal(c.cloudwatch.max_batch_size, 500);
  assert.equal(c.retry.max_retries, 3);
  assert.equal(c.source_bucket, "test-logs");
  assert.equal(c.scan_interval, 10_000);
  assert.equal(parse("", { SCAN_INTERVAL: "1m" }).scan_interval, 60_000);
});

Deno.test("withRouteEnv(): the config file wins over the variables, a flag over both", () => {
  const c = parse(
    `input: scan
tenant_config_table: from-file
cloudwatch: { max_batch_size: 100 }
retry: { max_retries: 7 }
aws: { region: us-east-2 }
`,
    REFERENCE_ENV,
  );
  assert.equal(c.input, "scan");
  assert.equal(c.tenant_config_table, "from-file");
  assert.equal(c.cloudwatch.max_batch_size, 100);
  assert.equal(c.retry.max_retries, 7);
  assert.equal(c.aws.region, "us-east-2");
  // What the file leaves out still comes from the environment, also inside a section it has.
  assert.equal(c.source_bucket, "test-logs");
  assert.equal(c.retry.initial_backoff, 100);
  assert.equal(parse("input: scan\n", REFERENCE_ENV, { input: "manual" }).input, "manual");
  // Without the variables: the defaults.
  const d = parse("", {});
  assert.equal(d.input, "lambda");
  assert.equal(d.tenant_config_table, "tenant-configurations");
});

Deno.test("withRouteEnv(): a bad value is reported naming its variable", () => {
  assert.throws(
    () => parse("", { EXECUTION_MODE: "batch", MAX_BATCH_SIZE: "lots" }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      const text = e.issues.map((i) => `${i.path}: ${i.message}`).join("\n");
      assert.match(
        text,
        /input: must be one of .*\(from the environment variable EXECUTION_MODE\)/,
      );
      assert.match(
        text,
        /cloudwatch\.max_batch_size: must be an integer.*\(from the environment variable MAX_BATCH_SIZE\)/,
      );
      return true;
    },
  );
});

Deno.test("edge-agent route --help documents the variables and their keys", async () => {
  const out = await agentCommand(["route", "--help"], { stdout: "piped" }).output();
  const help = new TextDecoder().decode(out.stdout);
  for (const v of ROUTE_ENV) assert.match(help, new RegExp(`${v.variable}\\s+route\\.${v.key}`));
});

serviceTest("edge-agent route runs from the reference's environment variables alone", [
  "aws",
], async () => {
  const w = await routeWorld();
  const group = w.group("env");
  await w.cloudwatch("tenant-env", group);
  await w.put(
    "c/tenant-env/app/pod-1/1.json",
    `{"message":"via env","timestamp":${Date.now() - 60_000}}`,
  );
  const dir = await Deno.makeTempDir();
  // The file holds only what the reference had no variable for: moto's endpoint, the state.
  const file = `${dir}/route.yaml`;
  await Deno.writeTextFile(
    file,
    `route:
  once: true
  state_file: ${dir}/state.json
  aws: { endpoint: "${awsTestConfig().endpoint}", force_path_style: true }
`,
  );
  const out = await agentCommand(["route", "--no-status", "--config", file], {
    env: {
      EXECUTION_MODE: "scan",
      SOURCE_BUCKET: w.bucket,
      SCAN_INTERVAL: "1",
      TENANT_CONFIG_TABLE: w.table,
      CENTRAL_LOG_DISTRIBUTION_ROLE_ARN: CENTRAL,
      AWS_REGION: awsTestConfig().region,
      MAX_BATCH_SIZE: "1000",
      RETRY_ATTEMPTS: "3",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), [
    "via env",
  ]);
  const shown = await agentCommand(["validate", "--config", file, "--show"], {
    env: { EXECUTION_MODE: "scan", SOURCE_BUCKET: w.bucket },
    stdout: "piped",
  }).output();
  const config = JSON.parse(new TextDecoder().decode(shown.stdout).replace(/^.*: ok\n/, ""));
  assert.equal(config.route.input, "scan");
  assert.equal(config.route.source_bucket, w.bucket);
  await Deno.remove(dir, { recursive: true });
});
