import assert from "node:assert/strict";
import { parseValue } from "../../mod/config/spec.ts";
import {
  backoff,
  httpVerdict,
  isRetryable,
  parseRetryAfter,
  retry,
  RetryableError,
  retryAfterOf,
  retrySpec,
  sleep,
} from "../../mod/pipeline/retry.ts";
import { SinkError } from "../../mod/pipeline/types.ts";

const fail = (n: number, make: () => unknown = () => new TypeError("fetch failed")) => {
  let calls = 0;
  const fn = (attempt: number) => {
    assert.equal(attempt, calls);
    calls++;
    return calls <= n ? Promise.reject(make()) : Promise.resolve(`ok after ${calls}`);
  };
  return { fn, calls: () => calls };
};

Deno.test("retrySpec defaults to 10 retries, 100ms → 30s, and rejects initial > max", () => {
  assert.deepEqual(parseValue(retrySpec, {}), {
    max_retries: 10,
    initial_backoff: 100,
    max_backoff: 30_000,
  });
  assert.equal(parseValue(retrySpec, { max_retries: -1 }).max_retries, -1);
  assert.throws(() => parseValue(retrySpec, { max_retries: -2 }), /max_retries: must be ≥ -1/);
  assert.throws(
    () => parseValue(retrySpec, { initial_backoff: "1m", max_backoff: "1s" }),
    /initial_backoff must be ≤ max_backoff/,
  );
});

Deno.test("backoff() is full jitter under a capped exponential", () => {
  const c = { initial_backoff: 100, max_backoff: 1000 };
  const top = () => 0.999999;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 60].map((a) => Math.round(backoff(a, c, top))),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.equal(backoff(3, c, () => 0), 0);
  for (let i = 0; i < 100; i++) {
    const w = backoff(3, c);
    assert.ok(w >= 0 && w < 400);
  }
});

Deno.test("retry() retries until success and reports each wait", async () => {
  const f = fail(3);
  const seen: [number, number][] = [];
  const out = await retry(f.fn, {
    initial_backoff: 1,
    onRetry: (_e, attempt, wait) => seen.push([attempt, wait]),
    random: () => 0.5,
  });
  assert.equal(out, "ok after 4");
  assert.deepEqual(seen, [[1, 0.5], [2, 1], [3, 2]]);
});

Deno.test("retry() gives up after max_retries and throws the last error unchanged", async () => {
  const errors: Error[] = [];
  const f = fail(100, () => {
    const e = new RetryableError(`attempt ${errors.length}`, { status: 503 });
    errors.push(e);
    return e;
  });
  await assert.rejects(
    retry(f.fn, { max_retries: 3, initial_backoff: 1 }),
    (e) => e === errors[3],
  );
  assert.equal(f.calls(), 4);
});

Deno.test("retry() with max_retries -1 retries until success", async () => {
  const f = fail(50);
  assert.equal(await retry(f.fn, { max_retries: -1, random: () => 0 }), "ok after 51");
});

Deno.test("retry() does not retry what isRetryable() rejects", async () => {
  const f = fail(1, () => new RetryableError("answered 400", { status: 400 }));
  await assert.rejects(retry(f.fn), /answered 400/);
  assert.equal(f.calls(), 1);
  const g = fail(1, () => new RangeError("a bug"));
  await assert.rejects(retry(g.fn), RangeError);
  assert.equal(g.calls(), 1);
});

Deno.test("retry() waits what the error's retryAfter asks, capped at max_backoff", async () => {
  const waits: number[] = [];
  const hints = [7, 5_000];
  const f = fail(2, () => new RetryableError("busy", { status: 503, retryAfter: hints.shift() }));
  await retry(f.fn, {
    max_backoff: 20,
    onRetry: (_e, _a, w) => waits.push(w),
  });
  assert.deepEqual(waits, [7, 20]);
});

Deno.test("retry() stops waiting when its signal aborts and throws the last error", async () => {
  const ac = new AbortController();
  const f = fail(100, () => new Error("ECONNRESET"));
  const p = retry(f.fn, {
    initial_backoff: 60_000,
    max_backoff: 60_000,
    random: () => 1,
    signal: ac.signal,
  });
  await sleep(20);
  ac.abort();
  await assert.rejects(p, /ECONNRESET/);
  assert.equal(f.calls(), 1);
  // Already aborted: one attempt, no retry.
  const g = fail(1);
  await assert.rejects(retry(g.fn, { signal: ac.signal }), TypeError);
  assert.equal(g.calls(), 1);
});

Deno.test("isRetryable() retries network errors, timeouts, 408/429/5xx; not 4xx, aborts or bugs", () => {
  const yes: unknown[] = [
    new TypeError("fetch failed"),
    new Deno.errors.ConnectionRefused("refused"),
    new Deno.errors.ConnectionReset("reset"),
    new Deno.errors.BrokenPipe("pipe"),
    new Deno.errors.TimedOut("slow"),
    new DOMException("The operation was aborted due to timeout", "TimeoutError"),
    new Error("read ECONNRESET"),
    new RetryableError("x", { status: 408 }),
    new RetryableError("x", { status: 429 }),
    new RetryableError("x", { status: 500 }),
    new RetryableError("x", { status: 503 }),
    Object.assign(new Error("SlowDown"), { $metadata: { httpStatusCode: 503 } }),
    { status: 502 },
    new SinkError("gave up", { retryable: true }),
  ];
  const no: unknown[] = [
    new RetryableError("x", { status: 400 }),
    new RetryableError("x", { status: 401 }),
    new RetryableError("x", { status: 404 }),
    new RetryableError("x", { status: 413 }),
    new RetryableError("forced", { status: 503, retryable: false }),
    Object.assign(new Error("AccessDenied"), { $metadata: { httpStatusCode: 403 } }),
    new DOMException("The signal has been aborted", "AbortError"),
    new SinkError("rejected", { retryable: false }),
    new RangeError("a bug"),
    new Error("something else"),
    "a string",
    undefined,
  ];
  yes.forEach((e, i) => assert.equal(isRetryable(e), true, `yes[${i}]`));
  no.forEach((e, i) => assert.equal(isRetryable(e), false, `no[${i}]`));
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates", () => {
  const now = Date.parse("2025-10-12T21:41:32Z");
  assert.equal(parseRetryAfter("120", now), 120_000);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Sun, 12 Oct 2025 21:41:42 GMT", now), 10_000);
  assert.equal(parseRetryAfter("Sun, 12 Oct 2025 21:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
  assert.equal(retryAfterOf(new RetryableError("x", { retryAfter: 5 })), 5);
  assert.equal(retryAfterOf(new Error("x")), undefined);
});

Deno.test("retry() around fetch: a real server failing twice (500, 503 Retry-After: 0) then answering", async () => {
  let n = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.arrayBuffer();
    n++;
    if (n === 1) return new Response("boom", { status: 500 });
    if (n === 2) return new Response("busy", { status: 503, headers: { "retry-after": "0" } });
    return new Response(`hello ${n}`);
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  const waits: number[] = [];
  const text = await retry(async () => {
    const res = await fetch(url, { method: "POST", body: "x" });
    if (!res.ok) {
      await res.body?.cancel();
      throw new RetryableError(`answered ${res.status}`, {
        status: res.status,
        retryAfter: parseRetryAfter(res.headers.get("retry-after")),
      });
    }
    return res.text();
  }, { initial_backoff: 5, onRetry: (_e, _a, w) => waits.push(w) });
  assert.equal(text, "hello 3");
  assert.equal(waits.length, 2);
  assert.equal(waits[1], 0, "Retry-After: 0 honoured");
  await server.shutdown();
});

Deno.test("retry() retries a configuration problem past max_retries; other failures still count", async () => {
  let n = 0;
  const config = (s: number) =>
    new RetryableError(`answered ${s}`, { status: s, configuration: true });
  const got = await retry(() => {
    n++;
    if (n <= 5) return Promise.reject(config(401));
    if (n === 6) return Promise.reject(new RetryableError("answered 503", { status: 503 }));
    return Promise.resolve("ok");
  }, { max_retries: 1, initial_backoff: 1, max_backoff: 1 });
  assert.equal(got, "ok");
  assert.equal(n, 7);
  let m = 0;
  await assert.rejects(
    () =>
      retry(() => {
        m++;
        return Promise.reject(m === 1 ? config(403) : new RetryableError("x", { status: 500 }));
      }, { max_retries: 1, initial_backoff: 1, max_backoff: 1 }),
    /x/,
  );
  assert.equal(m, 3, "one configuration answer, then the first try and one retry of the 500");
});

Deno.test("httpVerdict() sorts answers: retry, configuration, too_large, rejected", () => {
  assert.deepEqual(
    [200, 408, 429, 500, 503, 401, 403, 404, 413, 400, 422, 410].map(httpVerdict),
    [
      "ok",
      "retry",
      "retry",
      "retry",
      "retry",
      "configuration",
      "configuration",
      "configuration",
      "too_large",
      "rejected",
      "rejected",
      "rejected",
    ],
  );
});
