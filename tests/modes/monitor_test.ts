import assert from "node:assert/strict";
import { parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import {
  BlobMonitor,
  datesToList,
  type MonitorConfig,
  monitorMode,
  monitorSpec,
} from "../../mod/modes/monitor.ts";
import { CheckpointStore } from "../../mod/pipeline/checkpoint.ts";
import {
  blobServiceClient,
  endpoints,
  freshContainer,
  freshTopic,
  serviceTest,
} from "../services/mod.ts";
import { readTopic } from "../sinks/_kafka_topic.ts";
import { modeContext } from "./_context.ts";

const API = "kubernetes/20250606.api-7d9f8b6c5-x2kqp_shop_app-1.gz";
const WEB = "kubernetes/20250606.web-6c5d7b8f9-k2ddq_shop_app-1.gz";
const API_YESTERDAY = "kubernetes/20250605.api-7d9f8b6c5-x2kqp_shop_app-1.gz";
const NOON = Date.UTC(2025, 5, 6, 12);
const MIN = 60_000;

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
  // New Year across a month and a year.
  assert.deepEqual(datesToList(Date.UTC(2026, 0, 1, 0, 10), "UTC", h), ["20251231", "20260101"]);
});

Deno.test("monitorSpec keeps the reference's keys and defaults, and rejects an unknown time zone", () => {
  const c = parseValue(monitorSpec, {});
  assert.equal(c.kafka.topic, "Ingestion.Blobs");
  assert.equal(c.polling_interval, 300_000);
  assert.deepEqual(c.blob_closing, { enabled: true, timeout_minutes: 5 });
  assert.equal(c.timezone, "UTC");
  assert.throws(
    () => parseValue(monitorSpec, { timezone: "Mars/Olympus" }),
    /timezone: must be an IANA time zone/,
  );
});

/** A container with three blobs, a monitor on it with a settable clock, and what it published. */
async function world(overrides: Record<string, unknown> = {}) {
  const container = await freshContainer();
  const cc = blobServiceClient().getContainerClient(container);
  const blobs: Record<string, ReturnType<typeof cc.getAppendBlobClient>> = {};
  for (const [name, data] of [[API, "0123456789"], [WEB, "abc"], [API_YESTERDAY, "yesterday"]]) {
    const b = cc.getAppendBlobClient(name!);
    await b.create();
    await b.appendBlock(data!, data!.length);
    blobs[name!] = b;
  }
  const dir = await Deno.makeTempDir();
  const env = {
    subscription: "cp2",
    environment: "P1",
    storage_account: { connection_string: endpoints.azuriteConnectionString },
    container,
  };
  const config: MonitorConfig = parseValue(monitorSpec, {
    environments: [env, { ...env, environment: "P2", enabled: false }],
    blob_closing: { timeout_minutes: 30 },
    state_file: `${dir}/state.json`,
    ...overrides,
  });
  const clock = { now: NOON };
  const published: { key: string; event: Record<string, unknown> }[] = [];
  const open = async (cfg = config) => {
    const store = new CheckpointStore(`${dir}/state.json`, { flushInterval: 0 });
    await store.load();
    return new BlobMonitor(cfg, {
      store,
      publish: (ms) => {
        for (const m of ms) {
          published.push({ key: String(m.key), event: JSON.parse(String(m.value)) });
        }
        return Promise.resolve();
      },
      metrics: new Registry(),
      log: new Logger({ write: () => {} }),
      now: () => clock.now,
    });
  };
  const take = () => published.splice(0);
  const brief = (es: { event: Record<string, unknown> }[]) =>
    es.filter((e) => e.event.type !== "BlobsListed")
      .map((e) => `${e.event.type}:${e.event.service}:${e.event.size}`).toSorted();
  return { env, container, blobs, dir, config, clock, open, take, brief };
}

serviceTest(
  "BlobMonitor announces new and grown blobs and counts them per date and service",
  "azurite",
  async () => {
    const w = await world();
    const m = await w.open();
    await m.poll();
    const first = w.take();
    assert.deepEqual(w.brief(first), ["BlobObserved:api:10", "BlobObserved:web:3"]);
    const api = first.find((e) => e.key === API)!;
    assert.deepEqual(
      { ...api.event, etag: undefined, last_modified: undefined, observed_at: undefined },
      {
        type: "BlobObserved",
        name: API,
        container: w.container,
        subscription: "cp2",
        environment: "P1",
        service: "api",
        date: "20250606",
        size: 10,
        previous_size: 0,
        etag: undefined,
        last_modified: undefined,
        observed_at: undefined,
      },
    );
    assert.ok(String(api.event.etag).length > 0 && Date.parse(String(api.event.last_modified)) > 0);
    assert.equal(api.event.observed_at, new Date(NOON).toISOString());
    const listed = first.filter((e) => e.event.type === "BlobsListed").map((e) => e.event);
    assert.deepEqual(
      listed.map((e) => [e.date, e.service, e.environment, e.count, e.total_bytes]).toSorted(),
      [["20250606", "api", "P1", 1, 10], ["20250606", "web", "P1", 1, 3]],
    );
    assert.ok(!first.some((e) => e.event.environment === "P2"), "disabled environment");

    w.clock.now += MIN;
    await w.blobs[API]!.appendBlock("more", 4);
    await m.poll();
    const grown = w.take();
    assert.deepEqual(w.brief(grown), ["BlobObserved:api:14"]);
    assert.equal(grown.find((e) => e.key === API)!.event.previous_size, 10);

    w.clock.now += MIN;
    await m.poll();
    assert.deepEqual(w.brief(w.take()), [], "nothing changed: nothing announced");
  },
);

serviceTest(
  "BlobMonitor closes blobs inactive for timeout_minutes, and re-observes one that grows again",
  "azurite",
  async () => {
    const w = await world();
    const m = await w.open();
    await m.poll();
    w.take();
    w.clock.now += 20 * MIN;
    await w.blobs[API]!.appendBlock("more", 4);
    await m.poll();
    assert.deepEqual(w.brief(w.take()), ["BlobObserved:api:14"]);
    w.clock.now += 11 * MIN; // web: 31 min without growth; api: 11
    await m.poll();
    const closed = w.take().filter((e) => e.event.type === "BlobClosed");
    assert.deepEqual(closed.map((e) => e.key), [WEB]);
    assert.equal(closed[0]!.event.reason, "inactive");
    assert.equal(closed[0]!.event.last_growth_at, new Date(NOON).toISOString());
    w.clock.now += 30 * MIN;
    await m.poll();
    assert.deepEqual(w.brief(w.take()), ["BlobClosed:api:14"]);
    w.clock.now += 60 * MIN;
    await m.poll();
    assert.deepEqual(w.brief(w.take()), [], "closed once");
    await w.blobs[WEB]!.appendBlock("de", 2);
    await m.poll();
    assert.deepEqual(w.brief(w.take()), ["BlobObserved:web:5"]);
  },
);

serviceTest(
  "BlobMonitor restarted from its state file announces nothing twice",
  "azurite",
  async () => {
    const w = await world();
    await (await w.open()).poll();
    w.take();
    w.clock.now += MIN;
    await (await w.open()).poll();
    assert.deepEqual(w.brief(w.take()), []);
    // Growth while it was down is announced once, by the restarted monitor.
    await w.blobs[WEB]!.appendBlock("x", 1);
    await (await w.open()).poll();
    assert.deepEqual(w.brief(w.take()), ["BlobObserved:web:4"]);
    await (await w.open()).poll();
    assert.deepEqual(w.brief(w.take()), []);
  },
);

serviceTest(
  "BlobMonitor: selectors filter services; yesterday is listed during the overlap only",
  "azurite",
  async () => {
    const w = await world();
    const onlyApi = parseValue(monitorSpec, {
      environments: [{ ...w.env, selectors: ["ap"] }],
      end_of_day_overlap: "1h",
      blob_closing: { timeout_minutes: 30 },
      state_file: `${w.dir}/state.json`,
    });
    const m = await w.open(onlyApi);
    w.clock.now = Date.UTC(2025, 5, 6, 0, 20); // 00:20: within the overlap
    await m.poll();
    const events = w.take();
    assert.deepEqual(
      events.filter((e) => e.event.type === "BlobObserved").map((e) => e.key).toSorted(),
      [API_YESTERDAY, API],
    );
    assert.deepEqual(
      events.filter((e) => e.event.type === "BlobsListed").map((e) => e.event.date).toSorted(),
      ["20250605", "20250606"],
    );
    // 01:30: yesterday is no longer listed; its blob still closes on time, then is forgotten.
    w.clock.now = Date.UTC(2025, 5, 6, 1, 30);
    await m.poll();
    const later = w.take();
    assert.deepEqual(
      later.filter((e) => e.event.type === "BlobClosed").map((e) => e.key).toSorted(),
      [API_YESTERDAY, API],
    );
    assert.ok(!later.some((e) => e.event.type === "BlobsListed" && e.event.date === "20250605"));
    const state = JSON.parse(await Deno.readTextFile(`${w.dir}/state.json`)).state.blobs;
    assert.deepEqual(Object.keys(state).map((k) => k.split("/").slice(3).join("/")), [API]);
  },
);

serviceTest(
  "BlobMonitor: a failing environment does not stop the others; a failed publish is announced again",
  "azurite",
  async () => {
    const w = await world();
    const broken = {
      ...w.env,
      environment: "P9",
      storage_account: {
        account_name: "devstoreaccount1",
        access_key: btoa("wrong"),
        endpoint: endpoints.azuriteBlobUrl,
      },
    };
    const cfg = parseValue(monitorSpec, {
      environments: [broken, w.env],
      state_file: `${w.dir}/state.json`,
    });
    const metrics = new Registry();
    const store = new CheckpointStore(`${w.dir}/state.json`, { flushInterval: 0 });
    let fail = true;
    const published: string[] = [];
    const m = new BlobMonitor(cfg, {
      store,
      publish: (ms) => {
        if (fail) return Promise.reject(new Error("kafka down"));
        published.push(...ms.map((x) => JSON.parse(String(x.value)).type));
        return Promise.resolve();
      },
      metrics,
      log: new Logger({ write: () => {} }),
      now: () => NOON,
    });
    await assert.rejects(m.poll(), /kafka down/);
    fail = false;
    await m.poll();
    assert.deepEqual(published.filter((t) => t === "BlobObserved"), [
      "BlobObserved",
      "BlobObserved",
    ]);
    assert.equal(
      metrics.counter("monitor_poll_errors_total", "").get({ environment: "cp2/P9" }),
      2,
    );
  },
);

serviceTest(
  "BlobMonitor in a time zone: the date prefix is the zone's day",
  "azurite",
  async () => {
    const w = await world({ timezone: "Asia/Tokyo", end_of_day_overlap: "1m" });
    const m = await w.open();
    // 2025-06-05 20:00 UTC is 2025-06-06 05:00 in Tokyo.
    w.clock.now = Date.UTC(2025, 5, 5, 20);
    await m.poll();
    assert.deepEqual(w.brief(w.take()), ["BlobObserved:api:10", "BlobObserved:web:3"]);
  },
);

serviceTest("monitor --once publishes JSON events keyed by blob name to Kafka", [
  "azurite",
  "kafka",
], async () => {
  const container = await freshContainer();
  const today = new Date().toISOString().slice(0, 10).replaceAll("-", "");
  const name = `kubernetes/${today}.api-7d9f8b6c5-x2kqp_shop_app-1.gz`;
  const b = blobServiceClient().getContainerClient(container).getAppendBlobClient(name);
  await b.create();
  await b.appendBlock("x", 1);
  const topic = await freshTopic();
  const dir = await Deno.makeTempDir();
  const config = parseValue(monitorSpec, {
    kafka: { brokers: endpoints.kafka.join(","), topic },
    once: true,
    environments: [{
      subscription: "cp2",
      environment: "P1",
      storage_account: { connection_string: endpoints.azuriteConnectionString },
      container,
    }],
    state_file: `${dir}/s.json`,
  });
  assert.equal(await monitorMode.run(modeContext(config, dir)), 0);
  const got = (await readTopic(topic)).map((m) => ({ key: m.key, event: JSON.parse(m.value) }));
  assert.equal(got.length, 2);
  const observed = got.find((g) => g.event.type === "BlobObserved")!;
  assert.equal(observed.key, name);
  assert.equal(observed.event.size, 1);
  assert.equal(observed.event.subscription, "cp2");
  assert.ok(got.some((g) => g.event.type === "BlobsListed" && g.event.count === 1));
  // A second run announces nothing new (only the scan summary).
  assert.equal(await monitorMode.run(modeContext(config, dir)), 0);
  const again = (await readTopic(topic)).slice(2).map((m) => JSON.parse(m.value).type);
  assert.deepEqual(again, ["BlobsListed"]);
  await Deno.remove(dir, { recursive: true });
});

serviceTest("monitor --once exits 1 when listing failed (a wrong access key)", [
  "azurite",
  "kafka",
], async () => {
  const container = await freshContainer();
  const topic = await freshTopic();
  const dir = await Deno.makeTempDir();
  // Azurite's account with a key that is not its key: every listing is refused (403).
  const wrongKey = endpoints.azuriteConnectionString.replace(
    /AccountKey=[^;]+/,
    `AccountKey=${btoa("not the key of this account, 64 bytes long, as Azure keys are..")}`,
  );
  assert.notEqual(wrongKey, endpoints.azuriteConnectionString);
  const config = parseValue(monitorSpec, {
    kafka: { brokers: endpoints.kafka.join(","), topic },
    once: true,
    environments: [{
      subscription: "cp2",
      environment: "P1",
      storage_account: { connection_string: wrongKey },
      container,
    }],
    state_file: `${dir}/s.json`,
  });
  assert.equal(await monitorMode.run(modeContext(config, dir)), 1);
  await Deno.remove(dir, { recursive: true });
});
