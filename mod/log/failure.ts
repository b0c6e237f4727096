/**
 * How the entry point prints what stopped the agent: as the logger's JSON lines for a mode run
 * (unless `log.format: text`), as plain text for the CLI's own commands.
 * @module
 */

import { redactText } from "./redact.ts";

/**
 * Write failure lines to stderr.
 *
 * @param lines what to say, one event each (already without secrets or not: they are redacted).
 * @param format `json`: `{"ts","level":"error","msg"}` per line; `text`: the lines as they are.
 * @param fields added to every JSON line (e.g. the mode).
 */
export function printFailure(
  lines: string[],
  format: "json" | "text",
  fields: Record<string, unknown> = {},
): void {
  const ts = new Date().toISOString();
  for (const line of lines) {
    const msg = redactText(line);
    console.error(
      format === "json" ? JSON.stringify({ ts, level: "error", msg, ...fields }) : msg,
    );
  }
}
