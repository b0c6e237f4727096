import assert from "node:assert/strict";
import { MysqlParser } from "../../mod/parsers/mysql.ts";
import { ParserStream } from "../../mod/parsers/parser_stream.ts";
import { linesOf, parseText, testdata } from "./_util.ts";

Deno.test("MysqlParser() detects each kind from the content", () => {
  const cases = [
    ["mysql_error_80.log", "error", 7],
    ["mysql_error_old.log", "error", 7],
    ["mysql_slow_80.log", "slow", 4],
    ["mysql_slow_56.log", "slow", 3],
    ["mysql_general_80.log", "general", 7],
    ["mysql_general_56.log", "general", 3],
  ] as const;
  for (const [file, kind, count] of cases) {
    const parser = new MysqlParser();
    const records = parseText(parser, testdata(file));
    assert.equal(parser.kind, kind, file);
    assert.equal(records.length, count, file);
    assert.equal(parser.parseErrors, 0, file);
    assert.equal(parser.lines, linesOf(testdata(file)).length, file);
  }
});

Deno.test("MysqlParser() uses the kind it is given", () => {
  const parser = new MysqlParser({ kind: "general" });
  assert.equal(parser.kind, "general");
  const records = parseText(parser, "# Time: 2024-05-01T12:00:00Z\n");
  assert.deepEqual(records, [{ message: "# Time: 2024-05-01T12:00:00Z", parse_error: true }]);
  assert.throws(() => new MysqlParser({ kind: "audit" as "error" }), RangeError);
  assert.throws(() => new MysqlParser({ maxRecordChars: -1 }), RangeError);
});

Deno.test("MysqlParser() falls back to the error parser when nothing tells", () => {
  const parser = new MysqlParser({ detectLines: 2 });
  const records = parseText(parser, "garbage one\ngarbage two\ngarbage three\n");
  assert.equal(parser.kind, "error");
  assert.deepEqual(records, [
    { message: "garbage one\ngarbage two\ngarbage three", parse_error: true },
  ]);
});

Deno.test("MysqlParser.kindOf() maps RDS log file names", () => {
  assert.equal(MysqlParser.kindOf("error/mysql-error.log"), "error");
  assert.equal(MysqlParser.kindOf("error/mysql-error-running.log.12"), "error");
  assert.equal(MysqlParser.kindOf("slowquery/mysql-slowquery.log.2024-05-01.12"), "slow");
  assert.equal(MysqlParser.kindOf("general/mysql-general.log"), "general");
  assert.equal(MysqlParser.kindOf("audit/server_audit.log"), undefined);
});

Deno.test("ParserStream() runs MysqlParser on a slow log stream", async () => {
  const records = await Array.fromAsync(
    ReadableStream.from(linesOf(testdata("mysql_slow_80.log")))
      .pipeThrough(new ParserStream(new MysqlParser())),
  );
  assert.deepEqual(records.map((r) => r.id), [42, 43, 5, 44]);
});
