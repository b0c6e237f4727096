/**
 * The `log:` config section.
 * @module
 */

import { f } from "../config/spec.ts";

/** The `log:` config section. */
export const logSpec = f.object({
  level: f.enum(["debug", "info", "warn", "error"] as const, {
    description: "Least severe level written to stderr",
    default: "info",
  }),
  format: f.enum(["json", "text"] as const, {
    description: "json: one JSON object per line (for journald/collectors); text: for people",
    default: "json",
  }),
}, { description: "Logging to stderr" });
