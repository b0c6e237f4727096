// A ModeContext for running a mode inside a test: quiet logger, fresh registry, no status server.
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import type { ModeContext } from "../../mod/modes/mode.ts";
import { Health } from "../../mod/status/health.ts";

/** The context a mode's `run` gets, for `config` read from `configDir`. */
export function modeContext<C>(
  config: C,
  configDir: string,
  { metrics = new Registry(), signal = new AbortController().signal } = {},
): ModeContext<C> {
  return {
    config,
    agent: {
      status: { enabled: false, listen: "127.0.0.1:0" },
      log: { level: "error", format: "json" },
      shutdown_timeout: 5000,
    },
    signal,
    metrics,
    log: new Logger({ write: () => {} }),
    health: new Health(),
    status: {},
    configDir,
    args: [],
    stdout: Deno.stdout.writable,
  };
}
