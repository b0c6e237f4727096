/**
 * An Azure Blob Storage container: listing by name prefix (the date prefix
 * `kubernetes/YYYYMMDD.`), a blob's properties, and range reads streamed from a byte offset
 * (`download(offset)`'s body as a Web stream, never buffered whole).
 *
 * Credentials (`storage_account:`): a connection string (also a SAS connection string), an
 * account name with its access key (the reference's `account_name` + `access_key`), or an account
 * name (or endpoint) with a SAS token. Azure AD sign-in (DefaultAzureCredential: managed
 * identity, workload identity, az login) needs `@azure/identity`, which is not a dependency.
 * The SDK is loaded when the first container is opened.
 *
 * @example
 * ```ts
 * const c = await AzureBlobContainer.open({ connection_string: "UseDevelopmentStorage=true" }, "logs");
 * for await (const b of c.list("kubernetes/20250606.")) console.log(b.name, b.size);
 * const body = await c.read("kubernetes/20250606.api-1-2_ns_c.gz", 1048576);
 * ```
 * @module
 */

import type { ContainerClient } from "@azure/storage-blob";
import { Readable } from "node:stream";
import { f, type Infer } from "../config/spec.ts";
import { errorChain } from "../log/logger.ts";

/** The `storage_account:` settings of one environment. */
export const azureStorageSpec = f.object({
  connection_string: f.optional(f.string({
    description: "Connection string (AccountKey or SharedAccessSignature); replaces the other keys",
    secret: true,
  })),
  account_name: f.optional(f.string({
    description: "Storage account name",
    example: "prodlogs",
  })),
  access_key: f.optional(f.string({
    description: "Account access key (Shared Key)",
    secret: true,
    example: "${AZURE_STORAGE_KEY:-change-me}",
  })),
  sas_token: f.optional(f.string({
    description: "SAS token (`sv=...&sig=...`, with or without the leading `?`)",
    secret: true,
  })),
  endpoint: f.optional(f.string({
    description:
      "Blob endpoint; default https://<account_name>.blob.core.windows.net (Azurite: http://127.0.0.1:10000/devstoreaccount1)",
    pattern: /^https?:\/\/\S+$/,
  })),
}, {
  description:
    "Storage account credentials: connection_string, or account_name + access_key, or account_name (or endpoint) + sas_token",
  check: (v) => {
    const ways = [v.connection_string, v.access_key, v.sas_token].filter((x) => x !== undefined);
    if (ways.length !== 1) {
      return [
        `needs exactly one of connection_string, access_key, sas_token: got ${ways.length} (DefaultAzureCredential is not supported: @azure/identity is not a dependency)`,
      ];
    }
    if (v.access_key !== undefined && v.account_name === undefined) {
      return ["access_key needs account_name"];
    }
    if (v.sas_token !== undefined && v.account_name === undefined && v.endpoint === undefined) {
      return ["sas_token needs account_name or endpoint"];
    }
    return [];
  },
});

/** Storage account credentials. */
export type AzureStorage = Partial<Infer<typeof azureStorageSpec>>;

/**
 * Credentials from the environment, as the Azure CLI names them: AZURE_STORAGE_CONNECTION_STRING,
 * else AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN.
 *
 * @param env where to read variables. @default Deno.env.get
 * @returns the credentials, or undefined when none are set.
 */
export function azureStorageFromEnv(
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
): AzureStorage | undefined {
  const cs = env("AZURE_STORAGE_CONNECTION_STRING");
  if (cs) return { connection_string: cs };
  const account = env("AZURE_STORAGE_ACCOUNT");
  const key = env("AZURE_STORAGE_KEY");
  const sas = env("AZURE_STORAGE_SAS_TOKEN");
  const endpoint = env("AZURE_STORAGE_BLOB_ENDPOINT");
  if (account && (key || sas)) {
    return {
      account_name: account,
      ...(key ? { access_key: key } : { sas_token: sas }),
      ...(endpoint && { endpoint }),
    };
  }
  return undefined;
}

/** A listed blob. */
export interface BlobInfo {
  name: string;
  /** Bytes committed so far (an append blob grows). */
  size: number;
  etag: string;
  /** ISO 8601. */
  lastModified: string;
  /** An append blob sealed read-only: it will not grow again. */
  sealed: boolean;
}

/** Options for {@link AzureBlobContainer.open}. */
export interface AzureBlobContainerOptions {
  /** Attempts of one request by the SDK's retry policy (network errors, 5xx, 429). @default 4 */
  maxTries?: number;
  /** Attempts to resume a download stream that broke mid-body. @default 5 */
  maxStreamRetries?: number;
}

const EMPTY = () => new ReadableStream<Uint8Array>({ start: (c) => c.close() });

let sdk: Promise<typeof import("@azure/storage-blob")> | undefined;

/**
 * Load the Azure SDK now (it is loaded on first use otherwise, about 0.25 s of module loading),
 * e.g. while waiting for another service to answer at start-up. Nothing is requested.
 *
 * @returns the SDK's module, once loaded.
 */
export function loadAzureSdk(): Promise<typeof import("@azure/storage-blob")> {
  if (!sdk) {
    sdk = import("@azure/storage-blob");
    sdk.catch(() => sdk = undefined); // the next use tries again and reports the failure
  }
  return sdk;
}

/** One container of a storage account. */
export class AzureBlobContainer {
  /** `azure://<account>/<container>`, the prefix of unit ids and error messages. */
  readonly url: string;
  readonly #client: ContainerClient;
  readonly #streamRetries: number;

  private constructor(client: ContainerClient, streamRetries: number) {
    this.#client = client;
    this.#streamRetries = streamRetries;
    this.url = `azure://${client.accountName}/${client.containerName}`;
  }

  /**
   * A container client for `storage` (nothing is requested yet).
   *
   * @param storage the credentials.
   * @param container the container name.
   * @param options SDK retries.
   * @returns the container.
   * @throws {Error} when the credentials cannot be used (a malformed connection string).
   */
  static async open(
    storage: AzureStorage,
    container: string,
    { maxTries = 4, maxStreamRetries = 5 }: AzureBlobContainerOptions = {},
  ): Promise<AzureBlobContainer> {
    const { BlobServiceClient, StorageSharedKeyCredential, AnonymousCredential } =
      await loadAzureSdk();
    const options = { retryOptions: { maxTries } };
    let service;
    try {
      if (storage.connection_string !== undefined) {
        service = BlobServiceClient.fromConnectionString(storage.connection_string, options);
      } else {
        const endpoint =
          (storage.endpoint ?? `https://${storage.account_name}.blob.core.windows.net`)
            .replace(/\/+$/, "");
        if (storage.access_key !== undefined) {
          service = new BlobServiceClient(
            endpoint,
            new StorageSharedKeyCredential(storage.account_name!, storage.access_key),
            options,
          );
        } else {
          const sas = (storage.sas_token ?? "").replace(/^\?/, "");
          service = new BlobServiceClient(`${endpoint}?${sas}`, new AnonymousCredential(), options);
        }
      }
    } catch (e) {
      throw new Error(
        `cannot use the storage credentials for container ${container}: ${errorChain(e)}`,
        { cause: e },
      );
    }
    return new AzureBlobContainer(service.getContainerClient(container), maxStreamRetries);
  }

  /**
   * The blobs whose names start with `prefix`, in name order.
   *
   * @throws {Error} naming the container and prefix when listing fails.
   */
  async *list(prefix: string): AsyncIterable<BlobInfo> {
    try {
      for await (const b of this.#client.listBlobsFlat({ prefix })) {
        yield {
          name: b.name,
          size: b.properties.contentLength ?? 0,
          etag: b.properties.etag ?? "",
          lastModified: b.properties.lastModified?.toISOString() ?? "",
          sealed: b.properties.isSealed ?? false,
        };
      }
    } catch (e) {
      throw new Error(`failed to list ${this.url}/${prefix}*: ${errorChain(e)}`, { cause: e });
    }
  }

  /**
   * A blob's current size and identity, or undefined when it does not exist.
   *
   * @throws {Error} naming the blob when the request fails otherwise.
   */
  async properties(name: string, signal?: AbortSignal): Promise<BlobInfo | undefined> {
    try {
      const p = await this.#client.getBlobClient(name).getProperties({
        ...(signal && { abortSignal: signal }),
      });
      return {
        name,
        size: p.contentLength ?? 0,
        etag: p.etag ?? "",
        lastModified: p.lastModified?.toISOString() ?? "",
        sealed: p.isSealed ?? false,
      };
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw new Error(`failed to get properties of ${this.url}/${name}: ${errorChain(e)}`, {
        cause: e,
      });
    }
  }

  /**
   * Stream the blob's bytes from `offset` (a ranged download), `count` bytes or to its end.
   * An offset at or past the end gives an empty stream. A body that breaks mid-way is resumed
   * by the SDK from where it stopped (`maxStreamRetries`).
   *
   * @param name the blob.
   * @param offset the first byte.
   * @param count how many bytes; undefined: to the end.
   * @param signal aborts the download.
   * @returns the body as a Web stream.
   * @throws {Error} naming the blob and offset when the download cannot start.
   */
  async read(
    name: string,
    offset: number,
    count?: number,
    signal?: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    if (count === 0) return EMPTY();
    try {
      const res = await this.#client.getBlobClient(name).download(offset, count, {
        maxRetryRequests: this.#streamRetries,
        ...(signal && { abortSignal: signal }),
      });
      const body = res.readableStreamBody as Readable | undefined;
      if (!body) return EMPTY();
      return Readable.toWeb(body) as ReadableStream<Uint8Array>;
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      if (status === 416) return EMPTY(); // offset at the end: nothing new
      throw new Error(
        `failed to read ${this.url}/${name} at byte ${offset}: ${errorChain(e)}`,
        { cause: e },
      );
    }
  }
}
