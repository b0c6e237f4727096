import assert from "node:assert/strict";
import { MultilineStream } from "../../mod/pipeline/multiline_stream.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function records(chunks: string[], options = {}) {
  const out = await Array.fromAsync(
    ReadableStream.from(chunks.map(enc)).pipeThrough(
      new MultilineStream({ startPattern: /^\d{4} /, ...options }),
    ),
  );
  return out.flat().map(dec);
}

Deno.test("MultilineStream() joins lines that do not start a record to the record before them", async () => {
  assert.deepEqual(
    await records(["2025 a\n2025 boom\n\tat x\n", "\tat y\n2025 c\n"]),
    ["2025 a", "2025 boom\\n\tat x\\n\tat y", "2025 c"],
  );
});

Deno.test("MultilineStream() keeps lines before the first record start as a record of their own", async () => {
  assert.deepEqual(await records(["\tat orphan\n2025 a\n"]), ["\tat orphan", "2025 a"]);
});

Deno.test("MultilineStream() puts the separator between joined lines and ends the last record at the end", async () => {
  assert.deepEqual(await records(["2025 a\nb\nc"], { separator: " | " }), ["2025 a | b | c"]);
});

Deno.test("MultilineStream() cuts a record at maxRecordBytes and counts it once", async () => {
  const s = new MultilineStream({ startPattern: /^\d{4} /, maxRecordBytes: 16 });
  const out = await Array.fromAsync(
    ReadableStream.from([enc("2025 abcdefgh\nmore1\nmore2\n2025 next\n")]).pipeThrough(s),
  );
  assert.deepEqual(out.flat().map(dec), ["2025 abcdefgh", "2025 next"]);
  assert.equal(s.linesTruncated, 1);
});
