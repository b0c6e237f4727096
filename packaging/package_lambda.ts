/**
 * `deno task package:lambda`: dist/route-lambda.zip for the provided.al2023 runtime, with the
 * compiled binary as `bootstrap` (mode 0755) and, with `--config`, the config as `agent.yaml`.
 *
 * ```
 * deno task package:lambda [--target x64|arm64] [--binary FILE] [--config FILE] [--output ZIP]
 * ```
 * Build the binary first: `deno task compile --target x64` (or arm64). See
 * packaging/lambda/template.yaml for the function definition.
 * @module
 */

import { dirname, join, resolve } from "node:path";
import { ConfigError, formatIssue, loadConfig } from "../mod/config/load.ts";
import { agentSpec, loadModes } from "../mod/modes/registry.ts";
import { elfTarget, parseTarget, type Target } from "./denort.ts";
import { ROOT } from "./compile.ts";
import { type ZipFile, zipFiles } from "./zip_writer.ts";

/** Options of {@linkcode packageLambda}. */
export interface PackageLambdaOptions {
  /** Target of the binary. @default "x86_64-unknown-linux-gnu" */
  target?: Target;
  /** The compiled binary. @default dist/edge-agent-<target> */
  binary?: string;
  /** A config to ship as /var/task/agent.yaml. @default none */
  config?: string | undefined;
  /** The zip to write. @default dist/route-lambda.zip */
  output?: string;
  /** Where warnings go (e.g. a `${VAR}` this machine does not set). @default stderr */
  warn?: (message: string) => void;
}

/** Environment references the Lambda's environment may set although this machine does not. */
const UNSET_HERE = /^(environment variable \S+ is not set|\$\{credential:)/;

/**
 * Validate a config for the Lambda, as `edge-agent validate` does: it must be valid and have a
 * `route:` section (the Lambda runs route). A `${VAR}` or credential this machine cannot resolve
 * is only a warning: the function's environment sets them.
 *
 * @param path the config file.
 * @returns the warnings.
 * @throws {ConfigError} listing every problem.
 */
export async function checkLambdaConfig(path: string): Promise<string[]> {
  const warnings: string[] = [];
  let config: Record<string, unknown> | undefined;
  try {
    config = await loadConfig(agentSpec(await loadModes()), path) as Record<string, unknown>;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const problems = e.issues.filter((i) => !UNSET_HERE.test(i.message));
    if (problems.length > 0) throw e;
    for (const i of e.issues) {
      warnings.push(
        `not resolvable here, the function's environment must: ${formatIssue(e.file, i)}`,
      );
    }
  }
  if (config && config.route === undefined) {
    throw new ConfigError(path, [{
      path: "route",
      message: "no route: section: the Lambda package runs mode route (see agent.example.yaml)",
    }]);
  }
  return warnings;
}

/**
 * Write the Lambda deployment package.
 *
 * @param options see {@linkcode PackageLambdaOptions}.
 * @returns the zip's path.
 * @throws {Error} when the binary is missing or not a Linux executable of `target`.
 * @throws {ConfigError} when the config is invalid or has no `route:` section.
 */
export async function packageLambda({
  target = "x86_64-unknown-linux-gnu",
  binary = join(ROOT, "dist", `edge-agent-${target}`),
  config,
  output = join(ROOT, "dist", "route-lambda.zip"),
  warn = (m) => console.error(`package:lambda: warning: ${m}`),
}: PackageLambdaOptions = {}): Promise<string> {
  if (config) { for (const w of await checkLambdaConfig(config)) warn(w); }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(binary);
  } catch (e) {
    throw new Error(
      `cannot read the binary ${binary}: build it with \`deno task compile --target ${target}\``,
      { cause: e },
    );
  }
  const got = elfTarget(bytes);
  if (got !== target) {
    throw new Error(
      `${binary} is ${got ? `a ${got} executable` : "not a Linux executable"}, not ${target}`,
    );
  }
  const files: ZipFile[] = [{ name: "bootstrap", data: bytes, mode: 0o755 }];
  if (config) {
    files.push({ name: "agent.yaml", data: await Deno.readFile(config), mode: 0o644 });
  }
  await Deno.mkdir(dirname(output), { recursive: true });
  await Deno.writeFile(output, zipFiles(files));
  return output;
}

if (import.meta.main) {
  const opts: PackageLambdaOptions = {};
  let code = 0;
  try {
    for (let i = 0; i < Deno.args.length; i++) {
      const flag = Deno.args[i]!;
      const value = Deno.args[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      if (flag === "--target") opts.target = parseTarget(value);
      else if (flag === "--binary") opts.binary = resolve(value);
      else if (flag === "--config") opts.config = resolve(value);
      else if (flag === "--output") opts.output = resolve(value);
      else throw new Error(`unknown argument ${flag}`);
    }
    const out = await packageLambda(opts);
    console.error(`package:lambda: wrote ${out} (${(await Deno.stat(out)).size} bytes)`);
  } catch (e) {
    let msg = `package:lambda: ${(e as Error).message}`;
    if (e instanceof ConfigError) {
      msg = e.issues.map((i) => formatIssue(e.file, i)).join("\n") +
        `\npackage:lambda: ${e.file} is not a config the Lambda can run: nothing written`;
    }
    for (let c = (e as Error).cause; c; c = (c as Error).cause) {
      msg += `\n  caused by: ${(c as Error).message ?? c}`;
    }
    console.error(msg);
    code = 1;
  }
  Deno.exit(code);
}
