import assert from "node:assert/strict";
import { removeStaleTemps, writeFileAtomic } from "../../mod/pipeline/atomic_file.ts";
import { agentArgs, ROOT } from "../_agent.ts";

Deno.test("writeFileAtomic() replaces a file's content", async () => {
  const dir = await Deno.makeTempDir();
  await writeFileAtomic(`${dir}/s.json`, "old");
  await writeFileAtomic(`${dir}/s.json`, "new");
  assert.equal(await Deno.readTextFile(`${dir}/s.json`), "new");
  assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["s.json"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writeFileAtomic() names the path when the directory is missing", async () => {
  await assert.rejects(
    () => writeFileAtomic("/nonexistent-dir/x.json", "x"),
    /cannot write \/nonexistent-dir\/x\.json/,
  );
});

Deno.test("writeFileAtomic() under kill -9 leaves the old or the new state, never garbage", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/state.json`;
  const writer = `
    import { writeFileAtomic } from ${
    JSON.stringify(new URL("../../mod/pipeline/atomic_file.ts", import.meta.url).href)
  };
    const pad = "x".repeat(200_000);
    for (let i = 0; ; i++) await writeFileAtomic(${
    JSON.stringify(file)
  }, JSON.stringify({ i, pad }));
  `;
  await Deno.writeTextFile(`${dir}/writer.ts`, writer);
  for (let round = 0; round < 8; round++) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${dir}/writer.ts`],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await new Promise((r) => setTimeout(r, 150 + Math.random() * 250));
    child.kill("SIGKILL");
    await child.status;
    const text = await Deno.readTextFile(file).catch(() => undefined);
    if (text === undefined) continue; // killed before the first rename
    const state = JSON.parse(text); // throws on a torn file
    assert.equal(state.pad.length, 200_000);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("removeStaleTemps() removes temp files of writers that are gone, keeps those of live ones", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/state.json`;
  const dead = `${path}.tmp-999999999-abcd1234`;
  const live = `${path}.tmp-${Deno.ppid}-abcd1234`;
  const own = `${path}.tmp-${Deno.pid}-abcd1234`;
  for (const f of [dead, live, own]) await Deno.writeTextFile(f, "{}");
  assert.equal(await removeStaleTemps(path), 1);
  const left = [...Deno.readDirSync(dir)].map((e) => e.name).toSorted();
  assert.deepEqual(left, [live, own].map((f) => f.slice(dir.length + 1)).toSorted());
  await Deno.remove(dir, { recursive: true });
});

Deno.test("removeStaleTemps() with the agent's permissions removes a killed writer's temp file at once (CI: one a second old was kept)", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/state.json`;
  // A writer that just ended: spawned, reaped, its temp file written a moment ago.
  const writer = new Deno.Command("true").spawn();
  await writer.status;
  const dead = `${path}.tmp-${writer.pid}-abcd1234`;
  const live = `${path}.tmp-${Deno.pid}-abcd1234`;
  for (const f of [dead, live]) await Deno.writeTextFile(f, "{}");
  const out = await new Deno.Command(Deno.execPath(), {
    args: agentArgs([path], [], "tests/pipeline/_remove_temps_probe.ts"),
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(out.success);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "1");
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [live.slice(dir.length + 1)]);
  await Deno.remove(dir, { recursive: true });
});
