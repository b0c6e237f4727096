// HttpSink against real HTTP servers on loopback sockets: fault injection by status codes,
// closed ports, connections closed mid-request and stalled answers.
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { maskSecrets, parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { HttpSink, httpSinkSpec, joinLines, safeUrl } from "../../mod/sinks/http.ts";
import { BatchError, SinkError } from "../../mod/pipeline/types.ts";
import { Health } from "../../mod/status/health.ts";
import { statusHandler } from "../../mod/status/server.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const quiet = new Logger({ write: () => {} });

interface Got {
  body: string;
  method: string;
  headers: Headers;
}

/** A real HTTP intake on a loopback port whose answers a test scripts. */
function intake(
  answer: (n: number, req: Request, body: Uint8Array) => Response | Promise<Response>,
) {
  const got: Got[] = [];
  const ports = new Set<number>();
  let n = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req, info) => {
      ports.add(info.remoteAddr.port);
      const raw = new Uint8Array(await req.arrayBuffer());
      const res = await answer(++n, req, raw);
      if (res.ok) {
        const body = req.headers.get("content-encoding") === "gzip"
          ? dec(zlib.gunzipSync(raw))
          : dec(raw);
        got.push({ body, method: req.method, headers: req.headers });
      }
      return res;
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    got,
    ports,
    requests: () => n,
    close: () => server.shutdown(),
  };
}

/** A port nothing listens on: connection refused. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

/**
 * A minimal HTTP/1.1 server on a raw TCP listener: the first `drop` connections are closed
 * as soon as the request arrives (no answer), later ones get 200 for each request.
 */
/** A Content-Length body starting at `head`, if all of it is in `buf`. */
function contentLengthBody(buf: Uint8Array, head: number, headers: string) {
  const len = Number(/content-length: *(\d+)/i.exec(headers)?.[1] ?? 0);
  if (buf.length < head + len) return undefined;
  return { body: buf.subarray(head, head + len), end: head + len };
}

/** A chunked body (RFC 9112 §7.1) starting at `head`, if all of it is in `buf`. */
function chunkedBody(buf: Uint8Array, head: number) {
  const parts: Uint8Array[] = [];
  let o = head;
  for (;;) {
    const eol = buf.indexOf(10, o);
    if (eol < 0) return undefined;
    const size = parseInt(dec(buf.subarray(o, eol)).split(";")[0]!.trim(), 16);
    o = eol + 1;
    if (size === 0) {
      // No trailers are sent: the last chunk is followed by one empty line.
      if (buf.length < o + 2) return undefined;
      const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((at, p) => (body.set(p, at), at + p.length), 0);
      return { body, end: o + 2 };
    }
    if (buf.length < o + size + 2) return undefined;
    parts.push(buf.subarray(o, o + size));
    o += size + 2;
  }
}

function flakyTcp(drop: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const bodies: string[] = [];
  let conns = 0;
  const serveConn = async (conn: Deno.Conn, n: number) => {
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const r = await conn.read(chunk);
        if (r === null) return;
        if (n <= drop) return; // close with the request unanswered
        const next = new Uint8Array(buf.length + r);
        next.set(buf);
        next.set(chunk.subarray(0, r), buf.length);
        buf = next;
        for (;;) {
          const text = dec(buf);
          const end = text.indexOf("\r\n\r\n");
          if (end < 0) break;
          const head = enc(text.slice(0, end + 4)).length;
          const message = /transfer-encoding: *chunked/i.test(text.slice(0, end))
            ? chunkedBody(buf, head)
            : contentLengthBody(buf, head, text.slice(0, end));
          if (!message) break;
          bodies.push(dec(message.body));
          buf = buf.slice(message.end);
          await conn.write(enc("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        }
      }
    } catch {
      // the client went away
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) serveConn(conn, ++conns);
    } catch { /* listener closed */ }
  })();
  return {
    url: `http://127.0.0.1:${listener.addr.port}`,
    bodies,
    connections: () => conns,
    close: async () => {
      listener.close();
      await accepting;
    },
  };
}

function sink(endpoints: string[], extra: Record<string, unknown> = {}, log = quiet) {
  const metrics = new Registry();
  const s = new HttpSink(
    parseValue(httpSinkSpec, {
      endpoints,
      retry: { initial_backoff: "5ms", max_backoff: "20ms", max_retries: 20 },
      ...extra,
    }),
    { metrics, log },
  );
  return { s, metrics };
}

const batch = (lines: string[]) => {
  const items = lines.map(enc);
  return { items, bytes: items.reduce((n, l) => n + l.length + 1, 0) };
};
const signal = new AbortController().signal;

Deno.test("joinLines() writes each line plus a newline into one buffer, reusing `into`", () => {
  const items = ["ab", "", "c"].map(enc);
  assert.equal(dec(joinLines(items)), "ab\n\nc\n");
  const into = new Uint8Array(64);
  const body = joinLines(items, 6, into);
  assert.equal(body.buffer, into.buffer);
  assert.equal(dec(body), "ab\n\nc\n");
  assert.equal(dec(joinLines(items, 6, new Uint8Array(2))), "ab\n\nc\n"); // too small: fresh
});

Deno.test("safeUrl() drops credentials and query strings (they carry tokens)", () => {
  assert.equal(safeUrl("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
  assert.equal(
    safeUrl("https://u:pw@intake.example/v1/logs?key=s3cr3t"),
    "https://intake.example/v1/logs",
  );
});

Deno.test("httpSinkSpec has the reference's keys and defaults, headers secret, endpoints distinct", () => {
  const c = parseValue(httpSinkSpec, {});
  assert.deepEqual(
    {
      endpoints: c.endpoints,
      batch_lines: c.batch_lines,
      batch_bytes: c.batch_bytes,
      flush_interval: c.flush_interval,
      workers: c.workers,
      timeout: c.timeout,
      max_idle_conns: c.max_idle_conns,
      idle_conn_timeout: c.idle_conn_timeout,
      method: c.method,
      gzip: c.gzip,
      content_type: c.content_type,
      drop_when_full: c.drop_when_full,
      retry: c.retry,
    },
    {
      endpoints: ["http://127.0.0.1:8080"],
      batch_lines: 1000,
      batch_bytes: 1048576,
      flush_interval: 1000,
      workers: 10,
      timeout: 30_000,
      max_idle_conns: 100,
      idle_conn_timeout: 90_000,
      method: "POST",
      gzip: false,
      content_type: "application/x-ndjson",
      drop_when_full: false,
      retry: { max_retries: 10, initial_backoff: 100, max_backoff: 30_000 },
    },
  );
  const masked = maskSecrets(httpSinkSpec, { ...c, headers: { authorization: "Bearer x" } });
  assert.equal((masked as { headers: unknown }).headers, "***");
  assert.throws(
    () => parseValue(httpSinkSpec, { endpoints: ["http://a:1", "http://a:1"] }),
    /endpoints must be distinct: http:\/\/a:1 listed twice/,
  );
});

Deno.test("HttpSink POSTs a newline-delimited body with headers and content type", async () => {
  const r = intake(() => new Response(null, { status: 204 }));
  const { s, metrics } = sink([r.url], {
    headers: { authorization: "Bearer t0k3n", "x-team": "sre" },
  });
  await s.write(batch(['{"a":1}', '{"b":2}']), signal);
  assert.equal(r.got[0]!.body, '{"a":1}\n{"b":2}\n');
  assert.equal(r.got[0]!.method, "POST");
  assert.equal(r.got[0]!.headers.get("authorization"), "Bearer t0k3n");
  assert.equal(r.got[0]!.headers.get("x-team"), "sre");
  assert.equal(r.got[0]!.headers.get("content-type"), "application/x-ndjson");
  assert.match(
    metrics.render(),
    new RegExp(`http_request_duration_seconds_count\\{endpoint="${r.url}"\\} 1`),
  );
  await s.close();
  await r.close();
});

Deno.test("HttpSink uses the configured method and content type", async () => {
  const r = intake(() => new Response(null));
  const { s } = sink([r.url], { method: "PUT", content_type: "text/plain" });
  await s.write(batch(["x"]), signal);
  assert.equal(r.got[0]!.method, "PUT");
  assert.equal(r.got[0]!.headers.get("content-type"), "text/plain");
  await s.close();
  await r.close();
});

Deno.test("HttpSink gzips the body when asked: it decodes to the same lines", async () => {
  const r = intake(() => new Response("ok"));
  const { s } = sink([r.url], { gzip: true });
  const lines = Array.from({ length: 500 }, (_, i) => `{"i":${i},"msg":"${"x".repeat(i % 50)}"}`);
  await s.write(batch(lines), signal);
  await s.write(batch(["y"]), signal);
  assert.equal(r.got[0]!.headers.get("content-encoding"), "gzip");
  assert.equal(r.got[0]!.body, lines.join("\n") + "\n");
  assert.equal(r.got[1]!.body, "y\n");
  await s.close();
  await r.close();
});

Deno.test("HttpSink retries 500s and 503 Retry-After until success: nothing lost, order kept", async () => {
  const r = intake((n) =>
    n === 1
      ? new Response("boom", { status: 500 })
      : n === 2
      ? new Response("busy", { status: 503, headers: { "retry-after": "0" } })
      : n % 3 === 0
      ? new Response("again", { status: 502 })
      : new Response(null, { status: 200 })
  );
  const { s, metrics } = sink([r.url]);
  const sent: string[] = [];
  for (let i = 0; i < 10; i++) {
    const lines = [`${i}a`, `${i}b`];
    sent.push(lines.join("\n") + "\n");
    await s.write(batch(lines), signal);
  }
  assert.deepEqual(r.got.map((g) => g.body), sent);
  const errors = metrics.counter("http_errors_total", "");
  assert.equal(errors.get({ endpoint: r.url, reason: "500" }), 1);
  assert.equal(errors.get({ endpoint: r.url, reason: "503" }), 1);
  assert.ok(errors.get({ endpoint: r.url, reason: "502" }) >= 1);
  await s.close();
  await r.close();
});

Deno.test("HttpSink retries connections closed before an answer and a closed port", async () => {
  const t = flakyTcp(3);
  const { s, metrics } = sink([t.url]);
  for (let i = 0; i < 5; i++) await s.write(batch([`line ${i}`]), signal);
  assert.deepEqual(t.bodies, [0, 1, 2, 3, 4].map((i) => `line ${i}\n`));
  assert.equal(
    metrics.counter("http_errors_total", "").get({ endpoint: t.url, reason: "network" }),
    3,
  );
  await s.close();
  await t.close();

  // Nothing listens yet; the intake comes up while the sink retries.
  const port = closedPort();
  const { s: s2 } = sink([`http://127.0.0.1:${port}`], {
    retry: { max_retries: -1, initial_backoff: "5ms", max_backoff: "20ms" },
  });
  const writing = s2.write(batch(["late"]), signal);
  await new Promise((r) => setTimeout(r, 50));
  const got: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    got.push(await req.text());
    return new Response(null);
  });
  await writing;
  assert.deepEqual(got, ["late\n"]);
  await s2.close();
  await server.shutdown();
});

Deno.test("HttpSink times out a stalled request and retries it", async () => {
  const stalled = Promise.withResolvers<void>();
  const r = intake(async (n) => {
    if (n > 1) return new Response(null);
    await stalled.promise;
    return new Response("too late", { status: 500 }); // answered after the client gave up
  });
  const { s, metrics } = sink([r.url], { timeout: "100ms" });
  await s.write(batch(["slow"]), signal);
  stalled.resolve();
  assert.deepEqual(r.got.map((g) => g.body), ["slow\n"]);
  assert.equal(
    metrics.counter("http_errors_total", "").get({ endpoint: r.url, reason: "timeout" }),
    1,
  );
  await s.close();
  await r.close();
});

Deno.test("HttpSink gives up after max_retries with a retryable SinkError", async () => {
  const r = intake(() => new Response("no", { status: 500 }));
  const { s } = sink([r.url], { retry: { max_retries: 2, initial_backoff: "1ms" } });
  await assert.rejects(() => s.write(batch(["lost?"]), signal), (e: unknown) => {
    assert.ok(e instanceof SinkError);
    assert.equal(e.retryable, true);
    assert.match(
      e.message,
      /gave up on a batch of 1 lines after 3 attempt\(s\).*answered 500.*: no/,
    );
    return true;
  });
  assert.equal(r.requests(), 3);
  await s.close();
  await r.close();
});

Deno.test("HttpSink does not retry a 400 or a 422: the batch is rejected (reason rejected), not lost silently", async () => {
  for (const status of [400, 422]) {
    const r = intake(() => new Response("bad field", { status }));
    const { s, metrics } = sink([r.url]);
    await assert.rejects(() => s.write(batch(["x", "y"]), signal), (e: unknown) => {
      assert.ok(e instanceof SinkError);
      assert.ok(!(e instanceof BatchError));
      assert.equal(e.retryable, false);
      assert.equal(e.reason, "rejected");
      assert.match(
        e.message,
        new RegExp(`after 1 attempt\\(s\\).*answered ${status} .*: bad field`),
      );
      return true;
    });
    assert.equal(r.requests(), 1, "nothing retried");
    assert.equal(
      metrics.counter("http_errors_total", "").get({ endpoint: r.url, reason: String(status) }),
      1,
    );
    await s.close();
    await r.close();
  }
});

Deno.test("HttpSink splits a batch answered 413 in halves until each part goes through; a line still too large is a BatchError item", async () => {
  const limit = 40; // bytes per request body, as an intake's max body size
  const sized = intake((_n, _req, body) =>
    body.length > limit ? new Response("payload too large", { status: 413 }) : new Response(null)
  );
  const lines = ["l0", "l1", "l2", "l3", "x".repeat(60), "l5", "l6", "l7", "l8", "l9"];
  const { s, metrics } = sink([sized.url], { retry: { max_retries: 0 } });
  await assert.rejects(() => s.write(batch(lines), signal), (e: unknown) => {
    assert.ok(e instanceof BatchError, String(e));
    assert.deepEqual(e.failed.map((f) => [f.index, f.reason]), [[4, "too_large"]]);
    assert.match(e.failed[0]!.message ?? "", /413/);
    return true;
  });
  const delivered = sized.got.flatMap((g) => g.body.split("\n").filter((l) => l !== ""));
  assert.deepEqual(delivered, lines.filter((_, i) => i !== 4), "every other line once, in order");
  assert.ok(sized.got.every((g) => g.body.length <= limit));
  assert.ok(
    metrics.counter("http_errors_total", "").get({ endpoint: sized.url, reason: "413" }) >= 2,
  );
  await s.close();
  await sized.close();
});

Deno.test("HttpSink splits a gzip body answered 413 too: each part compressed on its own", async () => {
  const limit = 600; // compressed bytes per request
  const r = intake((_n, _req, body) =>
    body.length > limit ? new Response("payload too large", { status: 413 }) : new Response(null)
  );
  const random = (n: number) =>
    Array.from(
      crypto.getRandomValues(new Uint8Array(n / 2)),
      (b) => b.toString(16).padStart(2, "0"),
    )
      .join("");
  const lines = Array.from({ length: 12 }, (_, i) => i === 7 ? random(2000) : random(40));
  const { s } = sink([r.url], { gzip: true });
  await assert.rejects(() => s.write(batch(lines), signal), (e: unknown) => {
    assert.ok(e instanceof BatchError, String(e));
    assert.deepEqual(e.failed.map((f) => [f.index, f.reason]), [[7, "too_large"]]);
    return true;
  });
  const delivered = r.got.flatMap((g) => g.body.split("\n").filter((l) => l !== ""));
  assert.deepEqual(delivered, lines.filter((_, i) => i !== 7));
  assert.ok(r.got.every((g) => g.headers.get("content-encoding") === "gzip"));
  await s.close();
  await r.close();
});

Deno.test("HttpSink: a one-line batch answered 413 is a BatchError with that line (too_large)", async () => {
  const r = intake(() => new Response("too big", { status: 413 }));
  const { s } = sink([r.url]);
  await assert.rejects(() => s.write(batch(["huge"]), signal), (e: unknown) => {
    assert.ok(e instanceof BatchError);
    assert.equal(e.retryable, false);
    assert.deepEqual(e.failed.map((f) => [f.index, f.reason]), [[0, "too_large"]]);
    return true;
  });
  assert.equal(r.requests(), 1);
  await s.close();
  await r.close();
});

Deno.test("HttpSink: 401 is a configuration problem: retried past max_retries until fixed, readiness 503 with the reason, one warning", async () => {
  for (const status of [401, 403, 404]) {
    let fixed = false;
    const r = intake(() => fixed ? new Response(null) : new Response("no token", { status }));
    const logged: Record<string, unknown>[] = [];
    const log = new Logger({ level: "warn", write: (l) => logged.push(JSON.parse(l)) });
    const health = new Health();
    const s = new HttpSink(
      parseValue(httpSinkSpec, {
        endpoints: [r.url],
        retry: { initial_backoff: "1ms", max_backoff: "5ms", max_retries: 1 },
      }),
      { metrics: new Registry(), log, health },
    );
    const writing = s.write(batch(["kept"]), signal);
    while (r.requests() < 8) await new Promise((res) => setTimeout(res, 5));
    const handler = statusHandler({
      mode: "test",
      version: "0",
      registry: new Registry(),
      health,
    });
    const ready = await handler(new Request("http://127.0.0.1/readyz"));
    assert.equal(ready.status, 503);
    assert.match(JSON.stringify(await ready.json()), new RegExp(`${r.url}.*${status}`));
    fixed = true;
    await writing;
    assert.deepEqual(r.got.map((g) => g.body), ["kept\n"]);
    assert.equal(health.ready, true);
    const warnings = logged.filter((l) => l.level === "warn");
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(String(warnings[0]!.msg), /configuration/);
    assert.equal(warnings[0]!.status, status);
    await s.close();
    await r.close();
  }
});

Deno.test("HttpSink stops retrying when its signal aborts", async () => {
  const r = intake(() => new Response("down", { status: 503 }));
  const { s } = sink([r.url], {
    retry: { max_retries: -1, initial_backoff: "5ms", max_backoff: "10ms" },
  });
  const ac = new AbortController();
  const writing = s.write(batch(["x"]), ac.signal);
  await new Promise((res) => setTimeout(res, 50));
  ac.abort();
  await assert.rejects(writing, SinkError);
  await s.close();
  await r.close();
});

Deno.test("HttpSink round-robins evenly over healthy endpoints", async () => {
  const rs = [0, 1, 2].map(() => intake(() => new Response(null)));
  const { s } = sink(rs.map((r) => r.url));
  for (let i = 0; i < 9; i++) await s.write(batch([`${i}`]), signal);
  assert.deepEqual(rs.map((r) => r.got.length), [3, 3, 3]);
  await s.close();
  for (const r of rs) await r.close();
});

Deno.test("HttpSink skips a failing endpoint and takes it back once it recovers", async () => {
  let bDown = true;
  const a = intake(() => new Response(null));
  const b = intake(() => bDown ? new Response("down", { status: 502 }) : new Response(null));
  const deadUrl = `http://127.0.0.1:${closedPort()}`;
  const { s, metrics } = sink([a.url, b.url, deadUrl]);
  for (let i = 0; i < 6; i++) await s.write(batch([`first ${i}`]), signal);
  assert.equal(a.got.length, 6, "every batch landed on the healthy endpoint");
  assert.equal(b.requests(), 1, "b was tried once, then skipped during its cooldown");
  const errors = metrics.counter("http_errors_total", "");
  assert.equal(errors.get({ endpoint: b.url, reason: "502" }), 1);
  assert.equal(errors.get({ endpoint: deadUrl, reason: "network" }), 1);
  assert.equal(metrics.gauge("http_endpoint_up", "").get({ endpoint: b.url }), 0);
  bDown = false;
  await new Promise((r) => setTimeout(r, 600)); // b's first cooldown is 500 ms
  for (let i = 0; i < 6; i++) await s.write(batch([`second ${i}`]), signal);
  assert.ok(b.got.length >= 2, "b is back in rotation");
  assert.equal(metrics.gauge("http_endpoint_up", "").get({ endpoint: b.url }), 1);
  const all = [...a.got, ...b.got].map((g) => g.body).toSorted();
  assert.deepEqual(
    all,
    [...Array(6).keys()].flatMap((i) => [`first ${i}\n`, `second ${i}\n`]).toSorted(),
  );
  await s.close();
  await a.close();
  await b.close();
});

Deno.test("HttpSink sends nothing to an endpoint during its Retry-After; others take the load", async () => {
  const a = intake(() =>
    new Response("slow down", { status: 429, headers: { "retry-after": "60" } })
  );
  const b = intake(() => new Response(null));
  const { s } = sink([a.url, b.url], { retry: { max_backoff: "2m", initial_backoff: "5ms" } });
  for (let i = 0; i < 8; i++) await s.write(batch([`${i}`]), signal);
  assert.equal(a.requests(), 1);
  assert.deepEqual(b.got.map((g) => g.body), [...Array(8).keys()].map((i) => `${i}\n`));
  await s.close();
  await a.close();
  await b.close();
});

Deno.test("HttpSink with concurrent writers over flaky endpoints delivers the exact multiset", async () => {
  const a = intake((n) => new Response(null, { status: n % 3 === 0 ? 503 : 200 }));
  const b = intake((n) => new Response(null, { status: n % 4 === 0 ? 500 : 200 }));
  const { s } = sink([a.url, b.url], { workers: 10 });
  const expected: string[] = [];
  const writes = [];
  for (let w = 0; w < 10; w++) {
    writes.push((async () => {
      for (let i = 0; i < 10; i++) {
        const lines = [`w${w} b${i} 1`, `w${w} b${i} 2`];
        expected.push(...lines);
        await s.write(batch(lines), signal);
      }
    })());
  }
  await Promise.all(writes);
  const got = [...a.got, ...b.got].flatMap((g) => g.body.split("\n").filter((l) => l !== ""));
  assert.deepEqual(got.toSorted(), expected.toSorted());
  // Order within each writer's sequence of batches is kept.
  for (let w = 0; w < 10; w++) {
    const mine = [...a.got, ...b.got].map((g) => g.body).filter((l) => l.startsWith(`w${w} `));
    assert.equal(mine.length, 10);
  }
  await s.close();
  await a.close();
  await b.close();
});

Deno.test("HttpSink keeps one keep-alive connection for sequential batches, even with large answers", async () => {
  const r = intake(() => new Response("x".repeat(200_000)));
  const { s } = sink([r.url]);
  for (let i = 0; i < 20; i++) await s.write(batch([`${i}`]), signal);
  assert.equal(r.got.length, 20);
  assert.equal(r.ports.size, 1);
  await s.close();
  await r.close();
});

Deno.test("HttpSink never logs header values or URL credentials", async () => {
  const logged: string[] = [];
  const log = new Logger({ level: "debug", write: (l) => logged.push(l) });
  let n = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.arrayBuffer();
    return new Response(null, { status: ++n <= 2 ? 503 : 200 });
  });
  const url = `http://user:pa55word@127.0.0.1:${server.addr.port}/in?api_key=k3y`;
  const { s } = sink(
    [url],
    { headers: { authorization: "Bearer t0k3n", "x-api-key": "s3cr3t" } },
    log,
  );
  await s.write(batch(["x"]), signal);
  const all = logged.join("\n");
  assert.match(all, /out of rotation/);
  assert.match(all, /back in rotation/);
  for (const secret of ["t0k3n", "s3cr3t", "pa55word", "k3y"]) {
    assert.ok(!all.includes(secret), secret);
  }
  await s.close();
  await server.shutdown();
});

Deno.test("HttpSink sends the data path's body as is, chunked; `chunked: false` sends Content-Length", async () => {
  const r = intake(() => new Response(null, { status: 200 }));
  const { s } = sink([r.url]);
  const body = enc("a\nbb\n");
  await s.write({ items: [body.subarray(0, 1), body.subarray(2, 4)], bytes: 5, body }, signal);
  assert.equal(r.got[0]!.body, "a\nbb\n");
  assert.equal(r.got[0]!.headers.get("transfer-encoding"), "chunked");
  assert.equal(r.got[0]!.headers.get("content-length"), null);
  await s.close();
  const { s: s2 } = sink([r.url], { chunked: false });
  await s2.write(batch(["c"]), signal);
  assert.equal(r.got[1]!.body, "c\n");
  assert.equal(r.got[1]!.headers.get("content-length"), "2");
  await s2.close();
  await r.close();
});

Deno.test("HttpSink: an endpoint answering 411 Length Required gets Content-Length from then on, nothing lost", async () => {
  const r = intake((_n, req) =>
    req.headers.get("content-length") === null
      ? new Response("length required", { status: 411 })
      : new Response(null, { status: 200 })
  );
  const { s, metrics } = sink([r.url]);
  for (let i = 0; i < 3; i++) await s.write(batch([`line ${i}`]), signal);
  assert.deepEqual(r.got.map((g) => g.body), ["line 0\n", "line 1\n", "line 2\n"]);
  assert.equal(r.requests(), 4); // one 411, then three with Content-Length
  const errors = metrics.counter("http_errors_total", "");
  assert.equal(errors.get({ endpoint: r.url, reason: "411" }), 1);
  assert.equal(metrics.gauge("http_endpoint_up", "", ["endpoint"]).get({ endpoint: r.url }), 1);
  await s.close();
  await r.close();
});
