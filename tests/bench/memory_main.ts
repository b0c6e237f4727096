/**
 * The agent's entry point with a memory probe, for the S3 benchmark's `S3_MEMORY=1`: runs
 * main.ts's `run()` in this process, samples `Deno.memoryUsage()` every 10 ms and, at the end,
 * prints its peaks (MiB) to stderr as `memory {"rss":…,"heapTotal":…,"heapUsed":…,"external":…}`.
 * With `GC_EVERY_MS` (and `--v8-flags=--expose-gc`) it forces a full GC that often, to tell
 * live memory from garbage waiting for a collection.
 * @module
 */

import { run } from "../../main.ts";

const peak: Record<string, number> = {};
const gcEvery = Number(Deno.env.get("GC_EVERY_MS") ?? 0);
const gc = (globalThis as { gc?: () => void }).gc;
let lastGc = performance.now();
const timer = setInterval(() => {
  if (gcEvery > 0 && gc && performance.now() - lastGc >= gcEvery) {
    gc();
    lastGc = performance.now();
  }
  for (const [k, v] of Object.entries(Deno.memoryUsage())) peak[k] = Math.max(peak[k] ?? 0, v);
}, 10);
const code = await run(Deno.args);
clearInterval(timer);
console.error(
  `memory ${
    JSON.stringify(
      Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Math.round(v / 1048576)])),
    )
  }`,
);
Deno.exit(code);
