/**
 * The monitor's config as it runs: the reference monitor's layout folded into ours. The reference
 * config (`kafka:`, `global: {polling_interval, timezone, blob_closing}`, `environments:` whose
 * entries name only subscription, environment, enabled and selectors) validates under `monitor:`
 * unchanged; here `global:` replaces the keys it sets, and each environment gets its container
 * and credentials from where the reference found them:
 * - container: the entry's `container`, else AZURE_STORAGE_CONTAINER_NAME, else
 *   `commerce-logs-separated` (the reference's);
 * - credentials: the entry's `storage_account`, else the reference's secure config
 *   (`~/.commerce-logs-pipeline/config.yaml`: `subscriptions.<sub>.environments.<env>.storage_account`
 *   with `account_name` and `access_key`), else AZURE_STORAGE_CONNECTION_STRING or
 *   AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN.
 *   AZURE_STORAGE_BLOB_ENDPOINT, when set, is the endpoint of credentials that name none
 *   (Azurite: `http://127.0.0.1:10000/devstoreaccount1`).
 * @module
 */

import { join } from "node:path";
import { parse } from "yaml";
import { type AzureStorage, azureStorageFromEnv } from "../sources/azure_blob.ts";
import type { MonitorConfig, MonitorEnvironment } from "./monitor.ts";

/** The reference's container when neither the entry nor the environment names one. */
export const REFERENCE_CONTAINER = "commerce-logs-separated";

/** An environment with its container and credentials settled. */
export type ResolvedEnvironment = Omit<MonitorEnvironment, "storage_account" | "container"> & {
  storage_account: AzureStorage;
  container: string;
};

/** The monitor's config as it runs: no `global:`, every environment resolved. */
export type ResolvedMonitorConfig = Omit<MonitorConfig, "environments" | "global"> & {
  environments: ResolvedEnvironment[];
};

/** Where {@link resolveMonitorConfig} looks things up. */
export interface ResolveOptions {
  /** Environment variables. @default Deno.env.get */
  env?: (name: string) => string | undefined;
  /** The reference's secure config. @default $HOME/.commerce-logs-pipeline/config.yaml */
  secureConfigPath?: string;
}

/** `subscriptions.<sub>.environments.<env>.storage_account` of the reference's secure config. */
function fromSecureConfig(path: string, sub: string, env: string): AzureStorage | undefined {
  let doc: unknown;
  try {
    doc = parse(Deno.readTextFileSync(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotCapable) return undefined;
    throw new Error(`cannot read the reference's secure config ${path}`, { cause: e });
  }
  // deno-lint-ignore no-explicit-any
  const sa = (doc as any)?.subscriptions?.[sub]?.environments?.[env]?.storage_account;
  if (!sa || typeof sa !== "object") return undefined;
  const out: AzureStorage = {};
  for (const k of ["connection_string", "account_name", "access_key", "sas_token", "endpoint"]) {
    if (typeof sa[k] === "string" && sa[k] !== "") (out as Record<string, string>)[k] = sa[k];
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * Fold `global:` into the config and settle each environment's container and credentials.
 * Idempotent.
 *
 * @throws {TypeError} naming the environment when no credentials are found for an enabled one.
 */
export function resolveMonitorConfig(
  c: MonitorConfig | ResolvedMonitorConfig,
  { env = (k) => Deno.env.get(k), secureConfigPath }: ResolveOptions = {},
): ResolvedMonitorConfig {
  const g = "global" in c ? c.global : undefined;
  const { environments, ...rest } = c;
  if ("global" in rest) delete rest.global;
  const home = env("HOME");
  const secure = secureConfigPath ??
    (home ? join(home, ".commerce-logs-pipeline", "config.yaml") : undefined);
  const endpoint = env("AZURE_STORAGE_BLOB_ENDPOINT");
  const resolved = environments.map((e): ResolvedEnvironment => {
    const container = e.container ?? env("AZURE_STORAGE_CONTAINER_NAME") ?? REFERENCE_CONTAINER;
    let storage: AzureStorage | undefined = e.storage_account ?? undefined;
    if (!storage && e.enabled) {
      storage = (secure && fromSecureConfig(secure, e.subscription, e.environment)) ||
        azureStorageFromEnv(env);
      if (storage && endpoint && !storage.endpoint && !storage.connection_string) {
        storage = { ...storage, endpoint };
      }
    }
    if (!storage && e.enabled) {
      throw new TypeError(
        `monitor.environments ${e.subscription}/${e.environment}: no storage credentials: set its storage_account, or subscriptions.${e.subscription}.environments.${e.environment}.storage_account in ${
          secure ?? "~/.commerce-logs-pipeline/config.yaml"
        }, or AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY)`,
      );
    }
    return { ...e, container, storage_account: storage ?? {} };
  });
  return {
    ...rest,
    polling_interval: g?.polling_interval ?? c.polling_interval,
    timezone: g?.timezone ?? c.timezone,
    blob_closing: {
      enabled: g?.blob_closing?.enabled ?? c.blob_closing.enabled,
      timeout_minutes: g?.blob_closing?.timeout_minutes ?? c.blob_closing.timeout_minutes,
    },
    environments: resolved,
  };
}
