import assert from "node:assert/strict";
import { parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { BatchError, SinkError } from "../../mod/pipeline/types.ts";
import {
  joinJsonArray,
  OpenObserveSink,
  openobserveSpec,
  streamName,
  type StreamRecord,
} from "../../mod/sinks/openobserve.ts";
import { FakeOpenObserve } from "./_fake_openobserve.ts";

const log = new Logger({ level: "error", write: () => {} });
const rec = (stream: string, r: Record<string, unknown>): StreamRecord => ({
  stream,
  json: new TextEncoder().encode(JSON.stringify(r)),
});

for (const gzip of [true, false]) {
  Deno.test(`OpenObserveSink posts one JSON array per stream with basic auth (gzip: ${gzip})`, async () => {
    const oo = new FakeOpenObserve("acme");
    try {
      const metrics = new Registry();
      const sink = new OpenObserveSink(
        parseValue(openobserveSpec, { url: oo.url, org: "acme", password: oo.password, gzip }),
        log,
        metrics,
      );
      const items = [
        rec("postgres_db1", { message: "a", n: 1 }),
        rec("mysql_db2", { message: "b", n: 2 }),
        rec("postgres_db1", { message: "c", n: 3 }),
      ];
      await sink.write({ items, bytes: 0 }, AbortSignal.timeout(5000));
      assert.deepEqual(oo.streams.get("postgres_db1"), [{ message: "a", n: 1 }, {
        message: "c",
        n: 3,
      }]);
      assert.deepEqual(oo.streams.get("mysql_db2"), [{ message: "b", n: 2 }]);
      assert.deepEqual(
        oo.requests.map((r) => [r.path, r.gzip, r.records]),
        [["/api/acme/postgres_db1/_json", gzip, 2], ["/api/acme/mysql_db2/_json", gzip, 1]],
      );
      assert.match(metrics.render(), /^openobserve_records_successful_total 3$/m);
    } finally {
      await oo.close();
    }
  });
}

Deno.test("OpenObserveSink counts records OpenObserve reports as failed, retries 503s", async () => {
  const oo = new FakeOpenObserve();
  try {
    const metrics = new Registry();
    const c = parseValue(openobserveSpec, {
      url: oo.url,
      password: oo.password,
      retry: { initial_backoff: "1ms", max_backoff: "5ms" },
    });
    const sink = new OpenObserveSink(c, log, metrics);
    oo.fail = 2;
    await sink.write(
      { items: [rec("s", { ok: 1 }), rec("s", { reject: true }), rec("s", { ok: 2 })], bytes: 0 },
      AbortSignal.timeout(5000),
    );
    assert.equal(oo.streams.get("s")!.length, 2);
    const text = metrics.render();
    assert.match(text, /^openobserve_records_failed_total 1$/m);
    assert.match(text, /^openobserve_retries_total 2$/m);
  } finally {
    await oo.close();
  }
});

const bad = (stream: string): StreamRecord => ({
  stream,
  json: new TextEncoder().encode("{not json"),
});

Deno.test("OpenObserveSink: a persistent 400 is refused for good (retryable false, rejected), sent once", async () => {
  const oo = new FakeOpenObserve();
  try {
    const c = parseValue(openobserveSpec, {
      url: oo.url,
      password: oo.password,
      retry: { initial_backoff: "1ms", max_backoff: "5ms", max_retries: 5 },
    });
    const sink = new OpenObserveSink(c, log, new Registry());
    const e = await sink.write({ items: [bad("s"), bad("s")], bytes: 0 }, AbortSignal.timeout(5000))
      .then(() => undefined, (e) => e);
    assert.ok(e instanceof SinkError && !(e instanceof BatchError), String(e));
    assert.equal(e.retryable, false);
    assert.equal(e.reason, "rejected");
    assert.match(e.message, /400/);
    // A batch over two streams: the refused stream's items are named, the other one delivered.
    const e2 = await sink.write(
      { items: [rec("good", { n: 1 }), bad("bad"), rec("good", { n: 2 })], bytes: 0 },
      AbortSignal.timeout(5000),
    ).then(() => undefined, (e) => e);
    assert.ok(e2 instanceof BatchError, String(e2));
    assert.deepEqual(e2.failed.map((f) => [f.index, f.reason]), [[1, "rejected"]]);
    assert.deepEqual(oo.streams.get("good"), [{ n: 1 }, { n: 2 }]);
  } finally {
    await oo.close();
  }
});

Deno.test("OpenObserveSink: a stream whose records OpenObserve answers all failed is a BatchError with their indices", async () => {
  const oo = new FakeOpenObserve();
  try {
    const c = parseValue(openobserveSpec, { url: oo.url, password: oo.password });
    const sink = new OpenObserveSink(c, log, new Registry());
    const e = await sink.write(
      {
        items: [rec("x", { reject: true }), rec("y", { n: 1 }), rec("x", { reject: true })],
        bytes: 0,
      },
      AbortSignal.timeout(5000),
    ).then(() => undefined, (e) => e);
    assert.ok(e instanceof BatchError, String(e));
    assert.deepEqual(e.failed.map((f) => [f.index, f.reason]), [[0, "rejected"], [2, "rejected"]]);
    assert.match(e.failed[0]!.message ?? "", /rejected/);
    assert.deepEqual(oo.streams.get("y"), [{ n: 1 }]);
  } finally {
    await oo.close();
  }
});

Deno.test("OpenObserveSink: a 401 is a configuration problem, retried until its signal aborts, one warning", async () => {
  const oo = new FakeOpenObserve();
  try {
    const logged: Record<string, unknown>[] = [];
    const warnLog = new Logger({ level: "warn", write: (l) => logged.push(JSON.parse(l)) });
    const c = parseValue(openobserveSpec, {
      url: oo.url,
      password: "wrong",
      retry: { initial_backoff: "1ms", max_backoff: "2ms", max_retries: 1 },
    });
    const sink = new OpenObserveSink(c, warnLog, new Registry());
    const ac = new AbortController();
    const writing = sink.write({ items: [rec("s", { x: 1 })], bytes: 0 }, ac.signal)
      .then(() => undefined, (e) => e);
    while (oo.refused < 6) await new Promise((r) => setTimeout(r, 5));
    ac.abort();
    const e = await writing;
    assert.ok(e instanceof SinkError);
    assert.equal(e.retryable, true, "shutdown: the units are retried later, not dead-lettered");
    const warnings = logged.filter((l) => l.level === "warn");
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(String(warnings[0]!.msg), /configuration/);
  } finally {
    await oo.close();
  }
});

Deno.test("OpenObserveSink posts an item of several records (count) as that many records", async () => {
  const oo = new FakeOpenObserve();
  try {
    const metrics = new Registry();
    const c = parseValue(openobserveSpec, { url: oo.url, password: oo.password });
    const group: StreamRecord = {
      stream: "s",
      json: new TextEncoder().encode('{"n":1},{"n":2},{"n":3}'),
      count: 3,
    };
    await new OpenObserveSink(c, log, metrics).write(
      { items: [group, rec("s", { n: 4 })], bytes: 0 },
      AbortSignal.timeout(5000),
    );
    assert.deepEqual(oo.streams.get("s"), [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
    assert.match(metrics.render(), /^openobserve_records_successful_total 4$/m);
    // A group whose records OpenObserve all failed is refused as one item; its count is told.
    const refused: StreamRecord = {
      stream: "r",
      json: new TextEncoder().encode('{"reject":true},{"reject":true},{"reject":true}'),
      count: 3,
    };
    const e = await new OpenObserveSink(c, log, metrics).write(
      { items: [rec("s", { n: 5 }), refused], bytes: 0 },
      AbortSignal.timeout(5000),
    ).then(() => undefined, (e) => e);
    assert.ok(e instanceof BatchError);
    assert.match(e.message, /3 of 4 records refused for good/);
    assert.deepEqual(e.failed.map((f: { index: number }) => f.index), [1]);
  } finally {
    await oo.close();
  }
});

Deno.test("OpenObserveSink.encode() makes one item of records, UTF-8 included", () => {
  const sink = new OpenObserveSink(parseValue(openobserveSpec, {}), log, new Registry());
  const records = [{ a: 1 }, { message: "héllo 😀" }, { b: "x" }, { big: "é".repeat(70_000) }];
  for (const set of [[records[0]!], [records[0]!, records[2]!], records.slice(0, 3), records]) {
    const out = sink.encode(set, "s")!;
    assert.deepEqual(JSON.parse(`[${new TextDecoder().decode(out.json as Uint8Array)}]`), set);
    assert.equal(out.stream, "s");
    assert.equal(out.count, set.length);
  }
  assert.equal(sink.encode([], "s"), undefined);
});

/** A sink to `oo` that does not retry (a 503 fails the write at once). */
function noRetrySink(oo: FakeOpenObserve): OpenObserveSink {
  const c = parseValue(openobserveSpec, {
    url: oo.url,
    password: oo.password,
    retry: { max_retries: 0 },
  });
  return new OpenObserveSink(c, log, new Registry());
}

Deno.test("OpenObserveSink reuses a group's buffer once it was delivered, not after a failure", async () => {
  const oo = new FakeOpenObserve();
  try {
    const sink = noRetrySink(oo);
    const signal = AbortSignal.timeout(5000);
    const first = sink.encode([{ n: 1 }], "s")!;
    await sink.write({ items: [first], bytes: 0 }, signal);
    const second = sink.encode([{ n: 2 }], "s")!;
    assert.equal((second.json as Uint8Array).buffer, (first.json as Uint8Array).buffer);
    oo.fail = 1;
    await assert.rejects(sink.write({ items: [second], bytes: 0 }, signal), SinkError);
    const third = sink.encode([{ n: 3 }], "s")!;
    assert.notEqual((third.json as Uint8Array).buffer, (second.json as Uint8Array).buffer);
    assert.equal(new TextDecoder().decode(second.json as Uint8Array), '{"n":2}');
    assert.deepEqual(oo.streams.get("s"), [{ n: 1 }]);
  } finally {
    await oo.close();
  }
});

Deno.test("OpenObserveSink.encodeJson() copies written JSON into a buffer it reuses once delivered", async () => {
  const oo = new FakeOpenObserve();
  try {
    const sink = noRetrySink(oo);
    const signal = AbortSignal.timeout(5000);
    const scratch = new TextEncoder().encode('{"n":1,"m":"é"},{"n":2}');
    const first = sink.encodeJson(scratch, 2, "s");
    scratch.fill(32); // the caller's buffer is free again at once
    assert.equal(first.count, 2);
    assert.equal(new TextDecoder().decode(first.json as Uint8Array), '{"n":1,"m":"é"},{"n":2}');
    await sink.write({ items: [first], bytes: 0 }, signal);
    const second = sink.encodeJson(new TextEncoder().encode('{"n":3}'), 1, "s");
    assert.equal((second.json as Uint8Array).buffer, (first.json as Uint8Array).buffer);
    await sink.write({ items: [second], bytes: 0 }, signal);
    assert.deepEqual(oo.streams.get("s"), [{ n: 1, m: "é" }, { n: 2 }, { n: 3 }]);
    // Larger than a group buffer: a copy of its own.
    const big = new TextEncoder().encode(`{"big":"${"x".repeat(70_000)}"}`);
    assert.deepEqual(sink.encodeJson(big, 1, "s").json, big);
  } finally {
    await oo.close();
  }
});

Deno.test("streamName() fills the template and keeps OpenObserve's stream-name alphabet", () => {
  assert.equal(
    streamName("{engine}_{instance}", { engine: "aurora-postgresql", instance: "Prod.DB-1" }),
    "aurora_postgresql_prod_db_1",
  );
  assert.equal(streamName("logs_{missing}", {}), "logs_");
});

Deno.test("joinJsonArray() encodes text items into the body, growing it for non-ASCII text", () => {
  const parts = ['{"m":"héllo 😀"},{"m":"\u00e9"}', new TextEncoder().encode('{"b":1}'), '{"c":2}'];
  const into = new Uint8Array(40);
  const body = joinJsonArray(parts, into);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(body)), [
    { m: "héllo 😀" },
    { m: "é" },
    { b: 1 },
    { c: 2 },
  ]);
  assert.equal(joinJsonArray(['{"a":1}'], into).buffer, into.buffer);
  // Room for its characters, not its bytes: encoded in two goes.
  const exact = joinJsonArray(['"ééé😀"'], new Uint8Array(9));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(exact)), ["ééé😀"]);
});

Deno.test("joinJsonArray() joins encoded records into one JSON array, in a reused buffer when it fits", () => {
  const enc = new TextEncoder();
  const recs = [{ a: 1 }, { b: "x" }, { c: [1, 2] }].map((r) => enc.encode(JSON.stringify(r)));
  const into = new Uint8Array(64).fill(120);
  const body = joinJsonArray(recs, into);
  assert.equal(body.buffer, into.buffer);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(body)), [{ a: 1 }, { b: "x" }, {
    c: [1, 2],
  }]);
  assert.equal(new TextDecoder().decode(joinJsonArray([], into)), "[]");
  const grown = joinJsonArray(recs.slice(0, 1), new Uint8Array(2));
  assert.equal(new TextDecoder().decode(grown), '[{"a":1}]');
});
