import assert from "node:assert/strict";
import { parseValue } from "../../mod/config/spec.ts";
import { CompactedTopicStore } from "../../mod/pipeline/compacted_topic_store.ts";
import { kafkaSpec } from "../../mod/sinks/kafka.ts";
import { endpoints, kafka, serviceTest, uniqueName } from "../services/mod.ts";

const conn = () => parseValue(kafkaSpec(), { brokers: endpoints.kafka });

serviceTest(
  "CompactedTopicStore creates a compacted topic; another process's writes are seen after sync()",
  "kafka",
  async () => {
    const topic = uniqueName("offsets");
    const a = await CompactedTopicStore.open<{ offset: number }>(conn(), topic, {
      partitions: 3,
      retentionMs: 3600_000,
    });
    await a.put("c/blob-1.gz", { offset: 100 });
    await a.put("c/blob-2.gz", { offset: 7 });
    await a.put("c/blob-1.gz", { offset: 250 });
    assert.equal(a.get("c/blob-1.gz")?.offset, 250);

    // A second process opens the same topic: it reads the latest value of each key.
    const b = await CompactedTopicStore.open<{ offset: number }>(conn(), topic);
    assert.equal(b.get("c/blob-1.gz")?.offset, 250);
    assert.equal(b.get("c/blob-2.gz")?.offset, 7);
    // ... and, after sync(), what the first writes later; a tombstone deletes.
    await a.put("c/blob-2.gz", { offset: 9 });
    await a.put("c/blob-1.gz", null);
    await b.sync();
    assert.equal(b.get("c/blob-2.gz")?.offset, 9);
    assert.equal(b.get("c/blob-1.gz"), undefined);
    await Promise.all([a.close(), b.close()]);

    const client = kafka();
    const cfg = await client.topicConfig(topic, ["cleanup.policy", "retention.ms"]);
    await client.close();
    assert.deepEqual(cfg, { "cleanup.policy": "compact,delete", "retention.ms": "3600000" });
  },
);

serviceTest(
  "CompactedTopicStore.open() without create names a missing topic",
  "kafka",
  async () => {
    const topic = uniqueName("missing");
    await assert.rejects(
      CompactedTopicStore.open(conn(), topic, { create: false }),
      new RegExp(`cannot open the store on topic ${topic}.*does not exist`),
    );
  },
);
