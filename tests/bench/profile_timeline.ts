/**
 * When things first happen in a CPU profile: for each name given, the first sample (ms from the
 * profile's start) whose stack holds a function of that name, and the busy share of every 250 ms.
 * Used to read where a run's start-up goes, e.g. after `BENCH_KAFKA_PROF=DIR deno task bench kafka`:
 *
 * `deno run -A tests/bench/profile_timeline.ts DIR/x.cpuprofile connect runPipeline encodeRecordBatch`
 *
 * With `--until=MS` it also gives the time of the first MS milliseconds by npm package (the
 * innermost one on the stack; else the sampled function), e.g. what module loading costs.
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const until = Number(Deno.args.find((a) => a.startsWith("--until="))?.slice(8) ?? 0) * 1000;
const [file, ...names] = Deno.args.filter((a) => !a.startsWith("--until="));
if (!file) throw new Error("usage: profile_timeline.ts FILE.cpuprofile NAME...");
const p = JSON.parse(await Deno.readTextFile(file)) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const first = new Map<string, number>();
const busy: number[] = [];
const early = new Map<string, number>();
let t = 0;
for (const [i, sample] of p.samples.entries()) {
  const dt = p.timeDeltas[i] ?? 0;
  t += dt;
  const top = byId.get(sample)!.callFrame.functionName;
  const bucket = Math.floor(t / 250_000);
  busy[bucket] = (busy[bucket] ?? 0) + (top === "(idle)" ? 0 : dt);
  let owner: string | undefined;
  for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) {
    const { functionName, url } = byId.get(id)!.callFrame;
    if (names.includes(functionName) && !first.has(functionName)) first.set(functionName, t / 1000);
    owner ??= /registry\.npmjs\.org\/((@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  }
  if (t <= until) {
    const key = owner ? `npm:${owner}` : top;
    early.set(key, (early.get(key) ?? 0) + dt);
  }
}
console.log(`profile: ${(t / 1000).toFixed(0)} ms`);
for (const name of names) {
  const at = first.get(name);
  console.log(`${name}: ${at === undefined ? "not seen" : `${at.toFixed(0)} ms`}`);
}
console.log(`busy % per 250 ms: ${busy.map((b) => Math.round((b ?? 0) / 2500)).join(" ")}`);
if (until > 0) {
  console.log(`first ${until / 1000} ms by npm package or function:`);
  for (const [k, v] of [...early].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    console.log(`${(v / 1000).toFixed(0).padStart(6)} ms  ${k}`);
  }
}
