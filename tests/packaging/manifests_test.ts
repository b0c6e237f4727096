// Checks of what cannot be run here (no container engine, no cluster, no AWS): the Containerfile,
// the Kubernetes sidecar manifest, the Lambda template, and the Lambda package's layout.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { statusHandler } from "../../mod/status/server.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { Health } from "../../mod/status/health.ts";
import { matchesGlob } from "node:path";
import { ConfigError } from "../../mod/config/load.ts";
import { packageLambda } from "../../packaging/package_lambda.ts";
import { unzipEntry } from "../../packaging/zip_reader.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const dec = new TextDecoder();

// deno-lint-ignore no-explicit-any
type Any = any;

async function validateConfig(text: string): Promise<{ code: number; out: string }> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/agent.yaml`, text);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "-P=agent", "main.ts", "validate", "--config", `${dir}/agent.yaml`],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kubernetes/sidecar.yaml probes liveness on /healthz at the port the config listens on, and no readiness", async () => {
  const docs = parseAllDocuments(
    await Deno.readTextFile(`${root}packaging/kubernetes/sidecar.yaml`),
  );
  for (const d of docs) assert.equal(d.errors.length, 0, String(d.errors));
  const objects = docs.map((d) => d.toJS() as Any);
  const configMap = objects.find((o) => o.kind === "ConfigMap");
  const deployment = objects.find((o) => o.kind === "Deployment");
  assert.ok(configMap && deployment);

  const configText = configMap.data["agent.yaml"] as string;
  const validated = await validateConfig(configText);
  assert.equal(validated.code, 0, validated.out);
  const listen = parseYaml(configText).status.listen as string;
  const [host, port] = [
    listen.slice(0, listen.lastIndexOf(":")),
    Number(listen.slice(listen.lastIndexOf(":") + 1)),
  ];
  assert.equal(host, "0.0.0.0", "the kubelet probes the pod IP: listen on all interfaces");

  const spec = deployment.spec.template.spec;
  const agent = spec.containers.find((c: Any) => c.name === "edge-agent");
  assert.ok(agent, "no edge-agent container");
  const portOf = (p: string | number) =>
    typeof p === "number" ? p : agent.ports.find((x: Any) => x.name === p)?.containerPort;
  // A sidecar's readiness is the pod's: /readyz (503 while the intake is down) must not take
  // the application out of service, so the agent has no readinessProbe (README "Tailing files").
  assert.equal(agent.readinessProbe, undefined, "no readinessProbe on the sidecar");
  assert.equal(agent.livenessProbe.httpGet.path, "/healthz");
  assert.equal(portOf(agent.livenessProbe.httpGet.port), port);

  // The config comes from the ConfigMap, mounted where EDGE_AGENT_CONFIG points.
  const env = Object.fromEntries(agent.env.map((e: Any) => [e.name, e.value]));
  const configVolume = spec.volumes.find((v: Any) => v.configMap?.name === configMap.metadata.name);
  const mount = agent.volumeMounts.find((m: Any) => m.name === configVolume.name);
  assert.equal(env.EDGE_AGENT_CONFIG, `${mount.mountPath}/agent.yaml`);
  assert.equal(agent.securityContext.allowPrivilegeEscalation, false);
  assert.ok(spec.securityContext.runAsNonRoot);

  // And those paths are endpoints the status handler really serves.
  const handler = statusHandler({
    mode: "stream",
    version: "t",
    registry: new Registry(),
    health: new Health(),
  });
  for (const path of ["/readyz", "/healthz"]) {
    const res = await handler(new Request(`http://127.0.0.1:${port}${path}`));
    await res.body?.cancel();
    assert.notEqual(res.status, 404, path);
  }
});

Deno.test("Containerfile compiles with deno.json's permissions and runs non-root with a binary healthcheck", async () => {
  const text = await Deno.readTextFile(`${root}packaging/Containerfile`);
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) =>
    l && !l.startsWith("#")
  );
  const froms = lines.filter((l) => /^FROM /i.test(l));
  assert.ok(froms.length >= 2, "multi-stage: a build stage and a runtime stage");
  assert.match(froms[0]!, /^FROM denoland\/deno:\$\{DENO_VERSION\} AS build$/);
  assert.match(
    text,
    new RegExp(`^ARG DENO_VERSION=${Deno.version.deno.replaceAll(".", "\\.")}$`, "m"),
  );

  // The compile step is `deno task compile`, whose permissions are deno.json's "agent" set;
  // no flag list of its own that could drift.
  const runs = lines.filter((l) => /^RUN /.test(l)).join("\n");
  assert.match(runs, /deno task compile /);
  assert.doesNotMatch(lines.join("\n"), /--allow-|(^|\s)-A(\s|$)|deno compile/m);
  const denoJson = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  assert.match(
    denoJson.tasks?.compile ?? "",
    /packaging\/compile\.ts/,
    'deno.json needs a "compile" task',
  );
  assert.match(
    denoJson.tasks?.["package:lambda"] ?? "",
    /packaging\/package_lambda\.ts/,
    'deno.json needs a "package:lambda" task',
  );

  // Runtime stage: no shell, non-root, exec-form healthcheck using the binary itself.
  const runtime = lines.slice(lines.lastIndexOf(froms.at(-1)!));
  assert.match(runtime[0]!, /distroless\/cc/);
  assert.ok(!runtime.some((l) => /^RUN /.test(l)), "the runtime image has no shell to RUN with");
  const user = runtime.find((l) => /^USER /.test(l));
  assert.ok(user && !/^USER (0|root)\b/.test(user), "runs as non-root");
  const health = runtime.find((l) => /^HEALTHCHECK /.test(l));
  assert.ok(health);
  const cmd = JSON.parse(health.slice(health.indexOf("CMD") + 3).trim());
  // No --url: healthcheck asks where the config's status.listen says (EDGE_AGENT_CONFIG).
  assert.deepEqual(cmd, ["/usr/local/bin/edge-agent", "healthcheck"]);
  assert.ok(runtime.some((l) => /^ENV .*EDGE_AGENT_CONFIG=/.test(l)));
  const entry = runtime.find((l) => /^ENTRYPOINT /.test(l))!;
  assert.deepEqual(JSON.parse(entry.slice("ENTRYPOINT".length)), ["/usr/local/bin/edge-agent"]);
});

Deno.test("lambda/template.yaml runs bootstrap on provided.al2023 from dist/route-lambda.zip", async () => {
  const t = parseYaml(await Deno.readTextFile(`${root}packaging/lambda/template.yaml`)) as Any;
  const fn = Object.values(t.Resources as Record<string, Any>).find((r) =>
    r.Type === "AWS::Serverless::Function"
  );
  assert.ok(fn);
  assert.equal(fn.Properties.Handler, "bootstrap");
  assert.equal(fn.Properties.Runtime, "provided.al2023");
  assert.equal(fn.Properties.CodeUri, "../../dist/route-lambda.zip");
  assert.equal(fn.Properties.Environment.Variables.EDGE_AGENT_CONFIG, "/var/task/agent.yaml");
});

Deno.test("packageLambda() zips the binary as an executable bootstrap with the config", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A stand-in binary: any x86_64 ELF executable (no denort runtime to build the real one).
    const binary = "/usr/bin/true";
    const out = await packageLambda({
      target: "x86_64-unknown-linux-gnu",
      binary,
      config: `${root}agent.example.yaml`,
      output: `${dir}/route-lambda.zip`,
    });
    const zip = await Deno.readFile(out);
    const list = await new Deno.Command("unzip", { args: ["-Z", out], stdout: "piped" }).output();
    assert.match(dec.decode(list.stdout), /^-rwxr-xr-x .* bootstrap\n-rw-r--r-- .* agent\.yaml$/m);
    assert.deepEqual(unzipEntry(zip, "bootstrap"), await Deno.readFile(binary));
    assert.deepEqual(
      unzipEntry(zip, "agent.yaml"),
      await Deno.readFile(`${root}agent.example.yaml`),
    );

    await Deno.writeTextFile(`${dir}/script`, "#!/bin/sh\n");
    await assert.rejects(
      packageLambda({ binary: `${dir}/script`, output: `${dir}/x.zip` }),
      /is not a Linux executable, not x86_64-unknown-linux-gnu/,
    );
    await assert.rejects(
      packageLambda({ binary: `${dir}/missing`, output: `${dir}/x.zip` }),
      /deno task compile --target x86_64-unknown-linux-gnu/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("packageLambda() refuses an invalid config, or one without a route: section", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pack = async (text: string) => {
      await Deno.writeTextFile(`${dir}/agent.yaml`, text);
      const warnings: string[] = [];
      await packageLambda({
        binary: "/usr/bin/true",
        config: `${dir}/agent.yaml`,
        output: `${dir}/route-lambda.zip`,
        warn: (w) => warnings.push(w),
      });
      return warnings;
    };
    await assert.rejects(pack("stream:\n  source: file\n"), (e) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.issues[0]!.path, "route");
      assert.match(e.issues[0]!.message, /no route: section/);
      return true;
    });
    await assert.rejects(pack("route:\n  bogus: 1\n"), /route\.bogus: unknown key/);
    await assert.rejects(Deno.stat(`${dir}/route-lambda.zip`), Deno.errors.NotFound);
    // A ${VAR} the function's environment sets, unset here: a warning, and the zip is written.
    const warnings = await pack("route:\n  tenant_config_table: ${EDGE_AGENT_TEST_UNSET_TABLE}\n");
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!,
      /^not resolvable here, the function's environment must: .*EDGE_AGENT_TEST_UNSET_TABLE is not set/,
    );
    await Deno.stat(`${dir}/route-lambda.zip`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(".dockerignore keeps out the repository's history, tests and builds, not the build's inputs", async () => {
  const patterns = (await Deno.readTextFile(`${root}.dockerignore`)).split("\n")
    .map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const ignored = (path: string) => {
    let out = false;
    for (const p of patterns) {
      const negated = p.startsWith("!");
      const glob = (negated ? p.slice(1) : p).replace(/\/$/, "");
      if (matchesGlob(path, glob) || matchesGlob(path, `${glob}/**`)) out = !negated;
    }
    return out;
  };
  for (const path of [".git/HEAD", "tests/main_test.ts", "dist/edge-agent-x", "node_modules/x"]) {
    assert.ok(ignored(path), `${path} should be ignored`);
  }
  for (
    const path of [
      "deno.json",
      "deno.lock",
      "main.ts",
      "mod/modes/stream.ts",
      "packaging/compile.ts",
      "agent.example.yaml",
      "dist/denort/denort-x86_64-unknown-linux-gnu.zip",
    ]
  ) {
    assert.ok(!ignored(path), `${path} is needed by the build`);
  }
});
