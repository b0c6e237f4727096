/**
 * The explicit registry of modes (no import side effects). The agent's whole config spec,
 * `validate`, `--help` and agent.example.yaml are all built from it.
 *
 * A mode's code is loaded when it is needed ({@link loadModes}): a run of one mode loads that
 * mode (and the modes whose sections its config file has, see main.ts), not the others and what
 * they import: `generate` at its defaults peaked at 94.9–95.2 MB instead of 99.3–100.0.
 * @module
 */

import { f, type Field } from "../config/spec.ts";
import { logSpec } from "../log/spec.ts";
import { statusSpec } from "../status/server.ts";
import type { Mode } from "./mode.ts";

// deno-lint-ignore no-explicit-any
type AnyMode = Mode<Field<any>>;

/** A mode reserved by name that a later release implements. */
export interface PlannedMode {
  name: string;
  summary: string;
  planned: true;
}

/** Every mode, in help order, and where its code is (literal imports: `deno compile` embeds them). */
const LOADERS: Record<string, () => Promise<AnyMode>> = {
  stream: async () => (await import("./stream.ts")).streamMode,
  route: async () => (await import("./route.ts")).routeMode,
  monitor: async () => (await import("./monitor.ts")).monitorMode,
  ingest: async () => (await import("./ingest.ts")).ingestMode,
  tail: async () => (await import("./tail.ts")).tailMode,
  discover: async () => (await import("./discover.ts")).discoverMode,
  process: async () => (await import("./process.ts")).processMode,
  generate: async () => (await import("./generate.ts")).generateMode,
  receive: async () => (await import("./receive.ts")).receiveMode,
};

/** The modes' names, in help order. */
export const MODE_NAMES: readonly string[] = Object.keys(LOADERS);

/**
 * Load modes' code.
 *
 * @param names which (default: all), in any order; unknown names are skipped.
 * @returns the modes, in help order.
 */
export async function loadModes(names: readonly string[] = MODE_NAMES): Promise<AnyMode[]> {
  const wanted = MODE_NAMES.filter((n) => names.includes(n));
  return await Promise.all(wanted.map((n) => LOADERS[n]!()));
}

/** True when the entry is a runnable mode. */
export function isImplemented(m: AnyMode | PlannedMode): m is AnyMode {
  return !("planned" in m);
}

/** The shared sections every config may have. */
export const sharedSections = {
  status: statusSpec,
  log: logSpec,
  shutdown_timeout: f.duration({
    description: "On SIGINT/SIGTERM, how long to drain in-flight work before giving up",
    default: "30s",
  }),
};

/** The config: shared sections plus one optional section per implemented mode of `list`. */
export function agentSpec(list: readonly (AnyMode | PlannedMode)[]) {
  const sections: Record<string, Field<unknown>> = {};
  for (const m of list) if (isImplemented(m)) sections[m.name] = f.optional(m.spec);
  return f.object({ ...sharedSections, ...sections }, { description: "edge-agent config" });
}
