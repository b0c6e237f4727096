import assert from "node:assert/strict";
import zlib from "node:zlib";
import { join } from "node:path";
import { parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { CheckpointStore } from "../../mod/pipeline/checkpoint.ts";
import { runPipeline } from "../../mod/pipeline/run.ts";
import type { Unit } from "../../mod/pipeline/types.ts";
import { HttpSink, httpSinkSpec } from "../../mod/sinks/http.ts";
import { FileSource, type FileSourceOptions, fileSourceSpec } from "../../mod/sources/file.ts";

const quiet = new Logger({ write: () => {} });
const enc = (s: string) => new TextEncoder().encode(s);
const result = { lines: 1, bytes: 1, consumed: 1, truncated: 0 };

async function tree(
  files: Record<string, string | Uint8Array>,
  mtimes: Record<string, number> = {},
) {
  const root = await Deno.makeTempDir({ prefix: "file-source-test-" });
  for (const [rel, body] of Object.entries(files)) {
    const path = join(root, rel);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    if (typeof body === "string") await Deno.writeTextFile(path, body);
    else await Deno.writeFile(path, body);
    const m = mtimes[rel];
    if (m !== undefined) await Deno.utime(path, m / 1000, m / 1000);
  }
  return root;
}

function source(root: string, o: Partial<FileSourceOptions> = {}) {
  return new FileSource({
    root,
    stateFile: join(root, "state.json"),
    delayWindow: 0,
    once: true,
    log: quiet,
    ...o,
  });
}

async function ids(src: FileSource, ack = true): Promise<string[]> {
  const out: string[] = [];
  for await (const u of src.units(new AbortController().signal)) {
    out.push(u.attributes!.path!);
    if (ack) await u.ack(result);
    else await u.nack(new Error("test"));
  }
  return out;
}

Deno.test("FileSource yields files oldest first: by the name's timestamp, else by mtime", async () => {
  const t = 1_760_305_292;
  const root = await tree({
    "year=2025/month=10/day=12/1760305300_1_1_2.gz": "b\n",
    "year=2025/month=10/day=12/1760305292_1_1_1": "a\n",
    "notes/old.log": "m\n",
    "notes/new.log": "n\n",
    ".hidden.swp": "x\n",
    "year=2025/.partial.gz.tmp": "x\n",
  }, { "notes/old.log": (t - 100) * 1000, "notes/new.log": (t + 5) * 1000 });
  const src = source(root);
  assert.deepEqual(await ids(src), [
    "notes/old.log",
    "year=2025/month=10/day=12/1760305292_1_1_1",
    "notes/new.log",
    "year=2025/month=10/day=12/1760305300_1_1_2.gz",
  ]);
  await src.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("FileSource records acked files and skips them after a restart; nacked ones are read again", async () => {
  const root = await tree({ "a.log": "a\n", "b.log": "b\n", "c.log": "c\n" });
  const first = source(root);
  const seen: string[] = [];
  for await (const u of first.units(new AbortController().signal)) {
    seen.push(u.attributes!.path!);
    if (u.attributes!.path === "b.log") await u.nack(new Error("sink gave up"));
    else await u.ack({ lines: 1, bytes: 1, consumed: 2, truncated: 0 });
  }
  await first.close();
  assert.deepEqual(seen, ["a.log", "b.log", "c.log"]);
  const state = JSON.parse(await Deno.readTextFile(join(root, "state.json")));
  assert.deepEqual(Object.keys(state.done).toSorted(), ["a.log", "c.log"]);
  assert.equal(state.done["a.log"].consumed, 2);

  const second = source(root);
  assert.deepEqual(await ids(second), ["b.log"], "only the nacked file, and not state.json");
  await second.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("FileSource reads only under prefix (S3-like) and names matching pattern", async () => {
  const root = await tree({
    "year=2025/month=1/day=1/1735689600_1_1_1.gz": "x",
    "year=2025/month=10/day=1/1759276800_1_1_1.gz": "x",
    "year=2025/month=2/day=1/1738368000_1_1_1.gz": "x",
    "year=2025/month=1/day=1/readme.txt": "x",
  });
  const src = source(root, { prefix: "year=2025/month=1", pattern: "*.gz" });
  assert.deepEqual(await ids(src), [
    "year=2025/month=1/day=1/1735689600_1_1_1.gz",
    "year=2025/month=10/day=1/1759276800_1_1_1.gz",
  ]);
  await src.close();
  const byPath = source(root, {
    pattern: "year=2025/month=2/**",
    stateFile: join(root, "s2.json"),
  });
  assert.deepEqual(await ids(byPath), ["year=2025/month=2/day=1/1738368000_1_1_1.gz"]);
  await byPath.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("FileSource waits for files younger than delay_window, by name time and by mtime", async () => {
  let now = 1_760_305_292_000;
  const root = await tree({
    "1760305290_1_1_1.gz": "named 2s ago",
    "plain.log": "modified 2s ago",
    "1760300000_1_1_2.gz": "old name, modified 2s ago (still being written?)",
  }, {
    "1760305290_1_1_1.gz": now - 3_600_000,
    "plain.log": now - 2000,
    "1760300000_1_1_2.gz": now - 2000,
  });
  const src = source(root, { delayWindow: 60_000, now: () => now });
  assert.deepEqual(await ids(src), []);
  now += 60_000;
  assert.deepEqual((await src.scan()).map((f) => f.rel), [
    "1760300000_1_1_2.gz",
    "1760305290_1_1_1.gz",
    "plain.log",
  ]);
  await src.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("FileSource in watch mode picks up new files every scan_interval and retries nacked ones", async () => {
  const root = await tree({ "1.log": "1\n" });
  const src = source(root, { once: false, scanInterval: 10 });
  const ac = new AbortController();
  const seen: string[] = [];
  let nacked = false;
  for await (const u of src.units(ac.signal)) {
    const p = u.attributes!.path!;
    seen.push(p);
    if (p === "1.log") await Deno.writeTextFile(join(root, "2.log"), "2\n");
    if (p === "2.log" && !nacked) {
      nacked = true;
      await u.nack(new Error("sink gave up"));
      continue;
    }
    await u.ack(result);
    if (seen.length === 3) ac.abort();
  }
  assert.deepEqual(seen, ["1.log", "2.log", "2.log"]);
  await src.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("FileSource streams a unit's bytes and names the file when it cannot be opened", async () => {
  const big = "x".repeat(1 << 20) + "\n";
  const root = await tree({ "big.log": big, "gone.log": "g\n" });
  const src = source(root);
  const units: Unit[] = [];
  for await (const u of src.units(new AbortController().signal)) units.push(u);
  const bigUnit = units.find((u) => u.id.endsWith("big.log"))!;
  assert.equal(bigUnit.size, big.length);
  const stream = await bigUnit.open(new AbortController().signal);
  let chunks = 0;
  let bytes = 0;
  for await (const c of stream) {
    chunks++;
    bytes += c.byteLength;
  }
  assert.equal(bytes, big.length);
  assert.ok(chunks > 1, "read in chunks, not whole");
  await Deno.remove(join(root, "gone.log"));
  const gone = units.find((u) => u.id.endsWith("gone.log"))!;
  await assert.rejects(gone.open(new AbortController().signal), /cannot open .*gone\.log/);
  await src.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("FileSource forgets done files that are gone (bounded state)", async () => {
  const root = await tree({ "a.log": "a", "b.log": "b" });
  const src = source(root);
  await ids(src);
  assert.equal(src.store.size, 2);
  await Deno.remove(join(root, "a.log"));
  await src.scan();
  assert.deepEqual([...src.store.ids()], ["b.log"]);
  await src.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("FileSource fails clearly on a missing directory or a corrupt state file", async () => {
  const root = await tree({ "a.log": "a" });
  const missing = source(join(root, "nope"), { stateFile: join(root, "s.json") });
  await assert.rejects(ids(missing), new RegExp(`cannot list ${join(root, "nope")}`));
  await missing.close();
  await Deno.writeTextFile(join(root, "state.json"), '{"done": {"a.log": ');
  const corrupt = source(root);
  await assert.rejects(ids(corrupt), /checkpoint file .*state\.json is corrupt/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("fileSourceSpec defaults", () => {
  assert.deepEqual(parseValue(fileSourceSpec, {}), {
    path: "/var/log/edge-agent/incoming",
    prefix: "",
    pattern: "*",
    scan_interval: 15_000,
    delay_window: 60_000,
    once: false,
  });
});

Deno.test("FileSource → runPipeline → HttpSink (failing, then recovering): every line once, files checkpointed", async () => {
  const expected: string[] = [];
  const file = (tag: string, n: number) => {
    const lines = Array.from({ length: n }, (_, i) => `{"f":"${tag}","i":${i}}`);
    expected.push(...lines);
    return lines.join("\n") + "\n";
  };
  const root = await tree({
    "year=2025/month=10/day=12/1760305292_1_1_1.gz": zlib.gzipSync(enc(file("gz", 120))),
    "year=2025/month=10/day=12/1760305293_1_1_2": zlib.gzipSync(enc(file("noext", 30))),
    "year=2025/month=10/day=12/1760305294_1_1_3.gz": file("plain", 45),
  });
  const got: string[] = [];
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.text();
    if (++requests % 3 !== 0) return new Response("down", { status: 503 });
    got.push(...body.split("\n").filter(Boolean));
    return new Response(null);
  });
  const metrics = new Registry();
  const sink = new HttpSink(
    parseValue(httpSinkSpec, {
      endpoints: [`http://127.0.0.1:${server.addr.port}`],
      retry: { initial_backoff: "1ms", max_backoff: "5ms", max_retries: -1 },
    }),
    { metrics, log: quiet },
  );
  const src = source(root, { stateFile: join(root, "..", `${root.split("/").pop()}.state.json`) });
  const stats = await runPipeline({
    source: src,
    sink,
    metrics,
    log: quiet,
    signal: new AbortController().signal,
    batch: { batch_lines: 16, flush_interval: 20 },
  });
  assert.equal(stats.units, 3);
  assert.deepEqual(got.toSorted(), expected.toSorted());
  assert.equal(metrics.counter("http_lines_sent_total", "").get(), expected.length);
  const store = new CheckpointStore(src.store.path);
  await store.load();
  assert.deepEqual(
    [...store.ids()].map((id) => store.getDone(id)!.lines).toSorted((a, b) => a - b),
    [30, 45, 120],
  );
  await server.shutdown();
  await Deno.remove(src.store.path);
  await Deno.remove(root, { recursive: true });
});
