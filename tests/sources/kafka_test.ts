import assert from "node:assert/strict";
import { parseValue } from "../../mod/config/spec.ts";
import { ingestSpec } from "../../mod/modes/ingest.ts";
import { processSpec } from "../../mod/modes/process.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { runPipeline } from "../../mod/pipeline/run.ts";
import type { Batch, UnitResult } from "../../mod/pipeline/types.ts";
import { KafkaSource, type KafkaSourceConfig, kafkaSourceSpec } from "../../mod/sources/kafka.ts";
import {
  endpoints,
  freshTopic,
  kafka,
  produceTo,
  serviceTest,
  uniqueName,
} from "../services/mod.ts";

const done: UnitResult = { lines: 1, bytes: 1, consumed: 0, truncated: 0 };
const quiet = new Logger({ write: () => {} });

async function produce(topic: string, values: string[], partition = 0) {
  await produceTo(
    topic,
    values.map((value) => ({ value, partition, headers: { service: "api" } })),
  );
}

function config(
  topic: string,
  group: string,
  extra: Record<string, unknown> = {},
): KafkaSourceConfig {
  return parseValue(kafkaSourceSpec, {
    brokers: endpoints.kafka,
    topics: [topic],
    group_id: group,
    max_wait: "100ms",
    initial_backoff: "10ms",
    max_backoff: "20ms",
    ...extra,
  });
}

/** Take `n` units from a fresh source of the group, acking those `ack` says, then close. */
async function take(
  topic: string,
  group: string,
  n: number,
  ack: (i: number) => boolean | "leave" = () => true,
): Promise<string[]> {
  const source = await KafkaSource.connect(config(topic, group), { log: quiet });
  const stop = new AbortController();
  const got: string[] = [];
  for await (const u of source.units(stop.signal)) {
    got.push(new TextDecoder().decode(u.value));
    const what = ack(got.length - 1);
    if (what === true) await u.ack(done);
    else if (what === false) await u.nack(new Error("test nack"));
    if (got.length >= n) stop.abort();
  }
  await source.close();
  return got;
}

serviceTest(
  "KafkaSource hands out messages as units with headers, ids and time",
  "kafka",
  async () => {
    const topic = await freshTopic();
    await produce(topic, ["a", "b"]);
    const source = await KafkaSource.connect(config(topic, uniqueName("g")));
    const stop = new AbortController();
    const units = [];
    for await (const u of source.units(stop.signal)) {
      units.push(u);
      assert.deepEqual(
        new TextDecoder().decode(await new Response(await u.open(stop.signal)).arrayBuffer()),
        ["a", "b"][units.length - 1],
      );
      await u.ack(done);
      if (units.length === 2) stop.abort();
    }
    await source.close();
    assert.deepEqual(units.map((u) => u.id), [`kafka://${topic}/0@0`, `kafka://${topic}/0@1`]);
    assert.deepEqual(units[0]!.headers, { service: "api" });
    assert.deepEqual(units[0]!.attributes, { service: "api" });
    assert.ok(Math.abs(units[0]!.time! - Date.now()) < 600_000);
  },
);

serviceTest(
  "KafkaSource commits only acked offsets: a restarted member continues after them",
  "kafka",
  async () => {
    const topic = await freshTopic();
    await produce(topic, ["m0", "m1", "m2", "m3", "m4"]);
    const group = uniqueName("g");
    // Three acked, the fourth handed out, never settled and released at close: not committed.
    assert.deepEqual(await take(topic, group, 4, (i) => i < 3 || "leave"), [
      "m0",
      "m1",
      "m2",
      "m3",
    ]);
    // m3 acked, m4 nacked: not committed either.
    assert.deepEqual(await take(topic, group, 2, (i) => i < 1), ["m3", "m4"]);
    assert.deepEqual(await take(topic, group, 1), ["m4"]);
  },
);

serviceTest(
  "KafkaSource: a nacked unit is fetched again, and the ones behind it",
  "kafka",
  async () => {
    const topic = await freshTopic();
    await produce(topic, ["n0", "n1", "n2"]);
    const metrics = new Registry();
    const source = await KafkaSource.connect(config(topic, uniqueName("g")), {
      log: quiet,
      metrics,
    });
    const stop = new AbortController();
    const got: string[] = [];
    let failed = false;
    for await (const u of source.units(stop.signal)) {
      const v = new TextDecoder().decode(u.value);
      got.push(v);
      if (v === "n1" && !failed) {
        failed = true;
        await u.nack(new Error("sink down"));
      } else await u.ack(done);
      // Done once n2 came after the re-fetched n1.
      if (v === "n2" && got.filter((x) => x === "n1").length === 2) stop.abort();
    }
    await source.close();
    // n2 may have been handed out before the nack; it is handed out again after the re-fetch.
    assert.deepEqual(got.filter((v) => v !== "n2"), ["n0", "n1", "n1"]);
    assert.ok(got.indexOf("n1") < got.lastIndexOf("n1"));
    assert.equal(metrics.counter("kafka_messages_nacked_total", "").get(), 1);
  },
);

serviceTest(
  "KafkaSource feeds runPipeline: each message's lines reach the sink, then it is committed",
  "kafka",
  async () => {
    const topic = await freshTopic(2);
    await produce(topic, ["p0-a\np0-b", "p0-c"], 0);
    await produce(topic, ["p1-a"], 1);
    const group = uniqueName("g");
    const lines: string[] = [];
    const sink = {
      kind: "memory",
      write(b: Batch) {
        for (const l of b.items) lines.push(new TextDecoder().decode(l));
        if (lines.length >= 4) stop.abort();
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
    };
    const stop = new AbortController();
    const source = await KafkaSource.connect(
      config(topic, group, { partitions_in_parallel: 2 }),
      { log: quiet },
    );
    const stats = await runPipeline({
      source,
      sink,
      metrics: new Registry(),
      log: quiet,
      signal: stop.signal,
      batch: { flush_interval: 10 },
    });
    assert.deepEqual(lines.toSorted(), ["p0-a", "p0-b", "p0-c", "p1-a"]);
    assert.equal(stats.units, 3);
    // All committed: the group has nothing left.
    const client = kafka();
    const offsets = await client.committed(group, topic);
    await client.close();
    assert.deepEqual([...offsets].toSorted(), [[0, 2n], [1, 1n]]);
  },
);

Deno.test("kafkaGroupFields: session_timeout 10s and heartbeat_interval 3s, in the source, ingest and process", () => {
  const c = parseValue(kafkaSourceSpec, { topics: ["t"], group_id: "g" });
  assert.deepEqual([c.session_timeout, c.heartbeat_interval], [10_000, 3_000]);
  for (const shape of [processSpec.shape.kafka.shape, ingestSpec.shape]) {
    assert.ok("session_timeout" in shape && "heartbeat_interval" in shape);
  }
});
