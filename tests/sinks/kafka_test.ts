import assert from "node:assert/strict";
import { maskSecrets, parseValue } from "../../mod/config/spec.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { SinkError } from "../../mod/pipeline/types.ts";
import { kafkaMessageSize, KafkaSink, kafkaSpec } from "../../mod/sinks/kafka.ts";
import { endpoints, freshTopic, serviceTest, uniqueName } from "../services/mod.ts";
import { readTopic } from "./_kafka_topic.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("kafkaSpec() takes brokers as a list or a comma-separated string and masks the SASL password", () => {
  const spec = kafkaSpec({ topic: "Ingestion.Blobs" });
  const c = parseValue(spec, {
    brokers: "k1:9092, k2:9092",
    sasl: { username: "u", password: "hunter2" },
  });
  assert.deepEqual(c.brokers, ["k1:9092", "k2:9092"]);
  assert.equal(c.topic, "Ingestion.Blobs");
  assert.equal(c.compression, "gzip");
  assert.equal(c.idempotent, true);
  assert.equal(c.connection_timeout, 5000);
  assert.deepEqual((maskSecrets(spec, c) as typeof c).sasl, {
    mechanism: "scram-sha-512",
    username: "u",
    password: "***",
  });
  assert.deepEqual(parseValue(spec, { brokers: ["a:1"] }).brokers, ["a:1"]);
  assert.throws(() => parseValue(spec, { brokers: "nohost" }), /brokers\[0\]: must match/);
  assert.throws(() => parseValue(spec, { compression: "zstd" }), /must be one of gzip, none/);
});

Deno.test("kafkaMessageSize() counts value, key and headers", () => {
  assert.equal(kafkaMessageSize({ value: enc("abcd") }), 4 + 20);
  assert.equal(
    kafkaMessageSize({ key: "k", value: "xy", headers: { h: "v", b: enc("12") } }),
    2 + 20 + 1 + (1 + 1 + 2) + (1 + 2 + 2),
  );
});

for (const compression of ["gzip", "none"] as const) {
  serviceTest(
    `KafkaSink.write() produces a batch with keys and headers (${compression})`,
    "kafka",
    async () => {
      const topic = await freshTopic(3);
      const sink = await KafkaSink.connect(
        parseValue(kafkaSpec(), { brokers: endpoints.kafka, topic, compression }),
      );
      const headers = { blob: enc("b.gz"), service: "api" };
      const items = Array.from({ length: 50 }, (_, i) => ({
        key: i % 2 ? "odd" : enc("even"),
        value: enc(`line ${i}`),
        headers,
      }));
      await sink.write({ items, bytes: items.reduce((n, m) => n + kafkaMessageSize(m), 0) });
      await sink.close();
      const got = await readTopic(topic);
      assert.equal(got.length, 50);
      assert.deepEqual(got[0]!.headers, { blob: "b.gz", service: "api" });
      for (const key of ["odd", "even"]) {
        const mine = got.filter((m) => m.key === key);
        assert.equal(new Set(mine.map((m) => m.partition)).size, 1, "one key, one partition");
        assert.deepEqual(
          mine.map((m) => m.value),
          items.filter((_, i) => (i % 2 ? "odd" : "even") === key).map((_, j) =>
            `line ${j * 2 + (key === "odd" ? 1 : 0)}`
          ),
          "in batch order",
        );
      }
    },
  );
}

serviceTest(
  "KafkaSink.send() writes to any topic; JSON events keep their key",
  "kafka",
  async () => {
    const [a, b] = [await freshTopic(), await freshTopic()];
    const sink = await KafkaSink.connect(
      parseValue(kafkaSpec(), { brokers: endpoints.kafka, topic: a }),
    );
    await sink.send(b, [{ key: "blob.gz", value: JSON.stringify({ type: "BlobObserved" }) }]);
    await sink.close();
    assert.deepEqual((await readTopic(b)).map((m) => [m.key, JSON.parse(m.value).type]), [
      ["blob.gz", "BlobObserved"],
    ]);
    assert.equal((await readTopic(a)).length, 0);
  },
);

serviceTest(
  "KafkaSink gives up on a missing topic with a SinkError naming it, after counted retries",
  "kafka",
  async () => {
    const metrics = new Registry();
    const topic = uniqueName("missing");
    const sink = await KafkaSink.connect(
      parseValue(kafkaSpec(), {
        brokers: endpoints.kafka,
        topic,
        request_timeout: "2s",
        retry: { max_retries: 1, initial_backoff: "10ms", max_backoff: "20ms" },
      }),
      { metrics },
    );
    const err = await sink.write({ items: [{ value: enc("x") }], bytes: 1 }).then(
      () => undefined,
      (e) => e,
    );
    await sink.close();
    assert.ok(err instanceof SinkError, String(err));
    assert.match(err.message, new RegExp(`gave up producing 1 messages to ${topic}`));
    assert.equal(metrics.counter("kafka_retries_total", "").get(), 1);
  },
);

Deno.test("KafkaSink.connect() fails fast, naming the brokers, when none answers", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assert.rejects(
    KafkaSink.connect(
      parseValue(kafkaSpec(), { brokers: `127.0.0.1:${port}`, connection_timeout: "500ms" }),
    ),
    new RegExp(`cannot connect to Kafka at 127.0.0.1:${port}`),
  );
});
