/**
 * Running the agent in tests and benchmarks as users run it: `main.ts` from the project root with
 * the compiled binary's permission set (`-P=agent`).
 * @module
 */

import { fileURLToPath } from "node:url";
import { V8_FLAGS } from "../packaging/compile.ts";

/** The project root. */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The V8 flags `deno task compile` bakes into the binary, for benchmarks that measure it. */
export const COMPILED_V8_FLAGS = [V8_FLAGS];

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
