import assert from "node:assert/strict";
import { LogTracking } from "../../mod/sources/rds_tracking.ts";
import { awsTestConfig, freshTable, freshTopic, serviceTest } from "../services/mod.ts";
import { discoverConfig, discoverOnce } from "./_rds.ts";
import { readTopic } from "../sinks/_kafka_topic.ts";
import { FakeRds } from "../sources/_fake_rds.ts";

const events = async (topic: string) =>
  (await readTopic(topic)).map((m) => ({ key: m.key, ...JSON.parse(m.value!) }));

serviceTest(
  "discover: two replicas at once publish each change once; growth and rotation are new changes",
  ["aws", "kafka"],
  async () => {
    // The fake RDS stands in for what moto lacks (log files with content; see _fake_rds.ts).
    const fake = new FakeRds();
    try {
      fake.addInstance("pg1", "aurora-postgresql");
      fake.addInstance("my1", "aurora-mysql");
      fake.addInstance("ora", "oracle-ee");
      fake.append("pg1", "error/postgresql.log.2026-11-23-01", "a\n", 1000);
      fake.append("pg1", "error/postgresql.log.2026-11-23-02", "b\n", 2000);
      fake.append("my1", "slowquery/mysql-slowquery.log", "c\n", 3000);
      fake.append("ora", "trace/alert.log", "d\n", 4000);
      const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
      const topic = await freshTopic(2);
      const config = discoverConfig(fake.url, table, topic);

      const [a, b] = await Promise.all([discoverOnce(config), discoverOnce(config)]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      let got = await events(topic);
      assert.deepEqual(
        got.map((e) => `${e.key} ${e.instance}/${e.file} ${e.previous_size}→${e.size}`).sort(),
        [
          "my1 my1/slowquery/mysql-slowquery.log 0→2",
          "pg1 pg1/error/postgresql.log.2026-11-23-01 0→2",
          "pg1 pg1/error/postgresql.log.2026-11-23-02 0→2",
        ],
        "each file once, keyed by instance; oracle is not collected",
      );
      assert.equal(got.find((e) => e.instance === "my1").engine, "aurora-mysql");
      assert.equal(
        got[0].last_written,
        new Date(got[0].file.endsWith("01") ? 1000 : got[0].file.endsWith("02") ? 2000 : 3000)
          .toISOString(),
      );

      const t = await LogTracking.open(table, awsTestConfig());
      for (const id of ["pg1", "my1"]) {
        for (const [file, item] of await t.files(id)) {
          assert.equal(item.pending, undefined, `${id}/${file}: published, so not pending`);
        }
      }

      // Nothing changed: nothing new.
      assert.equal((await discoverOnce(config)).code, 0);
      assert.equal((await events(topic)).length, 3);

      // Growth and rotation.
      fake.append("pg1", "error/postgresql.log.2026-11-23-02", "more\n", 5000);
      fake.rotate("my1", "slowquery/mysql-slowquery.log", "", 6000);
      const [c, d] = await Promise.all([discoverOnce(config), discoverOnce(config)]);
      assert.equal(c.code + d.code, 0, c.stderr + d.stderr);
      got = (await events(topic)).slice(3);
      assert.deepEqual(
        got.map((e) => `${e.instance} ${e.previous_size}→${e.size} rotated=${e.rotated}`).sort(),
        ["my1 2→0 rotated=true", "pg1 2→7 rotated=false"],
      );
    } finally {
      await fake.close();
    }
  },
);

serviceTest("discover: shard_index/shard_count split the instances between replicas", [
  "aws",
  "kafka",
], async () => {
  const fake = new FakeRds();
  try {
    for (let i = 0; i < 8; i++) {
      fake.addInstance(`db${i}`, "postgres");
      fake.append(`db${i}`, "error/postgresql.log", "x\n");
    }
    const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
    const topic = await freshTopic();
    const config = discoverConfig(fake.url, table, topic);
    fake.throttle = 3; // RDS says Throttling: retried with backoff, nothing missed
    const [s0, s1] = await Promise.all([
      discoverOnce(config, ["--shard-index", "0", "--shard-count", "2"]),
      discoverOnce(config, ["--shard-index", "1", "--shard-count", "2"]),
    ]);
    assert.equal(s0.code + s1.code, 0, s0.stderr + s1.stderr);
    const got = (await events(topic)).map((e) => e.instance).sort();
    assert.deepEqual(got, Array.from({ length: 8 }, (_, i) => `db${i}`));
    const bad = await discoverOnce(config, ["--shard-index", "2", "--shard-count", "2"]);
    assert.equal(bad.code, 1);
    // main.ts reports a mode's failure as a JSON log line: its msg names the flag to blame.
    const msgs = bad.stderr.split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l).msg
    );
    assert.ok(
      msgs.includes("--shard-index: discover.shard_index: must be below shard_count (2): got 2"),
      bad.stderr,
    );
    // A scan that fails in part (a policy without rds:DescribeDBLogFiles) makes --once exit 1.
    fake.deny.add("DescribeDBLogFiles");
    const failing = await discoverOnce(config);
    assert.equal(failing.code, 1, failing.stderr);
    assert.match(failing.stderr, /part\(s\) of the scan failed/);
  } finally {
    await fake.close();
  }
});

serviceTest(
  "discover: a change claimed by a replica that died before publishing is published by a later scan; files RDS drops are forgotten",
  ["aws", "kafka"],
  async () => {
    const fake = new FakeRds();
    try {
      fake.addInstance("pg1", "aurora-postgresql");
      fake.append("pg1", "error/postgresql.log.2026-11-23-01", "0123456789\n", 1000);
      fake.append("pg1", "error/postgresql.log.2026-11-23-02", "abc\n", 2000);
      fake.append("pg1", "error/postgresql.log.2026-11-23-03", "old\n", 3000);
      const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
      const topic = await freshTopic();
      const t = await LogTracking.open(table, awsTestConfig());
      // Claims as a replica leaves them when it is killed between claim and publish: one 10
      // minutes ago, one just now (that replica may still be publishing: left alone).
      const now = Date.now();
      assert.ok(
        await t.claim("pg1", "error/postgresql.log.2026-11-23-01", undefined, {
          size: 11,
          lastWritten: 1000,
          pending: now - 600_000,
        }),
      );
      assert.ok(
        await t.claim("pg1", "error/postgresql.log.2026-11-23-02", undefined, {
          size: 4,
          lastWritten: 2000,
          pending: now,
        }),
      );
      const config = discoverConfig(fake.url, table, topic);
      (config.discover as Record<string, unknown>).republish_after = "5m";
      const run = await discoverOnce(config);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /never confirmed published/);
      const got = await events(topic);
      assert.deepEqual(
        got.map((e) => `${e.file} ${e.previous_size}→${e.size}`).sort(),
        [
          "error/postgresql.log.2026-11-23-01 0→11",
          "error/postgresql.log.2026-11-23-03 0→4",
        ],
        "the stale claim once, the fresh one not, the new file as usual",
      );
      assert.equal((await t.get("pg1", "error/postgresql.log.2026-11-23-01"))!.pending, undefined);
      assert.equal((await t.get("pg1", "error/postgresql.log.2026-11-23-03"))!.pending, undefined);
      assert.equal((await t.get("pg1", "error/postgresql.log.2026-11-23-02"))!.pending, now);

      // RDS drops a file (retention): its tracking goes too, nothing is published.
      fake.remove("pg1", "error/postgresql.log.2026-11-23-03");
      assert.equal((await discoverOnce(config)).code, 0);
      assert.equal(await t.get("pg1", "error/postgresql.log.2026-11-23-03"), undefined);
      assert.ok(await t.get("pg1", "error/postgresql.log.2026-11-23-01"));
      assert.equal((await events(topic)).length, 2);
    } finally {
      await fake.close();
    }
  },
);
