// The modes' config specs load no Kafka client: `@platformatic/kafka` is reached from main.ts only
// through dynamic imports, in the Kafka modes' run (mod/sources/kafka_spec.ts says why).
import assert from "node:assert/strict";

interface Dependency {
  isDynamic?: boolean;
  code?: { specifier: string };
}

Deno.test("main.ts imports @platformatic/kafka only dynamically (a mode without Kafka never loads it)", async () => {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json", "main.ts"] })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: Dependency[] }[];
  };
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const from = new Map<string, string>();
  const stack = [...info.roots];
  const seen = new Set<string>();
  let kafka: string | undefined;
  while (stack.length > 0 && !kafka) {
    const s = stack.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    if (s.includes("@platformatic/kafka")) kafka = s;
    for (const d of modules.get(s)?.dependencies ?? []) {
      const to = d.code?.specifier;
      if (d.isDynamic || !to || seen.has(to)) continue;
      from.set(to, s);
      stack.push(to);
    }
  }
  const chain: string[] = [];
  for (let s = kafka; s; s = from.get(s)) chain.unshift(s.replace(/^.*\/mod\//, "mod/"));
  assert.equal(kafka, undefined, `statically imported: ${chain.join(" → ")}`);
  // The Kafka modes still reach it (dynamically): the check above looks at the right graph.
  assert.ok([...modules.keys()].some((s) => s.includes("@platformatic/kafka")));
});
