import assert from "node:assert/strict";
import { MysqlParser, type MysqlParserOptions } from "../../mod/parsers/mysql.ts";
import { PostgresParser } from "../../mod/parsers/postgres.ts";
import type { LineParser, LogRecord, ParserContext } from "../../mod/parsers/record.ts";
import { linesOf, parseText, testdata } from "./_util.ts";

/**
 * Reads `text` in two parts, as `process` reads a file that grew: the first part's parser is not
 * flushed; its context goes through JSON (as through the tracking table) into a new parser that
 * reads the rest.
 */
function inTwoReads(make: (context?: ParserContext) => LineParser, text: string, at: number) {
  const lines = linesOf(text);
  const first = make();
  const out: LogRecord[] = lines.slice(0, at).flatMap((l) => first.push(l));
  const context = JSON.parse(JSON.stringify(first.context!()));
  const second = make(context);
  out.push(...lines.slice(at).flatMap((l) => second.push(l)), ...second.flush());
  return JSON.parse(JSON.stringify(out));
}

const cases: [string, string, (context?: ParserContext) => LineParser][] = [
  ["postgres_rds.log", "PostgresParser", (context) => new PostgresParser({ context })],
  ...(["mysql_slow_80.log", "mysql_slow_56.log"] as const).flatMap((f) =>
    (["slow", "auto"] as MysqlParserOptions["kind"][]).map((
      kind,
    ): [string, string, (context?: ParserContext) => LineParser] => [
      f,
      `MysqlParser(${kind})`,
      (context) => new MysqlParser({ kind, context }),
    ])
  ),
  ["mysql_general_56.log", "MysqlParser(auto)", (context) => new MysqlParser({ context })],
  [
    "mysql_general_80.log",
    "MysqlParser(general)",
    (context) => new MysqlParser({ kind: "general", context }),
  ],
  [
    "mysql_error_80.log",
    "MysqlParser(error)",
    (context) => new MysqlParser({ kind: "error", context }),
  ],
];

for (const [file, name, make] of cases) {
  Deno.test(`${name}.context() continues ${file} cut at any line as if read in one go`, () => {
    const text = testdata(file);
    const whole = JSON.parse(JSON.stringify(parseText(make(), text)));
    for (let at = 0; at <= linesOf(text).length; at++) {
      assert.deepEqual(inTwoReads(make, text, at), whole, `cut after line ${at}`);
    }
  });
}

Deno.test("MysqlParser.context() keeps the database of a slow log whose use db; came in an earlier read", () => {
  const first = new MysqlParser({ kind: "slow" });
  const block = (n: number) =>
    `# Time: 2024-05-01T12:00:0${n}Z\n# User@Host: a[a] @ h [1.2.3.4]\n# Query_time: 1\n`;
  for (const l of linesOf(block(1) + "use shop;\nSELECT 1;\n")) first.push(l);
  assert.equal(first.flush()[0]!.database, "shop");
  const second = new MysqlParser({ kind: "slow", context: first.context() });
  assert.equal(parseText(second, block(2) + "SELECT 2;\n")[0]!.database, "shop");
});
