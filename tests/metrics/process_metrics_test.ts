import assert from "node:assert/strict";
import { join } from "node:path";
import { registerProcessMetrics } from "../../mod/metrics/process_metrics.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { agentCommand, freePort } from "../_agent.ts";

Deno.test("registerProcessMetrics() serves memory, CPU time, start time and build info", () => {
  const r = new Registry();
  registerProcessMetrics(r, { version: "1.2.3", deno: "2.9.6", commit: "unknown" });
  const text = r.render();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
  assert.ok(value("process_resident_memory_bytes") > 0, text);
  assert.ok(value("process_cpu_seconds_total") > 0, text);
  const start = value("process_start_time_seconds");
  assert.ok(start > 1.7e9 && start <= Date.now() / 1000, text);
  assert.match(
    text,
    /^edge_agent_build_info\{commit="unknown",deno="2\.9\.6",version="1\.2\.3"\} 1$/m,
  );
  assert.match(text, /# TYPE process_cpu_seconds_total counter/);
});

Deno.test("Registry: a labelled metric with no series yet shows no sample, an unlabelled one shows 0", () => {
  const r = new Registry();
  const labelled = r.counter("a_total", "a", ["endpoint"]);
  r.counter("b_total", "b");
  assert.doesNotMatch(r.render(), /^a_total/m);
  assert.match(r.render(), /^b_total 0$/m);
  labelled.inc(2, { endpoint: "x" });
  assert.match(r.render(), /^a_total\{endpoint="x"\} 2$/m);
});

/** Metric name → the label names of its samples (`le` left out). */
function labelNames(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*?)(?:_bucket|_sum|_count)?(?:\{(.*)\})? \S+$/.exec(line);
    if (!m || line.startsWith("#")) continue;
    const names = [...(m[2] ?? "").matchAll(/(\w+)="/g)].map((x) => x[1]!)
      .filter((n) => n !== "le").toSorted().join(",");
    const set = out.get(m[1]!) ?? new Set();
    set.add(names);
    out.set(m[1]!, set);
  }
  return out;
}

Deno.test("/metrics of a running agent: process metrics, and no series changes its labels after start", async () => {
  const dir = await Deno.makeTempDir();
  const day = join(dir, "bucket", "year=2025", "month=1", "day=9");
  await Deno.mkdir(day, { recursive: true });
  await Deno.writeTextFile(join(day, "1736400000_1_1_1"), '{"a":1}\n');
  // Requests wait until the first scrape was taken, then fail: the errors come after it.
  let release = () => {};
  const gate = new Promise<void>((r) => release = r);
  const failing = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async () => {
      await gate;
      return new Response("no", { status: 503 });
    },
  );
  const config = join(dir, "agent.yaml");
  await Deno.writeTextFile(
    config,
    `stream:
  source: file
  file: { path: ${join(dir, "bucket")} }
  state_file: state.json
  processing: { delay_window: 0s, scan_interval: 1s, plain: allow }
  http:
    endpoints: ["http://127.0.0.1:${failing.addr.port}/in"]
    flush_interval: 10ms
    retry: { initial_backoff: 10ms, max_backoff: 50ms }
shutdown_timeout: 1s
`,
  );
  const port = freePort();
  const child = agentCommand(
    ["stream", "--config", config, "--status-listen", `127.0.0.1:${port}`],
    {
      stdout: "null",
      stderr: "null",
    },
  ).spawn();
  const scrape = async () => {
    for (let i = 0; i < 100; i++) {
      try {
        return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error("no /metrics");
  };
  try {
    const first = await scrape();
    release();
    let later = first;
    for (let i = 0; i < 100 && !/^http_errors_total\{/m.test(later); i++) {
      await new Promise((r) => setTimeout(r, 100));
      later = await scrape();
    }
    assert.match(later, /^http_errors_total\{endpoint=/m);
    for (const name of ["process_resident_memory_bytes", "process_cpu_seconds_total"]) {
      assert.match(first, new RegExp(`^${name} \\d`, "m"));
    }
    assert.match(
      first,
      /^edge_agent_build_info\{commit="\w+",deno="[\d.]+",version="[\d.]+"\} 1$/m,
    );
    const before = labelNames(first), after = labelNames(later);
    for (const [name, sets] of after) {
      assert.equal(sets.size, 1, `${name} has samples with different labels: ${[...sets]}`);
      const was = before.get(name);
      if (was) assert.deepEqual([...was], [...sets], `${name} changed its labels`);
    }
  } finally {
    release();
    child.kill("SIGTERM");
    await child.status;
    await failing.shutdown();
  }
  await Deno.remove(dir, { recursive: true });
});
