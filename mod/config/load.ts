/**
 * Loading a YAML config file: positions for every node, `${ENV}` interpolation, and validation
 * against a declared spec that reports every problem at once with key path and line:column.
 * @module
 */

import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node as YamlNode,
  parseDocument,
} from "yaml";
import { redactText } from "../log/redact.ts";
import type { Ctx, Field, Input, Issue, Pos } from "./spec.ts";

/** A config that failed to load or validate; `issues` holds every problem. */
export class ConfigError extends Error {
  readonly issues: Issue[];
  readonly file: string;
  constructor(file: string, issues: Issue[], options?: ErrorOptions) {
    super(
      `invalid config ${file}:\n` + issues.map((i) => "  " + formatIssue(file, i)).join("\n"),
      options,
    );
    this.name = "ConfigError";
    this.file = file;
    this.issues = issues;
  }
}

/**
 * `file:line:col: path: message` (position left out when unknown), or `--flag: path: message`
 * when a command-line flag set the value.
 */
export function formatIssue(file: string, i: Issue): string {
  const where = i.flag ?? (i.pos ? `${file}:${i.pos.line}:${i.pos.col}` : file);
  return redactText(`${where}: ${i.path || "(top level)"}: ${i.message}`);
}

/** Where `${VAR}` and `${credential:NAME}` look up their values. */
export interface InterpolateOptions {
  /** Environment lookup. @default Deno.env.get */
  env?: (name: string) => string | undefined;
  /** Directory of systemd credentials. @default $CREDENTIALS_DIRECTORY */
  credentialsDir?: string | undefined;
}

const REF = /\$\$|\$\{([^}]*)\}/g;

/**
 * Expand `${VAR}`, `${VAR:-default}` and `${credential:NAME}` (a file in systemd's
 * `$CREDENTIALS_DIRECTORY`) in one string. `$$` is a literal `$`.
 *
 * @returns the expanded string, or `{ error }` naming the unresolved reference.
 */
export function interpolate(
  s: string,
  { env = (n) => Deno.env.get(n), credentialsDir }: InterpolateOptions = {},
): string | { error: string } {
  let error: string | undefined;
  const out = s.replace(REF, (whole, ref: string | undefined) => {
    if (whole === "$$") return "$";
    ref = ref!.trim();
    if (ref.startsWith("credential:")) {
      const name = ref.slice("credential:".length);
      const dir = credentialsDir ?? env("CREDENTIALS_DIRECTORY");
      if (!dir) {
        error ??=
          `\${${ref}}: CREDENTIALS_DIRECTORY is not set (systemd LoadCredential= provides it)`;
        return "";
      }
      if (!/^[\w.@-]+$/.test(name)) {
        error ??= `\${${ref}}: invalid credential name`;
        return "";
      }
      try {
        return Deno.readTextFileSync(`${dir}/${name}`).replace(/\r?\n$/, "");
      } catch (e) {
        error ??= `\${${ref}}: cannot read credential ${name}: ${(e as Error).message}`;
        return "";
      }
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s.exec(ref);
    if (!m) {
      error ??= `\${${ref}}: not a variable reference (use \${NAME} or \${NAME:-default})`;
      return "";
    }
    const v = env(m[1]!);
    if (v !== undefined && v !== "") return v;
    if (m[2] !== undefined) return m[2];
    error ??= `environment variable ${m[1]} is not set (write \${${m[1]}:-default} for a default)`;
    return "";
  });
  return error ? { error } : out;
}

/**
 * Turn YAML text into an {@link Input} tree with positions, interpolating scalars.
 * Syntax errors and interpolation errors go to `ctx.issues`.
 */
export function parseYaml(
  text: string,
  ctx: Ctx,
  opts: InterpolateOptions = {},
): Input | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  const posOf = (offset: number | undefined): Pos | undefined => {
    if (offset === undefined) return undefined;
    const { line, col } = lc.linePos(offset);
    return { line, col };
  };
  for (const e of [...doc.errors, ...doc.warnings]) {
    ctx.issues.push({
      path: "",
      message: `YAML ${doc.errors.includes(e) ? "syntax error" : "warning"}: ${
        e.message.split("\n")[0]
      }`,
      ...(posOf(e.pos[0]) && { pos: posOf(e.pos[0])! }),
    });
  }
  if (doc.errors.length > 0) return undefined;

  const walk = (node: unknown, path: string, depth: number): Input => {
    if (depth > 64) {
      ctx.issues.push({ path, message: "nesting too deep (alias loop?)" });
      return { value: null };
    }
    if (isAlias(node)) return walk(node.resolve(doc), path, depth + 1);
    const n = node as YamlNode | null;
    const pos = posOf(n?.range?.[0]);
    const base = pos ? { pos } : {};
    if (isMap(n)) {
      const entries = new Map<string, Input>();
      const keyPos = new Map<string, Pos>();
      const value: Record<string, unknown> = {};
      for (const pair of n.items) {
        const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const kp = posOf((pair.key as YamlNode | null)?.range?.[0]);
        const childPath = path ? `${path}.${k}` : k;
        if (entries.has(k)) {
          const first = keyPos.get(k) ?? entries.get(k)?.pos;
          ctx.issues.push({
            path: childPath,
            message: `duplicate key "${k}"${first ? ` (first at line ${first.line})` : ""}`,
            ...(kp && { pos: kp }),
          });
          continue;
        }
        if (kp) keyPos.set(k, kp);
        const child = walk(pair.value, childPath, depth + 1);
        // A key with no value (`key:`) is reported at the key.
        if (!child.pos && kp) child.pos = kp;
        entries.set(k, child);
        value[k] = child.value;
      }
      return { ...base, value, entries, keyPos };
    }
    if (isSeq(n)) {
      const items = n.items.map((it, i) => walk(it, `${path}[${i}]`, depth + 1));
      return { ...base, value: items.map((i) => i.value), items };
    }
    if (isScalar(n)) {
      if (typeof n.value === "string" && n.value.includes("$")) {
        const r = interpolate(n.value, opts);
        if (typeof r === "object") {
          ctx.issues.push({ path, message: r.error, ...base });
          return { ...base, value: null, interpolated: true, unresolved: true };
        }
        return { ...base, value: r, interpolated: r !== n.value };
      }
      return { ...base, value: n.value };
    }
    return { ...base, value: null };
  };
  return walk(doc.contents, "", 0);
}

/** Options for {@link loadConfig} and {@link validateText}. */
export interface LoadOptions extends InterpolateOptions {
  /** Values that override the file's, by dotted key path (from CLI flags). */
  overrides?: Record<string, unknown>;
  /** The flag that set each override, by the same path: problems are blamed on it. */
  overrideFlags?: Record<string, string>;
  /**
   * Reference layouts: a file whose top level has `marker` and no `section` key is read as if
   * `keys` stood under `section:` (monitor's reference config is `kafka:`, `global:`,
   * `environments:` at the top). Positions stay those of the file.
   */
  nest?: readonly NestRule[];
}

/** One reference layout of {@link LoadOptions.nest}. */
export interface NestRule {
  section: string;
  marker: string;
  keys: readonly string[];
}

/** Move a reference layout's top-level keys under their section (see {@link LoadOptions.nest}). */
function nestReference(root: Input, rules: readonly NestRule[]): void {
  const top = root.entries;
  if (!top || typeof root.value !== "object" || root.value === null) return;
  const value = root.value as Record<string, unknown>;
  for (const rule of rules) {
    if (!top.has(rule.marker) || top.has(rule.section)) continue;
    const entries = new Map<string, Input>();
    const keyPos = new Map<string, Pos>();
    const inner: Record<string, unknown> = {};
    for (const k of rule.keys) {
      const child = top.get(k);
      if (!child) continue;
      entries.set(k, child);
      const kp = root.keyPos?.get(k);
      if (kp) keyPos.set(k, kp);
      inner[k] = child.value;
      top.delete(k);
      delete value[k];
    }
    const marker = entries.get(rule.marker);
    top.set(rule.section, {
      value: inner,
      entries,
      keyPos,
      ...(marker?.pos && { pos: marker.pos }),
    });
    value[rule.section] = inner;
  }
}

/**
 * Validate YAML text against `spec`.
 *
 * @throws {ConfigError} with every problem when anything is wrong.
 */
export function validateText<T>(
  spec: Field<T>,
  text: string,
  file: string,
  opts: LoadOptions = {},
): T {
  const ctx: Ctx = { issues: [] };
  const root = text.trim() === "" ? { value: {} } : parseYaml(text, ctx, opts);
  if (root && opts.nest) nestReference(root, opts.nest);
  if (root && opts.overrides) applyOverrides(root, opts.overrides, opts.overrideFlags ?? {});
  const out = root ? spec.parse(root, "", ctx) : undefined;
  if (ctx.issues.length > 0 || out === undefined) {
    ctx.issues.sort((a, b) =>
      (a.pos?.line ?? 1e9) - (b.pos?.line ?? 1e9) || (a.pos?.col ?? 0) - (b.pos?.col ?? 0)
    );
    throw new ConfigError(file, ctx.issues);
  }
  return out;
}

/**
 * Read and validate a config file. `path` undefined means "no file": defaults only.
 *
 * @throws {ConfigError} when the file is missing, unreadable, or invalid.
 */
export async function loadConfig<T>(
  spec: Field<T>,
  path: string | undefined,
  opts: LoadOptions = {},
): Promise<T> {
  if (path === undefined) return validateText(spec, "", "(defaults)", opts);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "file not found" : (e as Error).message;
    throw new ConfigError(path, [{ path: "", message: `cannot read config: ${why}` }], {
      cause: e,
    });
  }
  return validateText(spec, text, path, opts);
}

/**
 * The top-level keys of the config file at `path` (its sections), read without validating
 * anything; `undefined` when it cannot be read or parsed or is not a mapping ({@link loadConfig}
 * then says why).
 */
export async function configSections(path: string): Promise<string[] | undefined> {
  try {
    const doc = parseDocument(await Deno.readTextFile(path), { uniqueKeys: false });
    if (doc.errors.length > 0) return undefined;
    if (doc.contents === null) return [];
    if (!isMap(doc.contents)) return undefined;
    const keys: string[] = [];
    for (const item of doc.contents.items) {
      if (!isScalar(item.key) || typeof item.key.value !== "string") return undefined;
      keys.push(item.key.value);
    }
    return keys;
  } catch {
    return undefined;
  }
}

/** Set `a.b.c` in an Input tree (creating mappings on the way). */
function applyOverrides(
  root: Input,
  overrides: Record<string, unknown>,
  flags: Record<string, string>,
): void {
  for (const [path, value] of Object.entries(overrides)) {
    let node = root;
    const keys = path.split(".");
    keys.forEach((k, i) => {
      node.entries ??= new Map();
      if (typeof node.value !== "object" || node.value === null) node.value = {};
      if (i === keys.length - 1) {
        const flag = flags[path];
        node.entries.set(k, { value, interpolated: true, ...(flag && { flag }) });
        (node.value as Record<string, unknown>)[k] = value;
        return;
      }
      let next = node.entries.get(k);
      if (!next || typeof next.value !== "object" || next.value === null) {
        next = { value: {}, entries: new Map() };
        node.entries.set(k, next);
        (node.value as Record<string, unknown>)[k] = next.value;
      }
      node = next;
    });
  }
}
