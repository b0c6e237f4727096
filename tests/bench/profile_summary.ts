/**
 * Summarize a V8 CPU profile (`deno run --cpu-prof --cpu-prof-dir=DIR ...`): the functions and the
 * folders with the most self time, in percent of all samples.
 *
 * `deno run -A tests/bench/profile_summary.ts DIR/CPU.*.cpuprofile`
 * @module
 */

const f = Deno.args[0];
if (!f) throw new Error("usage: profile_summary.ts FILE.cpuprofile");
const p = JSON.parse(await Deno.readTextFile(f));
const self = new Map<number, number>();
const dt = p.timeDeltas as number[];
p.samples.forEach((id: number, i: number) => self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0)));
const byKey = new Map<string, number>();
let total = 0;
for (const n of p.nodes) {
  const t = self.get(n.id) ?? 0;
  total += t;
  const cf = n.callFrame;
  const url = cf.url.replace(/.*node_modules\//, "").replace(/.*\/work\/main\//, "");
  const k = `${cf.functionName || "(anon)"} ${url}:${cf.lineNumber}`;
  byKey.set(k, (byKey.get(k) ?? 0) + t);
}
const byFile = new Map<string, number>();
for (const [k, t] of byKey) {
  const file = (k.split(" ")[1] ?? "").replace(/:\d+$/, "").replace(/\/[^/]*$/, "");
  byFile.set(file, (byFile.get(file) ?? 0) + t);
}
console.log("total s", (total / 1e6).toFixed(1));
for (const [k, t] of [...byKey].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  console.log((100 * t / total).toFixed(1).padStart(5), k);
}
console.log("--- by dir");
for (const [k, t] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
  console.log((100 * t / total).toFixed(1).padStart(5), k);
}
