import assert from "node:assert/strict";
import { TextLines } from "../../mod/parsers/text_lines.ts";

const enc = new TextEncoder();

Deno.test("TextLines() splits like LineStream: CRLF, empty lines, a line and a character across chunks", () => {
  const lines = new TextLines();
  const bytes = enc.encode("a\r\n\nbé😀c\nlast");
  const out: string[] = [];
  // one byte at a time: every line and every character is split somewhere
  for (let i = 0; i < bytes.length; i++) out.push(...lines.split(bytes.subarray(i, i + 1)));
  out.push(...lines.end());
  assert.deepEqual(out, ["a", "bé😀c", "last"]);
});

Deno.test("TextLines() cuts a line over maxLineBytes at a character and drops its rest", () => {
  const lines = new TextLines({ maxLineBytes: 8 });
  const out = [
    ...lines.split(enc.encode("1234567é9 and more")),
    ...lines.split(enc.encode(" still the long line\nok\n")),
    ...lines.end(),
  ];
  assert.deepEqual(out, ["1234567", "ok"]);
  assert.equal(lines.linesTruncated, 1);
  assert.throws(() => new TextLines({ maxLineBytes: 0 }), RangeError);
});

Deno.test("TextLines.eachLine() gives the same lines however the input is cut: lines over many chunks, CRLF, cut lines", () => {
  const text = [
    "short",
    "x".repeat(50) + "é".repeat(20),
    "",
    "crlf\r",
    "a line that is too long for the limit and spans chunks ".repeat(4),
    "after the cut line",
    "😀 end",
  ].join("\n") + "\ntail";
  const bytes = enc.encode(text);
  const whole = new TextLines({ maxLineBytes: 100 });
  const want = [...whole.split(bytes), ...whole.end()];
  const long = "a line that is too long for the limit and spans chunks ".repeat(4).slice(0, 100);
  assert.deepEqual(want.slice(0, 4), ["short", "x".repeat(50) + "é".repeat(20), "crlf", long]);
  assert.deepEqual(want.slice(4), ["after the cut line", "😀 end", "tail"]);
  for (const size of [1, 2, 3, 7, 16, 33, 64]) {
    const lines = new TextLines({ maxLineBytes: 100 });
    const got: string[] = [];
    const push = (t: string, from: number, to: number) => got.push(t.slice(from, to));
    for (let i = 0; i < bytes.length; i += size) lines.eachLine(bytes.subarray(i, i + size), push);
    lines.endLine(push);
    assert.deepEqual(got, want, `chunks of ${size} bytes`);
    assert.equal(lines.linesTruncated, 1);
  }
});

Deno.test("TextLines.eachLine() gives a chunk's bytes with its lines only when they are its characters", () => {
  // ASCII lines, others, and an invalid byte (decoded as U+FFFD: not the byte)
  const input = new Uint8Array([
    ...enc.encode('first line\nsecond "line"\tx\nthird é\nfourth\n😀 fifth\nsixth\nbad '),
    0xff,
    ...enc.encode("\nlast\n"),
  ]);
  for (let size = 1; size <= input.length; size++) {
    const lines = new TextLines();
    let ascii = 0;
    const check = (t: string, from: number, to: number, bytes?: Uint8Array) => {
      if (bytes === undefined) return;
      ascii++;
      for (let i = from; i < to; i++) assert.equal(bytes[i], t.charCodeAt(i), `chunks of ${size}`);
    };
    for (let o = 0; o < input.length; o += size) lines.eachLine(input.subarray(o, o + size), check);
    lines.endLine(check);
    if (size >= input.length) assert.equal(ascii, 0, "a non-ASCII chunk gives no bytes");
    if (size === 12) assert.ok(ascii > 0, "ASCII chunks give their bytes");
  }
});
