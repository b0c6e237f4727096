import assert from "node:assert/strict";
import { LineStream } from "../../mod/pipeline/line_stream.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function split(chunks: Uint8Array[], opts?: { maxLineBytes?: number }) {
  const ls = new LineStream(opts);
  const arrays = await Array.fromAsync(ReadableStream.from(chunks).pipeThrough(ls));
  return { lines: arrays.flat().map(dec), ls };
}

const SAMPLE = 'first line\r\n{"a":1}\n\nthird é\r\nno newline at end';
const EXPECTED = ["first line", '{"a":1}', "third é", "no newline at end"];

Deno.test("LineStream() gives the same lines for a chunk boundary at every byte position", async () => {
  const bytes = enc(SAMPLE);
  for (let i = 0; i <= bytes.length; i++) {
    for (let j = i; j <= bytes.length; j += 3) {
      const { lines } = await split([
        bytes.subarray(0, i),
        bytes.subarray(i, j),
        bytes.subarray(j),
      ]);
      assert.deepEqual(lines, EXPECTED, `split at ${i},${j}`);
    }
  }
});

Deno.test("LineStream() handles one byte per chunk, CRLF and a final line without newline", async () => {
  const bytes = enc(SAMPLE);
  const { lines, ls } = await split([...bytes].map((b) => new Uint8Array([b])));
  assert.deepEqual(lines, EXPECTED);
  assert.equal(ls.lines, 4);
  assert.equal(ls.emptyLines, 1);
  assert.equal(ls.bytes, EXPECTED.reduce((n, l) => n + enc(l).length, 0));
});

Deno.test("LineStream() cuts a line at maxLineBytes and counts it, within and across chunks", async () => {
  const long = "x".repeat(25);
  for (
    const chunks of [
      [enc(`ab\n${long}\ncd\n`)],
      [...enc(`ab\n${long}\ncd\n`)].map((b) => new Uint8Array([b])),
    ]
  ) {
    const { lines, ls } = await split(chunks, { maxLineBytes: 10 });
    assert.deepEqual(lines, ["ab", "x".repeat(10), "cd"]);
    assert.equal(ls.linesTruncated, 1);
  }
  // A line of exactly the limit (plus CR) is not cut.
  const { lines, ls } = await split([enc("0123456789\r\n")], { maxLineBytes: 10 });
  assert.deepEqual(lines, ["0123456789"]);
  assert.equal(ls.linesTruncated, 0);
});

Deno.test("LineStream() holds at most maxLineBytes of a huge line without newline", async () => {
  const chunk = new Uint8Array(64 * 1024).fill(120);
  const chunks = Array.from({ length: 64 }, () => chunk); // 4 MiB, no newline
  const { lines, ls } = await split([...chunks, enc("\nafter\n")], { maxLineBytes: 100_000 });
  assert.equal(lines.length, 2);
  assert.equal(lines[0]!.length, 100_000);
  assert.equal(lines[1], "after");
  assert.equal(ls.linesTruncated, 1);
});

Deno.test("LineStream() rejects a bad maxLineBytes", () => {
  assert.throws(
    () => new LineStream({ maxLineBytes: 0 }),
    /maxLineBytes must be a positive integer: got 0/,
  );
});

Deno.test("LineStream.split()/end() frame without the stream, chunk by chunk", () => {
  const ls = new LineStream({ maxLineBytes: 8 });
  const e = (s: string) => new TextEncoder().encode(s);
  const d = (a: Uint8Array[]) => a.map((x) => new TextDecoder().decode(x));
  assert.deepEqual(d(ls.split(e("one\ntw"))), ["one"]);
  assert.deepEqual(d(ls.split(e("o\r\nthree-is-long\nfo"))), ["two", "three-is"]);
  assert.deepEqual(d(ls.end()), ["fo"]);
  assert.equal(ls.linesTruncated, 1);
});

Deno.test("LineStream.split() keeps no view of a chunk: its buffer may be reused after", () => {
  const ls = new LineStream();
  const chunk = enc("one\ntw");
  assert.deepEqual(ls.split(chunk).map(dec), ["one"]);
  chunk.fill(120); // the decoder reuses the buffer for its next output
  assert.deepEqual(ls.split(enc("o\n")).map(dec), ["two"]);
});

Deno.test("LineStream.firstTruncatedAt is the input offset where the first cut line starts", () => {
  const e = (s: string) => new TextEncoder().encode(s);
  // Within one chunk.
  const a = new LineStream({ maxLineBytes: 4 });
  a.split(e("ab\nabcdefg\nxyzuvw\n"));
  assert.equal(a.firstTruncatedAt, 3);
  assert.equal(a.linesTruncated, 2);
  // A line that starts in one chunk and is cut in a later one.
  const b = new LineStream({ maxLineBytes: 4 });
  b.split(e("ok\nab"));
  b.split(e("c"));
  b.split(e("defgh\n"));
  assert.equal(b.firstTruncatedAt, 3);
  // None cut.
  const c = new LineStream({ maxLineBytes: 4 });
  c.split(e("ab\ncd\n"));
  assert.equal(c.firstTruncatedAt, undefined);
});

Deno.test("LineStream.splitEach() reports the lines split() gives, as spans, at every chunk boundary", () => {
  const bytes = enc(`${SAMPLE}\n${"y".repeat(30)}\nz`);
  for (let i = 0; i <= bytes.length; i++) {
    const views = new LineStream({ maxLineBytes: 20 });
    const spans = new LineStream({ maxLineBytes: 20 });
    const want: string[] = [];
    const got: string[] = [];
    for (const chunk of [bytes.subarray(0, i), bytes.subarray(i)]) {
      want.push(...views.split(chunk).map(dec));
      spans.splitEach(chunk, (buf, start, end) => got.push(dec(buf.subarray(start, end))));
    }
    want.push(...views.end().map(dec));
    spans.endEach((buf, start, end) => got.push(dec(buf.subarray(start, end))));
    assert.deepEqual(got, want, `split at ${i}`);
    assert.deepEqual(want, [...EXPECTED, "y".repeat(20), "z"]);
    assert.equal(spans.linesTruncated, 1);
  }
});
