/**
 * The explicit registry of modes (no import side effects). The agent's whole config spec,
 * `validate`, `--help` and agent.example.yaml are all built from it.
 * @module
 */

import { f, type Field } from "../config/spec.ts";
import { logSpec } from "../log/spec.ts";
import { statusSpec } from "../status/server.ts";
import type { Mode } from "./mode.ts";
import { discoverMode } from "./discover.ts";
import { generateMode } from "./generate.ts";
import { ingestMode } from "./ingest.ts";
import { monitorMode } from "./monitor.ts";
import { processMode } from "./process.ts";
import { receiveMode } from "./receive.ts";
import { routeMode } from "./route.ts";
import { streamMode } from "./stream.ts";
import { tailMode } from "./tail.ts";

// deno-lint-ignore no-explicit-any
type AnyMode = Mode<Field<any>>;

/** A mode reserved by name that a later release implements. */
export interface PlannedMode {
  name: string;
  summary: string;
  planned: true;
}

/** Every mode, implemented or planned, in help order. */
export const modes: (AnyMode | PlannedMode)[] = [
  streamMode,
  routeMode,
  monitorMode,
  ingestMode,
  tailMode,
  discoverMode,
  processMode,
  generateMode,
  receiveMode,
];

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

/** The whole config: shared sections plus one optional section per implemented mode. */
export function agentSpec(list: (AnyMode | PlannedMode)[] = modes) {
  const sections: Record<string, Field<unknown>> = {};
  for (const m of list) if (isImplemented(m)) sections[m.name] = f.optional(m.spec);
  return f.object({ ...sharedSections, ...sections }, { description: "edge-agent config" });
}
