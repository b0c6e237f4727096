/**
 * Render a spec as a documented YAML config: every option with its description and default.
 * agent.example.yaml is this function's output for the agent's whole spec.
 * @module
 */

import { stringify } from "yaml";
import type { Field, ListField, ObjectField } from "./spec.ts";

// deno-lint-ignore no-explicit-any
type AnyField = Field<any>;

function scalarText(v: unknown): string {
  return stringify(v, { lineWidth: 0 }).trimEnd();
}

function wrap(text: string, width = 96): string[] {
  const out: string[] = [];
  for (const para of text.split("\n")) {
    let line = "";
    for (const word of para.split(" ")) {
      if (line && line.length + word.length + 1 > width) {
        out.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    out.push(line);
  }
  return out;
}

function renderValue(key: string, field: AnyField, value: unknown, pad: string): string[] {
  if (field.kind === "object") {
    return [`${pad}${key}:`, ...renderFields((field as ObjectField<never>).shape, pad + "  ")];
  }
  if (field.kind === "list") {
    const list = value as unknown[];
    if (list.length === 0) return [`${pad}${key}: []`];
    const item = (field as ListField<unknown>).item;
    if (item.kind === "object") {
      const lines = [`${pad}${key}:`];
      for (const v of list) {
        const body = stringify(v, { lineWidth: 0 }).trimEnd().split("\n");
        lines.push(`${pad}  - ${body[0]}`, ...body.slice(1).map((l) => `${pad}    ${l}`));
      }
      return lines;
    }
    return [`${pad}${key}:`, ...list.map((v) => `${pad}  - ${scalarText(v)}`)];
  }
  if (field.kind === "record") {
    const rec = value as Record<string, unknown>;
    const keys = Object.keys(rec);
    if (keys.length === 0) return [`${pad}${key}: {}`];
    return [`${pad}${key}:`, ...keys.map((k) => `${pad}  ${k}: ${scalarText(rec[k])}`)];
  }
  return [`${pad}${key}: ${scalarText(value)}`];
}

function renderFields(shape: Record<string, AnyField>, pad: string): string[] {
  const lines: string[] = [];
  for (const [key, field] of Object.entries(shape)) {
    const meta = [field.typeName];
    if (field.rawDefault !== undefined && field.kind !== "object") {
      meta.push(`default: ${scalarText(field.rawDefault).replace(/\n\s*/g, " ")}`);
    } else if (field.optional) meta.push("optional");
    else if (field.kind !== "object") meta.push("required");
    if (field.secret) meta.push("secret: use ${ENV_VAR} or ${credential:NAME}");
    for (const l of wrap(`${field.description} (${meta.join("; ")})`)) lines.push(`${pad}# ${l}`);
    const shown = field.example ?? field.rawDefault;
    if (field.kind === "object") {
      const body = renderValue(key, field, undefined, pad);
      // Optional sections (modes) are written out but can be removed as a whole. One whose keys
      // are all commented out is commented out too (a key with nothing under it would be null).
      const allCommented = field.optional &&
        body.slice(1).every((l) => l.trimStart().startsWith("#"));
      lines.push(
        ...(allCommented
          ? body.map((l) => `${pad}# ${l.slice(pad.length).replace(/^(\s*)# /, "$1")}`)
          : body),
      );
    } else if (shown === undefined) {
      lines.push(`${pad}# ${key}:`);
    } else if (field.optional && field.example === undefined) {
      lines.push(
        ...renderValue(key, field, shown, pad).map((l) => `${pad}# ${l.slice(pad.length)}`),
      );
    } else {
      lines.push(...renderValue(key, field, shown, pad));
    }
  }
  return lines;
}

/**
 * Render an object spec as commented YAML.
 *
 * @param spec the top-level object field.
 * @param header comment lines to put first.
 * @returns YAML text that validates against `spec`.
 */
export function renderExample(spec: ObjectField<Record<string, AnyField>>, header = ""): string {
  const head = header ? header.split("\n").map((l) => `# ${l}`.trimEnd()) : [];
  return [...head, ...renderFields(spec.shape, "")].join("\n") + "\n";
}
