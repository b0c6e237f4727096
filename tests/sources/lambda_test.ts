// LambdaRuntime and serveLambda against a fake Runtime API endpoint (tests/sources/_fake_lambda_runtime.ts).
import assert from "node:assert/strict";
import { Logger } from "../../mod/log/logger.ts";
import { type Invocation, LambdaRuntime, serveLambda } from "../../mod/sources/lambda.ts";
import { startFakeRuntime } from "./_fake_lambda_runtime.ts";

const quiet = new Logger({ write: () => {} });

Deno.test("serveLambda() answers each invocation with the handler's result or error", async () => {
  const rt = startFakeRuntime();
  const stop = new AbortController();
  const seen: Invocation[] = [];
  const serving = serveLambda(async (event, inv) => {
    seen.push(inv);
    await Promise.resolve();
    if ((event as { fail?: boolean }).fail) throw new TypeError("bad event");
    return { echo: event, left: inv.deadline - Date.now() > 0 };
  }, { api: rt.api, log: quiet, signal: stop.signal });
  try {
    const ok = await rt.invoke({ n: 1 }, { deadlineIn: 30_000 });
    assert.deepEqual(ok, { kind: "response", body: { echo: { n: 1 }, left: true } });
    const bad = await rt.invoke({ fail: true });
    assert.equal(bad.kind, "error");
    assert.equal(bad.errorType, "Runtime.TypeError");
    assert.deepEqual(bad.body, {
      errorMessage: "bad event",
      errorType: "Runtime.TypeError",
      stackTrace: [],
    });
    assert.equal(seen[0]!.requestId, "req-1");
    assert.equal(seen[0]!.functionArn, "arn:aws:lambda:us-east-1:123456789012:function:route");
    assert.ok(Math.abs(seen[0]!.deadline - (Date.now() + 30_000)) < 10_000);
  } finally {
    stop.abort();
    assert.equal(await serving, 2);
    await rt.close();
  }
});

Deno.test("LambdaRuntime() reports init errors and refuses to start without an API address", async () => {
  assert.throws(() => new LambdaRuntime(""), /AWS_LAMBDA_RUNTIME_API is not set/);
  const rt = startFakeRuntime();
  try {
    await new LambdaRuntime(rt.api).initError(new RangeError("config invalid"));
    assert.deepEqual(rt.initErrors, [{
      errorMessage: "config invalid",
      errorType: "Runtime.RangeError",
      stackTrace: [],
    }]);
  } finally {
    await rt.close();
  }
});
