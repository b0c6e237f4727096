import assert from "node:assert/strict";
import { JsonRecordsParser } from "../../mod/parsers/json_records.ts";
import { ParserStream } from "../../mod/parsers/parser_stream.ts";
import { linesOf, parseText, testdata } from "./_util.ts";

Deno.test("JsonRecordsParser() reads NDJSON, skipping and counting malformed lines", () => {
  const parser = new JsonRecordsParser();
  const records = parseText(parser, testdata("k8s_app.ndjson"));
  assert.equal(parser.format, undefined); // reset by flush
  assert.equal(parser.lines, 8);
  assert.equal(parser.malformed, 1);
  assert.equal(parser.errors.length, 1);
  assert.equal(parser.errors[0]!.line, 7);
  assert.match(parser.errors[0]!.message, /^invalid JSON: /);
  assert.equal(records.length, 9); // 5 objects + 4 elements of the array line
  assert.equal(parser.records, 9);
  assert.deepEqual(records[0], {
    timestamp: "2024-05-01T12:00:00.123456789Z",
    kubernetes: { namespace_name: "payments", pod_name: "api-7d9c", container_name: "api" },
    message: "GET /healthz 200",
  });
  assert.equal(records[4]!.message, "no timestamp at all");
  assert.deepEqual(records.slice(5), [
    { message: "array" },
    { message: "in" },
    { message: "a" },
    { message: "line" },
  ]);
});

Deno.test("JsonRecordsParser() detects a pretty-printed JSON array and skips a bad element", () => {
  const parser = new JsonRecordsParser();
  const lines = linesOf(testdata("k8s_app_array.txt"));
  const records = [];
  for (const line of lines) records.push(...parser.push(line));
  assert.equal(parser.format, "array");
  records.push(...parser.flush());
  assert.equal(records.length, 3);
  assert.deepEqual(records[0], {
    timestamp: "2024-05-01T12:00:00Z",
    message: "first, with a comma and a ] bracket",
    kubernetes: { namespace_name: "payments", labels: { app: "api" } },
  });
  assert.equal(records[1]!.message, 'escaped "quote" and \\ backslash');
  assert.deepEqual(records[2], {
    ts: 1714564803,
    message: "after the bad one",
    tags: [1, [2, 3]],
  });
  assert.equal(parser.malformed, 1);
  assert.equal(parser.errors[0]!.line, 8);
  assert.match(parser.errors[0]!.message, /^invalid JSON array element: /);
});

Deno.test("JsonRecordsParser() reads a one-line array, leading whitespace and CRLF", () => {
  const parser = new JsonRecordsParser();
  const records = parseText(parser, '\r\n  \r\n [{"a":1}, {"a":2},\r\n  {"a":3}]\r\n');
  assert.deepEqual(records, [{ a: 1 }, { a: 2 }, { a: 3 }]);
  assert.equal(parser.malformed, 0);
});

Deno.test("JsonRecordsParser() reads concatenated arrays, counts text after them", () => {
  const parser = new JsonRecordsParser();
  const records = parseText(parser, '[{"a":1}]\n[{"a":2}] trailing\n');
  assert.deepEqual(records, [{ a: 1 }, { a: 2 }]);
  assert.equal(parser.malformed, 1);
  assert.deepEqual(parser.errors, [
    { line: 2, message: "unexpected text after the JSON array at column 11" },
  ]);
});

Deno.test("JsonRecordsParser() keeps complete elements of a truncated array", () => {
  const parser = new JsonRecordsParser();
  const records = parseText(parser, '[\n{"a":1},\n{"a":2}\n');
  assert.deepEqual(records, [{ a: 1 }, { a: 2 }]);
  assert.equal(parser.malformed, 0);
  assert.deepEqual(parser.errors, [{ line: 3, message: "JSON array not closed at end of input" }]);

  const cut = new JsonRecordsParser();
  assert.deepEqual(parseText(cut, '[{"a":1},{"a":'), [{ a: 1 }]);
  assert.equal(cut.malformed, 1);
});

Deno.test("JsonRecordsParser() skips array elements over maxRecordChars", () => {
  const parser = new JsonRecordsParser({ maxRecordChars: 20 });
  const big = JSON.stringify({ message: "x".repeat(50) });
  const records = parseText(
    parser,
    `[\n{"a":1},\n${big.slice(0, 30)}\n${big.slice(30)},\n{"b":2}]`,
  );
  assert.deepEqual(records, [{ a: 1 }, { b: 2 }]);
  assert.equal(parser.malformed, 1);
  assert.deepEqual(parser.errors, [{ line: 3, message: "array element larger than 20 chars" }]);
});

Deno.test("JsonRecordsParser() caps the error list but counts every malformed line", () => {
  const parser = new JsonRecordsParser({ maxErrors: 2 });
  parseText(parser, '{"ok":1}\nbad\nbad\nbad\n');
  assert.equal(parser.malformed, 3);
  assert.deepEqual(parser.errors.map((e) => e.line), [2, 3]);
  assert.throws(() => new JsonRecordsParser({ maxRecordChars: 0 }), RangeError);
  assert.throws(() => new JsonRecordsParser({ maxErrors: -1 }), RangeError);
});

Deno.test("JsonRecordsParser() starts over after flush", () => {
  const parser = new JsonRecordsParser();
  assert.deepEqual(parseText(parser, '[{"a":1}]'), [{ a: 1 }]);
  assert.deepEqual(parseText(parser, '{"b":2}\nbad'), [{ b: 2 }]);
  assert.equal(parser.errors[0]!.line, 2);
  assert.equal(parser.records, 2);
});

Deno.test("ParserStream() runs JsonRecordsParser over a stream", async () => {
  const parser = new JsonRecordsParser();
  const records = await Array.fromAsync(
    ReadableStream.from(linesOf(testdata("k8s_app_array.txt")))
      .pipeThrough(new ParserStream(parser)),
  );
  assert.equal(records.length, 3);
  assert.equal(parser.malformed, 1);
});
