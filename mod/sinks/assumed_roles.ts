/**
 * Cross-account credentials by STS AssumeRole, cached until shortly before they expire. A tenant
 * role is reached in two hops (the reference's): the agent's own credentials assume the central
 * distribution role, whose credentials assume the tenant's role, with an ExternalId. Concurrent
 * requests for the same role share one STS call.
 *
 * @example
 * ```ts
 * const roles = new AssumedRoles({ aws, centralRoleArn: "arn:aws:iam::111111111111:role/central" });
 * const creds = await roles.tenant("arn:aws:iam::222222222222:role/logs", "111111111111");
 * ```
 * @module
 */

import {
  AssumeRoleCommand,
  type Credentials,
  GetCallerIdentityCommand,
  STSClient,
} from "@aws-sdk/client-sts";
import type { RetryOptions } from "../pipeline/retry.ts";
import { retryAws } from "../sources/aws_errors.ts";

/** Temporary credentials, as AWS SDK v3 clients take them. */
export interface RoleCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

/** Options for {@link AssumedRoles}. */
export interface AssumedRolesOptions {
  /** Client options (region, endpoint, request handler) for STS; credentials come from the chain. */
  aws: Record<string, unknown>;
  /** First hop. Empty: the agent's own credentials assume tenant roles directly. @default "" */
  centralRoleArn?: string;
  /** RoleSessionName prefix. @default "edge-agent" */
  sessionName?: string;
  /** Requested lifetime, seconds (STS allows 900..43200; role chaining caps it at 3600). @default 3600 */
  durationSeconds?: number;
  /** Credentials are renewed this long before they expire, ms. @default 300000 */
  refreshBefore?: number;
  /** How STS calls are retried. */
  retry?: RetryOptions;
  /** Clock. @default Date.now */
  now?: () => number;
}

/** Cached STS AssumeRole credentials. */
export class AssumedRoles {
  readonly #o: Required<Omit<AssumedRolesOptions, "retry">> & { retry: RetryOptions };
  readonly #cache = new Map<
    string,
    { promise: Promise<RoleCredentials>; value?: RoleCredentials }
  >();
  readonly #base: STSClient;
  #account: Promise<string> | undefined;
  /** STS AssumeRole calls made (cache misses), for tests and metrics. */
  calls = 0;

  constructor(o: AssumedRolesOptions) {
    this.#o = {
      centralRoleArn: "",
      sessionName: "edge-agent",
      durationSeconds: 3600,
      refreshBefore: 300_000,
      now: Date.now,
      retry: {},
      ...o,
    };
    this.#base = new STSClient({ ...o.aws, maxAttempts: 1 });
  }

  /** The central role's ARN ("" when tenant roles are assumed with the agent's credentials). */
  get centralRoleArn(): string {
    return this.#o.centralRoleArn;
  }

  /** The central role's credentials, or undefined when there is no central role. */
  central(): Promise<RoleCredentials | undefined> {
    if (!this.#o.centralRoleArn) return Promise.resolve(undefined);
    return this.#get(`central|${this.#o.centralRoleArn}`, () => this.#base, {
      RoleArn: this.#o.centralRoleArn,
    });
  }

  /**
   * Credentials of a tenant's role, assumed with the central role's credentials.
   *
   * @throws {Error} naming the role when STS refuses (worth retrying later: a trust policy may
   *   be fixed, STS may be back).
   */
  async tenant(roleArn: string, externalId?: string): Promise<RoleCredentials> {
    const central = await this.central();
    return this.#get(
      `tenant|${roleArn}|${externalId ?? ""}`,
      () =>
        central
          ? new STSClient({ ...this.#o.aws, maxAttempts: 1, credentials: central })
          : this.#base,
      { RoleArn: roleArn, ...(externalId && { ExternalId: externalId }) },
    );
  }

  /**
   * The account the ExternalId defaults to (the reference's): the central role's account from its
   * ARN, else the agent's own account (STS GetCallerIdentity, asked once).
   */
  account(): Promise<string> {
    const fromArn = this.#o.centralRoleArn.split(":")[4];
    if (fromArn) return Promise.resolve(fromArn);
    this.#account ??= retryAws(
      () => this.#base.send(new GetCallerIdentityCommand({})),
      this.#o.retry,
    ).then((o) => o.Account ?? "");
    this.#account.catch(() => this.#account = undefined);
    return this.#account;
  }

  /** A cached entry while fresh (or while its first request is pending), else a new request. */
  #get(
    key: string,
    client: () => STSClient,
    input: { RoleArn: string; ExternalId?: string },
  ): Promise<RoleCredentials> {
    const hit = this.#cache.get(key);
    if (hit && (!hit.value || this.#fresh(hit.value))) return hit.promise;
    const entry: { promise: Promise<RoleCredentials>; value?: RoleCredentials } = {
      promise: this.#assume(client(), input).then((v) => entry.value = v),
    };
    this.#cache.set(key, entry);
    entry.promise.catch(() => {
      if (this.#cache.get(key) === entry) this.#cache.delete(key);
    });
    return entry.promise;
  }

  #fresh(c: RoleCredentials): boolean {
    return c.expiration.getTime() - this.#o.refreshBefore > this.#o.now();
  }

  async #assume(
    client: STSClient,
    input: { RoleArn: string; ExternalId?: string },
  ): Promise<RoleCredentials> {
    this.calls++;
    const out = await retryAws(
      () =>
        client.send(
          new AssumeRoleCommand({
            ...input,
            RoleSessionName: `${this.#o.sessionName}-${this.#o.now()}`.slice(0, 64),
            DurationSeconds: this.#o.durationSeconds,
          }),
        ),
      this.#o.retry,
    ).catch((e) => {
      throw new Error(`STS AssumeRole ${input.RoleArn} failed`, { cause: e });
    });
    return toCredentials(out.Credentials, input.RoleArn);
  }
}

function toCredentials(c: Credentials | undefined, role: string): RoleCredentials {
  if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) {
    throw new Error(`STS AssumeRole ${role} returned no credentials`);
  }
  return {
    accessKeyId: c.AccessKeyId,
    secretAccessKey: c.SecretAccessKey,
    sessionToken: c.SessionToken,
    expiration: c.Expiration ?? new Date(Date.now() + 900_000),
  };
}
