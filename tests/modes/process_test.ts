import assert from "node:assert/strict";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { MysqlParser } from "../../mod/parsers/mysql.ts";
import { PostgresParser } from "../../mod/parsers/postgres.ts";
import type { LineParser } from "../../mod/parsers/record.ts";
import { LogTracking } from "../../mod/sources/rds_tracking.ts";
import {
  awsTestConfig,
  endpoints,
  freshBucket,
  freshTable,
  freshTopic,
  kafka,
  produceTo,
  s3Client,
  serviceTest,
} from "../services/mod.ts";
import { FakeOpenObserve } from "../sinks/_fake_openobserve.ts";
import { FakeRds } from "../sources/_fake_rds.ts";
import { startAwsProxy } from "../sinks/_aws_proxy.ts";
import { discoverConfig, discoverOnce } from "./_rds.ts";
import { agentCommand, freePort } from "../_agent.ts";

const PG_FILE = "error/postgresql.log.2026-11-23-10";
const PG = [
  "garbage before any record",
  "2026-11-23 10:00:01 UTC:10.0.0.5(51234):app@orders:[4242]:LOG:  connection authorized: user=app database=orders",
  '2026-11-23 10:00:02 UTC:10.0.0.5(51234):app@orders:[4242]:ERROR:  duplicate key value violates unique constraint "orders_pkey"',
  "2026-11-23 10:00:02 UTC:10.0.0.5(51234):app@orders:[4242]:DETAIL:  Key (id)=(42) already exists.",
  "2026-11-23 10:00:02 UTC:10.0.0.5(51234):app@orders:[4242]:STATEMENT:  INSERT INTO orders (id, total)",
  "\tVALUES (42, 10.5);",
  "an unprefixed line inside a record is folded into it",
  "2026-11-23 10:00:05 UTC::@:[77]:LOG:  checkpoint starting: time",
].join("\n") + "\n";
const PG_MORE =
  "2026-11-23 10:01:00 UTC:10.0.0.6(40000):report@orders:[5000]:LOG:  duration: 1503.2 ms  statement: SELECT count(*) FROM orders\n";
const MY_FILE = "slowquery/mysql-slowquery.log";
const MY = [
  "# Time: 2026-11-23T10:00:03.123456Z",
  "# User@Host: app[app] @  [10.0.0.7]  Id:    12",
  "# Query_time: 2.500000  Lock_time: 0.000100 Rows_sent: 1  Rows_examined: 500000",
  "SET timestamp=1795428003;",
  "SELECT * FROM items WHERE name LIKE '%x%';",
].join("\n") + "\n";

/** What the engine's parser makes of `text`: the records OpenObserve must end up with. */
function parsed(parser: LineParser, text: string) {
  const enc = new TextEncoder();
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return [...lines.flatMap((l) => parser.push(enc.encode(l))), ...parser.flush()];
}

function processConfig(
  fake: string,
  table: string,
  topic: string,
  oo: FakeOpenObserve,
  extra = {},
) {
  return {
    process: {
      kafka: { brokers: endpoints.kafka, topic, group_id: `g-${crypto.randomUUID()}` },
      rds: { endpoint: fake, region: "us-east-1", rate_limit: 200 },
      dynamodb: { endpoint: endpoints.aws, region: "us-east-1" },
      tracking_table: table,
      openobserve: { url: oo.url, password: oo.password },
      batch: { flush_interval: "100ms" },
      ...extra,
    },
  };
}

/**
 * Run `process` until OpenObserve holds `want` records in all (or, given a test of its
 * /metrics text, until that holds), then stop it with SIGTERM (or `signal`).
 */
async function processUntil(
  config: Record<string, unknown>,
  oo: FakeOpenObserve,
  want: number | ((metrics: string) => boolean),
  { signal = "SIGTERM" as Deno.Signal, settle = 700 } = {},
) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/agent.yaml`, JSON.stringify(config));
  const port = freePort();
  const child = agentCommand(
    ["process", "--config", `${dir}/agent.yaml`, "--status-listen", `127.0.0.1:${port}`],
    {
      stdout: "null",
      stderr: "piped",
    },
  ).spawn();
  const stderr = new Response(child.stderr).text();
  const total = () => [...oo.streams.values()].reduce((n, l) => n + l.length, 0);
  const metricsNow = () =>
    fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => "");
  const done = typeof want === "number"
    ? () => Promise.resolve(total() >= want)
    : async () => want(await metricsNow());
  const deadline = Date.now() + 30_000;
  while (!await done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  // Let the acks land (tracking progress, Kafka commit) before stopping.
  await new Promise((r) => setTimeout(r, settle));
  const metrics = await metricsNow();
  child.kill(signal);
  const status = await child.status;
  await Deno.remove(dir, { recursive: true });
  return { code: status.code, stderr: await stderr, metrics };
}

const strip = (records: Record<string, unknown>[]) =>
  records.map(({ instance: _i, engine: _e, log_file: _f, ...r }) => r);

serviceTest(
  "process: change events → file portions from RDS → parsed records in OpenObserve; then only new bytes; bad events skipped",
  ["aws", "kafka"],
  async () => {
    // 256 bytes stand for RDS's 1 MB portion limit: most portions of 10000 lines are cut and
    // asked again with fewer lines.
    const fake = new FakeRds({ portionBytes: 256 });
    const oo = new FakeOpenObserve();
    try {
      fake.addInstance("pg1", "aurora-postgresql");
      fake.addInstance("my1", "aurora-mysql");
      fake.append("pg1", PG_FILE, PG);
      fake.append("my1", MY_FILE, MY);
      const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
      const topic = await freshTopic(2);
      assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
      // A malformed event beside the real ones: counted, logged, skipped.
      await produceTo(topic, [{ key: "x", value: "{not json" }]);

      const pgWant = parsed(new PostgresParser(), PG);
      const myWant = parsed(new MysqlParser({ kind: "slow" }), MY);
      const config = processConfig(fake.url, table, topic, oo);
      const run = await processUntil(config, oo, pgWant.length + myWant.length);
      assert.equal(run.code, 0, run.stderr);
      const pg = oo.streams.get("aurora_postgresql_pg1")!;
      assert.deepEqual(strip(pg), pgWant);
      assert.ok(
        pg.every((r) =>
          r.instance === "pg1" && r.engine === "aurora-postgresql" && r.log_file === PG_FILE
        ),
      );
      assert.equal(
        pg.filter((r) => r.parse_error === true).length,
        1,
        "the odd line is kept, flagged",
      );
      const error = pg.find((r) => r.severity === "ERROR")!;
      assert.match(
        JSON.stringify(error),
        /duplicate key.*already exists|already exists.*duplicate key/s,
      );
      assert.deepEqual(strip(oo.streams.get("aurora_mysql_my1")!), myWant);
      assert.equal(myWant[0]!.query_time, 2.5);
      // OpenObserve takes _timestamp in microseconds: MySQL's six digits arrive whole.
      const slow = oo.streams.get("aurora_mysql_my1")![0]!;
      assert.equal(slow._timestamp, Date.UTC(2026, 10, 23, 10, 0, 3) * 1000 + 123456);
      assert.equal(slow.log_time, "2026-11-23T10:00:03.123456Z");
      assert.equal(pg.at(-1)!._timestamp, Date.UTC(2026, 10, 23, 10, 0, 5) * 1000);
      assert.equal(pg.at(-1)!.log_time, "2026-11-23 10:00:05 UTC");
      assert.match(run.metrics, /^process_events_invalid_total 1$/m);
      // Parse errors and records are counted as they are sent (PostgreSQL: from the parser's
      // counters, its records being bytes).
      const my = oo.streams.get("aurora_mysql_my1")!;
      const flagged = [...pg, ...my].filter((r) => r.parse_error === true).length;
      assert.match(run.metrics, new RegExp(`^process_parse_errors_total ${flagged}$`, "m"));
      assert.match(
        run.metrics,
        new RegExp(`^process_records_total\\{engine="aurora-postgresql"\\} ${pg.length}$`, "m"),
      );
      assert.match(
        run.metrics,
        new RegExp(`^process_records_total\\{engine="aurora-mysql"\\} ${my.length}$`, "m"),
      );
      assert.ok(fake.cuts > 0);
      assert.match(run.metrics, new RegExp(`^rds_portions_cut_total ${fake.cuts}$`, "m"));
      assert.ok(oo.requests.every((r) => r.auth?.startsWith("Basic ")));
      const t = await LogTracking.open(table, awsTestConfig());
      assert.deepEqual(await t.get("pg1", PG_FILE).then((x) => [x?.marker, x?.processed]), [
        `0:${new TextEncoder().encode(PG).length}`,
        new TextEncoder().encode(PG).length,
      ]);

      // The file grows: discover announces it, process reads only the new part.
      fake.append("pg1", PG_FILE, PG_MORE);
      assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
      const again = await processUntil(
        { process: { ...config.process, kafka: { ...config.process.kafka } } },
        oo,
        pgWant.length + myWant.length + 1,
      );
      assert.equal(again.code, 0, again.stderr);
      const pgAfter = oo.streams.get("aurora_postgresql_pg1")!;
      assert.equal(pgAfter.length, pgWant.length + 1, "only the new record");
      assert.match(String(pgAfter.at(-1)!.message), /duration: 1503\.2 ms/);

      // Rotation: the file starts over with new content.
      fake.rotate("pg1", PG_FILE, PG_MORE.replace("5000", "5001"));
      assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
      const rotated = await processUntil(config, oo, pgWant.length + myWant.length + 2);
      assert.equal(rotated.code, 0, rotated.stderr);
      assert.equal(oo.streams.get("aurora_postgresql_pg1")!.at(-1)!.pid, 5001);
      assert.match(rotated.metrics, /^process_rotations_total 1$/m);
    } finally {
      await fake.close();
      await oo.close();
    }
  },
);

serviceTest("process with source: s3 reads the file's copy in S3 from the saved offset", [
  "aws",
  "kafka",
], async () => {
  const fake = new FakeRds();
  const oo = new FakeOpenObserve();
  try {
    fake.addInstance("pg2", "postgres");
    fake.append("pg2", PG_FILE, PG);
    const bucket = await freshBucket("rdslogs");
    await s3Client().send(
      new PutObjectCommand({ Bucket: bucket, Key: `copies/pg2/${PG_FILE}`, Body: PG }),
    );
    const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
    const topic = await freshTopic();
    assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
    const want = parsed(new PostgresParser(), PG);
    const config = processConfig(fake.url, table, topic, oo, {
      source: "s3",
      s3: { ...awsTestConfig(), bucket, prefix: "copies/" },
    });
    const run = await processUntil(config, oo, want.length);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(strip(oo.streams.get("postgres_pg2")!), want);
    assert.equal(fake.calls.get("DownloadDBLogFilePortion") ?? 0, 0, "nothing read from RDS");

    // The file grows in RDS before its copy in S3 does: nothing new yet (not an error that
    // stops the partition); once the copy has caught up, the next event reads the new part.
    fake.append("pg2", PG_FILE, PG_MORE);
    assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
    const lagging = await processUntil(
      config,
      oo,
      (m) => /^rds_logs_files_processed_total 1$/m.test(m),
    );
    assert.equal(lagging.code, 0, lagging.stderr);
    assert.equal(oo.streams.get("postgres_pg2")!.length, want.length);
    assert.match(lagging.metrics, /^rds_logs_files_errored_total 0$/m);
    await s3Client().send(
      new PutObjectCommand({ Bucket: bucket, Key: `copies/pg2/${PG_FILE}`, Body: PG + PG_MORE }),
    );
    fake.append("pg2", PG_FILE, "");
    assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
    const caught = await processUntil(config, oo, want.length + 1);
    assert.equal(caught.code, 0, caught.stderr);
    assert.match(String(oo.streams.get("postgres_pg2")!.at(-1)!.message), /duration: 1503\.2 ms/);
  } finally {
    await fake.close();
    await oo.close();
  }
});

serviceTest(
  "process: an event whose file RDS already dropped is counted and committed past; the partition goes on",
  ["aws", "kafka"],
  async () => {
    const fake = new FakeRds();
    const oo = new FakeOpenObserve();
    try {
      fake.addInstance("pg3", "aurora-postgresql");
      fake.append("pg3", "error/postgresql.log.2026-11-23-09", PG); // listed first: first event
      fake.append("pg3", PG_FILE, PG);
      const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
      const topic = await freshTopic(1);
      assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
      fake.remove("pg3", "error/postgresql.log.2026-11-23-09"); // retention, before process ran
      const want = parsed(new PostgresParser(), PG);
      const config = processConfig(fake.url, table, topic, oo);
      const run = await processUntil(config, oo, want.length);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(strip(oo.streams.get("aurora_postgresql_pg3")!), want);
      assert.ok(oo.streams.get("aurora_postgresql_pg3")!.every((r) => r.log_file === PG_FILE));
      assert.match(run.metrics, /^process_files_vanished_total 1$/m);
      assert.match(run.stderr, /no longer exists in RDS.*"bytes_unread":\d+/);
      // Committed past both events.
      const client = kafka();
      try {
        const offsets = await client.committed(config.process.kafka.group_id, topic);
        assert.deepEqual([...offsets.values()], [2n]);
      } finally {
        await client.close();
      }
    } finally {
      await fake.close();
      await oo.close();
    }
  },
);

serviceTest(
  "process: a MySQL slow log that grows keeps its database (MySQL writes use db; once) across portions and reads",
  ["aws", "kafka"],
  async () => {
    const fake = new FakeRds();
    const oo = new FakeOpenObserve();
    const block = (n: number, use = "") =>
      [
        `# Time: 2026-11-23T10:00:0${n}.00000${n}Z`,
        "# User@Host: app[app] @  [10.0.0.7]  Id:    12",
        "# Query_time: 1.000000  Lock_time: 0.000000 Rows_sent: 1  Rows_examined: 10",
        ...(use ? [use] : []),
        `SET timestamp=179542800${n};`,
        `SELECT ${n};`,
      ].join("\n") + "\n";
    try {
      fake.addInstance("my2", "mysql");
      fake.append("my2", MY_FILE, block(1, "use shop;") + block(2));
      const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
      const topic = await freshTopic();
      assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
      // Portions of 4 lines: a block is split across portions, and the file across reads.
      const config = processConfig(fake.url, table, topic, oo, {
        rds: { endpoint: fake.url, region: "us-east-1", rate_limit: 200, lines_per_call: 4 },
      });
      assert.equal((await processUntil(config, oo, 2)).code, 0);
      fake.append("my2", MY_FILE, block(3) + block(4));
      assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
      const again = await processUntil(config, oo, 4);
      assert.equal(again.code, 0, again.stderr);
      const got = oo.streams.get("mysql_my2")!;
      assert.deepEqual(got.map((r) => r.query), [
        "SELECT 1;",
        "SELECT 2;",
        "SELECT 3;",
        "SELECT 4;",
      ]);
      assert.deepEqual(got.map((r) => r.database), ["shop", "shop", "shop", "shop"]);
    } finally {
      await fake.close();
      await oo.close();
    }
  },
);

for (const killAt of [1_000, 3_000]) {
  serviceTest(
    `process: kill -9 at ${killAt} of 15,000 entries re-sends at most the batches in flight`,
    ["aws", "kafka"],
    async () => {
      const fake = new FakeRds();
      const oo = new FakeOpenObserve();
      const entries = 15_000;
      try {
        fake.addInstance("pg9", "aurora-postgresql");
        let text = "";
        for (let i = 0; i < entries; i++) {
          text += `2026-11-23 10:00:00 UTC::@:[1]:LOG:  entry ${i}\n`;
        }
        fake.append("pg9", PG_FILE, text);
        const table = await freshTable({ name: "instance", type: "S" }, {
          name: "file",
          type: "S",
        });
        const topic = await freshTopic();
        assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
        // 20 portions of 100 lines a second (2,000 entries/s): the kill lands mid-file.
        const batch = { batch_lines: 100, workers: 2, flush_interval: "100ms" };
        const lines = 100;
        const config = processConfig(fake.url, table, topic, oo, {
          rds: { endpoint: fake.url, region: "us-east-1", rate_limit: 20, lines_per_call: lines },
          batch,
        });
        const killed = await processUntil(config, oo, killAt, { signal: "SIGKILL", settle: 0 });
        assert.notEqual(killed.code, 0);
        const before = oo.streams.get("aurora_postgresql_pg9")!.length;
        assert.ok(before < entries, `killed before the end: ${before}`);
        // The restarted member joins a new group (the killed one's session would hold the
        // partition for session_timeout): the event is read again, from the saved marker.
        const restart = processConfig(fake.url, table, topic, oo, {
          rds: { endpoint: fake.url, region: "us-east-1", rate_limit: 200, lines_per_call: lines },
          batch,
        });
        const seen = () => new Set(oo.streams.get("aurora_postgresql_pg9")!.map((r) => r.message));
        const run = await processUntil(restart, oo, () => seen().size === entries);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(seen().size, entries, "nothing lost");
        const duplicates = oo.streams.get("aurora_postgresql_pg9")!.length - entries;
        // In flight at the kill: the open batch and `workers` batches being posted, the
        // portion being read and the oldest portion not yet acknowledged.
        const bound = (batch.workers + 1) * batch.batch_lines + 2 * lines;
        console.log(
          `kill -9 at ${before} of ${entries}: ${duplicates} duplicates (bound ${bound})`,
        );
        assert.ok(duplicates <= bound, `${duplicates} duplicates, more than ${bound} in flight`);
      } finally {
        await fake.close();
        await oo.close();
      }
    },
  );
}

serviceTest(
  "process: a progress save that fails nacks the event; it is read again and its progress saved",
  ["aws", "kafka"],
  async () => {
    const fake = new FakeRds();
    const oo = new FakeOpenObserve();
    // The tracking table's first UpdateItem from process is refused (DynamoDB's answer to a
    // missing permission): the portion was delivered, its progress could not be saved.
    const proxy = startAwsProxy({
      fail: (call, n) =>
        call.action === "UpdateItem" && n === 1 ? { type: "AccessDeniedException" } : undefined,
    });
    try {
      fake.addInstance("pg4", "aurora-postgresql");
      fake.append("pg4", PG_FILE, PG);
      const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
      const topic = await freshTopic();
      assert.equal((await discoverOnce(discoverConfig(fake.url, table, topic))).code, 0);
      const config = processConfig(fake.url, table, topic, oo, {
        dynamodb: { endpoint: proxy.url, region: "us-east-1" },
      });
      const run = await processUntil(
        config,
        oo,
        (m) => /^rds_logs_files_processed_total 1$/m.test(m),
      );
      assert.equal(run.code, 0, run.stderr);
      assert.equal(proxy.of("UpdateItem").length, 2, "refused once, then saved");
      assert.match(run.metrics, /^kafka_messages_nacked_total 1$/m);
      const t = await LogTracking.open(table, awsTestConfig());
      const size = new TextEncoder().encode(PG).length;
      assert.equal((await t.get("pg4", PG_FILE))?.marker, `0:${size}`);
      // Read twice: every record arrived, the first reading's again (we prefer a duplicate).
      const want = parsed(new PostgresParser(), PG);
      assert.deepEqual(strip(oo.streams.get("aurora_postgresql_pg4")!), [...want, ...want]);
    } finally {
      await proxy.close();
      await fake.close();
      await oo.close();
    }
  },
);
