/**
 * MySQL / Aurora MySQL logs of any kind: error, slow-query or general, chosen or detected.
 * @module
 */
import { lineText } from "./line_text.ts";
import { MysqlErrorParser } from "./mysql_error.ts";
import { MysqlGeneralParser } from "./mysql_general.ts";
import { MysqlSlowParser } from "./mysql_slow.ts";
import type { LineParser, LogRecord, ParserContext } from "./record.ts";

/** The kinds of MySQL log. */
export type MysqlLogKind = "error" | "slow" | "general";

/** Options for {@linkcode MysqlParser}. */
export interface MysqlParserOptions {
  /**
   * Which log the lines come from; `"auto"` decides from the first line that tells (see
   * {@linkcode MysqlParser}). {@linkcode MysqlParser.kindOf} maps RDS file names to a kind.
   * @default {"auto"}
   */
  kind?: MysqlLogKind | "auto";
  /**
   * Largest record, in characters of text folded into it.
   * @default {1048576}
   */
  maxRecordChars?: number;
  /**
   * With `kind: "auto"`: lines held while no line has told the kind; past it, the error log
   * parser is used.
   * @default {1000}
   */
  detectLines?: number;
  /**
   * Where the previous read of the same file stopped: its {@linkcode MysqlParser.context} (with
   * `kind: "auto"`, the kind it had detected, or the lines it still held).
   */
  context?: ParserContext;
}

type Inner = MysqlErrorParser | MysqlSlowParser | MysqlGeneralParser;

const TS = String
  .raw`(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})|\d{6} {1,2}\d{1,2}:\d{2}:\d{2})`;
const SLOW = /^# (?:Time|User@Host): /;
const GENERAL = new RegExp(String.raw`^(?:${TS}[\t ]+|\t\t *)\d+ [A-Z][A-Za-z_ ]*(?:\t|$| )`);
const ERROR = new RegExp(
  String
    .raw`^(?:${TS}|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) +(?:(?:\d+|[0-9a-f]{8,16}) +)?(?:\[|InnoDB:)`,
);

/**
 * Parses a MySQL log with the parser for its kind ({@linkcode MysqlErrorParser},
 * {@linkcode MysqlSlowParser}, {@linkcode MysqlGeneralParser}). With `kind: "auto"` the first
 * line that tells decides: `# Time:`/`# User@Host:` → slow; `time id Command` → general;
 * `time [id] [Severity]` → error. Lines before that are held (at most `detectLines`) and then
 * replayed. Counters are the chosen parser's.
 */
export class MysqlParser implements LineParser {
  #options: { maxRecordChars: number };
  #inner: Inner | undefined;
  #held: string[] = [];
  #detectLines: number;

  /**
   * @param options see {@linkcode MysqlParserOptions}
   * @throws {RangeError} on an unknown `kind`, or `maxRecordChars`/`detectLines` not positive
   *   integers
   */
  constructor(
    { kind = "auto", maxRecordChars = 1_048_576, detectLines = 1000, context }: MysqlParserOptions =
      {},
  ) {
    if (!Number.isInteger(detectLines) || detectLines < 1) {
      throw new RangeError(`detectLines must be a positive integer: got ${detectLines}`);
    }
    this.#options = { maxRecordChars };
    this.#detectLines = detectLines;
    if (kind !== "auto") {
      if (kind !== "error" && kind !== "slow" && kind !== "general") {
        throw new RangeError(`kind must be auto, error, slow or general: got ${kind}`);
      }
      this.#inner = this.#create(kind, context);
    } else {
      this.#create("error"); // validates maxRecordChars up front
      const known = context?.kind;
      if (known === "error" || known === "slow" || known === "general") {
        this.#inner = this.#create(known, context);
      } else if (Array.isArray(context?.held)) {
        this.#held = context.held.filter((l) => typeof l === "string");
      }
    }
  }

  /**
   * The chosen parser's context and its kind (or, still detecting, the lines held), for the next
   * read of the same file.
   */
  context(): ParserContext {
    const inner = this.#inner;
    if (inner === undefined) return this.#held.length ? { held: [...this.#held] } : {};
    return { kind: this.kind, ...inner.context() };
  }

  /**
   * The kind of an RDS / Aurora MySQL log file from its name: `error/mysql-error.log`,
   * `error/mysql-error-running.log.3` → error; `slowquery/mysql-slowquery.log.2024-05-01.12` →
   * slow; `general/mysql-general.log` → general.
   * @param fileName the file's name as DescribeDBLogFiles lists it
   * @returns the kind, or `undefined` for other files (audit logs, ...)
   */
  static kindOf(fileName: string): MysqlLogKind | undefined {
    const base = fileName.slice(fileName.lastIndexOf("/") + 1);
    if (/slow/i.test(base)) return "slow";
    if (/general/i.test(base)) return "general";
    if (/error/i.test(base)) return "error";
    return undefined;
  }

  /** The kind in use, `undefined` while still detecting. */
  get kind(): MysqlLogKind | undefined {
    const inner = this.#inner;
    if (inner instanceof MysqlSlowParser) return "slow";
    if (inner instanceof MysqlGeneralParser) return "general";
    return inner === undefined ? undefined : "error";
  }

  /** Lines pushed so far. */
  get lines(): number {
    return (this.#inner?.lines ?? 0) + this.#held.length;
  }

  /** Records emitted so far (parse errors included). */
  get records(): number {
    return this.#inner?.records ?? 0;
  }

  /** Records emitted with `parse_error: true` so far. */
  get parseErrors(): number {
    return this.#inner?.parseErrors ?? 0;
  }

  /** File header lines skipped so far (slow and general logs). */
  get headerLines(): number {
    return this.#inner?.headerLines ?? 0;
  }

  /** Feed one line; returns the records it completed. */
  push(line: Uint8Array): LogRecord[] {
    return this.pushText(lineText(line));
  }

  /** Feed one line (text without its newline); returns the records it completed. */
  pushText(text: string): LogRecord[] {
    if (this.#inner !== undefined) return this.#inner.pushText(text);
    let kind: MysqlLogKind | undefined;
    if (SLOW.test(text)) kind = "slow";
    else if (GENERAL.test(text)) kind = "general";
    else if (ERROR.test(text)) kind = "error";
    this.#held.push(text);
    if (kind === undefined && this.#held.length < this.#detectLines) return [];
    return this.#replay(kind ?? "error");
  }

  /** End of input: returns the records still pending. */
  flush(): LogRecord[] {
    const out = this.#inner === undefined ? this.#replay("error") : [];
    out.push(...this.#inner!.flush());
    return out;
  }

  #replay(kind: MysqlLogKind): LogRecord[] {
    const inner = this.#create(kind);
    this.#inner = inner;
    const out: LogRecord[] = [];
    for (const held of this.#held) out.push(...inner.pushText(held));
    this.#held = [];
    return out;
  }

  #create(kind: MysqlLogKind, context?: ParserContext): Inner {
    const options = context === undefined ? this.#options : { ...this.#options, context };
    if (kind === "slow") return new MysqlSlowParser(options);
    if (kind === "general") return new MysqlGeneralParser(options);
    return new MysqlErrorParser(options);
  }
}
