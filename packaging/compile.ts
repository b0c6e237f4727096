/**
 * `deno task compile`: build the edge-agent binary with `deno compile`.
 *
 * ```
 * deno task compile [--target x64|arm64|TRIPLE]... [--all] [--denort ZIP]...
 *                   [--out-dir dist] [--output FILE] [--probe-timeout MS] [--timeout MS]
 * ```
 * - targets: the host by default, `--all` for linux x64 and arm64; output `dist/edge-agent-<triple>`
 *   (`--output` names the file when there is one target).
 * - permissions: deno.json's permission set "agent", the one place the flag list lives
 *   (`deno compile --permission-set=agent` bakes it in; Deno 2.9.6 honours it).
 * - version: writes `dist/.build_info.json` (version, git commit, Deno version, date, target),
 *   embeds it with `--include` and removes it afterwards; mod/version.ts reads it.
 *   The commit comes from `git`, or EDGE_AGENT_GIT_COMMIT where there is no .git (containers).
 * - runtime: see packaging/denort.ts. `--denort ZIP` fills Deno's cache first; with no runtime and
 *   no reachable download host it fails within `--probe-timeout` (5 s) saying how to supply one.
 *
 * Exit codes: 0 built, 1 build failed, 2 bad arguments, 3 no denort runtime.
 * @module
 */

import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DenortError,
  fillDenortCache,
  parseTarget,
  resolveDenort,
  type Target,
  TARGETS,
} from "./denort.ts";
import type { BuildInfo } from "../mod/version.ts";

/** The repository root (this file lives in packaging/). */
export const ROOT: string = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The permission set in deno.json that the binary gets. */
export const PERMISSION_SET = "agent";

/** Files the binary reads from its own embedded file system. */
export const INCLUDES = [
  "agent.example.yaml",
  // Worker entry points are loaded by URL at run time, so they must be embedded explicitly.
  "mod/syslog/generate_worker.ts",
  "mod/syslog/receive_worker.ts",
];

/**
 * V8 flags baked into the binary. A smaller young generation frees the data path's short-lived
 * buffers sooner: peak RSS 186 → 148 MB in the end-to-end benchmark (README), at a few % more CPU.
 * `--expose-gc` gives main.ts's GcGovernor (mod/pipeline/gc_governor.ts) V8's `gc()`: a full
 * collection each 24 MB of heap + ArrayBuffer growth (ingest's peak RSS 256 → 195 MB, README).
 * deno.json's `demo` task passes the same flags.
 */
export const V8_FLAGS = "--v8-flags=--max-semi-space-size=2,--expose-gc";

/**
 * No V8 code cache. With one, V8 deserializes every function an earlier run compiled (the SDKs'
 * and the Kafka library's included) where without it compiles only the functions called:
 * `process`'s peak RSS 150–154 → 145–148 MB, and its start-up 1.02–1.28 → 0.79–1.2 CPU s
 * (README, process benchmark). `--help` starts ~30 ms slower.
 */
export const NO_CODE_CACHE = "--no-code-cache";

/** `deno run` flags that make a run from source behave as the binary (benchmarks, the demo). */
export const RUN_FLAGS = [V8_FLAGS, NO_CODE_CACHE];

/** Where compile.ts writes the build info for mod/version.ts, relative to ROOT. */
export const BUILD_INFO = "dist/.build_info.json";

class UsageError extends Error {
  override name = "UsageError";
}

/** Parsed command line of compile.ts. */
export interface CompileOptions {
  targets: Target[];
  denortZips: string[];
  outDir: string;
  output: string | undefined;
  probeTimeout: number;
  timeout: number;
}

/**
 * Parse compile.ts's arguments.
 *
 * @param argv the arguments.
 * @returns the options.
 * @throws {UsageError} on unknown flags or missing values.
 */
export function parseCompileArgs(argv: string[]): CompileOptions {
  const opts: CompileOptions = {
    targets: [],
    denortZips: [],
    outDir: join(ROOT, "dist"),
    output: undefined,
    probeTimeout: 5000,
    timeout: 15 * 60_000,
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s, 2) as [string, string | undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    const ms = () => {
      const v = Number(value());
      if (!Number.isInteger(v) || v <= 0) throw new UsageError(`${flag} needs milliseconds > 0`);
      return v;
    };
    switch (flag) {
      case "--target":
        try {
          opts.targets.push(parseTarget(value()));
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        break;
      case "--all":
        opts.targets.push(...Object.values(TARGETS));
        break;
      case "--denort":
        opts.denortZips.push(resolve(value()));
        break;
      case "--out-dir":
        opts.outDir = resolve(value());
        break;
      case "--output":
        opts.output = resolve(value());
        break;
      case "--probe-timeout":
        opts.probeTimeout = ms();
        break;
      case "--timeout":
        opts.timeout = ms();
        break;
      case "--help":
      case "-h":
        throw new UsageError("help");
      default:
        throw new UsageError(`unknown argument ${argv[i]}`);
    }
  }
  if (opts.targets.length === 0) {
    try {
      opts.targets.push(parseTarget(Deno.build.target));
    } catch {
      throw new UsageError(`the host (${Deno.build.target}) is not a Linux target: use --target`);
    }
  }
  opts.targets = [...new Set(opts.targets)];
  if (opts.output && opts.targets.length > 1) {
    throw new UsageError("--output needs exactly one target");
  }
  return opts;
}

/**
 * The `deno compile` arguments for one target (permissions from deno.json's "agent" set).
 *
 * @param target the target triple.
 * @param output the output file.
 * @returns the arguments after `deno`.
 */
export function compileCommand(target: Target, output: string): string[] {
  return [
    "compile",
    `--permission-set=${PERMISSION_SET}`,
    "--no-prompt",
    ...RUN_FLAGS,
    "--target",
    target,
    ...[...INCLUDES, BUILD_INFO].flatMap((f) => ["--include", f]),
    "--output",
    output,
    "main.ts",
  ];
}

async function run(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "null" })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The commit to bake in: EDGE_AGENT_GIT_COMMIT, else `git rev-parse` (+"-dirty"), else "unknown".
 *
 * @returns the commit.
 */
export async function gitCommit(): Promise<string> {
  const env = Deno.env.get("EDGE_AGENT_GIT_COMMIT");
  if (env) return env;
  const head = await run("git", ["rev-parse", "--short=12", "HEAD"]);
  if (!head) return "unknown";
  const dirty = await run("git", ["status", "--porcelain", "--untracked-files=no"]);
  return dirty ? `${head}-dirty` : head;
}

async function denoDir(): Promise<string> {
  const out = await run(Deno.execPath(), ["info", "--json"]);
  if (!out) throw new Error("`deno info --json` failed: cannot locate Deno's cache directory");
  return (JSON.parse(out) as { denoDir: string }).denoDir;
}

/** Run `deno compile`, killing it after `timeout` ms so a stalled download cannot hang us. */
async function compileOne(target: Target, output: string, timeout: number): Promise<void> {
  await Deno.mkdir(dirname(output), { recursive: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: compileCommand(target, output),
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeout);
  const status = await child.status.finally(() => clearTimeout(timer));
  if (timedOut) {
    // deno compile leaves its half-written `<output>.tmp-<hex>` behind when killed.
    for await (const e of Deno.readDir(dirname(output))) {
      if (e.name.startsWith(`${output.split("/").pop()}.tmp-`)) {
        await Deno.remove(join(dirname(output), e.name)).catch(() => {});
      }
    }
    throw new Error(`deno compile for ${target} did not finish within ${timeout} ms: killed`);
  }
  if (!status.success) throw new Error(`deno compile for ${target} failed (exit ${status.code})`);
}

function buildDate(): string {
  const epoch = Deno.env.get("SOURCE_DATE_EPOCH");
  const d = epoch && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : new Date();
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}

/**
 * Build the binaries.
 *
 * @param opts parsed options.
 * @returns the files written.
 * @throws {DenortError} when a target has no runtime; Error when deno compile fails.
 */
export async function compile(opts: CompileOptions): Promise<string[]> {
  const log = (s: string) => console.error(`compile: ${s}`);
  const version = Deno.version.deno;
  const dir = await denoDir();
  for (const zip of opts.denortZips) {
    const filled = await fillDenortCache(zip, dir, version);
    filled.warnings.forEach((w) => log(`warning: ${w}`));
    log(`cached ${zip} for ${filled.target} at ${filled.path}`);
  }
  // Resolve every target's runtime before building any, so a missing one fails in seconds.
  for (const target of opts.targets) {
    const src = await resolveDenort(target, { denoDir: dir, probeTimeout: opts.probeTimeout });
    src.warnings.forEach((w) => log(`warning: ${w}`));
    log(`${target}: runtime from ${src.kind === "download" ? src.url : `${src.kind} ${src.path}`}`);
  }
  const denoJson = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))) as {
    version: string;
    permissions?: Record<string, unknown>;
  };
  if (!denoJson.permissions?.[PERMISSION_SET]) {
    throw new Error(`deno.json has no permission set "${PERMISSION_SET}"`);
  }
  const commit = await gitCommit();
  const infoPath = join(ROOT, BUILD_INFO);
  await Deno.mkdir(dirname(infoPath), { recursive: true });
  const written: string[] = [];
  try {
    for (const target of opts.targets) {
      const info: BuildInfo = {
        version: denoJson.version,
        commit,
        deno: version,
        date: buildDate(),
        target,
      };
      await Deno.writeTextFile(infoPath, JSON.stringify(info, null, 2) + "\n");
      const output = opts.output ?? join(opts.outDir, `edge-agent-${target}`);
      log(`building ${output} (${info.version}, ${commit})`);
      await compileOne(target, output, opts.timeout);
      const size = (await Deno.stat(output)).size;
      log(`wrote ${output}: ${size} bytes (${(size / 1048576).toFixed(1)} MiB)`);
      written.push(output);
    }
  } finally {
    await Deno.remove(infoPath).catch(() => {});
  }
  return written;
}

if (import.meta.main) {
  let code = 0;
  try {
    await compile(parseCompileArgs(Deno.args));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(
        e.message === "help"
          ? "usage: deno task compile [--target x64|arm64|TRIPLE]... [--all] [--denort ZIP]...\n" +
            "         [--out-dir DIR] [--output FILE] [--probe-timeout MS] [--timeout MS]"
          : `compile: ${e.message}`,
      );
      code = e.message === "help" ? 0 : 2;
    } else {
      let msg = `compile: ${(e as Error).message}`;
      for (let c = (e as Error).cause; c; c = (c as Error).cause) {
        msg += `\n  caused by: ${(c as Error).message ?? c}`;
      }
      console.error(msg);
      code = e instanceof DenortError ? 3 : 1;
    }
  }
  Deno.exit(code);
}
