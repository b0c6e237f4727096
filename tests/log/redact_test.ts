import assert from "node:assert/strict";
import { redactText, redactUrl, redactValue } from "../../mod/log/redact.ts";

Deno.test("redactUrl() hides userinfo and secret-looking query parameters, keeps the rest", () => {
  assert.equal(
    redactUrl("https://user:p%40ss@intake.example:8443/v1/logs?api_key=abc&tenant=t1&SIG=x#frag"),
    "https://***@intake.example:8443/v1/logs?api_key=***&tenant=t1&SIG=***#frag",
  );
  assert.equal(redactUrl("http://token@host/p"), "http://***@host/p");
  assert.equal(
    redactUrl("https://acct.blob.core.windows.net/c?sv=2024&sig=abc%2F&se=1"),
    "https://acct.blob.core.windows.net/c?sv=2024&sig=***&se=1",
  );
  assert.equal(
    redactUrl("http://h/x?password=1&client_secret=2&accessToken=3&Signature=4&page=5"),
    "http://h/x?password=***&client_secret=***&accessToken=***&Signature=***&page=5",
  );
  assert.equal(redactUrl("http://127.0.0.1:8080/in"), "http://127.0.0.1:8080/in");
  assert.equal(redactUrl("http://h/a@b?q=1"), "http://h/a@b?q=1");
});

Deno.test("redactText() redacts every URL inside an error text", () => {
  assert.equal(
    redactText(
      "error sending request for url (http://u:pw@127.0.0.1:9/in?api_key=k1): tcp connect error; retry http://h/?token=t2 now",
    ),
    "error sending request for url (http://***@127.0.0.1:9/in?api_key=***): tcp connect error; retry http://h/?token=*** now",
  );
  assert.equal(redactText("no url key=1"), "no url key=1");
});

Deno.test("redactValue() copies objects and arrays with their strings redacted", () => {
  const v = { a: ["http://u:p@h/"], b: { c: "s3://k@b/x?key=1" }, n: 3 };
  assert.deepEqual(redactValue(v), {
    a: ["http://***@h/"],
    b: { c: "s3://***@b/x?key=***" },
    n: 3,
  });
  assert.deepEqual(v.a, ["http://u:p@h/"]);
});
