/**
 * The reference log router's environment variables, honoured by `route`: each one sets its key of
 * the `route:` section when the config file (or a flag) does not. Precedence, highest first:
 * command-line flag, config file, environment variable, default.
 *
 * | variable                            | key                         | note                     |
 * | ----------------------------------- | --------------------------- | ------------------------ |
 * | `EXECUTION_MODE`                    | `input`                     | lambda, sqs, manual, scan |
 * | `TENANT_CONFIG_TABLE`               | `tenant_config_table`       |                          |
 * | `SQS_QUEUE_URL`                     | `queue_url`                 |                          |
 * | `CENTRAL_LOG_DISTRIBUTION_ROLE_ARN` | `central_role_arn`          |                          |
 * | `AWS_REGION`                        | `aws.region`                |                          |
 * | `MAX_BATCH_SIZE`                    | `cloudwatch.max_batch_size` | events per PutLogEvents  |
 * | `RETRY_ATTEMPTS`                    | `retry.max_retries`         | retries after the first  |
 * | `SOURCE_BUCKET`                     | `source_bucket`             |                          |
 * | `SCAN_INTERVAL`                     | `scan_interval`             | seconds (10) or a duration |
 *
 * An invalid value is reported like a config error, naming the variable.
 * @module
 */

import type { Ctx, Field, Input } from "../config/spec.ts";

/** One variable and the dotted key of `route:` it sets. */
export interface RouteEnvVar {
  variable: string;
  key: string;
  /** The value as written in a config file (e.g. seconds → `10s`). */
  convert?: (v: string) => string;
}

/** The reference's variables, in its README's order. */
export const ROUTE_ENV: readonly RouteEnvVar[] = [
  { variable: "EXECUTION_MODE", key: "input" },
  { variable: "TENANT_CONFIG_TABLE", key: "tenant_config_table" },
  { variable: "SQS_QUEUE_URL", key: "queue_url" },
  { variable: "CENTRAL_LOG_DISTRIBUTION_ROLE_ARN", key: "central_role_arn" },
  { variable: "AWS_REGION", key: "aws.region" },
  { variable: "MAX_BATCH_SIZE", key: "cloudwatch.max_batch_size" },
  { variable: "RETRY_ATTEMPTS", key: "retry.max_retries" },
  { variable: "SOURCE_BUCKET", key: "source_bucket" },
  {
    variable: "SCAN_INTERVAL",
    key: "scan_interval",
    convert: (v) => /^\d+(\.\d+)?$/.test(v.trim()) ? `${v.trim()}s` : v,
  },
];

/** The mapping, for `route --help`. */
export function routeEnvHelp(): string {
  const w = Math.max(...ROUTE_ENV.map((v) => v.variable.length));
  return `Environment variables (the reference's; the config file and flags win over them):\n${
    ROUTE_ENV.map((v) => `  ${v.variable.padEnd(w)}  route.${v.key}`).join("\n")
  }\n`;
}

/** A mapping node's children, made editable (a copy: the caller's tree is not changed). */
function mapping(input: Input | undefined): Input {
  const value = input?.value;
  if (input?.entries) {
    return { ...input, value: { ...(value as object) }, entries: new Map(input.entries) };
  }
  const entries = new Map<string, Input>();
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) entries.set(k, { value: v });
  } else if (value !== undefined && value !== null) {
    return input!; // not a mapping: the spec reports it
  }
  return { ...input, value: { ...(value as object | undefined) }, entries };
}

/** Set `key` (dotted) in `root` to `value` unless present; true when set. */
function setIfAbsent(root: Input, keys: string[], value: string): boolean {
  const [k, ...rest] = keys;
  if (!root.entries) return false;
  const child = root.entries.get(k!);
  if (rest.length === 0) {
    if (child !== undefined && child.value !== undefined && child.value !== null) return false;
    root.entries.set(k!, { value, interpolated: true });
    (root.value as Record<string, unknown>)[k!] = value;
    return true;
  }
  const next = mapping(child);
  if (!next.entries) return false;
  const set = setIfAbsent(next, rest, value);
  if (set) {
    root.entries.set(k!, next);
    (root.value as Record<string, unknown>)[k!] = next.value;
  }
  return set;
}

/**
 * `spec` (the `route:` section) with {@link ROUTE_ENV} applied where the config leaves a key out.
 *
 * @param spec the section's object field.
 * @param env where variables are read. @default Deno.env.get
 * @returns the same field, parsing with the variables as defaults.
 */
export function withRouteEnv<F extends Field<unknown>>(
  spec: F,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): F {
  return {
    ...spec,
    parse(input: Input | undefined, path: string, ctx: Ctx) {
      const root = mapping(input);
      const fromEnv = new Map<string, string>();
      if (root.entries) {
        for (const v of ROUTE_ENV) {
          const raw = env(v.variable);
          if (raw === undefined || raw === "") continue;
          const value = v.convert ? v.convert(raw) : raw;
          if (setIfAbsent(root, v.key.split("."), value)) {
            fromEnv.set(path ? `${path}.${v.key}` : v.key, v.variable);
          }
        }
      }
      const before = ctx.issues.length;
      const out = spec.parse(fromEnv.size ? root : input, path, ctx);
      for (const issue of ctx.issues.slice(before)) {
        const variable = fromEnv.get(issue.path);
        if (variable) issue.message += ` (from the environment variable ${variable})`;
      }
      return out;
    },
  };
}
