import assert from "node:assert/strict";
import { runAgent } from "./_agent.ts";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));

/** Run the agent as users do: main.ts with the compiled binary's permission set. */
const cli = (args: string[], opts: { env?: Record<string, string> } = {}) =>
  runAgent(args, opts.env);

Deno.test("edge-agent --version prints version, commit and Deno version", async () => {
  const r = await cli(["--version"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^edge-agent \d+\.\d+\.\d+ \(commit \S+, deno 2\.\d+\.\d+\)\n$/);
});

Deno.test("edge-agent --help lists every mode and exits 0; no arguments exits 2", async () => {
  const r = await cli(["--help"]);
  assert.equal(r.code, 0);
  for (const m of ["stream", "route", "monitor", "ingest", "tail", "discover", "process"]) {
    assert.match(r.stdout, new RegExp(`\\n  ${m} `));
  }
  assert.match(r.stdout, / {2}generate /);
  assert.match(r.stdout, / {2}receive /);
  assert.equal((await cli([])).code, 2);
});

Deno.test("edge-agent with an unknown mode or flag exits 2", async () => {
  const r = await cli(["frobnicate"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown mode or command "frobnicate"/);
  const f = await cli(["validate", "--config", "agent.example.yaml", "--bogus"]);
  assert.equal(f.code, 2);
  assert.match(f.stderr, /unknown flag --bogus/);
});

Deno.test("edge-agent validate accepts the shipped agent.example.yaml", async () => {
  const r = await cli(["validate", "--config", "agent.example.yaml"]);
  assert.equal(r.stderr, "");
  assert.equal(r.code, 0);
  assert.equal(r.stdout, "agent.example.yaml: ok\n");
});

Deno.test("agent.example.yaml is exactly what `edge-agent example` generates", async () => {
  const r = await cli(["example"]);
  assert.equal(r.code, 0);
  assert.equal(
    r.stdout,
    await Deno.readTextFile(`${root}/agent.example.yaml`),
    "run `deno task example` to regenerate agent.example.yaml",
  );
});

Deno.test("edge-agent validate lists every problem with file:line:col and exits 1", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/bad.yaml`;
  await Deno.writeTextFile(
    file,
    "status:\n  listen: nowhere\n  enabeld: true\nlog:\n  level: loud\n",
  );
  const r = await cli(["validate", "--config", file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${file}:2:11: status.listen: must match`));
  assert.match(
    r.stderr,
    new RegExp(`${file}:3:3: status.enabeld: unknown key \\(did you mean "enabled"\\?\\)`),
  );
  assert.match(
    r.stderr,
    new RegExp(`${file}:5:10: log.level: must be one of debug, info, warn, error`),
  );
  assert.match(r.stderr, /3 problem\(s\)/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("edge-agent validate --show masks secrets; a missing file exits 1", async () => {
  const missing = await cli(["validate", "--config", "/nonexistent.yaml"]);
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /\/nonexistent\.yaml: \(top level\): cannot read config: file not found/,
  );
  const none = await cli(["validate"]);
  assert.equal(none.code, 2);
});

Deno.test("edge-agent interpolates ${ENV} from the environment in validate", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/env.yaml`;
  await Deno.writeTextFile(file, "status:\n  listen: ${LISTEN}\n");
  const ok = await cli(["validate", "--config", file, "--show"], {
    env: { LISTEN: "127.0.0.1:9999" },
  });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /"listen": "127\.0\.0\.1:9999"/);
  const unset = await cli(["validate", "--config", file]);
  assert.equal(unset.code, 1);
  assert.match(
    unset.stderr,
    /env\.yaml:2:11: status\.listen: environment variable LISTEN is not set/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("SIGTERM drains in-flight work, persists state and exits 0; status answers meanwhile", async () => {
  const dir = await Deno.makeTempDir();
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-P=agent",
      "--quiet",
      "tests/testdata/drain_agent.ts",
      "drain",
      "--status-listen",
      `127.0.0.1:${port}`,
      "--work",
      "300ms",
      "--state-file",
      `${dir}/state.json`,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("started")) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  for (const path of ["/healthz", "/readyz", "/metrics", "/status"]) {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    assert.equal(res.status, 200, path);
    await res.body?.cancel();
  }
  child.kill("SIGTERM");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const status = await child.status;
  const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  assert.equal(status.code, 0, stderr);
  assert.match(out, /started\ndrained\n/);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/state.json`)), { drained: true });
  const shutdown = stderr.split("\n").filter(Boolean).map((l) => JSON.parse(l))
    .find((l) => l.msg === "shutting down: draining in-flight work");
  assert.equal(shutdown?.signal, "SIGTERM");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a second signal exits at once with 130", async () => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-P=agent",
      "--quiet",
      "tests/testdata/drain_agent.ts",
      "drain",
      "--status-listen",
      `127.0.0.1:${port}`,
      "--work",
      "1m",
      "--state-file",
      "/nonexistent/never.json",
    ],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("started")) out += (await reader.read()).value ?? "";
  child.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 200));
  child.kill("SIGINT");
  assert.equal((await child.status).code, 130);
  await reader.cancel();
});

Deno.test("every implemented mode starts and stops under the compiled binary's permission set", async () => {
  const { loadModes, isImplemented } = await import("../mod/modes/registry.ts");
  const modes = await loadModes();
  const dir = await Deno.makeTempDir();
  // A minimal config per mode that runs once and exits; a mode added later must add its own.
  // null: the mode needs a test service, and its own test starts it with the same permission set
  // (tail, ingest, monitor, route, discover, process: tests/modes/<mode>_test.ts).
  const configs: Record<string, string | null> = {
    route: null,
    tail: null,
    ingest: null,
    monitor: null,
    discover: null,
    process: null,
    stream:
      `stream:\n  source: file\n  file: {path: ${dir}}\n  processing: {once: true}\n  state_file: ${dir}/state.json\n`,
    // Port 9 (discard): nobody listens, so sends are refused and counted; it stops on time.
    generate: `generate: {port_start: 9, port_end: 9, rate: 100, duration: 500ms}\n`,
    receive: `receive: {port_start: 0, port_end: 0, duration: 500ms}\n`,
  };
  for (const m of modes.filter(isImplemented)) {
    const help = await cli([m.name, "--help"]);
    assert.equal(help.code, 0, `${m.name} --help: ${help.stderr}`);
    const config = configs[m.name];
    assert.ok(config !== undefined, `no start-up config for mode ${m.name} in this test`);
    if (config === null) continue;
    const port = 20000 + Math.floor(Math.random() * 20000);
    await Deno.writeTextFile(
      `${dir}/${m.name}.yaml`,
      `status: {listen: "127.0.0.1:${port}"}\n${config}`,
    );
    const r = await cli([m.name, "--config", `${dir}/${m.name}.yaml`]);
    assert.equal(r.code, 0, `${m.name}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /PermissionDenied|NotCapable|Requires .* access/);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("started with no arguments under AWS_LAMBDA_RUNTIME_API, the binary runs route's Lambda input", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close(); // nothing answers there
  const r = await cli([], { env: { AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}` } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Lambda Runtime API unavailable/);
});
