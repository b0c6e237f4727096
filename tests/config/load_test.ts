import assert from "node:assert/strict";
import { ConfigError, interpolate, loadConfig, validateText } from "../../mod/config/load.ts";
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
  assert.match(e.issues[0]!.message, /YAML syntax error/);
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
