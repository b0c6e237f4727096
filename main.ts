/**
 * edge-agent: one executable that moves logs where they need to go.
 *
 * `edge-agent <mode> [--config FILE] [flags]`. This file parses arguments, loads the config,
 * sets up logging, metrics and the status endpoint, runs one mode, and turns SIGINT/SIGTERM into
 * a graceful drain. It is the only place that exits.
 * @module
 */

import { dirname, resolve } from "node:path";
import {
  ConfigError,
  configSections,
  formatIssue,
  loadConfig,
  type NestRule,
} from "./mod/config/load.ts";
import { renderExample } from "./mod/config/example.ts";
import { type Field, maskSecrets, type ObjectField } from "./mod/config/spec.ts";
import { errorChain, Logger } from "./mod/log/logger.ts";
import { printFailure } from "./mod/log/failure.ts";
import { routeProcessWarnings } from "./mod/log/process_warnings.ts";
import { redactText } from "./mod/log/redact.ts";
import { registerProcessMetrics } from "./mod/metrics/process_metrics.ts";
import { Registry } from "./mod/metrics/registry.ts";
import type { AgentSections, FlagSpec, Mode, StatusHooks } from "./mod/modes/mode.ts";
import {
  agentSpec,
  isImplemented,
  loadModes,
  MODE_NAMES,
  type PlannedMode,
  sharedSections,
} from "./mod/modes/registry.ts";
import { requestRequeue, requeuePath } from "./mod/pipeline/failure_policy.ts";
import { GcGovernor, tuneMalloc } from "./mod/pipeline/gc_governor.ts";
import { Health } from "./mod/status/health.ts";
import { serveStatus, STATUS_DEFAULT_LISTEN, statusHandler } from "./mod/status/server.ts";
import { DENO_VERSION, GIT_COMMIT, VERSION } from "./mod/version.ts";

/** Exit codes, documented in README. */
export const EXIT = {
  ok: 0,
  /** A runtime failure, or an invalid config. */
  failure: 1,
  /** Bad command line, unknown or not-yet-implemented mode. */
  usage: 2,
  /** A second SIGINT/SIGTERM cut the drain short. */
  interrupted: 130,
} as const;

// deno-lint-ignore no-explicit-any
type AnyMode = Mode<Field<any>>;

/** How the entry point prints a failure (see mod/log/failure.ts); set once a mode is chosen. */
const failure: { format: "json" | "text"; fields: Record<string, unknown> } = {
  format: "text",
  fields: {},
};

class UsageError extends Error {
  override name = "UsageError";
}

interface Parsed {
  command?: string;
  positionals: string[];
  flags: Map<string, string | true>;
}

/** Split argv into a command, positionals and `--flag[=value]` / `--flag value` pairs. */
function parseArgs(argv: string[], booleans: Set<string>): Parsed {
  const out: Parsed = { positionals: [], flags: new Map() };
  const alias: Record<string, string> = { "-c": "config", "-h": "help", "-V": "version" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("-") && a !== "-") {
      let name = alias[a] ?? a.replace(/^--?/, "");
      let value: string | true = true;
      const eq = name.indexOf("=");
      if (eq >= 0) [name, value] = [name.slice(0, eq), name.slice(eq + 1)];
      else if (!booleans.has(name) && !name.startsWith("no-")) {
        const next = argv[i + 1];
        // A flag with no value left is reported by whoever knows the flag.
        if (next !== undefined && !next.startsWith("--")) {
          value = next;
          i++;
        }
      }
      out.flags.set(name, value);
    } else if (out.command === undefined) out.command = a;
    else out.positionals.push(a);
  }
  return out;
}

const GLOBAL_FLAGS: Record<string, FlagSpec & { global?: true }> = {
  config: { key: "", description: "Config file (YAML). Also EDGE_AGENT_CONFIG." },
  "log-level": { key: "log.level", description: "debug | info | warn | error" },
  "log-format": { key: "log.format", description: "json | text" },
  "status-listen": { key: "status.listen", description: "Status endpoint host:port" },
};
const GLOBAL_BOOLEANS = new Set(["help", "version", "show", "no-status"]);

function help(modes: (AnyMode | PlannedMode)[]): string {
  const width = Math.max(...modes.map((m) => m.name.length)) + 2;
  return `edge-agent ${VERSION}: moves logs where they need to go.

Usage:
  edge-agent <mode> [--config FILE] [flags]   run a mode
  edge-agent <mode> --help                    the mode's flags and config section
  edge-agent <mode> requeue ID...             read quarantined units again (ids from /status)
  edge-agent validate --config FILE [--show]  check a config; --show prints it, secrets masked
  edge-agent example                          print the documented example config
  edge-agent demo                             run the main job on generated data, no cloud needed
  edge-agent healthcheck [--url URL]          exit 0 when the config's status endpoint answers /healthz
  edge-agent --version

Modes:
${
    modes.map((m) =>
      `  ${m.name.padEnd(width)}${m.summary}${isImplemented(m) ? "" : " (not implemented yet)"}`
    ).join("\n")
  }

Global flags:
${Object.entries(GLOBAL_FLAGS).map(([k, v]) => `  --${k.padEnd(16)}${v.description}`).join("\n")}
  --no-status       Do not serve the status endpoint

Exit codes: 0 ok, 1 failure or invalid config, 2 usage error or mode not implemented,
130 a second signal cut the drain short.
`;
}

// deno-lint-ignore no-explicit-any
function modeHelp(mode: Mode<Field<any>>): string {
  const flags = Object.entries(mode.flags ?? {});
  const spec = mode.spec as ObjectField<Record<string, Field<unknown>>>;
  return `edge-agent ${mode.name}: ${mode.summary}

Usage: edge-agent ${mode.name} [--config FILE] [flags]
${mode.usage ? `\n${mode.usage.trimEnd()}\n` : ""}${
    flags.length
      ? `\nFlags:\n${
        flags.map(([k, v]) => `  --${k.padEnd(20)}${v.description} (${mode.name}.${v.key})`).join(
          "\n",
        )
      }\n`
      : ""
  }
Config section \`${mode.name}:\` (documented defaults):

${renderExample(spec).replace(/^/gm, "  ")}`;
}

/** The address to probe for a `status.listen`: a wildcard host is asked on loopback. */
function probeAddress(listen: string): string {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i);
  const wildcard: Record<string, string> = { "0.0.0.0": "127.0.0.1", "[::]": "[::1]" };
  return `${wildcard[host] ?? host}${listen.slice(i)}`;
}

/** `edge-agent <command> --help` for the commands that are not modes. */
const COMMAND_HELP: Record<string, string> = {
  validate: `edge-agent validate: check a config file, as a mode would at start

Usage: edge-agent validate --config FILE [--show]   (or EDGE_AGENT_CONFIG=FILE)

Every problem is listed as file:line:col: key.path: message: unknown keys, wrong types, values
out of range, unset \${VARIABLES}, duplicate keys, and the rules across keys a mode refuses at
start (e.g. source: s3 without a bucket). Exit code 0 when valid, 1 otherwise.
  --show   also print the config as the agent reads it (defaults filled in, secrets as ***)
`,
  example: `edge-agent example: print the documented example config

Usage: edge-agent example > agent.yaml

Every option of every mode with its default and description, as agent.example.yaml.
`,
  healthcheck: `edge-agent healthcheck: exit 0 when the status endpoint answers /healthz

Usage: edge-agent healthcheck [--config FILE | --url URL]

Asks /healthz on the address of the config's status.listen (--config or EDGE_AGENT_CONFIG;
127.0.0.1:8686 without a config; a 0.0.0.0 or [::] host is asked on loopback). Exit code 0
when it answers 2xx within 3 s, else 1. A container's HEALTHCHECK runs this. generate's
dashboard is on 127.0.0.1:8080 when status.listen is left at its default: pass --url for it.
  --url URL   ask this URL instead
`,
  // demo's help is its module's DEMO_HELP, loaded only for it (see run)
};

/** Config overrides from the command line, and the flag that set each. */
interface Overrides {
  /** Values by dotted config path. */
  values: Record<string, unknown>;
  /** `--flag` by the same path, so that a bad value is blamed on the flag. */
  flags: Record<string, string>;
}

/** Map parsed flags onto config overrides (dotted paths), rejecting unknown flags. */
function overridesFrom(
  flags: Map<string, string | true>,
  modeName: string | undefined,
  modeFlags: Record<string, FlagSpec>,
  allowed: Set<string>,
): Overrides {
  const out: Overrides = { values: {}, flags: {} };
  for (const [rawName, value] of flags) {
    if (allowed.has(rawName)) continue;
    const negated = rawName.startsWith("no-") && modeFlags[rawName.slice(3)]?.boolean;
    const name = negated ? rawName.slice(3) : rawName;
    const g = GLOBAL_FLAGS[name];
    if (g && g.key) {
      if (value === true) throw new UsageError(`--${name} needs a value (${g.description})`);
      out.values[g.key] = value;
      out.flags[g.key] = `--${name}`;
      continue;
    }
    const spec = modeFlags[name];
    if (!spec || !modeName) {
      throw new UsageError(`unknown flag --${rawName} (see ${modeName} --help)`);
    }
    let v: unknown = value;
    if (spec.boolean && typeof v === "string") {
      if (v !== "true" && v !== "false") {
        throw new UsageError(`--${rawName} takes no value, or =true or =false: got "${v}"`);
      }
      v = v === "true";
    }
    if (negated) v = !v;
    if (!spec.boolean && v === true) {
      throw new UsageError(`--${rawName} needs a value (${spec.description})`);
    }
    if (spec.list && typeof v === "string") v = v.split(",").map((s) => s.trim()).filter(Boolean);
    out.values[`${modeName}.${spec.key}`] = v;
    out.flags[`${modeName}.${spec.key}`] = `--${rawName}`;
  }
  return out;
}

/**
 * Run the CLI with `argv`; returns the exit code (only the entry point exits).
 *
 * @param argv arguments after the executable.
 * @param given the modes to offer (tests pass their own); default: those `argv` needs
 * ({@link modesFor}).
 */
export async function run(
  argv: string[],
  given?: (AnyMode | PlannedMode)[],
): Promise<number> {
  const modes = given ?? await modesFor(argv);
  const modeFlagNames = new Set<string>();
  for (const m of modes) {
    if (!isImplemented(m)) continue;
    for (const [k, v] of Object.entries(m.flags ?? {})) if (v.boolean) modeFlagNames.add(k);
  }
  const args = parseArgs(argv, new Set([...GLOBAL_BOOLEANS, ...modeFlagNames]));
  const out = (s: string) => Deno.stdout.writeSync(new TextEncoder().encode(s));

  if (args.flags.has("version")) {
    out(`edge-agent ${VERSION} (commit ${GIT_COMMIT}, deno ${DENO_VERSION})\n`);
    return EXIT.ok;
  }
  const command = args.command;
  if (command === undefined || command === "help") {
    out(help(modes));
    return args.flags.has("help") || command === "help" ? EXIT.ok : EXIT.usage;
  }

  const spec = agentSpec(modes);
  const configArg = args.flags.get("config");
  if (configArg === true) throw new UsageError("--config needs a file");
  const configPath = configArg ?? Deno.env.get("EDGE_AGENT_CONFIG");

  const commandFlags: Record<string, string[]> = {
    example: ["help"],
    healthcheck: ["url", "config", "help"],
    validate: ["config", "show", "help"],
    demo: ["help"],
  };
  const allowedFlags = commandFlags[command];
  if (allowedFlags) {
    for (const name of args.flags.keys()) {
      if (!allowedFlags.includes(name)) {
        throw new UsageError(`unknown flag --${name} for ${command} (see ${command} --help)`);
      }
    }
    if (args.flags.has("help")) {
      out(
        command === "demo"
          ? (await import("./mod/demo/demo.ts")).DEMO_HELP
          : COMMAND_HELP[command]!,
      );
      return EXIT.ok;
    }
  }

  switch (command) {
    case "example":
      out(renderExample(spec, EXAMPLE_HEADER));
      return EXIT.ok;
    case "healthcheck": {
      const url = args.flags.get("url");
      let target: string;
      if (typeof url === "string") target = url;
      else {
        // The endpoint the config's status.listen names (defaults when there is no config).
        const { status } = await loadConfig(spec, configPath);
        if (!status.enabled) {
          console.error("edge-agent healthcheck: status.enabled is false: nothing to ask");
          return EXIT.failure;
        }
        target = `http://${probeAddress(status.listen)}/healthz`;
      }
      try {
        const res = await fetch(target, { signal: AbortSignal.timeout(3000) });
        await res.body?.cancel();
        return res.ok ? EXIT.ok : EXIT.failure;
      } catch {
        return EXIT.failure;
      }
    }
    case "validate": {
      if (configPath === undefined) throw new UsageError("validate needs --config FILE");
      try {
        const config = await loadConfig(spec, configPath, { nest: referenceLayouts(modes) });
        out(`${configPath}: ok\n`);
        if (args.flags.has("show")) {
          out(redactText(JSON.stringify(maskSecrets(spec, config), null, 2)) + "\n");
        }
        return EXIT.ok;
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        for (const i of e.issues) console.error(formatIssue(e.file, i));
        console.error(`${e.issues.length} problem(s) in ${e.file}`);
        return EXIT.failure;
      }
    }
    case "demo": {
      const { runDemo } = await import("./mod/demo/demo.ts");
      const result = await runDemo();
      return result.ok ? EXIT.ok : EXIT.failure;
    }
  }

  const mode = modes.find((m) => m.name === command);
  if (!mode) throw new UsageError(`unknown mode or command "${command}" (see --help)`);
  if (!isImplemented(mode)) {
    console.error(`edge-agent: mode "${command}" is not implemented yet in ${VERSION}`);
    return EXIT.usage;
  }
  if (args.flags.has("help")) {
    out(modeHelp(mode));
    return EXIT.ok;
  }
  // From here on a failure is printed in the log's format (JSON unless told otherwise).
  failure.format = args.flags.get("log-format") === "text" ? "text" : "json";
  failure.fields = { mode: mode.name };

  const overrides = overridesFrom(
    args.flags,
    mode.name,
    mode.flags ?? {},
    new Set(["config", "help", "no-status"]),
  );
  const config = await loadConfig(spec, configPath, {
    nest: referenceLayouts([mode]),
    overrides: overrides.values,
    overrideFlags: overrides.flags,
  }) as
    & AgentSections
    & Record<string, unknown>;
  failure.format = config.log.format;
  if (args.positionals[0] === "requeue") return await requeue(mode, config, configPath, args, out);
  return await runMode(mode, config, config[mode.name], configPath, args);
}

/**
 * The modes a command line needs. A run of mode M loads M's code, and that of the other modes
 * whose sections its config file has (so they are validated as before); anything else (help,
 * validate, example, a config with keys that are no section, a command line whose flags parse
 * otherwise with M's) loads every mode. The modes a run does not use stay unloaded: at its
 * defaults `generate` peaked at 94.9–95.2 MB instead of 99.3–100.0 (`deno task bench syslog`).
 */
export async function modesFor(argv: string[]): Promise<AnyMode[]> {
  const name = parseArgs(argv, GLOBAL_BOOLEANS).command;
  if (name === undefined || !MODE_NAMES.includes(name)) return await loadModes();
  const [mode] = await loadModes([name]);
  const booleans = new Set(GLOBAL_BOOLEANS);
  for (const [k, v] of Object.entries(mode!.flags ?? {})) if (v.boolean) booleans.add(k);
  const args = parseArgs(argv, booleans);
  if (args.command !== name) return await loadModes();
  const configArg = args.flags.get("config");
  const path = typeof configArg === "string" ? configArg : Deno.env.get("EDGE_AGENT_CONFIG");
  if (path === undefined) return [mode!];
  const sections = await configSections(path);
  if (sections === undefined) return await loadModes(); // loadConfig says what is wrong
  const others = sections.filter((k) => k !== name && !(k in sharedSections));
  if (others.length === 0) return [mode!];
  return await loadModes(
    others.every((k) => MODE_NAMES.includes(k)) ? [name, ...others] : MODE_NAMES,
  );
}

/** The reference designs' config layouts the modes accept as their section (monitor's). */
function referenceLayouts(modes: readonly (AnyMode | PlannedMode)[]): NestRule[] {
  return modes.flatMap((m) =>
    "referenceLayout" in m && m.referenceLayout ? [{ section: m.name, ...m.referenceLayout }] : []
  );
}

/** `edge-agent <mode> requeue ID...`: quarantined units to be read again. */
async function requeue(
  // deno-lint-ignore no-explicit-any
  mode: Mode<Field<any>>,
  config: Record<string, unknown>,
  configPath: string | undefined,
  args: Parsed,
  out: (s: string) => void,
): Promise<number> {
  const ids = args.positionals.slice(1);
  if (!mode.stateFile) throw new UsageError(`${mode.name} has no quarantine to requeue from`);
  if (ids.length === 0) {
    throw new UsageError(
      `usage: edge-agent ${mode.name} requeue ID... (ids as /status lists them)`,
    );
  }
  const section = config[mode.name] ?? await loadConfig(mode.spec, undefined, {});
  const stateFile = mode.stateFile(section, configPath ? dirname(resolve(configPath)) : Deno.cwd());
  await requestRequeue(stateFile, ids);
  out(
    `${ids.length} unit(s) queued in ${
      requeuePath(stateFile)
    }: read again at the next scan (or start)\n`,
  );
  return EXIT.ok;
}

async function runMode(
  // deno-lint-ignore no-explicit-any
  mode: Mode<Field<any>>,
  agent: AgentSections & Record<string, unknown>,
  sectionIn: unknown,
  configPath: string | undefined,
  args: Parsed,
): Promise<number> {
  const health = new Health();
  const log = new Logger({
    level: agent.log.level,
    format: agent.log.format,
    fields: { mode: mode.name },
    onError: (msg, fields) => health.recordError(msg, fields),
  });
  routeProcessWarnings(log);
  // An error nothing caught ends the process as Deno would, but as a log line (JSON with json).
  const uncaught = (e: Event) => {
    e.preventDefault();
    const error = e instanceof PromiseRejectionEvent ? e.reason : (e as ErrorEvent).error;
    log.error("uncaught error: exiting", { error: error instanceof Error ? error : String(error) });
    Deno.exit(EXIT.failure);
  };
  globalThis.addEventListener("unhandledrejection", uncaught);
  globalThis.addEventListener("error", uncaught);
  // A mode run without its section gets the section's defaults (required keys are reported).
  const section = sectionIn ??
    (await loadConfig(mode.spec, undefined, {}).catch((e) => {
      if (e instanceof ConfigError) {
        throw new ConfigError(
          configPath ?? "(no config file)",
          e.issues.map((i) => ({
            ...i,
            path: `${mode.name}.${i.path}`,
            message: `${i.message} (no \`${mode.name}:\` section in the config)`,
          })),
        );
      }
      throw e;
    }));

  const metrics = new Registry();
  registerProcessMetrics(metrics, {
    version: VERSION,
    deno: DENO_VERSION,
    commit: GIT_COMMIT === "dev" ? "unknown" : GIT_COMMIT,
  });
  // Garbage buffers are freed every 24 MB, not every ~64 MB plus as much heap (needs
  // --expose-gc, which the compiled binary has; see mod/pipeline/gc_governor.ts).
  const forcedGc = metrics.counter(
    "edge_agent_gc_forced_total",
    "Full garbage collections started by the agent to bound its memory",
  );
  // glibc returns freed buffers to the system (gc_governor.ts: tuneMalloc).
  const malloc = tuneMalloc();
  const governor = new GcGovernor({
    stepBytes: mode.gcStepBytes,
    onCollect: () => {
      forcedGc.inc();
      malloc?.trimSoon();
    },
  });
  if (!governor.start()) log.debug("no gc(): memory is left to V8's own schedule");
  const hooks: StatusHooks = {};
  const controller = new AbortController();
  const serverAbort = new AbortController();
  let server: ReturnType<typeof serveStatus> | undefined;
  // A CLI tool serves status only when an address was asked for.
  const quiet = (mode.cliTool?.(args.positionals) ?? false) &&
    agent.status.listen === STATUS_DEFAULT_LISTEN;
  if (agent.status.enabled && !args.flags.has("no-status") && !quiet) {
    if (mode.statusListen && agent.status.listen === STATUS_DEFAULT_LISTEN) {
      agent.status.listen = mode.statusListen;
    }
    try {
      server = serveStatus(
        agent.status,
        statusHandler({
          mode: mode.name,
          version: VERSION,
          registry: metrics,
          health,
          extra: () => hooks.extra?.() ?? {},
          routes: (req) => hooks.routes?.(req),
        }),
        serverAbort.signal,
      );
      log.info("status endpoint listening", { listen: agent.status.listen });
    } catch (e) {
      throw new Error(`cannot serve the status endpoint on ${agent.status.listen}`, { cause: e });
    }
  }

  let signals = 0;
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  const onSignal = (sig: Deno.Signal) => () => {
    signals++;
    if (signals > 1) {
      log.warn("second signal: exiting without draining", { signal: sig });
      Deno.exit(EXIT.interrupted);
    }
    log.info("shutting down: draining in-flight work", {
      signal: sig,
      timeout_ms: agent.shutdown_timeout,
    });
    controller.abort(new Error(`received ${sig}`));
    drainTimer = setTimeout(() => {
      log.error("shutdown timed out: in-flight work abandoned (not checkpointed)", {
        timeout_ms: agent.shutdown_timeout,
      });
      Deno.exit(EXIT.failure);
    }, agent.shutdown_timeout);
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => [s, onSignal(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);

  try {
    const code = await mode.run({
      config: section,
      agent,
      signal: controller.signal,
      metrics,
      log,
      health,
      status: hooks,
      configDir: configPath ? dirname(resolve(configPath)) : Deno.cwd(),
      args: args.positionals,
      stdout: Deno.stdout.writable,
    });
    log.info("stopped", { exit_code: code ?? 0 });
    return code ?? EXIT.ok;
  } finally {
    governor.stop();
    clearTimeout(drainTimer);
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    globalThis.removeEventListener("unhandledrejection", uncaught);
    globalThis.removeEventListener("error", uncaught);
    serverAbort.abort();
    await server?.finished;
  }
}

const EXAMPLE_HEADER = `edge-agent example config: every option with its default.
Generated from the components' declared specs by \`edge-agent example\`; \`deno task example\`
rewrites this file. Validate a config with \`edge-agent validate --config FILE\`.
Values may use \${ENV_VAR}, \${ENV_VAR:-default} and \${credential:NAME} (systemd credentials).
Durations: 500ms, 15s, 1m, 1h30m. Sizes: 512KiB, 1MiB, 10MB or a byte count.
Each mode reads its own section (stream:, route:, ...); the others are ignored by it.`;

/**
 * The arguments to run with: as an AWS Lambda `bootstrap` (started with no arguments and
 * AWS_LAMBDA_RUNTIME_API set), the router with its Lambda input and no status endpoint.
 */
function effectiveArgs(args: string[]): string[] {
  if (args.length === 0 && Deno.env.get("AWS_LAMBDA_RUNTIME_API")) {
    return ["route", "--input", "lambda", "--no-status"];
  }
  return args;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await run(effectiveArgs(Deno.args));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`edge-agent: ${e.message}`);
      code = EXIT.usage;
    } else if (e instanceof ConfigError) {
      printFailure(e.issues.map((i) => formatIssue(e.file, i)), failure.format, failure.fields);
      code = EXIT.failure;
    } else {
      printFailure([`edge-agent: ${errorChain(e)}`], failure.format, failure.fields);
      code = EXIT.failure;
    }
  }
  Deno.exit(code);
}
