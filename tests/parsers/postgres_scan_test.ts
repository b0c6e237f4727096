import assert from "node:assert/strict";
import { PostgresParser } from "../../mod/parsers/postgres.ts";
import type { LogRecord } from "../../mod/parsers/record.ts";
import { TextLines } from "../../mod/parsers/text_lines.ts";
import { RegExpPostgresParser } from "./_postgres_regexp.ts";
import { testdata } from "./_util.ts";

/** Lines that try every corner of the prefix: the parser must read them as PREFIX did. */
function trickyLines(): string[] {
  const times = [
    "2024-05-01 12:00:00 UTC",
    "2024-05-01 12:00:00.250 UTC",
    "2024-05-01 12:00:00.1234567 UTC",
    "2024-05-01 12:00:60 UTC",
    "2024-02-30 12:00:00 UTC",
    "2024-05-01 24:00:00 UTC",
    "2024-05-01 12:00:00",
    "2024-05-01 12:00:00.",
    "2024-05-01 12:00:00 CEST",
    "2024-05-01 12:00:00 Europe/Berlin",
    "2024-05-01 12:00:00 +02",
    "2024-05-01 12:00:00 -05:30",
    "2024-05-01 12:00:00 +0530",
    "2024-05-01 12:00:00 +05:",
    "2024-05-01 12:00:00 1UTC",
    "2024-05-01T12:00:00 UTC",
    "2024-5-01 12:00:00 UTC",
  ];
  const middles = [
    "10.0.0.5(52344):app@orders",
    "[local]:postgres@postgres",
    "2001:db8::15(50432):u@d",
    "::@",
    ":@",
    "host(port):u@d",
    "host():u@d",
    "host(12a):u@d",
    "h(1):a@b@c",
    "h:u",
    "",
    "h:[1]x:u@d",
    "h:[1]:lower:u@d",
    "h(1):u@d:[2]:LOG:x",
    "h\r(1):u@d",
    "h\u2028:u@d",
    "ü(1):jö@dä",
    "h(99999999999999999999):u@d",
  ];
  const pids = ["[12345]", "[]", "[007]", "[1a]", "[123456789012345678]"];
  const tails = [
    "LOG:  duration: 1.234 ms  statement: SELECT 1",
    "LOG:  duration: 12 ms",
    "LOG:  duration: 1. ms",
    "LOG:  duration: .5 ms",
    "LOG:  duration: 3 msx",
    "LOG:duration: 3 ms",
    "LOG:\t \tmessage after blanks",
    "LOG:",
    "ERROR:  boom",
    "DETAIL:  the detail",
    "STATEMENT:  SELECT 2",
    "HINT:  a hint",
    "DEBUG1:  debug",
    "log:  lower case",
    "L0G:  digit",
    "ERROR :  space",
  ];
  const out: string[] = [];
  let i = 0;
  for (const t of times) {
    for (const m of middles) {
      // Not every combination: every time with every middle, pids and tails in turn.
      const p = pids[i % pids.length]!;
      const tail = tails[i % tails.length]!;
      out.push(`${t}:${m}:${p}:${tail}`);
      out.push(`${t}:${m}:[${1 + (i % 3)}]:${tails[(i * 7) % tails.length]}`);
      i++;
    }
  }
  for (const tail of tails) out.push(`2024-05-01 12:00:00 UTC:h(1):u@d:[7]:${tail}`);
  out.push(
    "\tcontinued with a tab",
    "continued without",
    "2024-05-01 12:00 short",
    "2024-05-01 12:00:00 UTC this prefix is not the RDS one",
    "x",
    "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:DETAIL:  of pid 7",
    "2024-05-01 12:00:00 UTC:h(1):u@d:[8]:DETAIL:  of pid 8",
    "2024-05-01 12:00:00 UTC:h(1):ud:[7]:DETAIL:  no @",
  );
  return out;
}

/** Records of `lines` read one string at a time by `parser`. */
function byLine(
  parser: { pushText(t: string): LogRecord[]; flush(): LogRecord[] },
  lines: string[],
) {
  const out: LogRecord[] = [];
  for (const l of lines) out.push(...parser.pushText(l));
  out.push(...parser.flush());
  return out;
}

Deno.test("PostgresParser() reads tricky prefixes as the regular expression did", () => {
  const lines = trickyLines();
  const expected = byLine(new RegExpPostgresParser(), lines);
  assert.deepEqual(byLine(new PostgresParser(), lines), expected);
  // One line at a time, each after a record of another pid (nothing folds across lines).
  for (const line of lines) {
    const sep = "2024-05-01 12:00:00 UTC:h(1):u@d:[424242]:LOG:  between";
    assert.deepEqual(
      byLine(new PostgresParser(), [sep, line]),
      byLine(new RegExpPostgresParser(), [sep, line]),
      line,
    );
  }
});

Deno.test("PostgresParser.pushRange() reads lines in place in a decoded chunk", () => {
  const text = testdata("postgres_rds.log") + trickyLines().join("\r\n") + "\n";
  const expected = byLine(new RegExpPostgresParser(), new TextLines().split(enc(text)));
  for (const size of [7, 100, 4096, text.length]) {
    const parser = new PostgresParser();
    const lines = new TextLines();
    const got: LogRecord[] = [];
    const push = (t: string, from: number, to: number) =>
      got.push(...parser.pushRange(t, from, to));
    const bytes = enc(text);
    for (let o = 0; o < bytes.length; o += size) lines.eachLine(bytes.subarray(o, o + size), push);
    lines.endLine(push);
    got.push(...parser.flush());
    assert.deepEqual(got, expected, `chunks of ${size} bytes`);
  }
});

function enc(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}
