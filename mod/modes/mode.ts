/**
 * What a mode is: a name, its config section's spec, and `run`. A mode picks a source, a
 * parser and a sink from the data path; main.ts does the rest (config, logging, status, signals).
 * @module
 */

import type { Field, Infer } from "../config/spec.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import type { Health } from "../status/health.ts";

// deno-lint-ignore no-explicit-any
type AnyField = Field<any>;

/** A command-line flag that sets a key of the mode's config section. */
export interface FlagSpec {
  /** Dotted key inside the mode's section, e.g. `kafka.brokers`. */
  key: string;
  description: string;
  /** Takes no value (`--follow`); `--no-follow` sets false. */
  boolean?: boolean;
  /** Comma-separated values become a list. */
  list?: boolean;
}

/** The shared, non-mode sections of the config. */
export interface AgentSections {
  status: {
    enabled: boolean;
    listen: string;
    header_timeout?: number;
    request_timeout?: number;
    max_connections?: number;
  };
  log: { level: "debug" | "info" | "warn" | "error"; format: "json" | "text" };
  shutdown_timeout: number;
}

/** Hooks a mode may set on the status endpoint. */
export interface StatusHooks {
  /** Extra JSON fields for /status. */
  extra?: () => Record<string, unknown>;
  /** Own routes, tried before the standard ones; undefined falls through. */
  routes?: (req: Request) => Response | Promise<Response> | undefined;
}

/** Everything a mode's `run` gets. */
export interface ModeContext<C> {
  /** The mode's config section, validated, with defaults. */
  config: C;
  /** The shared sections (status, log, shutdown_timeout). */
  agent: AgentSections;
  /** Aborted on SIGINT/SIGTERM: stop taking work, drain, checkpoint, return. */
  signal: AbortSignal;
  metrics: Registry;
  log: Logger;
  health: Health;
  status: StatusHooks;
  /** Directory of the config file (relative paths in the config are relative to it). */
  configDir: string;
  /** Positional arguments after the mode (e.g. `ingest test-kafka BROKERS`). */
  args: string[];
  /** Where to write a mode's normal output (tail, test-kafka). @default stdout */
  stdout: WritableStream<Uint8Array>;
}

/** A mode of the agent. */
export interface Mode<S extends AnyField = AnyField> {
  name: string;
  /** One line for `--help`. */
  summary: string;
  /** The spec of the mode's config section (named after the mode). */
  spec: S;
  /** Flags of `edge-agent <mode> --help`, mapped onto the section. */
  flags?: Record<string, FlagSpec>;
  /** More help text (subcommands, environment variables). */
  usage?: string;
  /**
   * The status endpoint's address for this mode when `status.listen` is left at its default
   * (generate's dashboard is on 127.0.0.1:8080, as the reference's).
   */
  statusListen?: string;
  /**
   * A command-line tool run (`tail`, `ingest test-kafka`): no status endpoint unless one was
   * asked for (`status.listen` set in the config or `--status-listen`), so it runs beside an
   * agent that holds the default port.
   */
  cliTool?: (args: string[]) => boolean;
  /**
   * The state file `edge-agent <mode> requeue ID` leaves re-queue requests beside (modes that
   * quarantine units).
   */
  stateFile?(config: Infer<S>, configDir: string): string;
  /**
   * The reference design's own config layout, read as this mode's section when the file's top
   * level has `marker` and no section of this mode's name (see LoadOptions.nest).
   */
  referenceLayout?: { marker: string; keys: readonly string[] };
  /**
   * How much heap + ArrayBuffer growth starts a full collection (mod/pipeline/gc_governor.ts)
   * in this mode: its peak RSS against its CPU. @default {24000000}
   */
  gcStepBytes?: number;
  /** Run until done or until `ctx.signal` aborts; returns the exit code (default 0). */
  run(ctx: ModeContext<Infer<S>>): Promise<number | void>;
}

/** A mode whose config type is inferred from its spec. */
export function defineMode<S extends AnyField>(mode: Mode<S>): Mode<S> {
  return mode;
}
