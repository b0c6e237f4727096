import assert from "node:assert/strict";
import { MysqlGeneralParser } from "../../mod/parsers/mysql_general.ts";
import { parseText, testdata, time } from "./_util.ts";

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

Deno.test("MysqlGeneralParser() parses 8.0 general log lines", () => {
  const parser = new MysqlGeneralParser();
  const records = parseText(parser, testdata("mysql_general_80.log"));
  assert.equal(parser.headerLines, 3);
  assert.deepEqual(records.map((r) => r.command), [
    "Connect",
    "Query",
    "Query",
    "Init DB",
    "Prepare",
    "Execute",
    "Quit",
  ]);
  assert.deepEqual(records[0], {
    ...time(T0 + 123, "2024-05-01T12:00:00.123456Z", 456),
    thread_id: 12,
    command: "Connect",
    argument: "app@10.0.0.5 on orders using SSL/TLS",
  });
  assert.equal(records[2]!.argument, "SELECT id, total\nFROM orders\nWHERE customer_id = 7");
  assert.equal(records[3]!.argument, "reporting");
  assert.equal(records[6]!.argument, "");
  assert.equal(parser.parseErrors, 0);
});

Deno.test("MysqlGeneralParser() gives 5.6 lines without a time the previous time", () => {
  const records = parseText(new MysqlGeneralParser(), testdata("mysql_general_56.log"));
  assert.deepEqual(records, [
    {
      ...time(T0, "240501 12:00:00"),
      thread_id: 5,
      command: "Connect",
      argument: "app@10.0.0.5 on orders",
    },
    { ...time(T0, "240501 12:00:00"), thread_id: 5, command: "Query", argument: "SELECT 1" },
    { ...time(T0 + 1000, "240501 12:00:01"), thread_id: 5, command: "Quit", argument: "" },
  ]);
});

Deno.test("MysqlGeneralParser() accepts spaces instead of tabs", () => {
  const [r] = parseText(
    new MysqlGeneralParser(),
    "2024-05-01T12:00:00.123456Z    12 Query     SELECT 1",
  );
  assert.deepEqual(r, {
    ...time(T0 + 123, "2024-05-01T12:00:00.123456Z", 456),
    thread_id: 12,
    command: "Query",
    argument: "SELECT 1",
  });
});

Deno.test("MysqlGeneralParser() keeps leading unparsable lines, strips CRLF", () => {
  const parser = new MysqlGeneralParser();
  const records = parseText(
    parser,
    "WHERE id = 3\r\n2024-05-01T12:00:00.000000Z\t   7 Query\tSELECT 2\r\n",
  );
  assert.deepEqual(records, [
    { message: "WHERE id = 3", parse_error: true },
    {
      ...time(T0, "2024-05-01T12:00:00.000000Z"),
      thread_id: 7,
      command: "Query",
      argument: "SELECT 2",
    },
  ]);
  assert.equal(parser.parseErrors, 1);
});
