import assert from "node:assert/strict";
import zlib from "node:zlib";
import { parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { HttpSink, httpSinkSpec } from "../../mod/sinks/http.ts";
import { SinkError } from "../../mod/pipeline/types.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const quiet = new Logger({ write: () => {} });

/** A real HTTP intake on a loopback port whose answers a test scripts. */
function intake(answer: (n: number, req: Request) => Response | Promise<Response>) {
  const got: { body: string; headers: Headers }[] = [];
  let n = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const raw = new Uint8Array(await req.arrayBuffer());
    const res = await answer(++n, req);
    if (res.ok) {
      const body = req.headers.get("content-encoding") === "gzip"
        ? new TextDecoder().decode(zlib.gunzipSync(raw))
        : new TextDecoder().decode(raw);
      got.push({ body, headers: req.headers });
    }
    return res;
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, got, close: () => server.shutdown() };
}

function sink(endpoints: string[], extra: Record<string, unknown> = {}) {
  const metrics = new Registry();
  const s = new HttpSink(
    parseValue(httpSinkSpec, {
      endpoints,
      retry: { initial_backoff: "5ms", max_backoff: "20ms", max_retries: 20 },
      ...extra,
    }),
    { metrics, log: quiet },
  );
  return { s, metrics };
}

const batch = (lines: string[]) => {
  const items = lines.map(enc);
  return { items, bytes: items.reduce((n, l) => n + l.length + 1, 0) };
};
const signal = new AbortController().signal;

Deno.test("HttpSink POSTs a newline-delimited body with headers", async () => {
  const r = intake(() => new Response(null, { status: 204 }));
  const { s } = sink([r.url], { headers: { authorization: "Bearer t0k3n", "x-team": "sre" } });
  await s.write(batch(['{"a":1}', '{"b":2}']), signal);
  assert.equal(r.got[0]!.body, '{"a":1}\n{"b":2}\n');
  assert.equal(r.got[0]!.headers.get("authorization"), "Bearer t0k3n");
  assert.equal(r.got[0]!.headers.get("content-type"), "application/x-ndjson");
  await s.close();
  await r.close();
});

Deno.test("HttpSink gzips the body when asked", async () => {
  const r = intake(() => new Response("ok"));
  const { s } = sink([r.url], { gzip: true });
  await s.write(batch(["x", "y"]), signal);
  assert.equal(r.got[0]!.body, "x\ny\n");
  assert.equal(r.got[0]!.headers.get("content-encoding"), "gzip");
  await s.close();
  await r.close();
});

Deno.test("HttpSink retries 500s and 503 Retry-After until success: nothing lost, order kept", async () => {
  const r = intake((n) =>
    n === 1
      ? new Response("boom", { status: 500 })
      : n === 2
      ? new Response("busy", { status: 503, headers: { "retry-after": "0" } })
      : new Response(null, { status: 200 })
  );
  const { s, metrics } = sink([r.url]);
  await s.write(batch(["1", "2"]), signal);
  await s.write(batch(["3"]), signal);
  assert.deepEqual(r.got.map((g) => g.body), ["1\n2\n", "3\n"]);
  assert.equal(metrics.counter("http_errors_total", "").total(), 2);
  await s.close();
  await r.close();
});

Deno.test("HttpSink gives up after max_retries with a SinkError", async () => {
  const r = intake(() => new Response("no", { status: 500 }));
  const { s } = sink([r.url], { retry: { max_retries: 2, initial_backoff: "1ms" } });
  await assert.rejects(() => s.write(batch(["lost?"]), signal), (e: unknown) => {
    assert.ok(e instanceof SinkError);
    assert.match(e.message, /gave up on a batch of 1 lines after 3 attempt\(s\).*answered 500/);
    return true;
  });
  await s.close();
  await r.close();
});

Deno.test("HttpSink does not retry a 400 (the batch is rejected, not lost silently)", async () => {
  const r = intake(() => new Response("bad", { status: 400 }));
  const { s } = sink([r.url]);
  await assert.rejects(() => s.write(batch(["x"]), signal), /after 1 attempt\(s\).*answered 400/);
  await s.close();
  await r.close();
});

Deno.test("HttpSink round-robins, skips a failing endpoint and takes it back when it recovers", async () => {
  let bDown = true;
  const a = intake(() => new Response(null));
  const b = intake(() => bDown ? new Response("down", { status: 502 }) : new Response(null));
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadUrl = `http://127.0.0.1:${(closed.addr as Deno.NetAddr).port}`;
  closed.close(); // nothing listens there: connection refused
  const { s, metrics } = sink([a.url, b.url, deadUrl]);
  for (let i = 0; i < 6; i++) await s.write(batch([`first ${i}`]), signal);
  assert.equal(a.got.length, 6, "every batch landed on the healthy endpoint");
  assert.ok(metrics.counter("http_errors_total", "").get({ endpoint: b.url }) >= 1);
  assert.ok(metrics.counter("http_errors_total", "").get({ endpoint: deadUrl }) >= 1);
  bDown = false;
  await new Promise((r) => setTimeout(r, 600)); // b's first cooldown is 500 ms
  for (let i = 0; i < 6; i++) await s.write(batch([`second ${i}`]), signal);
  assert.ok(b.got.length >= 1, "b is back in rotation");
  const all = [...a.got, ...b.got].map((g) => g.body).toSorted();
  assert.deepEqual(
    all,
    [...Array(6).keys()].flatMap((i) => [`first ${i}\n`, `second ${i}\n`]).toSorted(),
  );
  await s.close();
  await a.close();
  await b.close();
});
