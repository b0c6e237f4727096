// tests/tools.sh: README's test command installs the Debian packages its tests use when missing.
import assert from "node:assert/strict";
import { ROOT } from "./_agent.ts";

/** Run tools.sh with a PATH holding only `commands` (symlinks to the real ones). */
async function toolsWith(commands: string[], env: Record<string, string> = {}) {
  const bin = await Deno.makeTempDir();
  try {
    for (const c of commands) {
      const which = await new Deno.Command("bash", { args: ["-c", `command -v ${c}`] }).output();
      await Deno.symlink(new TextDecoder().decode(which.stdout).trim(), `${bin}/${c}`);
    }
    const out = await new Deno.Command("/bin/bash", {
      args: ["tests/tools.sh"],
      cwd: ROOT,
      clearEnv: true,
      env: { PATH: bin, ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
}

Deno.test("tools.sh names every missing package and, without apt-get, installs nothing", async () => {
  const r = await toolsWith(["id", "python3"], { CHROMIUM: "/nonexistent/chromium" });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /installing/);
  assert.match(
    r.stderr,
    /^== missing \(tests that use them will fail\): shellcheck systemd unzip openjdk-17-jre-headless maven (python3-venv )?chromium$/m,
  );
});

Deno.test("tools.sh with EDGE_AGENT_NO_INSTALL=1 only lists what is missing", async () => {
  const r = await toolsWith(["id", "python3", "apt-get", "shellcheck", "systemd-analyze"], {
    EDGE_AGENT_NO_INSTALL: "1",
    CHROMIUM: "/bin/sh", // any executable: chromium counts as present
  });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /installing/);
  assert.match(r.stderr, /: unzip openjdk-17-jre-headless maven( python3-venv)?$/m);
});
