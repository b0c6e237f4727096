// A test agent: main.ts's real CLI with one extra mode, "crash", which leaves a promise
// rejection unhandled. Used by tests/log/stderr_json_test.ts.
import { run } from "../../main.ts";
import { f } from "../../mod/config/spec.ts";
import { defineMode } from "../../mod/modes/mode.ts";

const crash = defineMode({
  name: "crash",
  summary: "test mode: an unhandled rejection whose message quotes a URL with credentials",
  spec: f.object({}, { description: "crash test mode" }),
  async run({ signal }) {
    Promise.reject(new Error("boom at http://user:pw-crash@127.0.0.1:1/x?token=tok-crash"));
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  },
});

Deno.exit(await run(Deno.args, [crash]));
