import assert from "node:assert/strict";
import {
  ConfigError,
  formatIssue,
  interpolate,
  loadConfig,
  validateText,
} from "../../mod/config/load.ts";
import { f } from "../../mod/config/spec.ts";

const spec = f.object({
  http: f.object({
    endpoints: f.list(f.string({ description: "URL" }), {
      description: "endpoints",
      default: ["http://127.0.0.1:8080"],
    }),
    flush_interval: f.duration({ description: "flush", default: "1s" }),
    batch_bytes: f.size({ description: "batch", default: "1MiB", min: 1 }),
    workers: f.int({ description: "workers", default: 10, min: 1, max: 1000 }),
    gzip: f.bool({ description: "gzip", default: false }),
    token: f.optional(f.string({ description: "token", secret: true })),
  }, { description: "http" }),
  bucket: f.string({ description: "bucket", default: "logs" }),
}, { description: "test" });

function problems(text: string): ConfigError {
  try {
    validateText(spec, text, "agent.yaml", { env: (n) => ({ HOME_DIR: "/h" })[n] });
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

Deno.test("validateText() applies defaults to an empty file", () => {
  const c = validateText(spec, "", "agent.yaml");
  assert.deepEqual(c.http.endpoints, ["http://127.0.0.1:8080"]);
  assert.equal(c.http.flush_interval, 1000);
  assert.equal(c.http.batch_bytes, 1_048_576);
  assert.equal(c.http.token, undefined);
});

Deno.test("validateText() reports an unknown key with its line:column and a hint", () => {
  const e = problems("http:\n  workerz: 3\n");
  assert.equal(e.issues.length, 1);
  assert.equal(e.issues[0]!.path, "http.workerz");
  assert.deepEqual(e.issues[0]!.pos, { line: 2, col: 3 });
  assert.match(e.issues[0]!.message, /unknown key \(did you mean "workers"\?\)/);
  assert.match(e.message, /agent\.yaml:2:3: http\.workerz: unknown key/);
});

Deno.test("validateText() reports a wrong type with its line:column", () => {
  const e = problems("http:\n  workers: many\n");
  assert.equal(e.issues[0]!.path, "http.workers");
  assert.deepEqual(e.issues[0]!.pos, { line: 2, col: 12 });
  assert.match(e.issues[0]!.message, /must be an integer: got string "many"/);
});

Deno.test("validateText() reports a bad duration with its line:column", () => {
  const e = problems("bucket: b\nhttp:\n  flush_interval: 10 parsecs\n");
  assert.equal(e.issues[0]!.path, "http.flush_interval");
  assert.deepEqual(e.issues[0]!.pos, { line: 3, col: 19 });
  assert.match(e.issues[0]!.message, /must be a duration/);
});

Deno.test("validateText() reports an out-of-range value", () => {
  const e = problems("http:\n  workers: 0\n");
  assert.match(e.issues[0]!.message, /must be ≥ 1: got 0/);
  assert.deepEqual(e.issues[0]!.pos, { line: 2, col: 12 });
});

Deno.test("validateText() reports every problem at once, in file order", () => {
  const e = problems("http:\n  workers: x\n  gzip: 3\n  endpoints: [1, {a: 1}]\nextra: 1\n");
  assert.deepEqual(
    e.issues.map((i) => [i.path, i.pos?.line]),
    [["http.workers", 2], ["http.gzip", 3], ["http.endpoints[1]", 4], ["extra", 5]],
  );
});

Deno.test("validateText() reports a YAML syntax error with its line:column", () => {
  const e = problems("http:\n  workers: [1, 2\n  gzip: true\n");
  assert.match(e.issues[0]!.message, /YAML syntax error/);
  assert.ok(e.issues[0]!.pos);
  assert.ok(e.issues[0]!.pos!.line >= 2, `line ${e.issues[0]!.pos!.line}`);
});

Deno.test("validateText() rejects a duplicate key", () => {
  const e = problems("bucket: a\nbucket: b\n");
  assert.equal(e.issues[0]!.message, 'duplicate key "bucket" (first at line 1)');
  assert.equal(e.issues[0]!.pos?.line, 2);
});

Deno.test("loadConfig() names a missing file", async () => {
  await assert.rejects(
    () => loadConfig(spec, "/nonexistent/agent.yaml"),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /\/nonexistent\/agent\.yaml.*cannot read config: file not found/s);
      return true;
    },
  );
});

Deno.test("interpolate() expands ${VAR}, ${VAR:-default} and $$", () => {
  const env = (n: string) => ({ A: "1", EMPTY: "" })[n];
  assert.equal(interpolate("x${A}y", { env }), "x1y");
  assert.equal(interpolate("${B:-fallback}", { env }), "fallback");
  assert.equal(interpolate("${EMPTY:-d}", { env }), "d");
  assert.equal(interpolate("$${A}", { env }), "${A}");
  assert.deepEqual(interpolate("${B}", { env }), {
    error: "environment variable B is not set (write ${B:-default} for a default)",
  });
});

Deno.test("interpolate() reads ${credential:NAME} from CREDENTIALS_DIRECTORY", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/token`, "s3cr3t\n");
  assert.equal(interpolate("Bearer ${credential:token}", { credentialsDir: dir }), "Bearer s3cr3t");
  const missing = interpolate("${credential:nope}", { credentialsDir: dir });
  assert.ok(typeof missing === "object" && /cannot read credential nope/.test(missing.error));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("validateText() interpolates env into typed fields and names unset vars by position", () => {
  const env = (n: string) => ({ WORKERS: "4", GZ: "true", URL: "http://x" })[n];
  const c = validateText(
    spec,
    'http:\n  workers: ${WORKERS}\n  gzip: ${GZ}\n  endpoints: ["${URL}/a"]\n',
    "a.yaml",
    { env },
  );
  assert.equal(c.http.workers, 4);
  assert.equal(c.http.gzip, true);
  assert.deepEqual(c.http.endpoints, ["http://x/a"]);
  const e = problems("http:\n  token: ${NOT_SET}\n");
  assert.equal(e.issues[0]!.path, "http.token");
  assert.deepEqual(e.issues[0]!.pos, { line: 2, col: 10 });
  assert.match(e.issues[0]!.message, /NOT_SET is not set/);
});

Deno.test("validateText() applies overrides as if written in the file", () => {
  const c = validateText(spec, "http:\n  workers: 2\n", "a.yaml", {
    overrides: { "http.workers": "7", "bucket": "other" },
  });
  assert.equal(c.http.workers, 7);
  assert.equal(c.bucket, "other");
});

Deno.test("validateText() names a duplicate key and its path", () => {
  const e = problems("http:\n  workers: 2\n  gzip: true\n  workers: 3\n");
  assert.equal(e.issues.length, 1, JSON.stringify(e.issues));
  assert.equal(e.issues[0]!.path, "http.workers");
  assert.deepEqual(e.issues[0]!.pos, { line: 4, col: 3 });
  assert.match(e.issues[0]!.message, /duplicate key "workers" \(first at line 2\)/);
});

Deno.test("validateText() reports an unset ${VAR} once, even in a required field", () => {
  const required = f.object({
    name: f.string({ description: "name" }),
    sub: f.object({ url: f.string({ description: "url" }) }, { description: "sub" }),
  }, { description: "t" });
  try {
    validateText(required, "name: ${NOT_SET}\nsub:\n  url: ${ALSO_NOT_SET}/x\n", "a.yaml", {
      env: () => undefined,
    });
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.issues.map((i) => i.path), ["name", "sub.url"]);
    assert.match(e.issues[0]!.message, /NOT_SET is not set/);
    assert.match(e.issues[1]!.message, /ALSO_NOT_SET is not set/);
  }
});

Deno.test("validateText() puts a missing required key at its parent section's key", () => {
  const required = f.object({
    top: f.object({
      sub: f.object({ url: f.string({ description: "url" }) }, { description: "sub" }),
      other: f.int({ description: "other", default: 1 }),
    }, { description: "top" }),
  }, { description: "t" });
  const issues = (text: string) => {
    try {
      validateText(required, text, "a.yaml");
    } catch (e) {
      if (e instanceof ConfigError) return e.issues;
      throw e;
    }
    assert.fail("expected a ConfigError");
  };
  // sub: is there without url: at sub's key.
  assert.deepEqual(issues("top:\n  other: 2\n  sub:\n    x: 1\n").map((i) => [i.path, i.pos]), [
    ["top.sub.url", { line: 3, col: 3 }],
    ["top.sub.x", { line: 4, col: 5 }],
  ]);
  // No sub: at all: at top's key.
  assert.deepEqual(issues("\ntop:\n  other: 2\n").map((i) => [i.path, i.pos]), [
    ["top.sub.url", { line: 2, col: 1 }],
  ]);
});

Deno.test("validateText() places a check's problem at the key it names, or its parent", () => {
  const checked = f.object({
    source: f.enum(["s3", "file"] as const, { description: "source", default: "s3" }),
    s3: f.object({
      bucket: f.string({ description: "bucket", default: "", allowEmpty: true }),
    }, { description: "s3" }),
  }, {
    description: "t",
    check: (v) =>
      v.source === "s3" && !v.s3.bucket
        ? [{ key: "s3.bucket", message: "is required when source is s3" }]
        : [],
  });
  const at = (text: string) => {
    try {
      validateText(f.object({ sec: checked }, { description: "root" }), text, "a.yaml");
    } catch (e) {
      if (e instanceof ConfigError) return e.issues.map((i) => [i.path, i.pos, i.message]);
      throw e;
    }
    return [];
  };
  assert.deepEqual(at('sec:\n  source: s3\n  s3:\n    bucket: ""\n'), [
    ["sec.s3.bucket", { line: 4, col: 13 }, "is required when source is s3"],
  ]);
  assert.deepEqual(at("sec:\n  source: s3\n  s3: {}\n"), [
    ["sec.s3.bucket", { line: 3, col: 3 }, "is required when source is s3"],
  ]);
  assert.deepEqual(at("sec:\n  source: s3\n"), [
    ["sec.s3.bucket", { line: 1, col: 1 }, "is required when source is s3"],
  ]);
  assert.deepEqual(at("sec:\n  source: file\n"), []);
});

Deno.test("validateText() blames a bad override on the flag that set it", () => {
  try {
    validateText(spec, "http:\n  workers: 2\n", "a.yaml", {
      overrides: { "http.workers": "many" },
      overrideFlags: { "http.workers": "--workers" },
    });
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.issues.length, 1);
    assert.equal(e.issues[0]!.flag, "--workers");
    assert.equal(
      formatIssue("a.yaml", e.issues[0]!),
      '--workers: http.workers: must be an integer: got string "many"',
    );
  }
});
