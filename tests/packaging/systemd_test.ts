// Checks of packaging/systemd/edge-agent@.service with systemd's own tools (Debian `systemd`).
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const unitPath = fileURLToPath(
  new URL("../../packaging/systemd/edge-agent@.service", import.meta.url),
);
const dec = new TextDecoder();

async function analyze(args: string[]) {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("systemd-analyze", { args, stdout: "piped", stderr: "piped" })
      .output();
  } catch (e) {
    throw new Error("systemd-analyze is missing: apt-get install systemd", { cause: e });
  }
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `[Section]` → key → values (keys may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = line.match(/^\[(.+)\]$/);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    assert.ok(current, `key outside a section: ${line}`);
    const eq = line.indexOf("=");
    assert.ok(eq > 0, `not key=value: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

Deno.test("edge-agent@.service passes systemd-analyze verify", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // verify checks that ExecStart= exists: point it at a stand-in, the rest is the shipped unit.
    const bin = `${dir}/edge-agent`;
    await Deno.writeTextFile(bin, "#!/bin/sh\n", { mode: 0o755 });
    const unit = (await Deno.readTextFile(unitPath)).replaceAll("/usr/local/bin/edge-agent", bin);
    await Deno.writeTextFile(`${dir}/edge-agent@.service`, unit);
    const r = await analyze(["verify", `${dir}/edge-agent@stream.service`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim(), "", r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("edge-agent@.service rates an exposure of at most 2.0 in systemd-analyze security", async () => {
  const r = await analyze(["security", "--offline=true", unitPath]);
  const m = r.stdout.match(/Overall exposure level for \S+: (\d+\.\d+) (\w+)/);
  assert.ok(m, r.stdout + r.stderr);
  assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]} ${m[2]}:\n${r.stdout}`);
  assert.equal(m[2], "OK");
});

Deno.test("edge-agent@.service runs one mode per instance as a dedicated user, hardened", async () => {
  const unit = parseUnit(await Deno.readTextFile(unitPath));
  const s = unit.get("Service");
  assert.ok(s);
  const one = (k: string) => {
    const v = s.get(k);
    assert.ok(v, `[Service] ${k}= missing`);
    return v.at(-1);
  };
  assert.match(one("ExecStart")!, /^\/usr\/local\/bin\/edge-agent %i$/);
  assert.equal(one("Environment"), "EDGE_AGENT_CONFIG=%E/edge-agent/%i.yaml");
  const want: Record<string, string> = {
    User: "edge-agent",
    StateDirectory: "edge-agent",
    ConfigurationDirectory: "edge-agent",
    Restart: "on-failure",
    RestartSec: "10",
    StandardOutput: "journal",
    StandardError: "journal",
    NoNewPrivileges: "yes",
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    PrivateDevices: "yes",
    ProtectKernelTunables: "yes",
    ProtectKernelModules: "yes",
    ProtectKernelLogs: "yes",
    ProtectControlGroups: "yes",
    RestrictNamespaces: "yes",
    RestrictRealtime: "yes",
    LockPersonality: "yes",
    CapabilityBoundingSet: "",
    RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
    SystemCallArchitectures: "native",
    UMask: "0077",
  };
  for (const [k, v] of Object.entries(want)) assert.equal(one(k), v, k);
  assert.deepEqual(s.get("SystemCallFilter"), ["@system-service", "~@privileged @resources"]);
  // V8's JIT needs memory that becomes executable after being written.
  assert.equal(s.get("MemoryDenyWriteExecute"), undefined);
  assert.deepEqual(unit.get("Install")?.get("WantedBy"), ["multi-user.target"]);
});
