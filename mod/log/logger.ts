/**
 * Structured logging: one JSON object (or one text line) per event on stderr. Secret-looking
 * fields are masked, URLs in messages and fields lose their userinfo and secret query parameters
 * (redact.ts: the one place log output is redacted), errors are printed with their `cause` chain.
 * @module
 */

import { redactText, redactValue } from "./redact.ts";

/** Log levels, least to most severe. */
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Options for {@link Logger}. */
export interface LoggerOptions {
  /** Least severe level written. @default "info" */
  level?: Level;
  /** `json` (one object per line) or `text`. @default "json" */
  format?: "json" | "text";
  /** Where lines go. @default stderr */
  write?: (line: string) => void;
  /** Fields added to every line. */
  fields?: Record<string, unknown>;
  /** Called for every `error`-level event (the status page keeps the last few). */
  onError?: (msg: string, fields: Record<string, unknown>) => void;
}

const SECRET_KEY =
  /(secret|password|passwd|token|authorization|credential|api[_-]?key|access[_-]?key|sas|connection[_-]?string|sig)$/i;

/** Render an error and its `cause` chain as one string: `a: b: c`. */
export function errorChain(e: unknown): string {
  const parts: string[] = [];
  for (let cur: unknown = e, depth = 0; cur !== undefined && depth < 8; depth++) {
    if (cur instanceof Error) {
      parts.push(cur.message);
      cur = cur.cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.filter((p, i) => i === 0 || !parts[i - 1]!.includes(p)).join(": ");
}

/** `unitsFailed` → `units_failed`: log fields are snake_case, whatever object they came from. */
function snake(key: string): string {
  return /[A-Z]/.test(key) ? key.replace(/(?<=[a-z0-9])([A-Z])/g, "_$1").toLowerCase() : key;
}

function clean(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const k = snake(key);
    if (SECRET_KEY.test(k) && v !== null && v !== "") out[k] = "***";
    else if (v instanceof Error) out[k] = redactText(errorChain(v));
    else out[k] = redactValue(v);
  }
  return out;
}

const encoder = new TextEncoder();

/** A structured logger. Cheap when a level is off. */
export class Logger {
  #level: number;
  #format: "json" | "text";
  #write: (line: string) => void;
  #fields: Record<string, unknown>;
  #onError: LoggerOptions["onError"];

  constructor(
    { level = "info", format = "json", write, fields = {}, onError }: LoggerOptions = {},
  ) {
    this.#level = RANK[level];
    this.#format = format;
    this.#write = write ?? ((line) => Deno.stderr.writeSync(encoder.encode(line + "\n")));
    this.#fields = fields;
    this.#onError = onError;
  }

  /** A logger that adds `fields` to every line. */
  with(fields: Record<string, unknown>): Logger {
    const child = new Logger({
      format: this.#format,
      write: this.#write,
      fields: { ...this.#fields, ...fields },
      ...(this.#onError && { onError: this.#onError }),
    });
    child.#level = this.#level;
    return child;
  }

  enabled(level: Level): boolean {
    return RANK[level] >= this.#level;
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.#log("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.#log("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.#log("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.#log("error", msg, fields);
  }

  #log(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < this.#level) return;
    msg = redactText(msg);
    const all = clean({ ...this.#fields, ...fields });
    if (level === "error") this.#onError?.(msg, all);
    const ts = new Date().toISOString();
    if (this.#format === "json") {
      this.#write(JSON.stringify({ ts, level, msg, ...all }));
    } else {
      const kv = Object.entries(all).map(([k, v]) =>
        `${k}=${typeof v === "string" && !/\s/.test(v) ? v : JSON.stringify(v)}`
      );
      this.#write(
        `${ts} ${level.toUpperCase().padEnd(5)} ${msg}${kv.length ? " " + kv.join(" ") : ""}`,
      );
    }
  }
}
