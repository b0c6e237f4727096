import assert from "node:assert/strict";
import { runDemo } from "../../mod/demo/demo.ts";
import { agentCommand, ROOT } from "../_agent.ts";

const dec = new TextDecoder();

/** `deno task demo`'s command line from deno.json, without the leading `deno`. */
async function demoTaskArgs(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const [deno, ...args] = (config.tasks.demo as string).split(/\s+/);
  assert.equal(deno, "deno");
  return args;
}

async function runDemoTask(extra: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...await demoTaskArgs(), ...extra],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("runDemo() delivers every line it wrote through the stream mode's pipeline", async () => {
  const lines: string[] = [];
  const r = await runDemo({ files: 4, fileBytes: 200_000, write: (l) => lines.push(l) });
  assert.ok(r.ok, lines.join("\n"));
  assert.equal(r.files, 4);
  assert.equal(r.received, r.lines);
  assert.match(lines.at(-1)!, /nothing lost$/);
});

Deno.test("deno task demo's entry point has no npm package in its module graph", async () => {
  // Dynamic imports count: Deno fetches the literal ones before the program starts.
  const args = await demoTaskArgs();
  const entry = args.find((a) => a.endsWith(".ts"))!;
  const lock = args.filter((a) => a.startsWith("--lock") || a === "--frozen");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", ...lock, entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, dec.decode(out.stderr));
  const info = JSON.parse(dec.decode(out.stdout));
  assert.deepEqual(Object.keys(info.npmPackages ?? {}), []);
  const external = (info.modules as { specifier: string }[])
    .map((m) => m.specifier)
    .filter((s) => !s.startsWith("file:") && !s.startsWith("node:"));
  assert.deepEqual(external, []);
});

Deno.test("deno task demo --help prints the usage and exits 0; an unknown argument exits 2", async () => {
  const help = await runDemoTask(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^edge-agent demo: /);
  assert.match(help.stdout, /Exit code 0 when the intakes received exactly the lines written/);
  const bad = await runDemoTask(["--files"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown argument --files/);
});

Deno.test("edge-agent demo --help prints the same usage and exits 0", async () => {
  const out = await agentCommand(["demo", "--help"], { stdout: "piped", stderr: "piped" })
    .output();
  assert.equal(out.code, 0, dec.decode(out.stderr));
  assert.match(dec.decode(out.stdout), /^edge-agent demo: run the main job on generated data/);
});
