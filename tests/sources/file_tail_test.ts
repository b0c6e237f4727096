// TailSource on real files, through the real data path (runPipeline) to a real HTTP intake on a
// loopback socket: appends, rotations (rename, copytruncate, gzip), deletion while reading,
// partial lines, multi-line records and many files at once.
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { join } from "node:path";
import { parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { runPipeline } from "../../mod/pipeline/run.ts";
import { HttpSink, httpSinkSpec } from "../../mod/sinks/http.ts";
import { TailSource, tailSourceSpec } from "../../mod/sources/file_tail.ts";
import { lines, text, writeRotating } from "./_tail_writer.ts";

const quiet = new Logger({ write: () => {} });
const dec = new TextDecoder();

/** A real HTTP intake that keeps every line; `hold()` stalls its answers until `release()`. */
function intake() {
  const lines: string[] = [];
  let gate: PromiseWithResolvers<void> | undefined;
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = dec.decode(await req.arrayBuffer());
    requests++;
    if (gate) await gate.promise;
    for (const l of body.split("\n")) if (l !== "") lines.push(l);
    return new Response(null, { status: 204 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    lines,
    requests: () => requests,
    hold: () => gate = Promise.withResolvers(),
    release: () => {
      gate?.resolve();
      gate = undefined;
    },
    close: () => server.shutdown(),
  };
}

type Intake = ReturnType<typeof intake>;

/** The tail source → runPipeline → HttpSink, running until `stop()`. */
function tail(dir: string, into: Intake, config: Record<string, unknown>, batch = {}) {
  const metrics = new Registry();
  const ctl = new AbortController();
  const source = new TailSource(
    parseValue(tailSourceSpec, {
      poll_interval: "50ms",
      rotate_wait: "300ms",
      checkpoint_interval: "0s",
      ...config,
    }),
    { stateFile: join(dir, "state.json"), log: quiet, metrics },
  );
  const sink = new HttpSink(
    parseValue(httpSinkSpec, { endpoints: [into.url], flush_interval: "20ms", batch_lines: 50 }),
    { metrics, log: quiet },
  );
  const running = runPipeline({
    source,
    sink,
    metrics,
    log: quiet,
    signal: ctl.signal,
    batch: { flush_interval: 20, batch_lines: 50, workers: 4, ...batch },
    ...(source.frame && { frame: source.frame }),
  });
  return {
    source,
    metrics,
    count: (name: string) => metrics.counter(name, "").get(),
    stop: async () => {
      ctl.abort();
      return await running;
    },
  };
}

/** Wait until `cond()` holds (a deadline only so that a broken build fails instead of hanging). */
async function until(cond: () => boolean, what: () => string, ms = 60_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sorted = (a: string[]) => a.toSorted();

async function append(path: string, ls: string[]) {
  await Deno.writeTextFile(path, text(ls), { append: true });
}

Deno.test("TailSource follows lines appended while it runs, and resumes from its checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const log = join(dir, "app.log");
  const into = intake();
  const want = lines("a", 0, 100);
  await append(log, want);
  let t = tail(dir, into, { include: [join(dir, "*.log")] });
  await until(() => into.lines.length >= 100, () => `${into.lines.length}/100`);
  for (let i = 1; i <= 5; i++) {
    const more = lines("a", i * 100, 100);
    want.push(...more);
    await append(log, more);
    await until(() => into.lines.length >= want.length, () => `${into.lines.length}`);
  }
  await t.stop();
  // Restarted: what was delivered is not sent again; what came while it was down is.
  const down = lines("b", 0, 30);
  want.push(...down);
  await append(log, down);
  t = tail(dir, into, { include: [join(dir, "*.log")] });
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}`);
  await t.stop();
  assert.deepEqual(into.lines, want, "in order, nothing lost or repeated");
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource under rename rotation at load delivers the exact multiset", async () => {
  // Issue #19 asks for 5,000 lines/s rotating every 2 s for 20 s; 8 s by default here (the
  // machine's 2 cores are shared with other runs): 40,000 lines, 4 renames.
  // TAIL_ROTATION_SECONDS=20 runs the full length.
  const dir = await Deno.makeTempDir();
  const into = intake();
  const t = tail(dir, into, { include: [join(dir, "app.log*")] }, {
    batch_lines: 500,
  });
  const seconds = Number(Deno.env.get("TAIL_ROTATION_SECONDS") ?? 8);
  const want = await writeRotating(dir, { seconds, perSecond: 5000, rotateEvery: 2000 });
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}/${want.length}`);
  await new Promise((r) => setTimeout(r, 500)); // room for a duplicate to show up
  await t.stop();
  assert.equal(into.lines.length, want.length);
  assert.deepEqual(sorted(into.lines), sorted(want));
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource after copytruncate reads the copy's rest and the truncated file from 0, counted", async () => {
  const dir = await Deno.makeTempDir();
  const log = join(dir, "app.log");
  const into = intake();
  const t = tail(dir, into, { include: [join(dir, "app.log*")] });
  const want = lines("c", 0, 200);
  await append(log, want);
  await until(() => into.lines.length >= 200, () => `${into.lines.length}`);
  // Lines the agent may not have read yet when logrotate copies and truncates.
  const late = lines("late", 0, 50);
  want.push(...late);
  await append(log, late);
  await Deno.copyFile(log, join(dir, "app.log.1"));
  await Deno.truncate(log, 0);
  const after = lines("d", 0, 20);
  want.push(...after);
  await append(log, after);
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}/${want.length}`);
  await until(() => t.count("tail_files_truncated_total") === 1, () => "truncation not counted");
  await new Promise((r) => setTimeout(r, 500));
  await t.stop();
  assert.deepEqual(sorted(into.lines), sorted(want));
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource reads a file deleted while it is being read to its end", async () => {
  const dir = await Deno.makeTempDir();
  const log = join(dir, "app.log");
  const into = intake();
  const want = lines("del", 0, 20_000);
  await append(log, want);
  into.hold(); // the intake stalls: the agent is mid-file when the file is deleted
  const t = tail(dir, into, { include: [join(dir, "*.log")], max_read_bytes: "16KiB" });
  await until(() => into.requests() > 0, () => "no request");
  await Deno.remove(log);
  into.release();
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}/${want.length}`);
  await t.stop();
  // Batches released at once by the intake complete in any order: compare the multisets.
  assert.deepEqual(sorted(into.lines), sorted(want));
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource recognises a gzip rotation of a file it read and does not send it again", async () => {
  const dir = await Deno.makeTempDir();
  const log = join(dir, "app.log");
  const into = intake();
  const t = tail(dir, into, { include: [join(dir, "app.log*")] });
  const want = lines("g", 0, 300);
  await append(log, want);
  await until(() => into.lines.length >= 300, () => `${into.lines.length}`);
  // logrotate with compress: rename, create, then app.log.1 → app.log.1.gz.
  await Deno.rename(log, join(dir, "app.log.1"));
  const next = lines("h", 0, 10);
  want.push(...next);
  await append(log, next);
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}`);
  const plain = await Deno.readFile(join(dir, "app.log.1"));
  await Deno.writeFile(join(dir, "app.log.1.gz"), zlib.gzipSync(plain));
  await Deno.remove(join(dir, "app.log.1"));
  await until(
    () => t.count("tail_compressed_skipped_total") === 1,
    () => "the .gz was not recognised",
  );
  // A gzip file of lines never seen is read, once.
  const fresh = lines("fresh", 0, 25);
  want.push(...fresh);
  await Deno.writeFile(join(dir, "app.log.9.gz"), zlib.gzipSync(text(fresh)));
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}`);
  await new Promise((r) => setTimeout(r, 500));
  await t.stop();
  assert.deepEqual(sorted(into.lines), sorted(want));
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource holds a partial last line until its newline, or until line_timeout", async () => {
  const dir = await Deno.makeTempDir();
  const log = join(dir, "app.log");
  const into = intake();
  let t = tail(dir, into, { include: [join(dir, "*.log")], line_timeout: "1h" });
  await Deno.writeTextFile(log, "first\npart");
  await until(() => into.lines.length >= 1, () => "first line not delivered");
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(into.lines, ["first"], "the partial line is held");
  await Deno.writeTextFile(log, "ial\n", { append: true });
  await until(() => into.lines.length >= 2, () => `${into.lines}`);
  await t.stop();
  assert.deepEqual(into.lines, ["first", "partial"]);

  t = tail(dir, into, { include: [join(dir, "*.log")], line_timeout: "200ms" });
  await Deno.writeTextFile(log, "no newline ever", { append: true });
  await until(() => into.lines.length >= 3, () => `${into.lines}`);
  await t.stop();
  assert.deepEqual(into.lines, ["first", "partial", "no newline ever"]);
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource joins multi-line records by a start-of-record pattern", async () => {
  const dir = await Deno.makeTempDir();
  const log = join(dir, "app.log");
  const into = intake();
  const t = tail(dir, into, {
    include: [join(dir, "*.log")],
    line_timeout: "300ms",
    multiline: { start_pattern: "^\\d{4}-\\d\\d-\\d\\d " },
  });
  await Deno.writeTextFile(
    log,
    "2025-01-01 one\n2025-01-01 boom\njava.lang.Error: x\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)\n",
  );
  await until(() => into.lines.length >= 1, () => `${into.lines}`);
  // The stack trace continues in a later write: still one record.
  await Deno.writeTextFile(log, "\tat g.h(I.java:3)\n2025-01-01 three\n", { append: true });
  await until(() => into.lines.length >= 3, () => `${into.lines}`);
  await t.stop();
  assert.deepEqual(into.lines, [
    "2025-01-01 one",
    "2025-01-01 boom\\njava.lang.Error: x\\n\tat a.b(C.java:1)\\n\tat d.e(F.java:2)\\n\tat g.h(I.java:3)",
    "2025-01-01 three",
  ]);
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource with max_open_files 64 follows 2,000 files, never more than 64 open", async () => {
  const dir = await Deno.makeTempDir();
  const into = intake();
  const want: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const ls = lines(`f${i}`, 0, 2);
    want.push(...ls);
    await Deno.writeTextFile(join(dir, `f${i}.log`), text(ls));
  }
  const t = tail(dir, into, { include: [join(dir, "*.log")], max_open_files: 64 }, {
    batch_lines: 1000,
  });
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}`);
  for (let i = 0; i < 2000; i += 7) {
    const ls = lines(`f${i}`, 2, 1);
    want.push(...ls);
    await append(join(dir, `f${i}.log`), ls);
  }
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}/${want.length}`);
  await t.stop();
  assert.deepEqual(sorted(into.lines), sorted(want));
  assert.ok(t.source.openFilesPeak <= 64, `peak open files ${t.source.openFilesPeak}`);
  assert.ok(t.source.openFilesPeak > 0);
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource reads a file renamed out of its globs to the end, also what is written to it after the rename", async () => {
  const dir = await Deno.makeTempDir();
  const into = intake();
  const t = tail(dir, into, { include: [join(dir, "*.log")] });
  const app = await Deno.open(join(dir, "app.log"), { create: true, append: true });
  const enc = new TextEncoder();
  const want = lines("before", 0, 100);
  await app.write(enc.encode(text(want)));
  await until(() => into.lines.length >= 100, () => `${into.lines.length}`);
  // logrotate renames; the application writes on through its old descriptor until it reopens.
  await Deno.rename(join(dir, "app.log"), join(dir, "app.log.old"));
  const late = lines("late", 0, 50);
  want.push(...late);
  await app.write(enc.encode(text(late)));
  app.close();
  const next = lines("next", 0, 20);
  want.push(...next);
  await append(join(dir, "app.log"), next);
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}/${want.length}`);
  await new Promise((r) => setTimeout(r, 500));
  await t.stop();
  assert.deepEqual(sorted(into.lines), sorted(want));
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource with watch: false follows appends and rotations by polling alone", async () => {
  const dir = await Deno.makeTempDir();
  const log = join(dir, "app.log");
  const into = intake();
  const t = tail(dir, into, { include: [join(dir, "app.log*")], watch: false });
  const want = lines("p", 0, 50);
  await append(log, want);
  await until(() => into.lines.length >= 50, () => `${into.lines.length}`);
  await Deno.rename(log, join(dir, "app.log.1"));
  const more = lines("q", 0, 50);
  want.push(...more);
  await append(log, more);
  await until(() => into.lines.length >= want.length, () => `${into.lines.length}`);
  await t.stop();
  assert.deepEqual(sorted(into.lines), sorted(want));
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource forgets files gone for forget_after: the checkpoint stays bounded", async () => {
  const dir = await Deno.makeTempDir();
  const into = intake();
  await append(join(dir, "a.log"), lines("a", 0, 10));
  await append(join(dir, "b.log"), lines("b", 0, 10));
  const t = tail(dir, into, { include: [join(dir, "*.log")], forget_after: "200ms" });
  await until(() => into.lines.length >= 20, () => `${into.lines.length}`);
  await Deno.remove(join(dir, "b.log"));
  const saved = async () => {
    try {
      const state = JSON.parse(await Deno.readTextFile(join(dir, "state.json")));
      return (state.state.files as { path: string }[]).map((f) => f.path).sort();
    } catch {
      return [];
    }
  };
  let paths: string[] = [];
  for (let i = 0; i < 200 && paths.length !== 1; i++) {
    paths = await saved();
    await new Promise((r) => setTimeout(r, 50));
  }
  await t.stop();
  assert.deepEqual(paths, [join(dir, "a.log")]);
  await into.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("TailSource include/exclude globs choose the files", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "a", "b"), { recursive: true });
  const into = intake();
  await Deno.writeTextFile(join(dir, "a", "x.log"), "ax\n");
  await Deno.writeTextFile(join(dir, "a", "b", "y.log"), "aby\n");
  await Deno.writeTextFile(join(dir, "a", "b", "debug.log"), "debug\n");
  await Deno.writeTextFile(join(dir, "a", "z.txt"), "az\n");
  const t = tail(dir, into, {
    include: [join(dir, "**/*.log")],
    exclude: [join(dir, "**/debug.log")],
  });
  await until(() => into.lines.length >= 2, () => `${into.lines}`);
  await new Promise((r) => setTimeout(r, 300));
  await t.stop();
  assert.deepEqual(sorted(into.lines), sorted(["ax", "aby"]));
  await into.close();
  await Deno.remove(dir, { recursive: true });
});
