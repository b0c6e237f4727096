// End to end: the agent process (main.ts, the binary's permissions) tailing real files into a
// real HTTP intake: the Kubernetes sidecar's own ConfigMap config, and kill -9 during rotation.
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { agentCommand, freePort, ROOT } from "../_agent.ts";
import { lines, text, writeRotating } from "../sources/_tail_writer.ts";

const dec = new TextDecoder();

/** A real HTTP intake on `port` keeping every line (repeats included). */
function intake(port = 0) {
  const got: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req) => {
    for (const l of dec.decode(await req.arrayBuffer()).split("\n")) if (l !== "") got.push(l);
    return new Response(null, { status: 204 });
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, got, close: () => server.shutdown() };
}

async function until(cond: () => boolean | Promise<boolean>, what: () => string, ms = 120_000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function agent(
  config: string,
  { env = {}, args = [], stderr = "piped" }: {
    env?: Record<string, string>;
    args?: string[];
    stderr?: "piped" | "null";
  } = {},
) {
  return agentCommand(["stream", "--config", config, ...args], { env, stdout: "null", stderr })
    .spawn();
}

async function get(url: string): Promise<number> {
  try {
    const res = await fetch(url);
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

Deno.test("the sidecar's ConfigMap config tails the app's logs to the intake; liveness holds while the intake is down", async () => {
  const manifest = await Deno.readTextFile(join(ROOT, "packaging/kubernetes/sidecar.yaml"));
  const configMap = parseAllDocuments(manifest).map((d) => d.toJS()).find((o) =>
    o.kind === "ConfigMap"
  );
  const dir = await Deno.makeTempDir();
  const appLogs = join(dir, "app");
  const state = join(dir, "state");
  await Deno.mkdir(appLogs);
  await Deno.mkdir(state);
  await Deno.writeTextFile(join(dir, "agent.yaml"), configMap.data["agent.yaml"]);
  // The pod's volumes and the intake's address, as the Deployment would give them.
  const port = freePort();
  const status = freePort();
  const want = lines("app", 0, 500);
  await Deno.writeTextFile(join(appLogs, "app.log"), text(want));
  const child = agent(join(dir, "agent.yaml"), {
    env: { APP_LOG_DIR: appLogs, STATE_DIR: state, INTAKE_URL: `http://127.0.0.1:${port}/ingest` },
    args: ["--status-listen", `127.0.0.1:${status}`],
  });
  const stderr = new Response(child.stderr).text();
  try {
    // The intake is down: the agent is alive (liveness) though not ready.
    await until(
      async () => await get(`http://127.0.0.1:${status}/healthz`) === 200,
      () => "no /healthz",
    );
    await until(
      async () => await get(`http://127.0.0.1:${status}/readyz`) === 503,
      () => "/readyz did not report the intake down",
    );
    const into = intake(port);
    await until(() => into.got.length >= want.length, () => `${into.got.length}/${want.length}`);
    // The app rotates by rename and goes on writing.
    await Deno.rename(join(appLogs, "app.log"), join(appLogs, "app.log.1"));
    const more = lines("app2", 0, 300);
    want.push(...more);
    await Deno.writeTextFile(join(appLogs, "app.log"), text(more));
    await until(() => into.got.length >= want.length, () => `${into.got.length}/${want.length}`);
    await new Promise((r) => setTimeout(r, 1500));
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0, await stderr);
    assert.deepEqual(into.got.toSorted(), want.toSorted());
    await into.close();
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kill -9 three times during rename rotation: nothing lost, duplicates within the batches in flight", async () => {
  const dir = await Deno.makeTempDir();
  const into = intake();
  const workers = 4;
  const batchLines = 200;
  await Deno.writeTextFile(
    join(dir, "agent.yaml"),
    `status: {enabled: false}\nlog: {level: warn}\nstream:\n  source: tail\n` +
      `  tail: {include: ["${dir}/app.log*"], poll_interval: 100ms, ` +
      `max_read_bytes: 16KiB}\n` +
      `  http: {endpoints: ["${into.url}"], workers: ${workers}, batch_lines: ${batchLines}, ` +
      `flush_interval: 50ms}\n  state_file: state.json\n`,
  );
  const config = join(dir, "agent.yaml");
  let child = agent(config, { stderr: "null" });
  // The writer of the rotation test (5,000 lines/s, a rename every 2 s), for 12 s here.
  const writing = writeRotating(dir, { seconds: 12, perSecond: 5000, rotateEvery: 2000 });
  const kills: number[] = [];
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 3000));
    kills.push(into.got.length);
    child.kill("SIGKILL");
    await child.status;
    child = agent(config, { stderr: i === 2 ? "piped" : "null" });
  }
  const want = await writing;
  const unique = () => new Set(into.got).size;
  await until(() => unique() >= want.length, () => `${unique()}/${want.length}`);
  await new Promise((r) => setTimeout(r, 1500));
  child.kill("SIGTERM");
  const stderr = await new Response(child.stderr).text();
  assert.equal((await child.status).code, 0, stderr);
  await into.close();

  const got = new Set(into.got);
  const missing = want.filter((l) => !got.has(l));
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} lines lost`);
  const duplicates = into.got.length - unique();
  // What a kill -9 can re-send: the lines of batches delivered whose ranges were not yet
  // checkpointed, i.e. the batches in flight (workers) plus the one being filled, per kill.
  const bound = 3 * (workers + 1) * batchLines;
  console.log(
    `kill -9 x3 at ${
      kills.join(", ")
    } lines: ${want.length} lines, ${duplicates} duplicates (bound ${bound})`,
  );
  assert.ok(duplicates <= bound, `${duplicates} duplicates > ${bound}`);
  assert.equal(new Set(into.got).size, want.length);
  await Deno.remove(dir, { recursive: true });
});
