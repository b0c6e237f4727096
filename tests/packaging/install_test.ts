// Tests of packaging/install.sh and uninstall.sh into scratch roots (DESTDIR). They need root
// (owners), bash, systemd-sysusers/systemctl/systemd-creds (Debian `systemd`) and shellcheck
// (Debian `shellcheck`).
//
// The binary installed is a stand-in: a two-line script running main.ts with deno.json's
// "agent" permission set, i.e. the same program and permissions as the compiled binary. The real
// binary cannot be built here (no denort runtime can be downloaded, see compile_test.ts), and
// the installer only needs `--version`, `example` and `validate`, which this runs for real.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const install = `${root}packaging/install.sh`;
const uninstall = `${root}packaging/uninstall.sh`;
const dec = new TextDecoder();

interface Sandbox {
  dir: string;
  destdir: string;
  binary: string;
  /** PATH whose `systemctl` records its calls in `${dir}/systemctl.log`, then runs the real one. */
  path: string;
}

async function sandbox(): Promise<Sandbox> {
  const dir = await Deno.makeTempDir({ prefix: "edge-agent-install-" });
  const binary = `${dir}/edge-agent`;
  await Deno.writeTextFile(
    binary,
    `#!/bin/sh\nexec "${Deno.execPath()}" run --quiet -P=agent --config "${root}deno.json" "${root}main.ts" "$@"\n`,
    { mode: 0o755 },
  );
  await Deno.mkdir(`${dir}/bin`);
  const real = dec.decode(
    (await new Deno.Command("bash", { args: ["-c", "command -v systemctl"], stdout: "piped" })
      .output()).stdout,
  ).trim();
  await Deno.writeTextFile(
    `${dir}/bin/systemctl`,
    `#!/bin/sh\necho "$*" >> "${dir}/systemctl.log"\nexec "${real || "/bin/false"}" "$@"\n`,
    { mode: 0o755 },
  );
  return { dir, destdir: `${dir}/root`, binary, path: `${dir}/bin:${Deno.env.get("PATH")}` };
}

async function sh(sb: Sandbox, script: string, args: string[]) {
  const out = await new Deno.Command("bash", {
    args: [script, ...args],
    env: { PATH: sb.path, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function passwdEntry(destdir: string, user: string): Promise<{ uid: number; gid: number }> {
  const line = (await Deno.readTextFile(`${destdir}/etc/passwd`)).split("\n").find((l) =>
    l.startsWith(`${user}:`)
  );
  assert.ok(line, `no ${user} in ${destdir}/etc/passwd`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

async function assertFile(path: string, mode: number, uid: number, gid: number, dir = false) {
  const st = await Deno.lstat(path);
  assert.equal(
    dir ? st.isDirectory : st.isFile,
    true,
    `${path}: not a ${dir ? "directory" : "file"}`,
  );
  assert.equal((st.mode ?? 0) & 0o7777, mode, `${path}: mode ${(st.mode ?? 0).toString(8)}`);
  assert.equal(st.uid, uid, `${path}: owner`);
  assert.equal(st.gid, gid, `${path}: group`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("install.sh installs binary, unit, user, config and credentials into a scratch root", async () => {
  const sb = await sandbox();
  try {
    await Deno.writeTextFile(`${sb.dir}/secret`, "s3cr3t");
    const r = await sh(sb, install, [
      "--destdir",
      sb.destdir,
      "--binary",
      sb.binary,
      "--mode",
      "stream",
      "--mode",
      "route",
      "--credential",
      `aws_secret_access_key=${sb.dir}/secret`,
      "--collector-unit",
      "edgedelta",
      "--no-start",
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(
      await exists(`${sb.dir}/systemctl.log`),
      false,
      "--no-start must not call systemctl",
    );

    const d = sb.destdir;
    const { uid, gid } = await passwdEntry(d, "edge-agent");
    assert.ok(uid > 0 && gid > 0);
    await assertFile(`${d}/usr/local/bin/edge-agent`, 0o755, 0, 0);
    assert.deepEqual(
      await Deno.readFile(`${d}/usr/local/bin/edge-agent`),
      await Deno.readFile(sb.binary),
    );
    await assertFile(`${d}/usr/local/lib/systemd/system/edge-agent@.service`, 0o644, 0, 0);
    assert.equal(
      await Deno.readTextFile(`${d}/usr/local/lib/systemd/system/edge-agent@.service`),
      await Deno.readTextFile(`${root}packaging/systemd/edge-agent@.service`),
    );
    await assertFile(`${d}/usr/local/lib/sysusers.d/edge-agent.conf`, 0o644, 0, 0);
    await assertFile(`${d}/etc/edge-agent`, 0o750, 0, gid, true);
    for (const mode of ["stream", "route"]) {
      await assertFile(`${d}/etc/edge-agent/${mode}.yaml`, 0o640, 0, gid);
      assert.match(await Deno.readTextFile(`${d}/etc/edge-agent/${mode}.yaml`), /^status:/m);
      const collector = await Deno.readTextFile(
        `${d}/etc/systemd/system/edge-agent@${mode}.service.d/60-collector.conf`,
      );
      for (const dep of ["BindsTo", "PartOf", "After"]) {
        assert.match(collector, new RegExp(`^${dep}=edgedelta\\.service$`, "m"));
      }
    }
    await assertFile(`${d}/etc/edge-agent/credentials`, 0o700, 0, 0, true);
    await assertFile(`${d}/etc/edge-agent/credentials/aws_secret_access_key`, 0o600, 0, 0);
    assert.equal(
      await Deno.readTextFile(`${d}/etc/edge-agent/credentials/aws_secret_access_key`),
      "s3cr3t",
    );
    assert.match(
      await Deno.readTextFile(`${d}/etc/systemd/system/edge-agent@.service.d/50-credentials.conf`),
      /^LoadCredential=aws_secret_access_key:\/etc\/edge-agent\/credentials\/aws_secret_access_key$/m,
    );
    await assertFile(`${d}/var/lib/edge-agent`, 0o750, uid, gid, true);
    assert.equal(await exists(`${d}/etc/systemd/system/multi-user.target.wants`), false);
  } finally {
    await Deno.remove(sb.dir, { recursive: true });
  }
});

Deno.test("install.sh re-run upgrades the binary, keeps the config, and enables offline", async () => {
  const sb = await sandbox();
  try {
    const args = ["--destdir", sb.destdir, "--binary", sb.binary, "--mode", "stream"];
    assert.equal((await sh(sb, install, [...args, "--no-start"])).code, 0);
    const cfg = `${sb.destdir}/etc/edge-agent/stream.yaml`;
    await Deno.writeTextFile(cfg, "# edited by the operator\n", { append: true });
    const edited = await Deno.readTextFile(cfg);
    await Deno.writeTextFile(sb.binary, "# version 2\n", { append: true });

    const r = await sh(sb, install, args); // no --no-start: offline enable with systemctl --root
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /kept existing .*stream\.yaml/);
    assert.equal(await Deno.readTextFile(cfg), edited);
    assert.deepEqual(
      await Deno.readFile(`${sb.destdir}/usr/local/bin/edge-agent`),
      await Deno.readFile(sb.binary),
    );
    const log = await Deno.readTextFile(`${sb.dir}/systemctl.log`);
    assert.equal(log.trim(), `--root=${sb.destdir} enable edge-agent@stream.service`);
    assert.equal(
      await Deno.readLink(
        `${sb.destdir}/etc/systemd/system/multi-user.target.wants/edge-agent@stream.service`,
      ),
      "/usr/local/lib/systemd/system/edge-agent@.service",
    );

    // The same run again changes nothing.
    const again = await sh(sb, install, [...args, "--no-start"]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /binary unchanged/);

    // An explicit --config replaces the config and keeps the previous one.
    await Deno.writeTextFile(`${sb.dir}/new.yaml`, "log:\n  level: debug\n");
    const swapped = await sh(sb, install, [
      ...args,
      "--no-start",
      "--config",
      `${sb.dir}/new.yaml`,
    ]);
    assert.equal(swapped.code, 0, swapped.stderr);
    assert.equal(await Deno.readTextFile(cfg), "log:\n  level: debug\n");
    assert.equal(await Deno.readTextFile(`${cfg}.old`), edited);
  } finally {
    await Deno.remove(sb.dir, { recursive: true });
  }
});

Deno.test("install.sh refuses an invalid config before changing anything", async () => {
  const sb = await sandbox();
  try {
    await Deno.writeTextFile(`${sb.dir}/bad.yaml`, "status:\n  enabled: maybe\nbogus: 1\n");
    const r = await sh(sb, install, [
      "--destdir",
      sb.destdir,
      "--binary",
      sb.binary,
      "--config",
      `${sb.dir}/bad.yaml`,
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.yaml:3:1: bogus: unknown key/);
    assert.match(r.stderr, /config for stream .* is invalid: nothing installed or changed/);
    assert.equal(await exists(`${sb.destdir}/usr/local/bin/edge-agent`), false);
    assert.equal(await exists(`${sb.destdir}/etc/edge-agent`), false);
    assert.equal(await exists(`${sb.dir}/systemctl.log`), false);
  } finally {
    await Deno.remove(sb.dir, { recursive: true });
  }
});

Deno.test("install.sh --credential-mode encrypted stores a host-bound systemd credential", async () => {
  const sb = await sandbox();
  try {
    await Deno.writeTextFile(`${sb.dir}/token`, "t0ken");
    const r = await sh(sb, install, [
      "--destdir",
      sb.destdir,
      "--binary",
      sb.binary,
      "--no-start",
      "--credential-mode",
      "encrypted",
      "--credential",
      `api_token=${sb.dir}/token`,
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const cred = `${sb.destdir}/etc/edge-agent/credentials/api_token.cred`;
    await assertFile(cred, 0o600, 0, 0);
    assert.ok(!(await Deno.readTextFile(cred)).includes("t0ken"), "credential stored in clear");
    const plain = await new Deno.Command("systemd-creds", {
      args: ["decrypt", "--name=api_token", cred, "-"],
      stdout: "piped",
      stderr: "null",
    }).output();
    assert.equal(dec.decode(plain.stdout), "t0ken");
    assert.match(
      await Deno.readTextFile(
        `${sb.destdir}/etc/systemd/system/edge-agent@.service.d/50-credentials.conf`,
      ),
      /^LoadCredentialEncrypted=api_token:\/etc\/edge-agent\/credentials\/api_token\.cred$/m,
    );
  } finally {
    await Deno.remove(sb.dir, { recursive: true });
  }
});

Deno.test("uninstall.sh keeps config, credentials, state and user unless --purge", async () => {
  const sb = await sandbox();
  try {
    await Deno.writeTextFile(`${sb.dir}/secret`, "x");
    const d = sb.destdir;
    assert.equal(
      (await sh(sb, install, [
        "--destdir",
        d,
        "--binary",
        sb.binary,
        "--mode",
        "stream",
        "--collector-unit",
        "c.service",
        "--credential",
        `k=${sb.dir}/secret`,
      ])).code,
      0,
    );
    await Deno.writeTextFile(`${d}/var/lib/edge-agent/checkpoint.json`, "{}");

    const r = await sh(sb, uninstall, ["--destdir", d, "--no-stop"]);
    assert.equal(r.code, 0, r.stderr);
    for (
      const gone of [
        "usr/local/bin/edge-agent",
        "usr/local/lib/systemd/system/edge-agent@.service",
        "etc/systemd/system/edge-agent@.service.d",
        "etc/systemd/system/edge-agent@stream.service.d",
        "etc/systemd/system/multi-user.target.wants/edge-agent@stream.service",
      ]
    ) assert.equal(await exists(`${d}/${gone}`), false, `${gone} should be removed`);
    for (
      const kept of [
        "etc/edge-agent/stream.yaml",
        "etc/edge-agent/credentials/k",
        "var/lib/edge-agent/checkpoint.json",
      ]
    ) {
      assert.equal(await exists(`${d}/${kept}`), true, `${kept} should be kept`);
    }
    await passwdEntry(d, "edge-agent");

    // Re-installing over kept state works; then purge removes everything.
    assert.equal(
      (await sh(sb, install, ["--destdir", d, "--binary", sb.binary, "--no-start"])).code,
      0,
    );
    const p = await sh(sb, uninstall, ["--destdir", d, "--purge", "--no-stop"]);
    assert.equal(p.code, 0, p.stderr);
    for (
      const gone of [
        "etc/edge-agent",
        "var/lib/edge-agent",
        "usr/local/lib/sysusers.d/edge-agent.conf",
      ]
    ) {
      assert.equal(await exists(`${d}/${gone}`), false, `${gone} should be purged`);
    }
    assert.ok(!(await Deno.readTextFile(`${d}/etc/passwd`)).includes("edge-agent:"));
    assert.ok(!(await Deno.readTextFile(`${d}/etc/group`)).includes("edge-agent:"));
  } finally {
    await Deno.remove(sb.dir, { recursive: true });
  }
});

Deno.test("install.sh and uninstall.sh are shellcheck clean", async () => {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("shellcheck", { args: [install, uninstall], stdout: "piped" })
      .output();
  } catch (e) {
    throw new Error("shellcheck is missing: apt-get install shellcheck", { cause: e });
  }
  assert.equal(out.code, 0, dec.decode(out.stdout));
});
