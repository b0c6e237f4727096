import assert from "node:assert/strict";
import { agentCommand } from "../_agent.ts";
import { parseValue } from "../../mod/config/spec.ts";
import { renderLine, tailMode } from "../../mod/modes/tail.ts";
import { endpoints, freshTopic, kafka, produceTo, serviceTest } from "../services/mod.ts";
import { modeContext } from "./_context.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const msg = (line: string, headers: Record<string, string>) => ({
  topic: "Raw.ApplicationLogs",
  partition: 0,
  offset: "7",
  value: enc(line),
  headers,
});
const base = {
  format: "text" as const,
  raw: false,
  subscription: undefined,
  environment: undefined,
  service: undefined,
};

Deno.test("renderLine() filters on headers without parsing the line", () => {
  const h = { subscription: "cp2", environment: "P1", service: "api-gateway" };
  assert.equal(renderLine({ ...base, subscription: "cp3" }, msg("x", h)), undefined);
  assert.equal(renderLine({ ...base, environment: "S1" }, msg("x", h)), undefined);
  assert.equal(renderLine({ ...base, service: "web" }, msg("x", h)), undefined);
  assert.equal(
    renderLine({ ...base, service: "api" }, msg("plain line", h)),
    "[api-gateway] plain line",
  );
});

Deno.test("renderLine() text picks timestamp, level, service and message from JSON lines", () => {
  const line =
    '{"timestamp":"2025-06-06T07:30:20Z","service":"orders","message":"paid","level":"info"}';
  assert.equal(renderLine(base, msg(line, {})), "2025-06-06T07:30:20Z INFO [orders] paid");
  // No service in the line: the header's.
  assert.equal(
    renderLine(base, msg('{"ts":"t","msg":"m"}', { service: "api" })),
    "t [api] m",
  );
  // A container runtime's wrapper around an application's JSON line.
  const wrapped = JSON.stringify({
    log: '{"@timestamp":"2025-06-06T07:30:21Z","severity":"warn","message":"slow"}\n',
    stream: "stdout",
    time: "2025-06-06T07:30:21.5Z",
  });
  assert.equal(
    renderLine(base, msg(wrapped, { service: "api" })),
    "2025-06-06T07:30:21Z WARN [api] slow",
  );
  const plain = JSON.stringify({ log: "plain text\n", time: "t0" });
  assert.equal(renderLine(base, msg(plain, {})), "t0 plain text");
  assert.equal(renderLine(base, msg("{not json", {})), "{not json");
});

Deno.test("renderLine() json and raw formats", () => {
  const h = { blob: "b.gz" };
  assert.equal(renderLine({ ...base, format: "json" }, msg('{"a":1}', h)), '{"a":1}');
  assert.equal(
    renderLine({ ...base, format: "json", raw: true }, msg("not json", h)),
    '{"topic":"Raw.ApplicationLogs","partition":0,"offset":"7","headers":{"blob":"b.gz"},"line":"not json"}',
  );
  assert.equal(
    renderLine({ ...base, raw: true }, msg("x", h)),
    "Raw.ApplicationLogs/0@7 blob=b.gz | x",
  );
});

serviceTest("edge-agent tail --from-beginning --no-follow filters a real topic and exits", [
  "kafka",
], async () => {
  const topic = await freshTopic(2);
  await produceTo(topic, [
    {
      value: '{"ts":"t1","service":"api","message":"one"}',
      headers: { subscription: "cp2", environment: "P1", service: "api" },
      partition: 0,
    },
    {
      value: '{"ts":"t2","service":"web","message":"two"}',
      headers: { subscription: "cp2", environment: "P1", service: "web" },
      partition: 1,
    },
    {
      value: "three",
      headers: { subscription: "cp3", environment: "P1", service: "api-v2" },
      partition: 1,
    },
    {
      value: '{"ts":"t4","message":"four"}',
      headers: { subscription: "cp2", environment: "P1", service: "api-v2" },
      partition: 0,
    },
  ]);
  const run = async (...args: string[]) => {
    const out = await agentCommand([
      "tail",
      "--no-status",
      "--topics",
      topic,
      "--brokers",
      endpoints.kafka.join(","),
      "--from-beginning",
      "--no-follow",
      ...args,
    ], { stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return text.trim().split("\n").filter(Boolean).toSorted();
  };
  assert.deepEqual(await run("--subscription", "cp2", "--service", "api"), [
    "t1 [api] one",
    "t4 [api-v2] four",
  ]);
  assert.deepEqual(await run("--format", "json", "--subscription", "cp3"), ['"three"']);
  assert.equal((await run()).length, 4);
});

serviceTest(
  "edge-agent tail runs beside an agent holding the status port and leaves no consumer group",
  ["kafka"],
  async () => {
    const topic = await freshTopic();
    await produceTo(topic, [{ value: '{"message":"one"}' }]);
    // Another agent's status endpoint (or whatever holds the default port).
    let held: Deno.Listener | undefined;
    try {
      held = Deno.listen({ hostname: "127.0.0.1", port: 8686 });
    } catch { /* already held by something else: the same situation */ }
    const client = kafka();
    try {
      const before = new Set(await client.listGroups());
      const out = await agentCommand([
        "tail",
        "--topics",
        topic,
        "--brokers",
        endpoints.kafka.join(","),
        "--from-beginning",
        "--no-follow",
      ], { stdout: "piped", stderr: "piped" }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.equal(new TextDecoder().decode(out.stdout), "one\n");
      const added = (await client.listGroups()).filter((g) => !before.has(g) && g.includes("tail"));
      assert.deepEqual(added, []);
    } finally {
      held?.close();
      await client.close();
    }
  },
);

serviceTest("tail follows a topic (the default) and stops on the signal", ["kafka"], async () => {
  const topic = await freshTopic();
  const out: string[] = [];
  const stdout = new WritableStream<Uint8Array>({
    write: (c) => void out.push(new TextDecoder().decode(c)),
  });
  const stop = new AbortController();
  const config = parseValue(tailMode.spec, {
    brokers: endpoints.kafka,
    topics: [topic],
    format: "json",
    raw: true,
    environment: "P1",
  });
  const ctx = { ...modeContext(config, "."), stdout, signal: stop.signal };
  const run = tailMode.run(ctx);
  // It starts at the end: send until the reader has started and shows one.
  for (let i = 0; out.length === 0 && i < 100; i++) {
    await produceTo(topic, [
      { value: '{"message":"skip"}', headers: { environment: "P2" } },
      { value: '{"message":"hi"}', headers: { environment: "P1" } },
    ]);
    await new Promise((r) => setTimeout(r, 100));
  }
  stop.abort();
  await run;
  const first = JSON.parse(out[0]!);
  assert.deepEqual([first.topic, first.headers, first.line], [topic, { environment: "P1" }, {
    message: "hi",
  }]);
  assert.ok(!out.some((l) => l.includes("skip")));
});
