/**
 * `deno task demo`: the demo on its own entry point. main.ts's module graph holds every mode
 * and with them the AWS, Azure and Kafka clients (~110 MB of npm packages, fetched before
 * anything runs); this one holds the demo's only (no cloud SDK). Its lockfile, mod/demo/deno.lock,
 * lists just those packages: Deno installs every package of the lockfile it runs with.
 * `edge-agent demo` (main.ts) runs the same {@link runDemo}.
 * @module
 */

import { errorChain } from "../log/logger.ts";
import { DEMO_HELP, runDemo } from "./demo.ts";

if (import.meta.main) {
  const [arg] = Deno.args;
  let code: number;
  if (arg === "--help" || arg === "-h") {
    console.log(DEMO_HELP);
    code = 0;
  } else if (arg !== undefined) {
    console.error(`edge-agent demo: unknown argument ${arg} (see --help)`);
    code = 2;
  } else {
    try {
      code = (await runDemo()).ok ? 0 : 1;
    } catch (e) {
      console.error(`edge-agent demo: ${errorChain(e)}`);
      code = 1;
    }
  }
  Deno.exit(code);
}
