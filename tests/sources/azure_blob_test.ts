import assert from "node:assert/strict";
import { parseValue } from "../../mod/config/spec.ts";
import {
  AzureBlobContainer,
  azureStorageFromEnv,
  azureStorageSpec,
} from "../../mod/sources/azure_blob.ts";
import { blobServiceClient, endpoints, freshContainer, serviceTest } from "../services/mod.ts";

const text = async (s: ReadableStream<Uint8Array>) => await new Response(s).text();
const account = () => {
  const cs = endpoints.azuriteConnectionString;
  const get = (k: string) => new RegExp(`${k}=([^;]+)`).exec(cs)?.[1] ?? "";
  return { name: get("AccountName"), key: get("AccountKey"), endpoint: endpoints.azuriteBlobUrl };
};

Deno.test("azureStorageSpec needs exactly one way to authenticate", () => {
  assert.throws(
    () => parseValue(azureStorageSpec, { account_name: "a" }),
    /exactly one of connection_string, access_key, sas_token: got 0 \(DefaultAzureCredential is not supported/,
  );
  assert.throws(
    () => parseValue(azureStorageSpec, { connection_string: "x", sas_token: "y" }),
    /got 2/,
  );
  assert.throws(() => parseValue(azureStorageSpec, { access_key: "k" }), /needs account_name/);
  assert.throws(() => parseValue(azureStorageSpec, { sas_token: "s" }), /account_name or endpoint/);
  assert.deepEqual(
    parseValue(azureStorageSpec, { account_name: "a", access_key: "k" }).access_key,
    "k",
  );
});

Deno.test("azureStorageFromEnv() reads the Azure CLI's variables", () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  assert.deepEqual(azureStorageFromEnv(env({ AZURE_STORAGE_CONNECTION_STRING: "cs" })), {
    connection_string: "cs",
  });
  assert.deepEqual(
    azureStorageFromEnv(env({ AZURE_STORAGE_ACCOUNT: "acct", AZURE_STORAGE_KEY: "k" })),
    { account_name: "acct", access_key: "k" },
  );
  assert.deepEqual(
    azureStorageFromEnv(env({ AZURE_STORAGE_ACCOUNT: "acct", AZURE_STORAGE_SAS_TOKEN: "sv=1" })),
    { account_name: "acct", sas_token: "sv=1" },
  );
  assert.equal(azureStorageFromEnv(env({ AZURE_STORAGE_ACCOUNT: "acct" })), undefined);
});

serviceTest(
  "AzureBlobContainer lists by date prefix, reads ranges from an offset, knows missing blobs",
  "azurite",
  async () => {
    const name = await freshContainer();
    const cc = blobServiceClient().getContainerClient(name);
    for (
      const [blob, data] of [
        ["kubernetes/20250606.api-7d9f8b6c5-x2kqp_ns_c.gz", "0123456789"],
        ["kubernetes/20250606.web-x2kqp_ns_c.gz", "abc"],
        ["kubernetes/20250605.api-7d9f8b6c5-x2kqp_ns_c.gz", "old"],
      ] as const
    ) {
      const b = cc.getAppendBlobClient(blob);
      await b.create();
      await b.appendBlock(data, data.length);
    }
    const c = await AzureBlobContainer.open(
      { connection_string: endpoints.azuriteConnectionString },
      name,
    );
    assert.equal(c.url, `azure://devstoreaccount1/${name}`);
    const listed = await Array.fromAsync(c.list("kubernetes/20250606."));
    assert.deepEqual(listed.map((b) => [b.name, b.size, b.sealed]), [
      ["kubernetes/20250606.api-7d9f8b6c5-x2kqp_ns_c.gz", 10, false],
      ["kubernetes/20250606.web-x2kqp_ns_c.gz", 3, false],
    ]);
    assert.ok(listed[0]!.etag && Date.parse(listed[0]!.lastModified) > 0);
    const api = "kubernetes/20250606.api-7d9f8b6c5-x2kqp_ns_c.gz";
    assert.equal(await text(await c.read(api, 0)), "0123456789");
    assert.equal(await text(await c.read(api, 4)), "456789");
    assert.equal(await text(await c.read(api, 4, 3)), "456");
    assert.equal(await text(await c.read(api, 10)), "", "at the end: nothing new");
    assert.equal((await c.properties(api))?.size, 10);
    assert.equal(await c.properties("kubernetes/nope.gz"), undefined);
    await assert.rejects(
      c.read("kubernetes/nope.gz", 0),
      /failed to read azure:\/\/devstoreaccount1\/.*nope\.gz at byte 0/,
    );
  },
);

serviceTest(
  "AzureBlobContainer authenticates with an access key and with a SAS token",
  "azurite",
  async () => {
    const name = await freshContainer();
    const cc = blobServiceClient().getContainerClient(name);
    const b = cc.getAppendBlobClient("kubernetes/20250606.x.gz");
    await b.create();
    await b.appendBlock("hello", 5);
    const a = account();
    const byKey = await AzureBlobContainer.open(
      { account_name: a.name, access_key: a.key, endpoint: a.endpoint },
      name,
    );
    assert.equal(await text(await byKey.read("kubernetes/20250606.x.gz", 1)), "ello");
    const sasUrl = await cc.generateSasUrl({
      permissions: (await import("@azure/storage-blob")).ContainerSASPermissions.parse("rl"),
      expiresOn: new Date(Date.now() + 3600_000),
    });
    const sas = new URL(sasUrl).search;
    const bySas = await AzureBlobContainer.open({ endpoint: a.endpoint, sas_token: sas }, name);
    assert.deepEqual((await Array.fromAsync(bySas.list("kubernetes/"))).map((x) => x.name), [
      "kubernetes/20250606.x.gz",
    ]);
    assert.equal(await text(await bySas.read("kubernetes/20250606.x.gz", 0, 2)), "he");
    const wrong = await AzureBlobContainer.open(
      { account_name: a.name, access_key: btoa("not the key"), endpoint: a.endpoint },
      name,
    );
    await assert.rejects(Array.fromAsync(wrong.list("kubernetes/")), /failed to list azure:/);
  },
);
