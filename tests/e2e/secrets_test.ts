// An endpoint URL with credentials must not leak through any output: logs, /status, /readyz,
// /metrics, validate --show.
import assert from "node:assert/strict";
import { join } from "node:path";
import { agentCommand, freePort } from "../_agent.ts";

const PASSWORD = "pw-Zk39Secret";
const API_KEY = "key-Qx71Secret";
const TOKEN = "tok-Lm52Secret";

async function text(stream: ReadableStream<Uint8Array>, into: { s: string }) {
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) into.s += chunk;
}

Deno.test("an endpoint's userinfo and secret query parameters appear in no output of the agent", async () => {
  const dir = await Deno.makeTempDir();
  const day = join(dir, "bucket", "year=2025", "month=1", "day=9");
  await Deno.mkdir(day, { recursive: true });
  await Deno.writeTextFile(join(day, "1736400000_1_1_1"), '{"a":1}\n{"a":2}\n');
  // A real server that fails every request, and a port nobody listens on.
  const failing = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("no", { status: 503 }),
  );
  const refused = freePort();
  const query = `?api_key=${API_KEY}&access_token=${TOKEN}&x-amz-signature=sig1secret&tenant=t1`;
  const urls = [
    `http://user:${PASSWORD}@127.0.0.1:${failing.addr.port}/in${query}`,
    `http://user:${PASSWORD}@127.0.0.1:${refused}/in${query}`,
  ];
  const config = join(dir, "agent.yaml");
  await Deno.writeTextFile(
    config,
    `stream:
  source: file
  file: { path: ${join(dir, "bucket")} }
  state_file: state.json
  processing: { delay_window: 0s, scan_interval: 1s, plain: allow }
  http:
    endpoints: [${urls.map((u) => JSON.stringify(u)).join(", ")}]
    flush_interval: 10ms
    retry: { initial_backoff: 10ms, max_backoff: 50ms }
log: { level: debug }
shutdown_timeout: 1s
`,
  );
  const port = freePort();
  const child = agentCommand(
    ["stream", "--config", config, "--status-listen", `127.0.0.1:${port}`],
    { env: { NO_COLOR: "1" }, stdout: "piped", stderr: "piped" },
  ).spawn();
  const stderr = { s: "" }, stdout = { s: "" };
  const reading = Promise.all([text(child.stderr, stderr), text(child.stdout, stdout)]);
  const outputs: Record<string, string> = {};
  try {
    // Until both endpoints failed and were logged out of rotation.
    for (let i = 0; i < 300 && (stderr.s.match(/out of rotation/g) ?? []).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const path of ["/status", "/readyz", "/metrics"]) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      outputs[path] = await res.text();
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading;
    await failing.shutdown();
  }
  outputs.stderr = stderr.s;
  outputs.stdout = stdout.s;
  const validate = await agentCommand(["validate", "--config", config, "--show"], {
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  outputs["validate --show"] = new TextDecoder().decode(validate.stdout) +
    new TextDecoder().decode(validate.stderr);

  const leaks: string[] = [];
  for (const [where, out] of Object.entries(outputs)) {
    for (const secret of [PASSWORD, API_KEY, TOKEN, "sig1secret"]) {
      if (out.includes(secret)) leaks.push(`${secret} in ${where}`);
    }
  }
  assert.deepEqual(leaks, []);
  // Every stderr line is JSON (log.format json, the default).
  for (const line of outputs.stderr!.split("\n").filter(Boolean)) JSON.parse(line);
  // The agent did print the endpoints and their errors (else this test proves nothing).
  assert.match(outputs.stderr, /out of rotation/);
  assert.match(outputs["/status"]!, /last_errors/);
  assert.match(outputs["validate --show"]!, /http:\/\/\*\*\*@127\.0\.0\.1/);
  assert.match(outputs["validate --show"]!, /api_key=\*\*\*&access_token=\*\*\*/);
  assert.match(outputs["validate --show"]!, /tenant=t1/);
  await Deno.remove(dir, { recursive: true });
});
