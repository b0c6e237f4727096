import assert from "node:assert/strict";
import { CreateDBInstanceCommand } from "@aws-sdk/client-rds";
import { parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { Rds, rdsReadSpec, rdsSpec, shardOf } from "../../mod/sources/rds.ts";
import { takeXmlText } from "../../mod/sources/rds_log_data.ts";
import { LogTracking } from "../../mod/sources/rds_tracking.ts";
import { awsTestConfig, freshTable, rdsClient, serviceTest } from "../services/mod.ts";
import { FakeRds } from "./_fake_rds.ts";

const log = new Logger({ level: "error", write: () => {} });
const metrics = new Registry();

serviceTest(
  "Rds.instances() on moto: engine, identifier prefix and tag filters",
  "aws",
  async () => {
    const p = `t${crypto.randomUUID().slice(0, 8)}`;
    const make = (id: string, engine: string, tags: Record<string, string> = {}) =>
      rdsClient().send(
        new CreateDBInstanceCommand({
          DBInstanceIdentifier: id,
          Engine: engine,
          DBInstanceClass: "db.t3.micro",
          AllocatedStorage: 20,
          MasterUsername: "admin",
          MasterUserPassword: "password123",
          Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
        }),
      );
    await make(`${p}-pg`, "postgres", { team: "payments" });
    await make(`${p}-my`, "mysql", { team: "search" });
    await make(`${p}-ora`, "oracle-ee", { team: "payments" });
    const rds = await Rds.open(
      parseValue(rdsSpec, { ...awsTestConfig(), identifier_prefix: p, rate_limit: 50 }),
      log,
      metrics,
    );
    const ids = (await rds.instances()).map((i) => `${i.id}:${i.engine}`).sort();
    assert.deepEqual(ids, [`${p}-my:mysql`, `${p}-pg:postgres`], "oracle is not collected");
    const tagged = await Rds.open(
      parseValue(rdsSpec, {
        ...awsTestConfig(),
        identifier_prefix: p,
        tags: { team: "payments" },
        rate_limit: 50,
      }),
      log,
      metrics,
    );
    assert.deepEqual((await tagged.instances()).map((i) => i.id), [`${p}-pg`]);
    // moto lists a placeholder log file per instance: the SDK call and its parsing are real.
    const files = await rds.logFiles(`${p}-pg`);
    assert.ok(files.length >= 1);
    assert.ok(files.every((f) => typeof f.name === "string" && f.size >= 0 && f.lastWritten > 0));
  },
);

Deno.test("Rds against a fake Query API: paging, a throttled call retried and counted, portions read to the end", async () => {
  const metrics = new Registry();
  const fake = new FakeRds();
  try {
    fake.addInstance("a", "postgres");
    fake.addInstance("b", "aurora-mysql");
    fake.addInstance("c", "aurora-postgresql");
    const text = Array.from({ length: 20 }, (_, i) => `line ${i} ${"x".repeat(i)}\n`).join("");
    fake.append("a", "error/postgresql.log.2026-11-23-00", text);
    const rds = await Rds.open(
      parseValue(rdsReadSpec, {
        endpoint: fake.url,
        region: "us-east-1",
        rate_limit: 100,
        lines_per_call: 6,
      }),
      log,
      metrics,
    );
    fake.throttle = 2;
    assert.deepEqual((await rds.instances()).map((i) => i.id), ["a", "b", "c"]);
    assert.equal(metrics.counter("rds_throttled_total", "").get(), 2);
    assert.equal(fake.calls.get("DescribeDBInstances"), 5, "3 pages + 2 throttled");
    const [f] = await rds.logFiles("a");
    assert.equal(f!.size, new TextEncoder().encode(text).length);
    const p = rds.portion("a", f!.name, "0", AbortSignal.timeout(10_000));
    const got = await new Response(p.body).text();
    assert.equal(got, text);
    assert.equal(p.progress.marker, `0:${f!.size}`);
    assert.equal(fake.calls.get("DownloadDBLogFilePortion"), 4, "6 lines (NumberOfLines) a call");
    // From the marker on: only what was appended since.
    fake.append("a", f!.name, "more\n");
    const q = rds.portion("a", f!.name, p.progress.marker, AbortSignal.timeout(10_000));
    assert.equal(await new Response(q.body).text(), "more\n");
  } finally {
    await fake.close();
  }
});

Deno.test("Rds.portion(): a portion RDS cuts at its limit is asked again with fewer lines, nothing lost", async () => {
  const metrics = new Registry();
  // 64 bytes stand for RDS's 1 MB: 10000 lines asked, the answer is cut and ends with
  // "[Your log message was truncated]" while its marker skips the rest.
  const fake = new FakeRds({ portionBytes: 64 });
  try {
    fake.addInstance("a", "postgres");
    const text = Array.from({ length: 40 }, (_, i) => `line ${i} ${"x".repeat(i % 25)}\n`).join("");
    fake.append("a", "f.log", text);
    const rds = await Rds.open(
      parseValue(rdsReadSpec, { endpoint: fake.url, region: "us-east-1", rate_limit: 1000 }),
      log,
      metrics,
    );
    const cut = () => metrics.counter("rds_portions_cut_total", "").get();
    const p = rds.portion("a", "f.log", "0", AbortSignal.timeout(10_000));
    assert.equal(await new Response(p.body).text(), text);
    assert.ok(fake.cuts > 0 && cut() === fake.cuts, `${fake.cuts} cut, ${cut()} asked again`);
    assert.equal(p.progress.linesCut, 0);
    assert.equal(p.progress.marker, `0:${new TextEncoder().encode(text).length}`);
  } finally {
    await fake.close();
  }
});

Deno.test("Rds.portion(): a line longer than a portion is kept as RDS cut it and counted; a vanished file ends the stream", async () => {
  const fake = new FakeRds({ portionBytes: 64 });
  try {
    fake.addInstance("a", "mysql");
    const long = "L".repeat(100);
    fake.append("a", "f.log", `first\n${long}\nlast\n`);
    const rds = await Rds.open(
      parseValue(rdsReadSpec, { endpoint: fake.url, region: "us-east-1", rate_limit: 1000 }),
      log,
      metrics,
    );
    const p = rds.portion("a", "f.log", "0", AbortSignal.timeout(10_000));
    assert.equal(await new Response(p.body).text(), `first\n${long.slice(0, 64)}\nlast\n`);
    assert.equal(p.progress.linesCut, 1);
    assert.equal(p.progress.gone, false);

    fake.remove("a", "f.log");
    const gone = rds.portion("a", "f.log", p.progress.marker, AbortSignal.timeout(10_000));
    assert.equal(await new Response(gone.body).text(), "");
    assert.equal(gone.progress.gone, true);
    assert.equal(gone.progress.marker, p.progress.marker);
    const noInstance = rds.portion("zz", "f.log", "0", AbortSignal.timeout(10_000));
    assert.equal(await new Response(noInstance.body).text(), "");
    assert.equal(noInstance.progress.gone, true);
  } finally {
    await fake.close();
  }
});

Deno.test("shardOf() is stable and spreads identifiers", () => {
  assert.equal(shardOf("prod-orders-1", 4), shardOf("prod-orders-1", 4));
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 4000; i++) counts[shardOf(`db-${i}`, 4)]!++;
  assert.ok(counts.every((n) => n > 800 && n < 1200), counts.join(","));
});

serviceTest(
  "LogTracking: a conditional claim succeeds once; pending until published; progress only over its own marker",
  "aws",
  async () => {
    const table = await freshTable({ name: "instance", type: "S" }, { name: "file", type: "S" });
    const t = await LogTracking.open(table, awsTestConfig());
    const v1 = { size: 100, lastWritten: 1000 };
    assert.equal(await t.claim("db1", "f.log", undefined, { ...v1, pending: 1 }), true);
    assert.equal(
      await t.claim("db1", "f.log", undefined, { ...v1, pending: 2 }),
      false,
      "already tracked",
    );
    assert.deepEqual(await t.get("db1", "f.log"), { ...v1, pending: 1, pendingFrom: 0 });
    await t.published("db1", "f.log", 1);
    assert.deepEqual(await t.get("db1", "f.log"), v1);
    const v2 = { size: 200, lastWritten: 2000 };
    const racers = await Promise.all([
      t.claim("db1", "f.log", v1, { ...v2, pending: 10 }),
      t.claim("db1", "f.log", v1, { ...v2, pending: 11 }),
      t.claim("db1", "f.log", v1, { ...v2, pending: 12 }),
    ]);
    assert.deepEqual(racers.filter(Boolean).length, 1, "exactly one replica wins");
    const pending = (await t.get("db1", "f.log"))!.pending!;
    // Taking over an unconfirmed claim: once.
    const takeovers = await Promise.all([
      t.reclaim("db1", "f.log", pending, 50),
      t.reclaim("db1", "f.log", pending, 51),
    ]);
    assert.equal(takeovers.filter(Boolean).length, 1);

    // Progress: first save needs no marker yet; later ones need the marker they started from.
    assert.equal(await t.saveProgress("db1", "f.log", "0:200", 200, undefined), true);
    assert.equal(await t.saveProgress("db1", "f.log", "0:150", 150, undefined), false);
    assert.equal(await t.saveProgress("db1", "f.log", "0:150", 150, "0:100"), false, "stale");
    assert.equal(await t.saveProgress("db1", "f.log", "0:250", 250, "0:200"), true);
    assert.deepEqual((await t.get("db1", "f.log"))!.marker, "0:250");
    assert.equal(
      await t.saveProgress("db1", "other.log", "0:1", 1, undefined),
      false,
      "an untracked file gets no progress",
    );
    await t.unclaim("db1", "f.log", v2, v1);
    assert.deepEqual((await t.files("db1")).get("f.log"), {
      ...v1,
      marker: "0:250",
      processed: 250,
    });
    await t.forget("db1", "f.log");
    assert.equal(await t.get("db1", "f.log"), undefined);
    await assert.rejects(
      LogTracking.open(`${table}-missing`, awsTestConfig()),
      /partition key "instance"/,
    );
  },
);

Deno.test("takeXmlText() cuts LogFileData out of an answer as bytes, entities unescaped", () => {
  const enc = new TextEncoder();
  const xml = enc.encode(
    `<R xmlns="x"><Result><LogFileData>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#233;&#x1F600; é &bogus; &amp\n</LogFileData><Marker>0:9</Marker></Result></R>`,
  );
  const t = takeXmlText(xml, "LogFileData")!;
  assert.equal(new TextDecoder().decode(t.text), `a & b <c> "d" 'e' é😀 é &bogus; &amp\n`);
  assert.equal(
    new TextDecoder().decode(t.rest),
    `<R xmlns="x"><Result><Marker>0:9</Marker></Result></R>`,
  );
  const empty = takeXmlText(enc.encode("<R><LogFileData/><Marker>1</Marker></R>"), "LogFileData")!;
  assert.equal(empty.text.length, 0);
  assert.equal(new TextDecoder().decode(empty.rest), "<R><Marker>1</Marker></R>");
  assert.equal(takeXmlText(enc.encode("<R><Marker>1</Marker></R>"), "LogFileData"), undefined);
});

Deno.test("takeXmlText() finds the same in ASCII, with lone invalid bytes and with an & after the element", () => {
  const enc = new TextEncoder();
  const doc = (text: Uint8Array) => {
    const head = enc.encode("<R><Result><LogFileData>");
    const tail = enc.encode("</LogFileData><Marker>a&amp;b</Marker></Result></R>");
    const xml = new Uint8Array(head.length + text.length + tail.length);
    xml.set(head);
    xml.set(text, head.length);
    xml.set(tail, head.length + text.length);
    return xml;
  };
  const line = "x &quot;q&quot; &lt;y&gt; &amp;&amp; &#65;&#x42; &bogus; z\n";
  const want = `x "q" <y> && AB &bogus; z\n`;
  // ASCII (the text is searched), and lone invalid bytes (one U+FFFD each: searched too).
  for (const bad of [[], [0xff], [0x80, 0xfe]]) {
    const text = enc.encode(line.repeat(1000));
    const withBad = new Uint8Array([...bad, ...text, ...bad]);
    const t = takeXmlText(doc(withBad), "LogFileData")!;
    const expect = new Uint8Array([...bad, ...enc.encode(want.repeat(1000)), ...bad]);
    assert.deepEqual(t.text, expect);
    assert.equal(
      new TextDecoder().decode(t.rest),
      "<R><Result><Marker>a&amp;b</Marker></Result></R>",
    );
  }
  // No entity in the element, one after it: the text is left as it is.
  const plain = takeXmlText(doc(enc.encode("plain\n".repeat(1000))), "LogFileData")!;
  assert.equal(new TextDecoder().decode(plain.text), "plain\n".repeat(1000));
});

Deno.test("Rds.reader(): text with XML's special characters and UTF-8 comes through byte for byte", async () => {
  const fake = new FakeRds();
  try {
    fake.addInstance("a", "postgres");
    const text = `1 <tag attr="v"> & 'q'\n2 héllo wörld 😀\n3 &amp; stays &amp;\n`;
    fake.append("a", "f.log", text);
    const rds = await Rds.open(
      parseValue(rdsReadSpec, { endpoint: fake.url, region: "us-east-1", rate_limit: 100 }),
      log,
      new Registry(),
    );
    const p = await rds.reader("a", "f.log").read("0", AbortSignal.timeout(10_000));
    assert.equal(new TextDecoder().decode(p.data), text);
    assert.equal(p.marker, `0:${new TextEncoder().encode(text).length}`);
    assert.equal(p.more, false);
  } finally {
    await fake.close();
  }
});
