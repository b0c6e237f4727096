/**
 * Running the agent in tests and benchmarks as users run it: `main.ts` from the project root with
 * the compiled binary's permission set (`-P=agent`).
 * @module
 */

import { fileURLToPath } from "node:url";
import { RUN_FLAGS, V8_FLAGS } from "../packaging/compile.ts";

/** The project root. */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * The runtime flags `deno task compile` bakes into the binary, for benchmarks that measure it
 * (`BENCH_CODE_CACHE=1`: with V8's code cache, to compare; see NO_CODE_CACHE in compile.ts).
 */
export const COMPILED_FLAGS = Deno.env.get("BENCH_CODE_CACHE") ? [V8_FLAGS] : RUN_FLAGS;

/** {@link COMPILED_FLAGS} with the V8 flags `v8` (comma-separated) in place of the binary's. */
export function compiledFlagsWithV8(v8: string): string[] {
  return [`--v8-flags=${v8}`, ...COMPILED_FLAGS.filter((f) => !f.startsWith("--v8-flags="))];
}

/** Options of {@link agentCommand}: Deno.Command's, plus flags for `deno run` itself. */
export interface AgentCommandOptions extends Omit<Deno.CommandOptions, "args" | "cwd"> {
  /** Before `main.ts`, e.g. `--v8-flags=...` or `--cpu-prof`. */
  denoFlags?: string[];
}

/**
 * The arguments of `deno run -P=agent --quiet [denoFlags] main.ts <args>` (`entry`: another
 * script in place of main.ts, relative to the root).
 */
export function agentArgs(args: string[], denoFlags: string[] = [], entry = "main.ts"): string[] {
  return ["run", "-P=agent", "--quiet", ...denoFlags, entry, ...args];
}

/** `deno run -P=agent --quiet [denoFlags] main.ts <args>` in the project root. */
export function agentCommand(
  args: string[],
  { denoFlags = [], ...options }: AgentCommandOptions = {},
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    ...options,
    args: agentArgs(args, denoFlags),
    cwd: ROOT,
  });
}

/** Run the agent once to its end: exit code, stdout and stderr as text (NO_COLOR set). */
export async function runAgent(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await agentCommand(args, {
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A TCP port on loopback that was free a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}
