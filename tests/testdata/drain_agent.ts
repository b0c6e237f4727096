// A test agent: main.ts's real CLI with one extra mode, "drain", whose in-flight work takes
// `--work-ms` to finish after the shutdown signal. Used by tests/main_test.ts.
import { run } from "../../main.ts";
import { f } from "../../mod/config/spec.ts";
import { defineMode } from "../../mod/modes/mode.ts";
import { writeFileAtomic } from "../../mod/pipeline/atomic_file.ts";

const drain = defineMode({
  name: "drain",
  summary: "test mode: waits for a signal, then drains for work_ms and writes a state file",
  spec: f.object({
    work: f.duration({ description: "drain time", default: "200ms" }),
    state_file: f.string({ description: "where to write the checkpoint", default: "state.json" }),
  }, { description: "drain test mode" }),
  flags: {
    "work": { key: "work", description: "drain time" },
    "state-file": { key: "state_file", description: "state file" },
  },
  async run({ config, signal, health, log }) {
    health.set("sink", true);
    console.log("started");
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    log.info("draining");
    await new Promise((resolve) => setTimeout(resolve, config.work));
    await writeFileAtomic(config.state_file, JSON.stringify({ drained: true }));
    console.log("drained");
  },
});

Deno.exit(await run(Deno.args, [drain]));
