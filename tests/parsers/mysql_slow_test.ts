import assert from "node:assert/strict";
import { MysqlSlowParser } from "../../mod/parsers/mysql_slow.ts";
import { parseText, testdata, time } from "./_util.ts";

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

Deno.test("MysqlSlowParser() parses 8.0 slow-query blocks", () => {
  const parser = new MysqlSlowParser();
  const records = parseText(parser, testdata("mysql_slow_80.log"));
  assert.equal(records.length, 4);
  assert.equal(parser.headerLines, 3);
  assert.equal(parser.parseErrors, 0);
  assert.deepEqual(records[0], {
    ...time(T0 + 1500, "2024-05-01T12:00:01.500123Z", 123),
    user: "app",
    host: "ip-10-0-0-5.ec2.internal",
    ip: "10.0.0.5",
    id: 42,
    query_time: 1.5,
    lock_time: 0.0001,
    rows_sent: 1,
    rows_examined: 100,
    database: "orders",
    set_timestamp: 1714564800,
    query: "SELECT * FROM orders WHERE customer_id = 7;",
  });
});

Deno.test("MysqlSlowParser() joins a multi-line query and carries the database over", () => {
  const records = parseText(new MysqlSlowParser(), testdata("mysql_slow_80.log"));
  const r = records[1]!;
  assert.equal(r.user, "reporting");
  assert.equal(r.host, undefined); // `@  [10.0.0.6]`: no host name
  assert.equal(r.ip, "10.0.0.6");
  assert.equal(r.database, "orders"); // no `use` in this block: the last one still holds
  assert.equal(r.rows_examined, 250000);
  assert.equal(
    r.query,
    "SELECT c.name, SUM(o.total) AS revenue\n  FROM customers c\n" +
      "  JOIN orders o ON o.customer_id = c.id\n GROUP BY c.name\n ORDER BY revenue DESC;",
  );
  assert.equal(records[2]!.host, "localhost");
  assert.equal(records[2]!.ip, undefined);
  assert.equal(records[2]!.database, "mysql");
  assert.equal(records[2]!.query, "# administrator command: Ping;");
});

Deno.test("MysqlSlowParser() keeps log_slow_extra fields", () => {
  const r = parseText(new MysqlSlowParser(), testdata("mysql_slow_80.log"))[3]!;
  assert.equal(r.thread_id, 44);
  assert.equal(r.errno, 0);
  assert.equal(r.bytes_sent, 56);
  assert.equal(r.read_rnd_next, 500001);
  assert.equal(r.start, "2024-05-01T12:00:05.000000Z");
  assert.equal(r.end, "2024-05-01T12:00:07.000000Z");
  assert.equal(r._timestamp, (T0 + 7000) * 1000);
  assert.equal(r.query, "UPDATE orders SET status = 'shipped' WHERE shipped_at IS NOT NULL;");
});

Deno.test("MysqlSlowParser() reads 5.6 blocks, with and without # Time", () => {
  const parser = new MysqlSlowParser();
  const records = parseText(parser, testdata("mysql_slow_56.log"));
  assert.equal(records.length, 3);
  assert.equal(records[0]!._timestamp, (T0 + 1000) * 1000);
  assert.equal(records[0]!.log_time, "240501 12:00:01");
  assert.equal(records[0]!.id, 101);
  // no `# Time:` (same second): the SET timestamp gives the time
  assert.equal(records[1]!._timestamp, Date.UTC(2024, 4, 1, 12, 0, 1) * 1000);
  assert.equal(records[1]!.id, 102);
  assert.equal(records[1]!.database, "orders");
  assert.equal(records[1]!.query, "INSERT INTO audit (id, action) VALUES (NULL, 'purge');");
  // `# Time: 240501  2:03:04`: one-digit hour padded with a space
  assert.equal(records[2]!._timestamp, Date.UTC(2024, 4, 1, 2, 3, 4) * 1000);
  assert.equal(records[2]!.query, "DELETE FROM sessions\n WHERE expires_at < NOW();");
  assert.equal(records[2]!.query_time, 12.5);
});

Deno.test("MysqlSlowParser() keeps lines outside a block and tolerates CRLF", () => {
  const parser = new MysqlSlowParser();
  const records = parseText(
    parser,
    "  FROM t WHERE x = 1;\r\n" +
      "# Time: 2024-05-01T12:00:00Z\r\n" +
      "# User@Host: a[a] @ h [1.2.3.4]  Id: 9\r\n" +
      "# Query_time: 1  Lock_time: 0 Rows_sent: 0  Rows_examined: 0\r\n" +
      "SET timestamp=1714564800;\r\n" +
      "SELECT 1;\r\n",
  );
  assert.deepEqual(records[0], { message: "  FROM t WHERE x = 1;", parse_error: true });
  assert.equal(records[1]!.query, "SELECT 1;");
  assert.equal(records[1]!.ip, "1.2.3.4");
  assert.equal(records[1]!._timestamp, T0 * 1000);
  assert.equal(parser.parseErrors, 1);
});
