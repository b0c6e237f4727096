import assert from "node:assert/strict";
import zlib from "node:zlib";
import { parseValue } from "../../mod/config/spec.ts";
import { ingestMode, serviceOf } from "../../mod/modes/ingest.ts";
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

Deno.test("serviceOf() takes the service from a pod blob name", () => {
  assert.equal(
    serviceOf("kubernetes/20250606.api-gateway-7d9f8b6c5-x2kqp_prod_api-1a2b.gz"),
    "api-gateway",
  );
  assert.equal(serviceOf("kubernetes/20250606.worker_ns_c-1.gz"), "worker");
});

/** Every message of `topic` (expecting `n`), with its headers. */
async function consume(topic: string, n: number) {
  const consumer = kafka().consumer({ groupId: uniqueName("g") });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got: { value: string; headers: Record<string, string> }[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${got.length} of ${n} messages`)), 15_000);
    consumer.run({
      eachMessage: ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        got.push({ value: message.value!.toString(), headers });
        if (got.length >= n) {
          clearTimeout(timer);
          resolve();
        }
        return Promise.resolve();
      },
    });
  });
  await new Promise((r) => setTimeout(r, 300)); // anything beyond n would show up here
  await consumer.disconnect();
  return got;
}

const member = (lines: string[]) => new Uint8Array(zlib.gzipSync(lines.join("\n") + "\n"));
const lines = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => `{"m":"${tag}","i":${i}}`);

serviceTest(
  "ingest: 3 members from 0, then 2 more plus a partial one, then its rest: each line once, in order",
  [
    "azurite",
    "kafka",
  ],
  async () => {
    const container = await freshContainer();
    const blobName = "kubernetes/20250606.orders-5f7c9d-abcde_shop_app-1.gz";
    const blob = blobServiceClient().getContainerClient(container).getAppendBlobClient(blobName);
    await blob.create();
    const topic = await freshTopic();
    const completion = await freshTopic();
    const dir = await Deno.makeTempDir();
    const config = parseValue(ingestMode.spec, {
      brokers: endpoints.kafka,
      topic,
      completion_topic: completion,
      connection_string: endpoints.azuriteConnectionString,
      subscription: "cp2",
      environment: "P1",
      container,
      blob: blobName,
      state_file: `${dir}/offsets.json`,
      flush_interval: "20ms",
    });
    const run = async () => assert.equal(await ingestMode.run(modeContext(config, dir)), 0);
    const offset = async () =>
      JSON.parse(await Deno.readTextFile(`${dir}/offsets.json`))[`${container}/${blobName}`];

    const m = [lines("a", 3), lines("b", 4), lines("c", 2)].map(member);
    for (const part of m) await blob.appendBlock(part, part.length);
    await run();
    const first = await consume(topic, 9);
    assert.deepEqual(first.map((x) => x.value), [
      ...lines("a", 3),
      ...lines("b", 4),
      ...lines("c", 2),
    ]);
    assert.deepEqual(first[0]!.headers, {
      subscription: "cp2",
      environment: "P1",
      blob: blobName,
      service: "orders",
      start_offset: "0",
    });
    const size3 = m.reduce((n, x) => n + x.length, 0);
    assert.equal(await offset(), size3);

    // Two complete members and half of a third: only the complete ones now.
    const more = [member(lines("d", 2)), member(lines("e", 3))];
    const partial = member(lines("f", 5));
    const cut = Math.floor(partial.length / 2);
    for (const part of [...more, partial.subarray(0, cut)]) {
      await blob.appendBlock(part, part.length);
    }
    await run();
    const second = await consume(topic, 14);
    assert.deepEqual(second.slice(9).map((x) => x.value), [...lines("d", 2), ...lines("e", 3)]);
    assert.equal(second[9]!.headers.start_offset, String(size3));
    assert.equal(await offset(), size3 + more[0]!.length + more[1]!.length);

    // The partial member completes: its lines come once.
    const rest = partial.subarray(cut);
    await blob.appendBlock(rest, rest.length);
    await run();
    const third = await consume(topic, 19);
    assert.deepEqual(third.slice(14).map((x) => x.value), lines("f", 5));
    assert.equal(third.length, 19);

    const events = (await consume(completion, 3)).map((x) => JSON.parse(x.value));
    assert.deepEqual(events.map((e) => [e.start_offset, e.end_offset, e.lines]), [
      [0, size3, 9],
      [size3, size3 + more[0]!.length + more[1]!.length, 5],
      [size3 + more[0]!.length + more[1]!.length, await offset(), 5],
    ]);
    assert.equal(events[0].type, "BlobIngested");
    assert.equal(events[0].blob, blobName);
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest(
  "ingest: START_OFFSET at a member boundary reads from there",
  ["azurite", "kafka"],
  async () => {
    const container = await freshContainer();
    const blob = blobServiceClient().getContainerClient(container).getAppendBlobClient(
      "kubernetes/20250606.x-1-2_n_c.gz",
    );
    await blob.create();
    const m = [member(lines("skip", 3)), member(lines("keep", 4))];
    for (const part of m) await blob.appendBlock(part, part.length);
    const topic = await freshTopic();
    const dir = await Deno.makeTempDir();
    Deno.env.set("START_OFFSET", String(m[0]!.length));
    try {
      const config = parseValue(ingestMode.spec, {
        brokers: endpoints.kafka,
        topic,
        connection_string: endpoints.azuriteConnectionString,
        container,
        blob: "kubernetes/20250606.x-1-2_n_c.gz",
        state_file: `${dir}/o.json`,
        flush_interval: "20ms",
      });
      assert.equal(await ingestMode.run(modeContext(config, dir)), 0);
    } finally {
      Deno.env.delete("START_OFFSET");
    }
    const got = await consume(topic, 4);
    assert.deepEqual(got.map((x) => x.value), lines("keep", 4));
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest(
  "edge-agent ingest test-kafka answers for a reachable broker",
  ["kafka"],
  async () => {
    const run = (brokers: string) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-P=agent",
          "--quiet",
          "main.ts",
          "ingest",
          "--no-status",
          "test-kafka",
          brokers,
        ],
        cwd: new URL("../../", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run(endpoints.kafka.join(","));
    assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
    assert.match(new TextDecoder().decode(ok.stdout), /kafka ok/);
  },
);

serviceTest(
  "ingest worker: consumes BlobObserved events in a group, reads only new members each time",
  [
    "azurite",
    "kafka",
  ],
  async () => {
    const container = await freshContainer();
    const name = "kubernetes/20250606.api-5f7c9d-abcde_shop_app-1.gz";
    const blob = blobServiceClient().getContainerClient(container).getAppendBlobClient(name);
    await blob.create();
    const first = member(lines("w1", 3));
    await blob.appendBlock(first, first.length);
    const [events, topic] = [await freshTopic(), await freshTopic()];
    const dir = await Deno.makeTempDir();
    const config = parseValue(ingestMode.spec, {
      brokers: endpoints.kafka,
      topic,
      worker: true,
      events_topic: events,
      group_id: uniqueName("workers"),
      environments: [{
        subscription: "cp2",
        environment: "P1",
        connection_string: endpoints.azuriteConnectionString,
      }],
      state_file: `${dir}/o.json`,
      flush_interval: "20ms",
    });
    const stop = new AbortController();
    const worker = ingestMode.run(modeContext(config, dir, { signal: stop.signal }));
    const producer = kafka().producer();
    await producer.connect();
    const observed = (size: number) =>
      producer.send({
        topic: events,
        messages: [{
          key: name,
          value: JSON.stringify({
            type: "BlobObserved",
            name,
            container,
            subscription: "cp2",
            environment: "P1",
            size,
          }),
        }],
      });
    await observed(first.length);
    const got1 = await consume(topic, 3);
    assert.deepEqual(got1.map((x) => x.value), lines("w1", 3));
    const second = member(lines("w2", 2));
    await blob.appendBlock(second, second.length);
    await observed(first.length + second.length);
    const got2 = await consume(topic, 5);
    assert.deepEqual(got2.map((x) => x.value), [...lines("w1", 3), ...lines("w2", 2)]);
    await producer.disconnect();
    stop.abort();
    assert.equal(await worker, 0);
    await Deno.remove(dir, { recursive: true });
  },
);
