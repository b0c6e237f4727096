// The reference blob monitor's own config (its README's "Configuration Example", verbatim in
// tests/testdata/reference/blob_monitor_config.yaml) validates and runs as the whole file, and
// under `monitor:`.
import assert from "node:assert/strict";
import { join } from "node:path";
import { validateText } from "../../mod/config/load.ts";
import { resolveMonitorConfig } from "../../mod/modes/monitor_reference.ts";
import type { MonitorConfig } from "../../mod/modes/monitor.ts";
import { agentSpec, loadModes } from "../../mod/modes/registry.ts";
import { ROOT, runAgent } from "../_agent.ts";
import {
  blobServiceClient,
  endpoints,
  freshContainer,
  kafka,
  serviceTest,
} from "../services/mod.ts";
import { readTopic } from "../sinks/_kafka_topic.ts";

const REFERENCE = await Deno.readTextFile(
  join(ROOT, "tests/testdata/reference/blob_monitor_config.yaml"),
);
/** The reference file as the `monitor:` section of an agent config. */
const underMonitor = (text: string) => "monitor:\n" + text.replace(/^(?=.)/gm, "  ");

const cli = runAgent;

Deno.test("monitor: the reference's config validates; global: and plain seconds are honoured", async () => {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "agent.yaml");
  await Deno.writeTextFile(file, underMonitor(REFERENCE));
  const r = await cli(["validate", "--config", file]);
  assert.equal(r.code, 0, r.stderr);
  // The reference's file as it is: kafka:, global: and environments: at the top.
  const verbatim = join(dir, "reference.yaml");
  await Deno.writeTextFile(verbatim, REFERENCE);
  const rv = await cli(["validate", "--config", verbatim]);
  assert.equal(rv.code, 0, rv.stderr);

  const parsed = validateText(
    agentSpec(await loadModes()),
    underMonitor(REFERENCE),
    "x",
  ) as unknown as {
    monitor: MonitorConfig;
  };
  assert.equal(parsed.monitor.global?.polling_interval, 300_000);
  assert.deepEqual(parsed.monitor.kafka.brokers, ["localhost:9092"]);
  const secure = join(dir, "secure.yaml");
  await Deno.writeTextFile(
    secure,
    `subscriptions:
  cp2:
    name: "Commerce Cloud Subscription"
    environments:
      D1:
        name: "Development"
        storage_account:
          account_name: "devlogs"
          access_key: "a2V5"
`,
  );
  const env = (k: string) => ({ AZURE_STORAGE_BLOB_ENDPOINT: "http://127.0.0.1:1/devlogs" })[k];
  const c = resolveMonitorConfig(parsed.monitor, { env, secureConfigPath: secure });
  assert.equal(c.polling_interval, 300_000);
  assert.equal(c.timezone, "UTC");
  assert.deepEqual(c.blob_closing, { enabled: true, timeout_minutes: 5 });
  assert.equal("global" in c, false);
  assert.deepEqual(c.environments[0]!.storage_account, {
    account_name: "devlogs",
    access_key: "a2V5",
    endpoint: "http://127.0.0.1:1/devlogs",
  });
  assert.equal(c.environments[0]!.container, "commerce-logs-separated");
  assert.deepEqual(c.environments[0]!.selectors, ["apache-proxy", "api-service", "zookeeper"]);

  // Our own keys still work, with plain seconds too; global: wins over them.
  const own = validateText(
    agentSpec(await loadModes()),
    "monitor:\n  polling_interval: 90\n  timezone: Europe/Berlin\n  global: { timezone: UTC }\n",
    "x",
  ) as unknown as { monitor: MonitorConfig };
  const ownResolved = resolveMonitorConfig(own.monitor, { env: () => undefined });
  assert.equal(ownResolved.polling_interval, 90_000);
  assert.equal(ownResolved.timezone, "UTC");
  // An environment without credentials anywhere is refused with what to set.
  assert.throws(
    () =>
      resolveMonitorConfig(parsed.monitor, {
        env: () => undefined,
        secureConfigPath: join(dir, "none.yaml"),
      }),
    /cp2\/D1: no storage credentials/,
  );
  const bad = await Deno.writeTextFile(file, underMonitor("global:\n  polling_interval: soon\n"));
  assert.equal(bad, undefined);
  const r2 = await cli(["validate", "--config", file]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /:3:23: monitor\.global\.polling_interval: must be a duration/);
  await Deno.remove(dir, { recursive: true });
});

serviceTest(
  "monitor: the reference's config runs unchanged against Azurite and Kafka",
  ["azurite", "kafka"],
  async () => {
    const container = await freshContainer();
    const today = new Date().toISOString().slice(0, 10).replaceAll("-", "");
    const wanted = `kubernetes/${today}.api-service-7d9f8b6c5-x2kqp_shop_app-1.gz`;
    const other = `kubernetes/${today}.web-6c5d7b8f9-k2ddq_shop_app-1.gz`;
    const cc = blobServiceClient().getContainerClient(container);
    for (const name of [wanted, other]) {
      const b = cc.getAppendBlobClient(name);
      await b.create();
      await b.appendBlock("line\n", 5);
    }
    // The reference's topic (the test broker creates no topic on use; a real one may).
    const client = kafka();
    try {
      if (!(await client.listTopics()).includes("Ingestion.Blobs")) {
        await client.createTopic("Ingestion.Blobs", { partitions: 1, replicationFactor: 1 });
      }
    } finally {
      await client.close();
    }
    const dir = await Deno.makeTempDir();
    // The reference read credentials from its secure config in the home directory.
    const key = /AccountKey=([^;]+)/.exec(endpoints.azuriteConnectionString)![1]!;
    await Deno.mkdir(join(dir, ".commerce-logs-pipeline"));
    await Deno.writeTextFile(
      join(dir, ".commerce-logs-pipeline", "config.yaml"),
      `subscriptions:\n  cp2:\n    environments:\n      D1:\n        storage_account:\n          account_name: devstoreaccount1\n          access_key: "${key}"\n`,
    );
    // The reference's file as it is, not wrapped in a monitor: section.
    const file = join(dir, "agent.yaml");
    await Deno.writeTextFile(file, REFERENCE);
    const r = await cli(
      ["monitor", "--config", file, "--once", "--state-file", join(dir, "s.json"), "--no-status"],
      {
        HOME: dir,
        AZURE_STORAGE_CONTAINER_NAME: container,
        AZURE_STORAGE_BLOB_ENDPOINT: endpoints.azuriteBlobUrl,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const mine = (await readTopic("Ingestion.Blobs"))
      .map((m) => ({ key: m.key, event: JSON.parse(m.value) }))
      .filter((m) => m.event.container === container);
    const observed = mine.filter((m) => m.event.type === "BlobObserved");
    assert.deepEqual(observed.map((m) => m.key), [wanted]);
    assert.equal(observed[0]!.event.subscription, "cp2");
    assert.equal(observed[0]!.event.environment, "D1");
    assert.equal(observed[0]!.event.service, "api-service");
    assert.ok(mine.some((m) => m.event.type === "BlobsListed" && m.event.count === 1));
    await Deno.remove(dir, { recursive: true });
  },
);
