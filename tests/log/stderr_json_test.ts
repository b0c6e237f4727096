// With log.format json (the default), every line a mode run writes to stderr is JSON: its
// logs, a process warning from an npm package, and the failure that stops it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { agentArgs, agentCommand, ROOT } from "../_agent.ts";

function assertJsonLines(stderr: string): Record<string, unknown>[] {
  const lines = stderr.split("\n").filter((l) => l !== "");
  assert.ok(lines.length > 0, "something was written");
  return lines.map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      assert.fail(`not a JSON line on stderr: ${l}\n--- all of stderr ---\n${stderr}`);
    }
  });
}

async function agent(args: string[]) {
  const out = await agentCommand(args, { env: { NO_COLOR: "1" }, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("a mode run's config error and runtime failure are JSON lines on stderr", async () => {
  const dir = await Deno.makeTempDir();
  const bad = join(dir, "bad.yaml");
  await Deno.writeTextFile(bad, "stream:\n  sourse: file\n");
  const r = await agent(["stream", "--config", bad, "--no-status"]);
  assert.equal(r.code, 1);
  const lines = assertJsonLines(r.stderr);
  assert.match(String(lines[0]!.msg), /bad\.yaml:2:3: stream\.sourse: unknown key/);
  assert.equal(lines[0]!.level, "error");
  assert.equal(lines[0]!.mode, "stream");

  // A runtime failure: the status port is taken.
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ok = join(dir, "ok.yaml");
  await Deno.writeTextFile(ok, `stream:\n  source: file\n  file: { path: ${dir} }\n`);
  const r2 = await agent([
    "stream",
    "--config",
    ok,
    "--status-listen",
    `127.0.0.1:${taken.addr.port}`,
  ]);
  taken.close();
  assert.equal(r2.code, 1);
  assert.match(String(assertJsonLines(r2.stderr).at(-1)!.msg), /cannot serve the status endpoint/);

  // text stays text.
  const r3 = await agent(["stream", "--config", bad, "--no-status", "--log-format", "text"]);
  assert.match(r3.stderr, /^\S+bad\.yaml:2:3: stream\.sourse: unknown key/m);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("routeProcessWarnings(): an npm package's process warning is a JSON log line", async () => {
  const code = `
    import process from "node:process";
    import { Logger } from "${new URL("mod/log/logger.ts", `file://${ROOT}`).href}";
    import { routeProcessWarnings } from "${
    new URL("mod/log/process_warnings.ts", `file://${ROOT}`).href
  }";
    routeProcessWarnings(new Logger({ fields: { mode: "x" } }));
    setTimeout(() => {}, -5);
    process.emitWarning("something odd", { code: "X1", detail: "more" });
    await new Promise((r) => setTimeout(r, 50));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = assertJsonLines(new TextDecoder().decode(out.stderr));
  assert.deepEqual(lines.map((l) => [l.level, l.warning]), [
    ["warn", "TimeoutNegativeWarning"],
    ["warn", "Warning"],
  ]);
  assert.equal(lines[1]!.code, "X1");
});

Deno.test("an error nothing caught ends a mode run with exit 1 and a JSON log line", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: agentArgs(["crash", "--no-status"], [], "tests/testdata/crash_agent.ts"),
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, stderr);
  const last = assertJsonLines(stderr).at(-1)!;
  assert.equal(last.msg, "uncaught error: exiting");
  assert.match(String(last.error), /boom at http:\/\/\*\*\*@127\.0\.0\.1:1\/x\?token=\*\*\*/);
  assert.doesNotMatch(stderr, /pw-crash|tok-crash/);
});
