// The CLI's commands, flags and validate's cross-field rules, run as users run them (main.ts
// under the compiled binary's permission set).
import assert from "node:assert/strict";
import { runAgent } from "./_agent.ts";

const cli = runAgent;

/** A mode run's stderr as text: the `msg` of each JSON log line (log.format json, the default). */
function messages(stderr: string): string {
  return stderr.split("\n").filter(Boolean).map((l) => JSON.parse(l).msg).join("\n");
}

/** validate's output for a config file holding `text`. */
async function validate(text: string, env: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/agent.yaml`;
  try {
    await Deno.writeTextFile(file, text);
    const r = await cli(["validate", "--config", file], env);
    return { ...r, stderr: r.stderr.replaceAll(file, "agent.yaml") };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const command of ["validate", "example", "demo", "healthcheck"]) {
  Deno.test(`edge-agent ${command} --help prints its usage and exits 0`, async () => {
    const r = await cli([command, "--help"]);
    assert.equal(r.stderr, "");
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^edge-agent ${command}: `));
    assert.match(r.stdout, new RegExp(`\\nUsage: edge-agent ${command}`));
  });
}

Deno.test("edge-agent validate refuses what a mode refuses at start, with file:line:col", async () => {
  const r = await validate(
    [
      "status:",
      "  listen: 127.0.0.1:70000",
      "stream:",
      "  source: s3",
      "  s3:",
      "    prefix: logs/",
      "discover:",
      "  shard_index: 2",
      "  shard_count: 2",
      "generate:",
      "  port_start: 600",
      "  port_end: 599",
      "process:",
      "  source: s3",
      "",
    ].join("\n"),
  );
  assert.equal(r.code, 1);
  assert.deepEqual(r.stderr.trimEnd().split("\n"), [
    "agent.yaml:2:11: status.listen: the port must be 0 to 65535: got 70000",
    "agent.yaml:5:3: stream.s3.bucket: is required with source: s3",
    "agent.yaml:8:16: discover.shard_index: must be below shard_count (2): got 2",
    "agent.yaml:12:13: generate.port_end: must not be below port_start (600): got 599",
    "agent.yaml:13:1: process.s3.bucket: is required with source: s3",
    "5 problem(s) in agent.yaml",
  ]);
});

Deno.test("edge-agent validate reports an unset ${VAR} once and names a duplicate key", async () => {
  const r = await validate(
    "stream:\n  source: s3\n  s3:\n    bucket: ${NO_SUCH_BUCKET_VAR}\n  source: file\n",
  );
  assert.equal(r.code, 1);
  assert.deepEqual(r.stderr.trimEnd().split("\n"), [
    "agent.yaml:4:13: stream.s3.bucket: environment variable NO_SUCH_BUCKET_VAR is not set (write ${NO_SUCH_BUCKET_VAR:-default} for a default)",
    'agent.yaml:5:3: stream.source: duplicate key "source" (first at line 2)',
    "2 problem(s) in agent.yaml",
  ]);
});

Deno.test("a boolean flag takes true or false only: --once=maybe exits 2", async () => {
  const r = await cli(["stream", "--once=maybe", "--no-status"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^edge-agent: --once takes no value, or =true or =false: got "maybe"$/m);
});

Deno.test("a bad --log-level is blamed on the flag, not on the config file", async () => {
  const r = await cli(["stream", "--log-level", "loud", "--no-status"]);
  assert.equal(r.code, 1);
  assert.match(
    messages(r.stderr),
    /^--log-level: log\.level: must be one of debug, info, warn, error: got string "loud"$/m,
  );
});

Deno.test("edge-agent healthcheck asks the config's status.listen (a wildcard host on loopback)", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => new Response(null, { status: new URL(req.url).pathname === "/healthz" ? 200 : 404 }),
  );
  const dir = await Deno.makeTempDir();
  try {
    const check = async (status: string) => {
      await Deno.writeTextFile(`${dir}/agent.yaml`, `status:\n${status}`);
      return await cli(["healthcheck"], { EDGE_AGENT_CONFIG: `${dir}/agent.yaml` });
    };
    const up = await check(`  listen: 0.0.0.0:${server.addr.port}\n`);
    assert.equal(up.code, 0, up.stderr);
    server.shutdown();
    await server.finished;
    const down = await check(`  listen: 0.0.0.0:${server.addr.port}\n`);
    assert.equal(down.code, 1);
    const off = await check("  enabled: false\n");
    assert.equal(off.code, 1);
    assert.match(off.stderr, /status\.enabled is false/);
  } finally {
    await server.shutdown().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a mode refuses at start what validate refuses, with the same line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/agent.yaml`;
    await Deno.writeTextFile(file, "stream:\n  source: s3\n  s3:\n    prefix: logs/\n");
    const line = `${file}:3:3: stream.s3.bucket: is required with source: s3`;
    const v = await cli(["validate", "--config", file]);
    assert.equal(v.code, 1);
    assert.match(v.stderr, new RegExp(`^${line}$`, "m"));
    const m = await cli(["stream", "--config", file, "--no-status"]);
    assert.equal(m.code, 1);
    assert.equal(messages(m.stderr), line);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("modesFor() loads the mode run and the modes whose sections its config has; anything else loads all", async () => {
  const { modesFor } = await import("../main.ts");
  const { MODE_NAMES } = await import("../mod/modes/registry.ts");
  const names = async (argv: string[]) => (await modesFor(argv)).map((m) => m.name);
  const dir = await Deno.makeTempDir();
  const config = async (text: string) => {
    const file = `${dir}/${crypto.randomUUID()}.yaml`;
    await Deno.writeTextFile(file, text);
    return file;
  };
  assert.deepEqual(await names(["generate", "--rate", "5", "--no-gso"]), ["generate"]);
  const own = await config("log: {level: warn}\ngenerate: {rate: 5}\n");
  assert.deepEqual(await names(["generate", "--config", own]), ["generate"]);
  assert.deepEqual(await names(["-c", own, "generate"]), ["generate"]);
  const two = await config("generate: {rate: 5}\nstream: {state_file: x}\n");
  assert.deepEqual(await names(["generate", `--config=${two}`]), ["stream", "generate"]);
  // Keys that are no section (monitor's reference layout, a typo), a file that does not parse,
  // and commands that are no mode: everything, so the errors and layouts are as before.
  for (const text of ["generate: {}\nazure: {}\n", "generate: [\n", "- a\n"]) {
    assert.deepEqual(await names(["generate", "--config", await config(text)]), MODE_NAMES);
  }
  assert.deepEqual(await names(["generate", "--config", `${dir}/missing.yaml`]), MODE_NAMES);
  for (const argv of [[], ["--help"], ["validate", "--config", own], ["example"], ["frobnicate"]]) {
    assert.deepEqual(await names(argv), MODE_NAMES, argv.join(" "));
  }
  // Flags that parse otherwise with the mode's own booleans: tail's --raw takes no value, so
  // the command is tail, not generate.
  assert.deepEqual(await names(["--raw", "generate", "tail"]), MODE_NAMES);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("generate still refuses a config whose stream section is wrong (other sections validated as before)", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/agent.yaml`;
  await Deno.writeTextFile(
    file,
    "generate: {rate: 5, duration: 1s}\nstream: {batch_lines: many}\n",
  );
  const r = await cli(["generate", "--config", file, "--no-status"]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /stream/);
  await Deno.remove(dir, { recursive: true });
});
