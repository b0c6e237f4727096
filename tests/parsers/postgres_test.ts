import assert from "node:assert/strict";
import { ParserStream } from "../../mod/parsers/parser_stream.ts";
import { PostgresParser } from "../../mod/parsers/postgres.ts";
import { linesOf, parseText, testdata, time } from "./_util.ts";

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

Deno.test("PostgresParser() parses the RDS prefix into fields", () => {
  const [r] = parseText(
    new PostgresParser(),
    "2024-05-01 12:00:00 UTC:10.0.0.5(52344):app@orders:[12345]:LOG:  duration: 1.234 ms  statement: SELECT 1",
  );
  assert.deepEqual(r, {
    ...time(T0, "2024-05-01 12:00:00 UTC"),
    client_host: "10.0.0.5",
    client_port: 52344,
    user: "app",
    database: "orders",
    pid: 12345,
    severity: "LOG",
    message: "duration: 1.234 ms  statement: SELECT 1",
    duration_ms: 1.234,
  });
});

Deno.test("PostgresParser() leaves out empty client, user and database", () => {
  const [r] = parseText(
    new PostgresParser(),
    "2024-05-01 12:00:00 UTC::@:[5321]:LOG:  checkpoint starting: time",
  );
  assert.deepEqual(r, {
    ...time(T0, "2024-05-01 12:00:00 UTC"),
    pid: 5321,
    severity: "LOG",
    message: "checkpoint starting: time",
  });
});

Deno.test("PostgresParser() folds a realistic RDS log into one record per message", () => {
  const parser = new PostgresParser();
  const records = parseText(parser, testdata("postgres_rds.log"));
  assert.equal(records.length, 13);
  assert.equal(parser.lines, 31);
  assert.equal(parser.records, 13);
  assert.equal(parser.parseErrors, 0);
  assert.ok(records.every((r) => typeof r._timestamp === "number" && r.parse_error === undefined));

  const dup = records[3]!;
  assert.equal(dup.severity, "ERROR");
  assert.equal(dup.message, 'duplicate key value violates unique constraint "orders_pkey"');
  assert.equal(dup.detail, "Key (id)=(42) already exists.");
  assert.equal(dup.statement, "INSERT INTO orders (id, customer_id, total)\nVALUES (42, 7, 19.99)");
  assert.equal(dup._timestamp, (T0 + 6000) * 1000);

  const slow = records[4]!;
  assert.equal(slow.user, "reporting");
  assert.equal(slow.duration_ms, 2501.88);
  assert.equal(
    slow.message,
    "duration: 2501.880 ms  statement: SELECT c.name,\n       sum(o.total)\n  FROM customers c\n" +
      "  JOIN orders o ON o.customer_id = c.id\n GROUP BY c.name;",
  );

  assert.equal(records[5]!.hint, 'Perhaps you meant to reference the column "orders.total".');
  assert.equal(records[5]!.statement, "SELECT totl FROM orders");
  assert.equal(records[6]!.context, "PL/pgSQL function compute_ratio(integer) line 3 at RETURN");
  assert.equal(records[6]!.statement, "SELECT compute_ratio(0)");
  assert.equal(records[7]!.client_host, "[local]");
  assert.equal(records[7]!.client_port, undefined);
  assert.equal(records[8]!.severity, "FATAL");
  assert.match(records[8]!.detail as string, /pg_hba\.conf line 13/);
  assert.equal(records[9]!.query, "SELECT * FORM t");
  assert.equal(records[9]!.context, "PL/pgSQL function run_dynamic() line 4 at EXECUTE");
  assert.equal((records[10]!.message as string).split("\n").length, 5);
  assert.match(records[10]!.message as string, /\nsystem usage: CPU/);
  assert.equal(records[11]!.client_host, "2001:db8::15");
  assert.equal(records[11]!.client_port, 50432);
  assert.equal(records[12]!.severity, "WARNING");
});

Deno.test("PostgresParser() does not fold a DETAIL line of another pid", () => {
  const records = parseText(
    new PostgresParser(),
    [
      "2024-05-01 12:00:00 UTC:10.0.0.5(1):a@d:[100]:ERROR:  first",
      "2024-05-01 12:00:00 UTC:10.0.0.6(2):b@d:[200]:DETAIL:  belongs to 200",
    ].join("\n"),
  );
  assert.equal(records.length, 2);
  assert.equal(records[0]!.detail, undefined);
  assert.equal(records[1]!.severity, "DETAIL");
  assert.equal(records[1]!.pid, 200);
});

Deno.test("PostgresParser() keeps unparsable lines as parse errors", () => {
  const parser = new PostgresParser();
  const records = parseText(
    parser,
    [
      "\ttail of a statement from the previous portion",
      "more of it",
      "2024-05-01 12:00:00 UTC this prefix is not the RDS one",
      "2024-05-01 12:00:01 UTC:10.0.0.5(1):app@orders:[7]:LOG:  fine",
    ].join("\n"),
  );
  assert.deepEqual(records, [
    {
      message: "\ttail of a statement from the previous portion\nmore of it",
      parse_error: true,
    },
    { message: "2024-05-01 12:00:00 UTC this prefix is not the RDS one", parse_error: true },
    {
      ...time(T0 + 1000, "2024-05-01 12:00:01 UTC"),
      client_host: "10.0.0.5",
      client_port: 1,
      user: "app",
      database: "orders",
      pid: 7,
      severity: "LOG",
      message: "fine",
    },
  ]);
  assert.equal(parser.parseErrors, 2);
});

Deno.test("PostgresParser() strips CRLF leftovers", () => {
  const records = parseText(
    new PostgresParser(),
    "2024-05-01 12:00:00 UTC::@:[1]:ERROR:  x\r\n2024-05-01 12:00:00 UTC::@:[1]:HINT:  y\r\n\tz\r\n",
  );
  assert.equal(records.length, 1);
  assert.equal(records[0]!.message, "x");
  assert.equal(records[0]!.hint, "y\nz");
});

Deno.test("PostgresParser() reads %m milliseconds and numeric zones, keeps unknown zones raw", () => {
  const records = parseText(
    new PostgresParser(),
    [
      "2024-05-01 12:00:00.250 UTC::@:[1]:LOG:  ms",
      "2024-05-01 14:00:00 +02::@:[1]:LOG:  plus two",
      "2024-05-01 06:30:00 -0530::@:[1]:LOG:  minus five thirty",
      "2024-05-01 14:00:00 CEST::@:[1]:LOG:  abbreviation",
    ].join("\n"),
  );
  assert.equal(records[0]!._timestamp, (T0 + 250) * 1000);
  assert.equal(records[0]!.log_time, "2024-05-01 12:00:00.250 UTC");
  assert.equal(records[1]!._timestamp, T0 * 1000);
  assert.equal(records[1]!.log_time, "2024-05-01 14:00:00 +02");
  assert.equal(records[2]!._timestamp, T0 * 1000);
  assert.equal(records[3]!._timestamp, undefined);
  assert.equal(records[3]!.log_time, "2024-05-01 14:00:00 CEST");
});

Deno.test("PostgresParser() splits a record that outgrows maxRecordChars", () => {
  const parser = new PostgresParser({ maxRecordChars: 25 });
  const records = parseText(
    parser,
    "2024-05-01 12:00:00 UTC::@:[1]:LOG:  0123456789\n\tabcdefghij\n\tklmnopqrst\n",
  );
  assert.deepEqual(records.map((r) => r.message), ["0123456789\nabcdefghij", "klmnopqrst"]);
  assert.equal(records[1]!.continued, true);
  assert.throws(() => new PostgresParser({ maxRecordChars: 0 }), RangeError);
});

Deno.test("ParserStream() emits PostgresParser records, the last one on close", async () => {
  const parser = new PostgresParser();
  const records = await Array.fromAsync(
    ReadableStream.from(linesOf(testdata("postgres_rds.log"))).pipeThrough(
      new ParserStream(parser),
    ),
  );
  assert.equal(records.length, 13);
  assert.equal(records.at(-1)!.message, "there is no transaction in progress");
  assert.equal(parser.records, 13);
});
