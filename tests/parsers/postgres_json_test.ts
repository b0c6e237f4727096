/**
 * PostgresParser writes records as JSON bytes: they must be what the object-building reference
 * (_postgres_regexp.ts) gives, through `JSON.stringify`, over varied input.
 */
import assert from "node:assert/strict";
import { PostgresParser } from "../../mod/parsers/postgres.ts";
import type { LogRecord, ParserContext } from "../../mod/parsers/record.ts";
import { RegExpPostgresParser } from "./_postgres_regexp.ts";
import { testdata } from "./_util.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A small seeded generator (tests repeat). */
function random(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
}

/** Text that JSON escapes, or encodes in more than one byte. */
const ODD = [
  "plain",
  "héllo wörld",
  "日本語",
  "emoji 😀 pair",
  "lone \ud800 high",
  "lone \udc00 low",
  "ends high \udbff",
  "\udc00\ud800 reversed",
  'quote " and \\ backslash',
  "tab\tinside",
  "ctl \u0000\u0001\u0007\b\f\u000b\u000e\u001f\u007f end",
  "cr \r in the middle",
  "line sep \u2028 para \u2029",
  "\ufeff bom \ufffd replacement \uffff",
  "",
  "   ",
];

const TIMES = [
  "2024-05-01 12:00:00 UTC",
  "2024-05-01 12:00:00.250 UTC",
  "2024-05-01 12:00:01.1234567 UTC",
  "2024-05-01 12:00:00 +02",
  "2024-05-01 12:00:00 -05:30",
  "2024-05-01 12:00:00 +0530",
  "2024-05-01 12:00:00 CEST",
  "1969-12-31 23:59:59 UTC",
  "2024-05-01 12:00:60 UTC",
  "2024-02-30 12:00:00 UTC",
];

const DURATIONS = [
  "1.234",
  "2501.880",
  "12",
  "0.000001",
  "0.0000015",
  "0.0000001",
  "00012.500",
  "0.0",
  "1.0",
  "123456789012345",
  "1234567890123456789",
  "99999999999999999999999",
  "3.14159265358979323846",
  "0.1",
  "100",
];

/** Lines: records, continuations of every kind (of the same pid and others), malformed ones. */
function generatedLines(seed: number, count: number): string[] {
  const r = random(seed);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  const odd = () => pick(ODD);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const pid = pick(["[1]", "[2]", "[]", "[123456]"]);
    const middle = pick([
      "10.0.0.5(52344):app@orders",
      "[local]:postgres@postgres",
      "2001:db8::15(50432):u@d",
      "::@",
      `h${odd()}(1):${odd()}@${odd()}`,
      `${odd()}:u@d`,
      "h(99999999999999999999):u@d",
      "h:ud", // no @: malformed
    ]);
    const prefix = `${pick(TIMES)}:${middle}:${pid}:`;
    const k = r();
    if (k < 0.2) {
      out.push(
        `${prefix}${pick(["LOG", "ERROR", "FATAL", "WARNING", "DEBUG1"])}:  ${odd()} ${odd()}`,
      );
    } else if (k < 0.3) {
      out.push(`${prefix}LOG:  duration: ${pick(DURATIONS)} ms  statement: ${odd()}`);
    } else if (k < 0.55) {
      const sev = pick(["DETAIL", "HINT", "STATEMENT", "CONTEXT", "QUERY", "LOCATION"]);
      out.push(`${prefix}${sev}:  ${odd()}`);
    } else if (k < 0.75) out.push(`\t${odd()} ${odd()}`);
    else if (k < 0.85) out.push(`${odd()} continued`);
    else if (k < 0.9) out.push(`2024-05-01 12:00:00 UTC not the RDS prefix ${odd()}`);
    else if (k < 0.95) out.push(`${pick(TIMES)}:${middle}:${pid}:lower: ${odd()}`);
    else out.push(`x${odd()}`);
  }
  return out;
}

/** The folding cases spelled out: earlier fields appended to, every continuation, plain lines. */
const FOLDING = [
  "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:ERROR:  first message",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:DETAIL:  a detail",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:STATEMENT:  SELECT 1",
  "\tFROM t",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:DETAIL:  a second detail, not last",
  "\tits continuation",
  "more of the message? no: of the detail",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:HINT:  hint",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:CONTEXT:  ctx",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:QUERY:  q",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:LOCATION:  loc",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[7]:HINT:  hint again",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[8]:DETAIL:  another pid",
  "2024-05-01 12:00:00 UTC:h(1):u@d:[8]:DETAIL:  same pid now: appended to the detail written last",
  "2024-05-01 12:00:00 UTC::@:[]:LOG:  no pid",
  "2024-05-01 12:00:00 UTC::@:[]:DETAIL:  no pid either: folded",
  "\t",
  "",
];

/** What the reference makes of `lines` read in `cuts` parts (contexts through JSON). */
function reference(lines: string[], max: number, cuts: number[] = []) {
  let parser = new RegExpPostgresParser(max);
  const out: LogRecord[] = [];
  let counts = { lines: 0, records: 0, parseErrors: 0 };
  lines.forEach((l, i) => {
    if (cuts.includes(i)) {
      counts = add(counts, parser);
      parser = new RegExpPostgresParser(max, JSON.parse(JSON.stringify(parser.context())));
    }
    out.push(...parser.pushText(l));
  });
  out.push(...parser.flush());
  return { records: JSON.parse(JSON.stringify(out)) as LogRecord[], counts: add(counts, parser) };
}

function add(
  c: { lines: number; records: number; parseErrors: number },
  p: { lines: number; records: number; parseErrors: number },
) {
  return {
    lines: c.lines + p.lines,
    records: c.records + p.records,
    parseErrors: c.parseErrors + p.parseErrors,
  };
}

/**
 * The JSON bytes PostgresParser writes for `lines` read in parts (cut before the lines in
 * `cuts`, each read's context through JSON, taken from `old` when given: a context as the object
 * parser stored it), with `suffix` after each record.
 */
function written(
  lines: string[],
  max: number,
  cuts: number[] = [],
  old?: (at: number) => ParserContext,
  suffix = "",
) {
  const make = (context?: ParserContext) => {
    const p = new PostgresParser({ maxRecordChars: max, context });
    p.recordSuffix = enc.encode(suffix);
    return p;
  };
  let parser = make();
  const parts: Uint8Array[] = [];
  let counts = { lines: 0, records: 0, parseErrors: 0 };
  const take = () =>
    parser.takeJson((json, count) => {
      const text = dec.decode(json);
      // as many records as it says, each a JSON object
      assert.equal(JSON.parse(`[${text}]`).length, count);
      parts.push(json.slice());
    });
  lines.forEach((l, i) => {
    if (cuts.includes(i)) {
      take();
      counts = add(counts, parser);
      parser = make(old ? old(i) : JSON.parse(JSON.stringify(parser.context())));
    }
    // in place (not the whole string); an ASCII line every other time with its bytes too
    const text = `<${l}>`;
    const ascii = i % 2 === 0 && [...text].every((c) => c.charCodeAt(0) < 0x80)
      ? enc.encode(text)
      : undefined;
    parser.pushLine(text, 1, l.length + 1, ascii);
    if (i % 7 === 0) take();
  });
  parser.endRecord();
  take();
  const text = parts.map((p) => dec.decode(p)).join(",");
  const bytes = enc.encode(text);
  // The bytes joined are what they decode to (valid UTF-8, nothing replaced) ...
  assert.deepEqual(enc.encode(dec.decode(concat(parts, 44))), bytes);
  const records = JSON.parse(`[${text}]`) as LogRecord[];
  // ... and byte for byte what JSON.stringify writes for the same values, in the same key order:
  // strings escaped and numbers formatted as it does.
  assert.deepEqual(enc.encode(JSON.stringify(records).slice(1, -1)), bytes);
  return { records, counts: add(counts, parser) };
}

/** `parts` joined with the byte `sep`. */
function concat(parts: Uint8Array[], sep: number): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length + 1, 0));
  let o = 0;
  parts.forEach((p, i) => {
    if (i) out[o++] = sep;
    out.set(p, o);
    o += p.length;
  });
  return out.subarray(0, o);
}

const inputs: [string, string[]][] = [
  ["postgres_rds.log", testdata("postgres_rds.log").split("\n")],
  ["folding", FOLDING],
  ...[1, 2, 3, 4, 5].map((s): [string, string[]] => [`generated #${s}`, generatedLines(s, 400)]),
];

for (const [name, lines] of inputs) {
  Deno.test(`PostgresParser writes the JSON of the object parser's records: ${name}`, () => {
    for (const max of [1_048_576, 200, 40, 1]) {
      const want = reference(lines, max);
      const got = written(lines, max);
      assert.deepEqual(got.records, want.records, `maxRecordChars ${max}`);
      assert.deepEqual(got.counts, want.counts, `maxRecordChars ${max}`);
    }
  });

  Deno.test(`PostgresParser continues from a context mid-record as the object parser: ${name}`, () => {
    const r = random(lines.length);
    for (const max of [1_048_576, 60]) {
      for (let k = 0; k < 8; k++) {
        const cuts = [
          ...new Set(Array.from({ length: 1 + k }, () => Math.floor(r() * lines.length))),
        ];
        const want = reference(lines, max, cuts);
        assert.deepEqual(written(lines, max, cuts).records, want.records, `cut at ${cuts}`);
        // A context stored by the object parser (what DynamoDB holds today) restores too.
        const old = (at: number) => {
          const p = new RegExpPostgresParser(max);
          for (const l of lines.slice(0, at)) p.pushText(l);
          return JSON.parse(JSON.stringify(p.context()));
        };
        const single = cuts.slice(0, 1);
        assert.deepEqual(
          written(lines, max, single, old).records,
          reference(lines, max, single).records,
          `old context at ${single}`,
        );
      }
    }
  });
}

Deno.test("PostgresParser's object API reads back what it wrote", () => {
  const lines = generatedLines(9, 300);
  const parser = new PostgresParser({ maxRecordChars: 100 });
  const got: LogRecord[] = [];
  for (const l of lines) parser.pushRange(`..${l}..`, 2, l.length + 2, got);
  got.push(...parser.flush());
  assert.deepEqual(JSON.parse(JSON.stringify(got)), reference(lines, 100).records);
});

Deno.test("PostgresParser.recordSuffix goes into every record, an empty one's too", () => {
  const suffix = ',"instance":"pg1","engine":"aurora-postgresql","log_file":"é\\"x"';
  const lines = generatedLines(3, 200);
  const { records } = written(lines, 1_048_576, [], undefined, suffix);
  const want = reference(lines, 1_048_576).records;
  const extra = JSON.parse(`{${suffix.slice(1)}}`);
  assert.deepEqual(records, want.map((r) => ({ ...r, ...extra })));
  // A context holding an empty record (none of ours, but accepted before): `{...suffix}`.
  const p = new PostgresParser({ context: { pending: {}, field: "message", chars: 0 } });
  p.recordSuffix = enc.encode(suffix);
  p.endRecord();
  let text = "";
  p.takeJson((json) => text = dec.decode(json));
  assert.deepEqual(JSON.parse(text), extra);
});

Deno.test("PostgresParser.context() keeps the object format and restores non-string fields", () => {
  const p = new PostgresParser();
  p.pushText("2024-05-01 12:00:00 UTC:h(1):u@d:[7]:ERROR:  boom");
  p.pushText("2024-05-01 12:00:00 UTC:h(1):u@d:[7]:DETAIL:  why");
  assert.deepEqual(p.context(), {
    pending: {
      _timestamp: Date.UTC(2024, 4, 1, 12) * 1000,
      log_time: "2024-05-01 12:00:00 UTC",
      client_host: "h",
      client_port: 1,
      user: "u",
      database: "d",
      pid: 7,
      severity: "ERROR",
      message: "boom",
      detail: "why",
    },
    field: "detail",
    chars: 8,
  });
  // A field to continue that holds no string (not ours): replaced, as the object parser does.
  const context = { pending: { message: "m", pid: 7, n: 1 }, field: "n", chars: 1 };
  const q = new PostgresParser({ context: structuredClone(context) });
  const o = new RegExpPostgresParser(1_048_576, structuredClone(context));
  for (const l of ["\tmore", "and more"]) {
    q.pushText(l);
    o.pushText(l);
  }
  assert.deepEqual(q.flush(), o.flush());
  assert.deepEqual(new PostgresParser({ context: { pending: "x" } }).context(), {});
});
