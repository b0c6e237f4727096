import assert from "node:assert/strict";
import { join } from "node:path";
import { agentCommand, COMPILED_FLAGS } from "../_agent.ts";
import { GcGovernor } from "../../mod/pipeline/gc_governor.ts";

/** Figures a test sets, and a collector that brings them down to `after`. */
function fake(after = 10) {
  const m = { heapUsed: 10, external: 0 };
  let calls = 0;
  return {
    m,
    get calls() {
      return calls;
    },
    options: {
      stepBytes: 100,
      memory: () => m,
      gc: () => {
        calls++;
        m.heapUsed = after;
        m.external = 0;
      },
    },
  };
}

Deno.test("GcGovernor.check() collects once heap + external grew by a step", () => {
  const f = fake();
  const g = new GcGovernor(f.options);
  assert.equal(g.start(), true);
  try {
    f.m.heapUsed = 60;
    f.m.external = 49;
    assert.equal(g.check(), false);
    f.m.external = 50;
    assert.equal(g.check(), true);
    assert.equal(f.calls, 1);
    assert.equal(g.collections, 1);
    // Measured from the level after the collection.
    f.m.heapUsed = 109;
    assert.equal(g.check(), false);
  } finally {
    g.stop();
  }
});

Deno.test("GcGovernor.check() measures from the lowest level seen (V8 collected on its own)", () => {
  const f = fake();
  f.m.heapUsed = 80;
  const g = new GcGovernor(f.options);
  g.start();
  try {
    f.m.heapUsed = 20;
    assert.equal(g.check(), false);
    f.m.heapUsed = 119;
    assert.equal(g.check(), false);
    f.m.heapUsed = 120;
    assert.equal(g.check(), true);
  } finally {
    g.stop();
  }
});

Deno.test("GcGovernor.start() does nothing without gc()", () => {
  // With no collector given, globalThis.gc is used: absent unless --expose-gc (as in `deno test`).
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, "undefined");
  const g = new GcGovernor({ memory: () => ({ heapUsed: 0, external: 1e12 }) });
  assert.equal(g.start(), false);
  assert.equal(g.check(), false);
  g.stop();
});

Deno.test("GcGovernor() rejects a step or period that is not positive", () => {
  assert.throws(() => new GcGovernor({ stepBytes: 0 }), RangeError);
  assert.throws(() => new GcGovernor({ intervalMs: -1 }), RangeError);
});

Deno.test("GcGovernor.start() checks on a timer", async () => {
  const f = fake();
  const g = new GcGovernor({ ...f.options, intervalMs: 5 });
  g.start();
  f.m.heapUsed = 500;
  await new Promise((r) => setTimeout(r, 50));
  g.stop();
  assert.ok(f.calls >= 1);
});

Deno.test("GcGovernor runs in a mode run with the compiled binary's V8 flags, and only with them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "bucket"));
    const config = join(dir, "agent.yaml");
    await Deno.writeTextFile(
      config,
      `status: { enabled: false }
log: { level: debug }
stream:
  source: file
  file: { path: ${join(dir, "bucket")} }
  state_file: state.json
  processing: { once: true, delay_window: 0s }
  http: { endpoints: ["http://127.0.0.1:9/in"] }
`,
    );
    const stderr = async (denoFlags: string[]) => {
      const out = await agentCommand(["stream", "--config", config], {
        denoFlags,
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0);
      return new TextDecoder().decode(out.stderr);
    };
    assert.match(await stderr([]), /no gc\(\): memory is left to V8's own schedule/);
    assert.doesNotMatch(await stderr(COMPILED_FLAGS), /no gc\(\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "tuneMalloc() keeps glibc mapping blocks of 128 KiB on their own after a larger one was freed",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // In a fresh process (the heap of this one may have room to carve any block from).
    const probe = async (tune: boolean) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("./_malloc_probe.ts", import.meta.url).pathname],
        env: { TUNE: tune ? "1" : "" },
        stdout: "piped",
        stderr: "inherit",
      }).output();
      assert.ok(out.success);
      return JSON.parse(new TextDecoder().decode(out.stdout)) as { tuned: boolean; grew: number };
    };
    const tuned = await probe(true);
    assert.ok(tuned.tuned, "glibc and FFI are there");
    assert.ok(tuned.grew >= 512 << 10, `a 512 KiB block was mapped on its own (+${tuned.grew})`);
    // Without it, glibc raised its threshold to the freed block's size: from the heap.
    assert.equal((await probe(false)).grew, 0);
  },
});
