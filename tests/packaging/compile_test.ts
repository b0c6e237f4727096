// Tests of `deno task compile` (packaging/compile.ts). No real denort runtime can be had on our
// machines, so the runtime here is a stand-in: /usr/bin/true, a real ELF executable of the host
// target. `deno compile` appends the program to it exactly as to denort, so the permissions and
// files baked into the output can be read back; only running the output needs the real thing.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  compileCommand,
  parseCompileArgs,
  PERMISSION_SET,
  RUN_FLAGS,
} from "../../packaging/compile.ts";
import {
  denortCachePath,
  elfTarget,
  parseTarget,
  resolveDenort,
  TARGETS,
} from "../../packaging/denort.ts";
import { zipFiles } from "../../packaging/zip_writer.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const hostTarget = parseTarget(Deno.build.target);
const FAKE_DENORT = "/usr/bin/true";

/** A TCP server that accepts connections and never answers: a black-holed download host. */
function blackHole(): { port: number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const c of listener) conns.push(c);
    } catch { /* closed */ }
  })();
  return {
    port: listener.addr.port,
    close: () => {
      listener.close();
      conns.forEach((c) => c.close());
    },
  };
}

async function compileTs(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "packaging/compile.ts", ...args],
    cwd: root,
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    // A hang guard, not a speed assertion: the script must never wait on the network for long.
    signal: AbortSignal.timeout(120_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The JSON metadata `deno compile` embeds in its output ({"argv":..., "permissions":...}). */
function embeddedMetadata(bin: Uint8Array): Record<string, unknown> {
  const text = new TextDecoder("latin1").decode(bin);
  const start = text.indexOf('{"argv":');
  assert.ok(start >= 0, "no deno compile metadata in the output");
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === "\\") i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === "{") depth++;
    else if (ch === "}" && --depth === 0) return JSON.parse(text.slice(start, i + 1));
  }
  throw new Error("unterminated metadata JSON");
}

/**
 * A fresh DENO_DIR under `tmp` (no runtime cached) sharing the npm cache, so nothing is
 * downloaded: compile.ts's graph has an npm package (fflate), and with one Deno installs every
 * package of deno.lock before the script starts.
 */
async function freshDenoDir(tmp: string): Promise<string> {
  const info = JSON.parse(
    new TextDecoder().decode(
      (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
        .output()).stdout,
    ),
  );
  const denoDir = `${tmp}/deno`;
  await Deno.mkdir(denoDir);
  await Deno.symlink(info.npmCache, `${denoDir}/npm`);
  return denoDir;
}

function baseEnv(denoDir: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    DENO_DIR: denoDir,
  };
}

Deno.test("parseCompileArgs() takes the host by default, --all for x64 and arm64", () => {
  assert.deepEqual(parseCompileArgs([]).targets, [hostTarget]);
  assert.deepEqual(parseCompileArgs(["--all"]).targets, Object.values(TARGETS));
  assert.deepEqual(
    parseCompileArgs(["--target", "arm64", "--target=aarch64-unknown-linux-gnu"]).targets,
    [
      "aarch64-unknown-linux-gnu",
    ],
  );
  assert.throws(() => parseCompileArgs(["--target", "windows"]), /unsupported target "windows"/);
  assert.throws(() => parseCompileArgs(["--all", "--output", "x"]), /exactly one target/);
});

Deno.test("compileCommand() takes permissions from deno.json's permission set only", async () => {
  const args = compileCommand(hostTarget, "/tmp/x");
  assert.ok(args.includes(`--permission-set=${PERMISSION_SET}`));
  assert.ok(args.includes("--no-prompt"));
  assert.equal(args.filter((a) => /^(-A|--allow-|-[RWNESP]$)/.test(a)).length, 0, args.join(" "));
  const denoJson = JSON.parse(await Deno.readTextFile(`${root}/deno.json`));
  assert.ok(
    denoJson.permissions?.[PERMISSION_SET],
    `deno.json has no "${PERMISSION_SET}" permission set`,
  );
});

Deno.test("the binary's runtime flags (V8's, no code cache) are compiled in and passed by `deno task demo`", async () => {
  const args = compileCommand(hostTarget, "/tmp/x");
  for (const flag of RUN_FLAGS) assert.ok(args.includes(flag), `${flag} in ${args.join(" ")}`);
  assert.ok(RUN_FLAGS.includes("--no-code-cache"));
  const demo: string = JSON.parse(await Deno.readTextFile(`${root}/deno.json`)).tasks.demo;
  for (const flag of RUN_FLAGS) assert.ok(demo.split(" ").includes(flag), `${flag} in ${demo}`);
});

Deno.test("compile.ts fails fast and says how to supply denort when the download host is unreachable", async () => {
  const tmp = await Deno.makeTempDir();
  const denoDir = await freshDenoDir(tmp); // no cached runtime
  const hole = blackHole();
  try {
    const r = await compileTs(["--probe-timeout", "2000", "--out-dir", `${denoDir}/out`], {
      ...baseEnv(denoDir),
      HTTPS_PROXY: `http://127.0.0.1:${hole.port}`, // every HTTPS request goes into the hole
    });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /no denort runtime for \S+: DENORT_BIN is not set/);
    assert.match(r.stderr, /Deno download host is unreachable .*no answer within 2000 ms/);
    assert.match(r.stderr, /--denort \/path\/to\/denort-\S+\.zip/);
    assert.ok(r.stderr.includes(denortCachePath(denoDir, Deno.version.deno, hostTarget)));
    assert.match(r.stderr, /DENORT_BIN=\/path\/to\/denort/);
    // The section it points to exists.
    const [, doc, section] = /See (\S+\.md), "([^"]+)"/.exec(r.stderr) ?? [];
    assert.ok(doc && section, r.stderr);
    const headings = (await Deno.readTextFile(new URL(`../../${doc}`, import.meta.url)))
      .split("\n").filter((l) => l.startsWith("#")).map((l) => l.replace(/^#+ /, ""));
    assert.ok(headings.includes(section), `${doc} has no heading "${section}"`);
    // It stopped before deno compile: nothing built.
    await assert.rejects(Deno.stat(`${denoDir}/out`), Deno.errors.NotFound);
  } finally {
    hole.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("resolveDenort() rejects a DENORT_BIN built for another target", async () => {
  const other = hostTarget === TARGETS.x64 ? TARGETS.arm64 : TARGETS.x64;
  await assert.rejects(
    resolveDenort(other, { denoDir: "/nonexistent", denortBin: FAKE_DENORT }),
    new RegExp(`DENORT_BIN=${FAKE_DENORT} is a ${hostTarget} runtime, not ${other}`),
  );
  const src = await resolveDenort(hostTarget, { denoDir: "/nonexistent", denortBin: FAKE_DENORT });
  assert.equal(src.kind, "env");
  assert.match(src.warnings.join(), /could not confirm it is denort/);
});

Deno.test("compile.ts --denort fills the cache and bakes deno.json's permissions and the build info in", async () => {
  assert.equal(
    elfTarget(await Deno.readFile(FAKE_DENORT)),
    hostTarget,
    "stand-in runtime must be a host ELF",
  );
  const tmp = await Deno.makeTempDir();
  try {
    const denoDir = await freshDenoDir(tmp);
    const zip = `${tmp}/denort-${hostTarget}.zip`;
    await Deno.writeFile(
      zip,
      await zipFiles([{ name: "denort", data: await Deno.readFile(FAKE_DENORT), mode: 0o755 }]),
    );

    const r = await compileTs(["--denort", zip, "--out-dir", `${tmp}/dist`], {
      ...baseEnv(denoDir),
      EDGE_AGENT_GIT_COMMIT: "abc123def456",
    });
    assert.equal(r.code, 0, r.stderr);
    const cached = denortCachePath(denoDir, Deno.version.deno, hostTarget);
    assert.deepEqual(await Deno.readFile(cached), await Deno.readFile(zip));
    assert.match(r.stderr, new RegExp(`runtime from cache ${cached}`));

    const bin = await Deno.readFile(`${tmp}/dist/edge-agent-${hostTarget}`);
    const meta = embeddedMetadata(bin);
    const perms = meta.permissions as Record<string, unknown>;
    const set = JSON.parse(await Deno.readTextFile(`${root}/deno.json`))
      .permissions[PERMISSION_SET] as Record<
        string,
        unknown
      >;
    for (const kind of ["read", "write", "net", "env", "sys", "ffi", "run"]) {
      const want = set[kind];
      const got = perms[`allow_${kind}`];
      if (want === true) {
        assert.deepEqual(got, [], `${kind}: deno.json grants it, the binary does not`);
      } else if (Array.isArray(want)) assert.equal((got as unknown[]).length, want.length, kind);
      else assert.equal(got, null, `${kind}: the binary grants it, deno.json does not`);
    }
    assert.equal(perms.prompt, false);

    const text = new TextDecoder("latin1").decode(bin);
    assert.match(text, /"commit": "abc123def456"/);
    assert.match(text, new RegExp(`"deno": "${Deno.version.deno.replaceAll(".", "\\.")}"`));
    assert.match(text, new RegExp(`"target": "${hostTarget}"`));
    // The build info is transient: run from source, the version says "dev".
    await assert.rejects(Deno.stat(`${root}/dist/.build_info.json`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
