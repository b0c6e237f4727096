/**
 * The process's own metrics, under the names Prometheus client libraries use, so the usual
 * dashboards and alerts work: `process_resident_memory_bytes`, `process_cpu_seconds_total`,
 * `process_start_time_seconds`, and `edge_agent_build_info{version,deno,commit}` (always 1).
 * Memory and CPU time are sampled when the metrics are read.
 *
 * @example
 * ```ts
 * const registry = new Registry();
 * registerProcessMetrics(registry, { version: "0.1.0", deno: "2.9.6", commit: "unknown" });
 * registry.render(); // process_resident_memory_bytes 41234432 ...
 * ```
 * @module
 */

import process from "node:process";
import type { Registry } from "./registry.ts";

/** What `edge_agent_build_info` carries. */
export interface BuildLabels {
  /** The agent's version (deno.json). */
  version: string;
  /** The Deno version it was built with (or runs on, from source). */
  deno: string;
  /** The git commit baked in at compile time, "unknown" when there is none. */
  commit: string;
}

/**
 * Register the process metrics on `registry`.
 *
 * @param registry the process's registry.
 * @param build the labels of `edge_agent_build_info`.
 */
export function registerProcessMetrics(registry: Registry, build: BuildLabels): void {
  const rss = registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes");
  const cpu = registry.counter(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds",
  );
  registry.gauge("process_start_time_seconds", "Start time of the process since unix epoch")
    .set(Math.round(performance.timeOrigin) / 1000);
  registry.gauge(
    "edge_agent_build_info",
    "Always 1: the agent's version, the Deno version and the git commit it was built from",
    ["version", "deno", "commit"],
  ).set(1, { version: build.version, deno: build.deno, commit: build.commit });
  registry.onCollect(() => {
    rss.set(Deno.memoryUsage().rss);
    const { user, system } = process.cpuUsage();
    const seconds = (user + system) / 1e6;
    if (seconds > cpu.get()) cpu.inc(seconds - cpu.get());
  });
}
