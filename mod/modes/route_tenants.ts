/**
 * Tenants of mode `route`: which tenant an object belongs to (its key,
 * `cluster_id/namespace/application/pod_name/file`, the tenant being the namespace), and where
 * that tenant's logs go: its delivery configs in DynamoDB (`tenant_id` = namespace, several items
 * per tenant: `type` cloudwatch or s3, `enabled`, `desired_logs`, destination fields), looked up
 * with a short-lived cache.
 *
 * Each config is validated on its own: one with a missing field is disabled with a logged reason
 * and `route_tenant_configs_invalid_total`, and the tenant's other configs still deliver (the
 * reference failed the whole tenant).
 * @module
 */

import { type AttributeValue, type DynamoDBClient, QueryCommand } from "@aws-sdk/client-dynamodb";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { NonRecoverableError } from "../pipeline/non_recoverable_error.ts";
import type { RetryOptions } from "../pipeline/retry.ts";
import { retryAws } from "../sources/aws_errors.ts";

/** What an object's key says. */
export interface ObjectKeyInfo {
  clusterId: string;
  namespace: string;
  /** The namespace: the tenant's id in the config table. */
  tenantId: string;
  application: string;
  podName: string;
  /** The rest of the key (the file name). */
  file: string;
}

/**
 * Read `cluster_id/namespace/application/pod_name/file` from a key.
 *
 * @throws {NonRecoverableError} (reason `invalid_key`) naming the key and the bad segment.
 */
export function parseObjectKey(key: string): ObjectKeyInfo {
  const parts = key.split("/");
  if (parts.length < 5) {
    throw new NonRecoverableError(
      `key ${
        JSON.stringify(key)
      } is not cluster_id/namespace/application/pod_name/file: ${parts.length} segment(s)`,
      { reason: "invalid_key" },
    );
  }
  const names = ["cluster_id", "namespace", "application", "pod_name"];
  for (const [i, name] of names.entries()) {
    if (parts[i]!.trim() === "") {
      throw new NonRecoverableError(
        `key ${JSON.stringify(key)}: ${name} (segment ${i + 1}) is empty`,
        { reason: "invalid_key" },
      );
    }
  }
  const file = parts.slice(4).join("/");
  if (file === "" || file.endsWith("/")) {
    throw new NonRecoverableError(`key ${JSON.stringify(key)} names no file`, {
      reason: "invalid_key",
    });
  }
  return {
    clusterId: parts[0]!,
    namespace: parts[1]!,
    tenantId: parts[1]!,
    application: parts[2]!,
    podName: parts[3]!,
    file,
  };
}

interface DeliveryBase {
  /** `cloudwatch:<log group>` or `s3:<bucket>` (the reference's delivery id). */
  id: string;
  /** Application names to deliver; empty: all. */
  desiredLogs: string[];
  /** `target_region`, when set. */
  region?: string;
}

/** A tenant's CloudWatch Logs destination. */
export interface CloudWatchDelivery extends DeliveryBase {
  type: "cloudwatch";
  logGroup: string;
  /** `log_distribution_role_arn`: assumed through the central role. */
  roleArn: string;
  /** `external_id`, when set (else the central account id). */
  externalId?: string;
}

/** A tenant's S3 destination. */
export interface S3Delivery extends DeliveryBase {
  type: "s3";
  bucket: string;
  /** `bucket_prefix` as written (normalised when used). */
  prefix?: string;
}

/** One delivery config. */
export type Delivery = CloudWatchDelivery | S3Delivery;

/** Whether a delivery takes an application's logs (`desired_logs` empty: all). */
export function wantsApplication(d: Delivery, application: string): boolean {
  return d.desiredLogs.length === 0 || d.desiredLogs.includes(application);
}

type Item = Record<string, unknown>;

function str(item: Item, field: string): string | undefined {
  const v = item[field];
  return typeof v === "string" && v.trim() !== "" ? v.trim() : undefined;
}

/**
 * Validate one DynamoDB item as a delivery config.
 *
 * @returns the delivery, `undefined` when disabled, or an error message naming what is wrong.
 */
export function parseDelivery(item: Item): Delivery | undefined | { error: string } {
  const enabled = item.enabled;
  if (enabled === false || enabled === "false") return undefined;
  const type = str(item, "type");
  if (!type) return { error: "missing 'type' field" };
  const raw = item.desired_logs;
  const desiredLogs = raw === undefined || raw === null
    ? []
    : typeof raw === "string"
    ? [raw]
    : Array.isArray(raw) && raw.every((v) => typeof v === "string")
    ? raw.filter((v) => v !== "")
    : undefined;
  if (!desiredLogs) return { error: "desired_logs must be a list of application names" };
  const region = str(item, "target_region");
  const base = { desiredLogs, ...(region && { region }) };
  if (type === "cloudwatch") {
    const roleArn = str(item, "log_distribution_role_arn");
    const logGroup = str(item, "log_group_name");
    for (const [f, v] of [["log_distribution_role_arn", roleArn], ["log_group_name", logGroup]]) {
      if (!v) return { error: `cloudwatch config missing or empty required field: ${f}` };
    }
    const externalId = str(item, "external_id");
    return {
      type,
      id: `cloudwatch:${logGroup}`,
      logGroup: logGroup!,
      roleArn: roleArn!,
      ...(externalId && { externalId }),
      ...base,
    };
  }
  if (type === "s3") {
    const bucket = str(item, "bucket_name");
    if (!bucket) return { error: "s3 config missing or empty required field: bucket_name" };
    const prefix = typeof item.bucket_prefix === "string" ? item.bucket_prefix : undefined;
    return { type, id: `s3:${bucket}`, bucket, ...(prefix !== undefined && { prefix }), ...base };
  }
  return { error: `unknown delivery type ${JSON.stringify(type)} (cloudwatch or s3)` };
}

/** A DynamoDB attribute value as a plain value. */
export function fromAttribute(v: AttributeValue): unknown {
  if (v.S !== undefined) return v.S;
  if (v.N !== undefined) return Number(v.N);
  if (v.BOOL !== undefined) return v.BOOL;
  if (v.NULL) return null;
  if (v.SS) return v.SS;
  if (v.NS) return v.NS.map(Number);
  if (v.L) return v.L.map(fromAttribute);
  if (v.M) return Object.fromEntries(Object.entries(v.M).map(([k, x]) => [k, fromAttribute(x)]));
  return undefined;
}

/** Options for {@link TenantDirectory}. */
export interface TenantDirectoryOptions {
  client: DynamoDBClient;
  /** @default "tenant-configurations" */
  table?: string;
  /** How long a lookup (found or not) is reused, ms. @default 60000 */
  ttl?: number;
  retry?: RetryOptions;
  metrics: Registry;
  log: Logger;
  /** Clock. @default Date.now */
  now?: () => number;
}

/** Tenants' delivery configs, from DynamoDB, cached for `ttl`. */
export class TenantDirectory {
  readonly #o: Required<TenantDirectoryOptions>;
  readonly #cache = new Map<string, { at: number; value: Promise<Delivery[]> }>();
  readonly #invalid;
  /** DynamoDB queries made (cache misses). */
  queries = 0;

  constructor(o: TenantDirectoryOptions) {
    this.#o = { table: "tenant-configurations", ttl: 60_000, retry: {}, now: Date.now, ...o };
    this.#invalid = o.metrics.counter(
      "route_tenant_configs_invalid_total",
      "Delivery configs disabled because a field is missing or wrong (per lookup), by tenant and type",
    );
  }

  /**
   * The tenant's enabled, valid delivery configs.
   *
   * @throws {NonRecoverableError} `unknown_tenant` when the tenant has no config, enabled or valid.
   * @throws {Error} when DynamoDB fails (worth retrying later).
   */
  deliveries(tenantId: string, signal?: AbortSignal): Promise<Delivery[]> {
    const now = this.#o.now();
    const hit = this.#cache.get(tenantId);
    if (hit && now - hit.at < this.#o.ttl) return hit.value;
    const value = this.#lookup(tenantId, signal);
    const entry = { at: now, value };
    this.#cache.set(tenantId, entry);
    // Failures worth retrying are not cached; "unknown tenant" is, for the TTL.
    value.catch((e) => {
      if (!(e instanceof NonRecoverableError) && this.#cache.get(tenantId) === entry) {
        this.#cache.delete(tenantId);
      }
    });
    return value;
  }

  async #lookup(tenantId: string, signal?: AbortSignal): Promise<Delivery[]> {
    const { client, table, log } = this.#o;
    const items: Item[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      this.queries++;
      const page = await retryAws(
        () =>
          client.send(
            new QueryCommand({
              TableName: table,
              KeyConditionExpression: "tenant_id = :t",
              ExpressionAttributeValues: { ":t": { S: tenantId } },
              ...(start && { ExclusiveStartKey: start }),
            }),
            signal ? { abortSignal: signal } : {},
          ),
        { ...this.#o.retry, ...(signal && { signal }) },
      ).catch((e) => {
        throw new Error(`tenant ${tenantId}: DynamoDB query of ${table} failed`, { cause: e });
      });
      for (const raw of page.Items ?? []) {
        items.push(Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, fromAttribute(v)])));
      }
      start = page.LastEvaluatedKey;
    } while (start);
    if (items.length === 0) {
      throw new NonRecoverableError(`tenant ${tenantId} has no delivery config in ${table}`, {
        reason: "unknown_tenant",
      });
    }
    const out: Delivery[] = [];
    let disabled = 0;
    for (const item of items) {
      const d = parseDelivery(item);
      if (d === undefined) disabled++;
      else if ("error" in d) {
        const type = typeof item.type === "string" ? item.type : "unknown";
        this.#invalid.inc(1, { tenant: tenantId, type });
        log.error("tenant delivery config is invalid: disabled", {
          tenant: tenantId,
          type,
          reason: d.error,
        });
      } else out.push(d);
    }
    if (out.length === 0) {
      throw new NonRecoverableError(
        `tenant ${tenantId} has no ${
          disabled === items.length ? "enabled" : "valid"
        } delivery config (${items.length} in ${table})`,
        { reason: "unknown_tenant" },
      );
    }
    return out;
  }
}
