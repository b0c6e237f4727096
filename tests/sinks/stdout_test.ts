import assert from "node:assert/strict";
import { parseValue } from "../../mod/config/spec.ts";
import { SinkError } from "../../mod/pipeline/types.ts";
import { StdoutSink, stdoutSinkSpec } from "../../mod/sinks/stdout.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const batch = (lines: string[]) => {
  const items = lines.map(enc);
  return { items, bytes: items.reduce((n, l) => n + l.length + 1, 0) };
};
const signal = new AbortController().signal;

Deno.test("StdoutSink writes batches as lines, in call order, and leaves the stream open", async () => {
  const chunks: string[] = [];
  let closed = false;
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      chunks.push(new TextDecoder().decode(chunk));
    },
    close() {
      closed = true;
    },
  });
  const sink = new StdoutSink({ writable });
  await Promise.all([
    sink.write(batch(["a", "b"]), signal),
    sink.write(batch(["c"]), signal),
    sink.write(batch(["", "d"]), signal),
  ]);
  await sink.close();
  assert.equal(chunks.join(""), "a\nb\nc\n\nd\n");
  assert.equal(closed, false);
  await writable.close(); // the owner closes it; the sink released its lock
  assert.equal(closed, true);
});

Deno.test("StdoutSink fails batches once the stream broke: retryable (reason closed), never a rejection of the lines", async () => {
  const writable = new WritableStream<Uint8Array>({
    write() {
      throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
    },
  });
  const sink = new StdoutSink({ writable });
  await assert.rejects(sink.write(batch(["x"]), signal), (e: unknown) => {
    assert.ok(e instanceof SinkError);
    assert.equal(e.retryable, true, "not dead-lettered: the lines were not refused");
    assert.equal(e.reason, "closed");
    assert.match(e.message, /cannot write a batch of 1 lines to stdout: Broken pipe/);
    return true;
  });
  await assert.rejects(sink.write(batch(["y"]), signal), SinkError);
  await sink.close();
  await assert.rejects(sink.write(batch(["z"]), signal), (e: unknown) => {
    assert.ok(e instanceof SinkError && e.retryable && /closed/.test(e.message));
    return true;
  });
});

Deno.test("StdoutSink writes to the process's stdout by default", async () => {
  const mod = new URL("../../mod/sinks/stdout.ts", import.meta.url).href;
  const code = `
    import { StdoutSink } from ${JSON.stringify(mod)};
    const sink = new StdoutSink();
    const items = ["one", "two", "three"].map((s) => new TextEncoder().encode(s));
    await sink.write({ items, bytes: 14 }, new AbortController().signal);
    await sink.close();
  `;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout), "one\ntwo\nthree\n");
});

Deno.test("stdoutSinkSpec carries the batching keys", () => {
  const c = parseValue(stdoutSinkSpec, { batch_lines: 10 });
  assert.equal(c.batch_lines, 10);
  assert.equal(c.flush_interval, 1000);
});
