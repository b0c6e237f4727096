/**
 * Helpers for the generate/receive tests: run either mode as a real process (the agent's
 * permission set), find the port a receiver bound, and read the JSON summary line it prints.
 * @module
 */

import assert from "node:assert/strict";
import { agentCommand, freePort } from "../_agent.ts";

export { freePort };

const dec = new TextDecoder();

/** A mode's JSON summary line (untyped JSON). */
// deno-lint-ignore no-explicit-any
export type Summary = Record<string, any>;

/** A running agent process: its stderr so far, and its end. */
export interface Running {
  child: Deno.ChildProcess;
  /** Resolves with the value of a JSON log line's field once a line with `msg` appears. */
  logged(msg: string): Promise<Record<string, unknown>>;
  /** Waits for exit; the summary is the last stdout line as JSON. */
  done(): Promise<{ code: number; summary: Summary; stderr: string }>;
}

/** Start `edge-agent <args>` from source, with `env` added to this process's environment. */
export function start(args: string[], env: Record<string, string> = {}): Running {
  const child = agentCommand(args, {
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  const waiters: { msg: string; resolve: (v: Record<string, unknown>) => void }[] = [];
  const lines: Record<string, unknown>[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      const hit = lines.find((l) => l.msg === w.msg);
      if (hit) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(hit);
      }
    }
  };
  const stderrDone = (async () => {
    for await (const chunk of child.stderr) {
      err += dec.decode(chunk, { stream: true });
      const parts = err.split("\n");
      lines.length = 0;
      for (const p of parts) {
        try {
          lines.push(JSON.parse(p));
        } catch { /* not a complete JSON line */ }
      }
      check();
    }
  })();
  const stdout = new Response(child.stdout).text();
  return {
    child,
    logged: (msg) =>
      new Promise((resolve) => {
        waiters.push({ msg, resolve });
        check();
      }),
    async done() {
      const [status, out] = await Promise.all([child.status, stdout, stderrDone]);
      const last = out.trim().split("\n").at(-1) ?? "";
      let summary: Summary = {};
      try {
        summary = JSON.parse(last);
      } catch { /* no summary */ }
      return { code: status.code, summary, stderr: err };
    },
  };
}

/** Start a receiver on a free UDP/TCP port; resolves once it is bound. */
export async function startReceiver(
  extra: string[] = [],
): Promise<{ port: number; status: number; run: Running }> {
  const status = freePort();
  const run = start([
    "receive",
    "--port-start",
    "0",
    "--port-end",
    "0",
    "--status-listen",
    `127.0.0.1:${status}`,
    ...extra,
  ]);
  const line = await run.logged("receiving");
  return { port: (line.ports as number[])[0]!, status, run };
}

/**
 * `generate` sending to one `port` from `workers` senders at `rate` in total for `duration`,
 * with a status endpoint on a free port; `extra` (e.g. `--message-size 300`) goes last.
 */
export function generateTo(
  port: number,
  { workers, rate, duration, extra = [] }: {
    workers: number;
    rate: number;
    duration: string;
    extra?: string[];
  },
): string[] {
  return [
    "generate",
    "--port-start",
    String(port),
    "--port-end",
    String(port),
    "--workers",
    String(workers),
    "--rate",
    String(rate),
    "--duration",
    duration,
    "--status-listen",
    `127.0.0.1:${freePort()}`,
    ...extra,
  ];
}

/**
 * The receiver got exactly what generate sent: as many messages and bytes, every worker's
 * numbers once, nothing lost, duplicated or reordered.
 */
export function assertExact(g: Summary, rec: Summary): void {
  assert.equal(rec.messages, g.sent);
  assert.equal(rec.bytes, g.bytes);
  assert.deepEqual(
    [rec.total.lost, rec.total.duplicated, rec.total.reordered],
    [0, 0, 0],
  );
  for (const w of g.workers) {
    assert.equal(rec.workers[w.id]?.distinct ?? 0, w.sent, `worker ${w.id}`);
  }
}

/**
 * A UDP socket on loopback that keeps the datagrams it gets as text; `close()` stops it.
 */
export async function datagrams(): Promise<{ port: number; got: string[]; close(): void }> {
  const dgram = await import("node:dgram");
  const sock = dgram.createSocket("udp4");
  const got: string[] = [];
  sock.on("message", (m: Uint8Array) => got.push(dec.decode(m)));
  await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", () => resolve()));
  return { port: sock.address().port, got, close: () => sock.close() };
}
