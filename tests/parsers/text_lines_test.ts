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
