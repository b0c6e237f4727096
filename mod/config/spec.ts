/**
 * Config field builders. A component declares its config once, next to its code, with these
 * builders; validation, defaults, the TypeScript type and the documented example
 * (agent.example.yaml) all come from that one declaration.
 *
 * @example
 * ```ts
 * import { f, type Infer } from "./spec.ts";
 * export const httpSinkSpec = f.object({
 *   endpoints: f.list(f.string({ description: "Intake URL" }), {
 *     description: "HTTP endpoints, used round-robin",
 *     default: ["http://127.0.0.1:8080"],
 *   }),
 *   timeout: f.duration({ description: "Request timeout", default: "30s" }),
 * }, { description: "HTTP sink" });
 * type HttpSinkConfig = Infer<typeof httpSinkSpec>; // { endpoints: string[]; timeout: number }
 * ```
 * @module
 */

import { parseDuration, parseSize } from "./units.ts";

/** A position in the config file, 1-based. */
export interface Pos {
  line: number;
  col: number;
}

/** One problem found while validating a config. */
export interface Issue {
  /** Dotted key path, e.g. `stream.http.endpoints[1]`. */
  path: string;
  message: string;
  pos?: Pos;
  /** The command-line flag that set the value, when a flag did (e.g. `--log-level`). */
  flag?: string;
}

/** A value being validated, with where it came from. */
export interface Input {
  value: unknown;
  pos?: Pos;
  /** True when the scalar came from `${...}` interpolation (numbers/bools may then be strings). */
  interpolated?: boolean;
  /** Children of a mapping, by key. */
  entries?: Map<string, Input>;
  /** Positions of a mapping's keys, by key. */
  keyPos?: Map<string, Pos>;
  /** Items of a sequence. */
  items?: Input[];
  /** Set by a command-line flag (e.g. `--log-level`): problems are blamed on it. */
  flag?: string;
  /** A `${...}` reference that could not be expanded (already reported where it is). */
  unresolved?: boolean;
}

/** Validation state shared by one walk. */
export interface Ctx {
  issues: Issue[];
}

/** Options every field accepts. */
export interface FieldOptions<Raw> {
  /** What the field is for: shown in `--help`, errors and agent.example.yaml. */
  description: string;
  /** The default, written as a user would write it (e.g. `"15s"`, `"1MiB"`). */
  default?: Raw;
  /** A value shown in the example config when there is no default. */
  example?: Raw;
  /** Never print the value (validate output, logs). */
  secret?: boolean;
}

/** A declared config field that parses to `T`. */
export interface Field<T> {
  readonly kind: string;
  readonly description: string;
  readonly secret: boolean;
  /** The default as written, or undefined when the field is required (or optional). */
  readonly rawDefault: unknown;
  readonly example: unknown;
  readonly optional: boolean;
  /** Human description of the type, e.g. `duration`, `list of string`. */
  readonly typeName: string;
  /** Parse `input` (undefined when absent) at `path`; push problems to `ctx.issues`. */
  parse(input: Input | undefined, path: string, ctx: Ctx): T | undefined;
}

/** The TypeScript type a field parses to. */
export type Infer<F> = F extends Field<infer T> ? T : never;

// deno-lint-ignore no-explicit-any
type AnyField = Field<any>;

/** An object field: its shape is kept so docs and sub-specs can reach the children. */
export interface ObjectField<S extends Record<string, AnyField>>
  extends Field<{ [K in keyof S]: Infer<S[K]> }> {
  readonly shape: S;
}

/** A list field, with its item field. */
export interface ListField<T> extends Field<T[]> {
  readonly item: Field<T>;
}

function issue(ctx: Ctx, path: string, message: string, pos?: Pos, flag?: string): undefined {
  ctx.issues.push({ path, message, ...(pos && { pos }), ...(flag && { flag }) });
  return undefined;
}

/**
 * Where a check's problem about `key` (dotted, relative to `input`) is shown: the value when it
 * is there (or the flag that set it), else the key of its nearest parent that is; nothing when
 * none is (the caller's object then puts it at its own key).
 */
function locate(input: Input | undefined, key: string): { pos?: Pos; flag?: string } {
  let node = input;
  let at: Pos | undefined;
  for (const k of key ? key.split(".") : []) {
    const child = node?.entries?.get(k);
    if (!child) return at ? { pos: at } : {};
    at = node?.keyPos?.get(k) ?? child.pos;
    node = child;
  }
  if (node?.flag) return { flag: node.flag };
  const pos = node !== input && !node?.entries ? node?.pos ?? at : at;
  return pos ? { pos } : {};
}

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

/** Build a scalar field from a converter `(raw) => value | error message`. */
function scalar<T>(
  kind: string,
  typeName: string,
  opts: FieldOptions<unknown>,
  convert: (raw: unknown, input: Input) => T | { error: string },
): Field<T> {
  return {
    kind,
    typeName,
    description: opts.description,
    secret: opts.secret ?? false,
    rawDefault: opts.default,
    example: opts.example,
    optional: false,
    parse(input, path, ctx) {
      if (input?.unresolved) return undefined;
      const src = input ?? (opts.default === undefined ? undefined : { value: opts.default });
      if (src === undefined || src.value === undefined || src.value === null) {
        return issue(
          ctx,
          path,
          `is required (${typeName}): ${opts.description}`,
          input?.pos,
          input?.flag,
        );
      }
      const out = convert(src.value, src);
      if (out !== null && typeof out === "object" && "error" in out) {
        return issue(ctx, path, out.error, src.pos, src.flag);
      }
      return out as T;
    },
  };
}

function numeric(raw: unknown, input: Input): number | undefined {
  if (typeof raw === "number") return raw;
  if (input.interpolated && typeof raw === "string" && raw.trim() !== "") {
    const n = Number(raw);
    if (Number.isFinite(n)) return n;
  }
  return undefined;
}

function checkRange(n: number, min?: number, max?: number): string | undefined {
  if (min !== undefined && n < min) return `must be ≥ ${min}: got ${n}`;
  if (max !== undefined && n > max) return `must be ≤ ${max}: got ${n}`;
  return undefined;
}

/** A problem an object's `check` found with one of its keys. */
export interface CheckProblem {
  /** Dotted key path relative to the object, e.g. `s3.bucket`. */
  key: string;
  message: string;
}

/** Field builders. */
export const f = {
  /** A string; `pattern`/`check` restrict it, `secret` masks it in output. */
  string(
    opts: FieldOptions<string> & {
      pattern?: RegExp;
      check?: (v: string) => string | undefined;
      allowEmpty?: boolean;
    },
  ): Field<string> {
    return scalar("string", "string", opts, (raw) => {
      if (typeof raw !== "string") {
        if (typeof raw === "number" || typeof raw === "boolean") return String(raw);
        return { error: `must be a string: got ${typeOf(raw)}` };
      }
      if (!opts.allowEmpty && raw === "" && opts.default !== "") {
        return { error: "must not be empty" };
      }
      if (opts.pattern && !opts.pattern.test(raw)) {
        return {
          error: `must match ${opts.pattern}: got ${opts.secret ? "***" : JSON.stringify(raw)}`,
        };
      }
      const bad = opts.check?.(raw);
      return bad ? { error: bad } : raw;
    });
  },

  /** One of a fixed set of strings. */
  enum<const V extends string>(values: readonly V[], opts: FieldOptions<V>): Field<V> {
    return scalar("enum", values.join("|"), opts, (raw) => {
      if (typeof raw === "string" && (values as readonly string[]).includes(raw)) return raw as V;
      return { error: `must be one of ${values.join(", ")}: got ${typeOf(raw)}` };
    });
  },

  /** A whole number within [min, max]. */
  int(opts: FieldOptions<number> & { min?: number; max?: number }): Field<number> {
    return scalar("int", "integer", opts, (raw, input) => {
      const n = numeric(raw, input);
      if (n === undefined || !Number.isInteger(n)) {
        return { error: `must be an integer: got ${typeOf(raw)}` };
      }
      const bad = checkRange(n, opts.min, opts.max);
      return bad ? { error: bad } : n;
    });
  },

  /** A number within [min, max]. */
  number(opts: FieldOptions<number> & { min?: number; max?: number }): Field<number> {
    return scalar("number", "number", opts, (raw, input) => {
      const n = numeric(raw, input);
      if (n === undefined) return { error: `must be a number: got ${typeOf(raw)}` };
      const bad = checkRange(n, opts.min, opts.max);
      return bad ? { error: bad } : n;
    });
  },

  /** true or false. */
  bool(opts: FieldOptions<boolean>): Field<boolean> {
    return scalar("bool", "boolean", opts, (raw, input) => {
      if (typeof raw === "boolean") return raw;
      if (input.interpolated && (raw === "true" || raw === "false")) return raw === "true";
      return { error: `must be true or false: got ${typeOf(raw)}` };
    });
  },

  /** A duration such as `500ms`, `15s`, `1m`, `1h30m`; parsed to milliseconds. */
  duration(
    opts: FieldOptions<string> & { min?: string; max?: string },
  ): Field<number> {
    const min = opts.min === undefined ? undefined : parseDuration(opts.min);
    const max = opts.max === undefined ? undefined : parseDuration(opts.max);
    return scalar("duration", "duration", opts, (raw) => {
      const ms = parseDuration(raw);
      if (typeof ms === "string") return { error: ms };
      if (typeof min === "number" && ms < min) {
        return { error: `must be ≥ ${opts.min}: got ${raw}` };
      }
      if (typeof max === "number" && ms > max) {
        return { error: `must be ≤ ${opts.max}: got ${raw}` };
      }
      return ms;
    });
  },

  /** A size such as `1MiB`, `10MB`, `512KiB` or a plain number of bytes; parsed to bytes. */
  size(opts: FieldOptions<string | number> & { min?: number; max?: number }): Field<number> {
    return scalar("size", "size", opts, (raw) => {
      const n = parseSize(raw);
      if (typeof n === "string") return { error: n };
      const bad = checkRange(n, opts.min, opts.max);
      return bad ? { error: bad } : n;
    });
  },

  /** A list of `item`. */
  list<T>(
    item: Field<T>,
    opts: FieldOptions<unknown[]> & { minItems?: number },
  ): ListField<T> {
    return {
      kind: "list",
      typeName: `list of ${item.typeName}`,
      description: opts.description,
      secret: opts.secret ?? item.secret,
      rawDefault: opts.default,
      example: opts.example,
      optional: false,
      item,
      parse(input, path, ctx) {
        if (input?.unresolved) return undefined;
        let items: Input[];
        if (input === undefined || input.value === undefined || input.value === null) {
          if (opts.default === undefined) {
            return issue(ctx, path, `is required (${this.typeName}): ${opts.description}`);
          }
          items = (opts.default as unknown[]).map((value) => ({ value }));
        } else if (input.items) {
          items = input.items;
        } else if (Array.isArray(input.value)) {
          items = input.value.map((value) => ({
            value,
            ...(input.pos && { pos: input.pos }),
            ...(input.flag && { flag: input.flag, interpolated: true }),
          }));
        } else {
          return issue(
            ctx,
            path,
            `must be a list: got ${typeOf(input.value)}`,
            input.pos,
            input.flag,
          );
        }
        if (opts.minItems !== undefined && items.length < opts.minItems) {
          return issue(ctx, path, `needs at least ${opts.minItems} item(s)`, input?.pos);
        }
        const out: T[] = [];
        items.forEach((it, i) => {
          const v = item.parse(it, `${path}[${i}]`, ctx);
          if (v !== undefined) out.push(v);
        });
        return out;
      },
    };
  },

  /** A mapping of free-form keys to `value` (e.g. HTTP headers). */
  record<T>(value: Field<T>, opts: FieldOptions<Record<string, unknown>>): Field<
    Record<string, T>
  > {
    return {
      kind: "record",
      typeName: `mapping of ${value.typeName}`,
      description: opts.description,
      secret: opts.secret ?? value.secret,
      rawDefault: opts.default ?? {},
      example: opts.example,
      optional: false,
      parse(input, path, ctx) {
        const entries = entriesOf(input, opts.default ?? {});
        if (entries === undefined) {
          return issue(ctx, path, `must be a mapping: got ${typeOf(input?.value)}`, input?.pos);
        }
        const out: Record<string, T> = {};
        for (const [k, child] of entries) {
          const v = value.parse(child, `${path}.${k}`, ctx);
          if (v !== undefined) out[k] = v;
        }
        return out;
      },
    };
  },

  /** A mapping with a fixed set of keys; unknown keys are rejected. */
  object<S extends Record<string, AnyField>>(
    shape: S,
    opts: {
      description: string;
      /**
       * Rules across fields, run once every field is valid: each problem as a message about the
       * whole object or as `{ key, message }` about a key (dotted, relative to the object).
       * `validate` and a mode's start share them.
       */
      check?: (v: { [K in keyof S]: Infer<S[K]> }) => (string | CheckProblem)[];
    },
  ): ObjectField<S> {
    return {
      kind: "object",
      typeName: "mapping",
      description: opts.description,
      secret: false,
      rawDefault: undefined,
      example: undefined,
      optional: false,
      shape,
      parse(input, path, ctx) {
        const entries = entriesOf(input, {});
        if (entries === undefined) {
          return issue(ctx, path, `must be a mapping: got ${typeOf(input?.value)}`, input?.pos);
        }
        const before = ctx.issues.length;
        for (const [k] of entries) {
          if (!(k in shape)) {
            const hint = closest(k, Object.keys(shape));
            issue(
              ctx,
              join(path, k),
              `unknown key${hint ? ` (did you mean "${hint}"?)` : ""}`,
              input?.keyPos?.get(k) ?? entries.get(k)?.pos,
            );
          }
        }
        const out: Record<string, unknown> = {};
        for (const [k, field] of Object.entries(shape)) {
          const child = entries.get(k);
          const mark = ctx.issues.length;
          const v = field.parse(child, join(path, k), ctx);
          if (v !== undefined) out[k] = v;
          // A key missing below `k` is shown at `k` (its nearest parent in the file).
          const at = child && (input?.keyPos?.get(k) ?? child.pos);
          for (const i of ctx.issues.slice(mark)) if (at && !i.pos && !i.flag) i.pos = at;
        }
        // Rules across keys need every key: none when a problem, or an unset ${VAR}, is below.
        if (ctx.issues.length === before && opts.check && !unresolvedBelow(input)) {
          for (const p of opts.check(out as { [K in keyof S]: Infer<S[K]> })) {
            if (typeof p === "string") issue(ctx, path || "(top level)", p);
            else {
              const { pos, flag } = locate(input, p.key);
              issue(ctx, join(path, p.key), p.message, pos, flag);
            }
          }
        }
        return out as { [K in keyof S]: Infer<S[K]> };
      },
    };
  },

  /** Make a field optional: absent → undefined (no default, no error). */
  optional<T>(field: Field<T>): Field<T | undefined> {
    return {
      ...field,
      optional: true,
      parse(input, path, ctx) {
        if (input === undefined || input.value === undefined || input.value === null) {
          return undefined;
        }
        return field.parse(input, path, ctx);
      },
    };
  },
};

function unresolvedBelow(input: Input | undefined): boolean {
  if (!input) return false;
  if (input.unresolved) return true;
  for (const child of input.entries?.values() ?? []) if (unresolvedBelow(child)) return true;
  return (input.items ?? []).some(unresolvedBelow);
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function entriesOf(input: Input | undefined, fallback: object): Map<string, Input> | undefined {
  if (input === undefined || input.value === undefined || input.value === null) {
    return new Map(Object.entries(fallback).map(([k, value]) => [k, { value }]));
  }
  if (input.entries) return input.entries;
  const v = input.value;
  if (typeof v !== "object" || Array.isArray(v)) return undefined;
  return new Map(
    Object.entries(v as Record<string, unknown>).map((
      [k, value],
    ) => [k, { value, ...(input.pos && { pos: input.pos }) }]),
  );
}

/** The closest candidate within edit distance 2, for "did you mean" hints. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/**
 * Parse a plain JS value (no positions) against a field, throwing on problems.
 * Handy for components built from code (tests, the demo) rather than a file.
 *
 * @throws {TypeError} listing every problem.
 */
export function parseValue<T>(field: Field<T>, value: unknown, path = ""): T {
  const ctx: Ctx = { issues: [] };
  const out = field.parse(value === undefined ? undefined : { value }, path, ctx);
  if (ctx.issues.length > 0 || out === undefined) {
    throw new TypeError(
      ctx.issues.map((i) => `${i.path || "(top level)"}: ${i.message}`).join("\n"),
    );
  }
  return out;
}

/** Replace every secret field's value by `"***"`, for printing. */
export function maskSecrets(field: AnyField, value: unknown): unknown {
  if (value === undefined || value === null) return value;
  if (field.secret) return "***";
  if (field.kind === "object" && typeof value === "object") {
    const shape = (field as ObjectField<Record<string, AnyField>>).shape;
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map((
        [k, v],
      ) => [k, shape[k] ? maskSecrets(shape[k], v) : v]),
    );
  }
  if (field.kind === "list" && Array.isArray(value)) {
    const item = (field as ListField<unknown>).item;
    return value.map((v) => maskSecrets(item, v));
  }
  return value;
}
