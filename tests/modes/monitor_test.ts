import assert from "node:assert/strict";
import { parseValue } from "../../mod/config/spec.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { azureLister, BlobMonitor, datesToList, monitorMode } from "../../mod/modes/monitor.ts";
import {
  blobServiceClient,
  endpoints,
  freshContainer,
  freshTopic,
  kafka,
  serviceTest,
  uniqueName,
} from "../services/mod.ts";
import { modeContext } from "./_context.ts";

Deno.test("datesToList() adds yesterday during the end-of-day overlap, in the configured zone", () => {
  const h = 3_600_000;
  assert.deepEqual(datesToList(Date.UTC(2025, 5, 6, 12), "UTC", h), ["20250606"]);
  assert.deepEqual(datesToList(Date.UTC(2025, 5, 6, 0, 30), "UTC", h), ["20250605", "20250606"]);
  // 23:30 UTC is 01:30 in Berlin (UTC+2 in June): past a one-hour overlap.
  assert.deepEqual(datesToList(Date.UTC(2025, 5, 5, 23, 30), "Europe/Berlin", h), ["20250606"]);
  assert.deepEqual(datesToList(Date.UTC(2025, 5, 5, 22, 30), "Europe/Berlin", h), [
    "20250605",
    "20250606",
  ]);
});

serviceTest(
  "BlobMonitor: observed, grown, listed, closed; selectors, disabled envs, overlap; restart announces nothing twice",
  [
    "azurite",
  ],
  async () => {
    const container = await freshContainer();
    const c = blobServiceClient().getContainerClient(container);
    const blob = async (name: string, data: string) => {
      const b = c.getAppendBlobClient(name);
      await b.create();
      await b.appendBlock(data, data.length);
      return b;
    };
    const api = await blob("kubernetes/20250606.api-5f7c9d-abcde_shop_app-1.gz", "0123456789");
    await blob("kubernetes/20250606.web-1a2b3c-xyz12_shop_app-1.gz", "abc");
    await blob("kubernetes/20250605.api-5f7c9d-abcde_shop_app-1.gz", "yesterday");
    const dir = await Deno.makeTempDir();
    const env = {
      subscription: "cp2",
      environment: "P1",
      connection_string: endpoints.azuriteConnectionString,
      container,
    };
    const config = parseValue(monitorSpec(), {
      environments: [env, { ...env, environment: "P2", enabled: false }],
      blob_closing: { timeout_minutes: 30 },
    });
    const events: Record<string, unknown>[] = [];
    const make = (cfg = config) =>
      new BlobMonitor(cfg, `${dir}/state.json`, lister, (_k, e) => {
        events.push(e);
        return Promise.resolve();
      }, new Registry());
    const lister = await azureLister();
    const t0 = Date.UTC(2025, 5, 6, 12);
    const types = () =>
      events.map((e) => `${e.type}:${e.service}${e.size !== undefined ? `:${e.size}` : ""}`);

    let m = make();
    await m.poll(t0);
    assert.deepEqual(types().toSorted(), [
      "BlobObserved:api:10",
      "BlobObserved:web:3",
      "BlobsListed:api",
      "BlobsListed:web",
    ]);
    const listed = events.find((e) => e.type === "BlobsListed" && e.service === "api")!;
    assert.equal(listed.count, 1);
    assert.equal(listed.total_bytes, 10);
    assert.equal(events.filter((e) => e.environment === "P2").length, 0, "disabled environment");

    events.length = 0;
    await api.appendBlock("more", 4);
    await m.poll(t0 + 60_000);
    assert.deepEqual(types().filter((t) => !t.startsWith("BlobsListed")), ["BlobObserved:api:14"]);

    events.length = 0;
    await m.poll(t0 + 31 * 60_000);
    assert.deepEqual(types().filter((t) => !t.startsWith("BlobsListed")).toSorted(), [
      "BlobClosed:api:14",
      "BlobClosed:web:3",
    ]);

    // Restart from the state file: nothing announced again.
    events.length = 0;
    m = make();
    await m.load();
    await m.poll(t0 + 32 * 60_000);
    assert.deepEqual(types().filter((t) => !t.startsWith("BlobsListed")), []);

    // After midnight, within the overlap, yesterday's blobs are listed too; selectors filter.
    events.length = 0;
    await Deno.remove(`${dir}/state.json`);
    const onlyApi = parseValue(monitorSpec(), { environments: [{ ...env, selectors: ["api"] }] });
    m = make(onlyApi);
    await m.poll(Date.UTC(2025, 5, 6, 0, 20));
    assert.deepEqual(
      events.filter((e) => e.type === "BlobObserved").map((e) => e.name).toSorted(),
      [
        "kubernetes/20250605.api-5f7c9d-abcde_shop_app-1.gz",
        "kubernetes/20250606.api-5f7c9d-abcde_shop_app-1.gz",
      ],
    );
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest("monitor (once) publishes JSON events keyed by blob name to Kafka", [
  "azurite",
  "kafka",
], async () => {
  const container = await freshContainer();
  const today = new Date().toISOString().slice(0, 10).replaceAll("-", "");
  const name = `kubernetes/${today}.api-5f7c9d-abcde_shop_app-1.gz`;
  const b = blobServiceClient().getContainerClient(container).getAppendBlobClient(name);
  await b.create();
  await b.appendBlock("x", 1);
  const topic = await freshTopic();
  const dir = await Deno.makeTempDir();
  const config = parseValue(monitorSpec(), {
    brokers: endpoints.kafka,
    topic,
    once: true,
    environments: [{
      subscription: "cp2",
      environment: "P1",
      connection_string: endpoints.azuriteConnectionString,
      container,
    }],
    state_file: `${dir}/s.json`,
  });
  assert.equal(await monitorMode.run(modeContext(config, dir)), undefined);
  const consumer = kafka().consumer({ groupId: uniqueName("g") });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got: { key: string; event: Record<string, unknown> }[] = [];
  await new Promise<void>((resolve) => {
    consumer.run({
      eachMessage: ({ message }) => {
        got.push({ key: message.key!.toString(), event: JSON.parse(message.value!.toString()) });
        if (got.length === 2) resolve();
        return Promise.resolve();
      },
    });
  });
  await consumer.disconnect();
  const observed = got.find((g) => g.event.type === "BlobObserved")!;
  assert.equal(observed.key, name);
  assert.equal(observed.event.size, 1);
  assert.equal(observed.event.subscription, "cp2");
  assert.ok(got.some((g) => g.event.type === "BlobsListed"));
  await Deno.remove(dir, { recursive: true });
});

function monitorSpec() {
  return monitorMode.spec;
}
