import assert from "node:assert/strict";
import { MysqlErrorParser } from "../../mod/parsers/mysql_error.ts";
import { parseText, testdata, time } from "./_util.ts";

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

Deno.test("MysqlErrorParser() parses the 8.0 form with code and subsystem", () => {
  const parser = new MysqlErrorParser();
  const records = parseText(parser, testdata("mysql_error_80.log"));
  assert.equal(records.length, 7);
  assert.equal(parser.parseErrors, 0);
  assert.deepEqual(records[2], {
    ...time(T0 + 1345, "2024-05-01T12:00:01.345678Z", 678),
    thread_id: 0,
    severity: "Warning",
    error_code: "MY-010055",
    subsystem: "Server",
    message: "IP address '10.0.0.9' could not be resolved: Name or service not known",
  });
  assert.equal(records[4]!.thread_id, 42);
  assert.equal(records[4]!.severity, "Note");
  assert.equal(records[1]!.subsystem, "InnoDB");
});

Deno.test("MysqlErrorParser() folds lines without a time into the previous message", () => {
  const records = parseText(new MysqlErrorParser(), testdata("mysql_error_80.log"));
  assert.equal(
    records[5]!.message,
    "Assertion failure: btr0cur.cc:336 thread 140234\n" +
      "InnoDB: We intentionally generate a memory trap.\n" +
      "InnoDB: Submit a detailed bug report to http://bugs.mysql.com.",
  );
  assert.equal(records[5]!.severity, "ERROR");
  assert.equal(records[6]!.error_code, "MY-011068");
});

Deno.test("MysqlErrorParser() parses the 5.7, 5.6 and 5.5 forms", () => {
  const records = parseText(new MysqlErrorParser(), testdata("mysql_error_old.log"));
  assert.deepEqual(records, [
    {
      ...time(T0 + 123, "2024-05-01T12:00:00.123456Z", 456),
      thread_id: 0,
      severity: "Note",
      message: "InnoDB: Buffer pool(s) load completed at 240501 12:00:00",
    },
    {
      ...time(T0 + 1000, "2024-05-01T12:00:01.000000Z"),
      thread_id: 0,
      severity: "Warning",
      message: "'user' entry 'rdsadmin@localhost' ignored in --skip-name-resolve mode.",
    },
    {
      ...time(T0 + 2000, "2024-05-01T12:00:02.000000Z"),
      thread_id: 8,
      severity: "Note",
      message: "Aborted connection 8 to db: 'orders' user: 'app' host: '10.0.0.5' " +
        "(Got timeout reading communication packets)",
    },
    {
      ...time(T0, "2024-05-01 12:00:00"),
      thread_id: 12345,
      severity: "Note",
      message: "Plugin 'FEDERATED' is disabled.",
    },
    {
      ...time(T0, "2024-05-01 12:00:00"),
      thread_id: "7f2b8c0a3700",
      message: "InnoDB: Warning: Using innodb_additional_mem_pool_size is DEPRECATED.",
    },
    {
      ...time(T0 + 1000, "2024-05-01 12:00:01"),
      thread_id: 12345,
      severity: "Warning",
      message: "Aborted connection 12345 to db: 'orders' user: 'app' host: '10.0.0.5' " +
        "(Got an error reading communication packets)",
    },
    {
      ...time(T0 + 2000, "240501 12:00:02"),
      severity: "Note",
      message: "Event Scheduler: Loaded 0 events",
    },
  ]);
});

Deno.test("MysqlErrorParser() keeps leading unparsable lines and strips CRLF", () => {
  const parser = new MysqlErrorParser();
  const records = parseText(
    parser,
    "stack frame from a cut-off portion\r\n" +
      "2024-05-01T12:00:00.000000Z 0 [Note] [MY-000000] [Server] ok\r\n",
  );
  assert.deepEqual(records, [
    { message: "stack frame from a cut-off portion", parse_error: true },
    {
      ...time(T0, "2024-05-01T12:00:00.000000Z"),
      thread_id: 0,
      severity: "Note",
      error_code: "MY-000000",
      subsystem: "Server",
      message: "ok",
    },
  ]);
  assert.equal(parser.parseErrors, 1);
  assert.equal(parser.lines, 2);
});
