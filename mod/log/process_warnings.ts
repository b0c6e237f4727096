/**
 * Node-style process warnings (`(node:123) TimeoutNegativeWarning: ...`, emitted by npm packages
 * through `process.emitWarning`) go to the agent's logger as `warn` events instead of plain text
 * on stderr, so every stderr line keeps the configured format.
 * @module
 */

import process from "node:process";
import type { Logger } from "./logger.ts";

/**
 * Replace the default warning printer by one that logs through `log`.
 *
 * @param log where warnings go (level warn, with `warning` name and `code`).
 */
export function routeProcessWarnings(log: Logger): void {
  process.removeAllListeners("warning");
  process.on("warning", (w: Error & { code?: string; detail?: string }) => {
    log.warn(w.message, {
      warning: w.name,
      ...(w.code && { code: w.code }),
      ...(w.detail && { detail: w.detail }),
    });
  });
}
