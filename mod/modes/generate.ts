/**
 * Mode `generate`: a syslog load generator for testing a SIEM. `workers` senders, each with its
 * own socket and target port (`port_start`..`port_end`, spread across workers as the
 * reference's 514–553), write RFC 3164 (or 5424) messages with a sequence tag into preallocated
 * buffers and send them with sendmmsg(2) (sender.ts), paced to `rate` in total against the run's
 * absolute schedule on a monotonic clock (schedule.ts). The workers run on `threads` Worker
 * threads (default one, which keeps peak RSS under 100 MB; 0: one each, at most one per CPU
 * core; several senders on one thread take turns a batch at a time). The live
 * dashboard (dashboard.ts) is served on the status endpoint, by default 127.0.0.1:8080 for this
 * mode; a `receive` run can report loss to it.
 *
 * At the end (duration over or a signal) one JSON summary line goes to stdout: sent, achieved vs
 * target EPS, per worker, and the receiver's loss when one reported.
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import { Dashboard, type ReceiverReport, type WorkerView } from "../syslog/dashboard.ts";
import {
  readSender,
  senderControl,
  type SenderCounters,
  type SenderInit,
  stopSender,
} from "../syslog/sender.ts";
import { checkTimeZone } from "../syslog/message.ts";
import type { SequenceCounts } from "../syslog/sequence.ts";
import { defineMode } from "./mode.ts";

/** The `generate:` config section. */
export const generateSpec = f.object({
  target: f.string({ description: "Host of the SIEM under test", default: "127.0.0.1" }),
  port_start: f.int({ description: "First target port", default: 514, min: 1, max: 65535 }),
  port_end: f.int({
    description:
      "Last target port; worker i sends to port_start + i mod (port_end - port_start + 1)",
    default: 553,
    min: 1,
    max: 65535,
  }),
  workers: f.int({
    description: "Senders, each with its own socket, port and sequence numbers",
    default: 2,
    min: 1,
    max: 256,
  }),
  threads: f.int({
    description:
      "Threads the workers run on (worker i on thread i mod threads, the senders of a thread taking turns a batch at a time; each thread is a V8 isolate, 10–15 MB of RSS more); 0: one per worker, at most one per CPU core. One thread sends several hundred thousand 300-byte messages a second with GSO",
    default: 1,
    min: 0,
    max: 256,
  }),
  rate: f.int({
    description: "Messages per second in total; 0: as fast as possible",
    default: 100000,
    min: 0,
  }),
  duration: f.duration({
    description: "How long to send, from the first send; 0s: until stopped",
    default: "0s",
  }),
  catch_up: f.duration({
    description:
      "Pacing keeps to the run's absolute schedule (sent so far vs rate × time since the first send): after a stall a worker makes up at most this much time's worth of messages, as fast as it can, and gives up the rest",
    default: "1s",
    min: "1ms",
  }),
  protocol: f.enum(["udp", "tcp"] as const, {
    description: "udp, or tcp with RFC 6587 octet counting (reconnects)",
    default: "udp",
  }),
  format: f.enum(["rfc3164", "rfc5424"] as const, {
    description: "Message format",
    default: "rfc3164",
  }),
  timezone: f.string({
    description:
      "Time zone of RFC 3164 timestamps, which are local time (RFC 3164 §4.1.2): local (the host's, from TZ), UTC, or an IANA name such as Asia/Kolkata; RFC 5424 timestamps are UTC",
    default: "local",
    check: checkTimeZone,
  }),
  message_size: f.int({
    description:
      "Pad (or cut the text of) every message to this many bytes, header and tag kept whole; 0: natural size (~120–200)",
    default: 0,
    min: 0,
    max: 65000,
  }),
  seq_prefix: f.string({
    description: "Text before the sequence tag <worker>:<n> at the end of every message",
    default: "seq=",
    pattern: /^[!-~]{1,16}$/,
  }),
  batch: f.int({ description: "Messages per sendmmsg call", default: 256, min: 1, max: 1024 }),
  ffi: f.bool({
    description: "Use sendmmsg through FFI where available (Linux); false: node:dgram",
    default: true,
  }),
  gso: f.bool({
    description:
      "UDP GSO (UDP_SEGMENT, Linux ≥ 4.18) on the FFI path when message_size makes every message the same size: up to 64 messages a send, still separate datagrams on the wire; false: one datagram per sendmmsg slot",
    default: true,
  }),
}, {
  description: "Mode generate: syslog load generator",
  check: (c) =>
    c.port_end >= c.port_start ? [] : [{
      key: "port_end",
      message: `must not be below port_start (${c.port_start}): got ${c.port_end}`,
    }],
});

type GenerateConfig = Infer<typeof generateSpec>;

interface RunningWorker {
  init: SenderInit;
  failed?: string;
  /** Resolves when its thread is done. */
  exited: Promise<void>;
}

/**
 * How many threads the workers run on: `threads`, or (0) one per worker up to the CPU cores (a
 * sender thread is busy in its syscalls: more threads than cores only add isolates), never more
 * than workers.
 */
export function threadCount(
  workers: number,
  threads: number,
  cores = navigator.hardwareConcurrency,
): number {
  return threads > 0 ? Math.min(threads, workers) : Math.min(workers, Math.max(1, cores));
}

/** Start the sender threads; worker i runs on thread i mod threads. */
function startWorkers(c: GenerateConfig, onFail: (id: number, e: string) => void): RunningWorker[] {
  const ports = c.port_end - c.port_start + 1;
  const running: RunningWorker[] = Array.from({ length: c.workers }, (_, id) => ({
    init: {
      id,
      host: c.target,
      port: c.port_start + (id % ports),
      protocol: c.protocol,
      rate: c.rate / c.workers,
      // Worker i's first message is due i / rate after its start: the workers interleave, so
      // --rate 1 with two workers sends one message a second, not two.
      phaseMs: c.rate > 0 ? (id * 1000) / c.rate : 0,
      catchUpMs: c.catch_up,
      durationMs: c.duration,
      format: c.format,
      timeZone: c.timezone,
      messageSize: c.message_size,
      seqPrefix: c.seq_prefix,
      batch: c.batch,
      ffi: c.ffi,
      gso: c.gso,
      control: senderControl(),
    },
    exited: Promise.resolve(),
  }));
  const threads = threadCount(c.workers, c.threads);
  for (let t = 0; t < threads; t++) {
    const mine = running.filter((_, id) => id % threads === t);
    const fail = (r: RunningWorker, e: string) => {
      if (r.failed) return;
      r.failed = e;
      onFail(r.init.id, e);
    };
    const worker = new Worker(new URL("../syslog/generate_worker.ts", import.meta.url), {
      type: "module",
    });
    const exited = new Promise<void>((resolve) => {
      worker.onmessage = (
        e: MessageEvent<{ done?: boolean; error?: string; failed?: { id: number; error: string } }>,
      ) => {
        if (e.data.failed) fail(running[e.data.failed.id]!, e.data.failed.error);
        if (e.data.error) mine.forEach((r) => fail(r, e.data.error!));
        if (e.data.done || e.data.error) resolve();
      };
      worker.onerror = (e) => {
        e.preventDefault();
        mine.forEach((r) => fail(r, e.message));
        resolve();
      };
    });
    for (const r of mine) r.exited = exited;
    worker.postMessage({ inits: mine.map((r) => r.init) });
  }
  return running;
}

export const generateMode = defineMode({
  name: "generate",
  summary: "RFC 3164/5424 syslog load generator over UDP/TCP",
  spec: generateSpec,
  statusListen: "127.0.0.1:8080",
  flags: {
    target: { key: "target", description: "SIEM host" },
    rate: { key: "rate", description: "Total messages per second (0: max)" },
    workers: { key: "workers", description: "Senders (sockets)" },
    threads: {
      key: "threads",
      description: "Threads the workers run on (default 1; 0: one each, up to the CPU cores)",
    },
    duration: { key: "duration", description: "How long (e.g. 10s, 30m); 0s: until stopped" },
    "catch-up": {
      key: "catch_up",
      description: "Most time's worth of messages made up after a stall (default 1s)",
    },
    "port-start": { key: "port_start", description: "First target port" },
    "port-end": { key: "port_end", description: "Last target port" },
    protocol: { key: "protocol", description: "udp or tcp" },
    format: { key: "format", description: "rfc3164 or rfc5424" },
    timezone: {
      key: "timezone",
      description: "Zone of RFC 3164 timestamps: local (default), UTC or an IANA name",
    },
    "message-size": { key: "message_size", description: "Pad messages to N bytes" },
    ffi: {
      key: "ffi",
      description: "sendmmsg through FFI (default); --no-ffi: node:dgram",
      boolean: true,
    },
    gso: {
      key: "gso",
      description: "UDP GSO with --message-size (default); --no-gso: one datagram per slot",
      boolean: true,
    },
  },
  usage: `The dashboard (page, /api/metrics, /api/summary, /ws) is on the status endpoint,
127.0.0.1:8080 by default for this mode (--status-listen to change). A receive run started with
--report-to http://127.0.0.1:8080 shows its loss there. At the end, one JSON summary line goes
to stdout.`,
  async run({ config: c, log, metrics, signal, status, stdout }) {
    const m = {
      sent: metrics.counter("generator_messages_sent_total", "Messages the kernel accepted"),
      bytes: metrics.counter("generator_bytes_sent_total", "Bytes of messages sent"),
      errors: metrics.counter("generator_send_errors_total", "Send errors (refused, reconnects)"),
      eps: metrics.gauge("generator_eps", "Messages per second over the last 5 s"),
      target: metrics.gauge("generator_target_eps", "Configured messages per second (0: max)"),
    };
    m.target.set(c.rate);
    const dashboard = new Dashboard("generate", c.rate);
    status.routes = dashboard.routes;
    status.extra = () => ({ generate: dashboard.metrics() });
    let failures = 0;
    const workers = startWorkers(c, (id, e) => {
      failures++;
      log.error("generator worker failed", { worker: id, error: e });
    });
    const stop = () => workers.forEach((w) => stopSender(w.init.control));
    signal.addEventListener("abort", stop, { once: true });
    log.info("generating", {
      workers: c.workers,
      threads: threadCount(c.workers, c.threads),
      rate: c.rate,
      target: `${c.target}:${c.port_start}-${c.port_end}`,
      protocol: c.protocol,
      format: c.format,
    });
    const counters = () => workers.map((w) => readSender(w.init.control));
    let prev = { sent: 0, bytes: 0, errors: 0 };
    const sample = () => {
      const cs = counters();
      const tot = cs.reduce(
        (a, x) => ({
          sent: a.sent + x.sent,
          bytes: a.bytes + x.bytes,
          errors: a.errors + x.errors,
        }),
        { sent: 0, bytes: 0, errors: 0 },
      );
      m.sent.inc(tot.sent - prev.sent);
      m.bytes.inc(tot.bytes - prev.bytes);
      m.errors.inc(tot.errors - prev.errors);
      prev = tot;
      dashboard.sample({
        sendmmsg: cs.every((x) => x.ffi),
        gso: cs.every((x) => x.gso),
        messages: tot.sent,
        bytes: tot.bytes,
        errors: tot.errors,
        workers: workers.map((w, i) => ({
          id: w.init.id,
          port: w.init.port,
          messages: cs[i]!.sent,
          errors: cs[i]!.errors,
          state: workerState(w, cs[i]!),
        })),
      });
      m.eps.set(dashboard.metrics().eps);
    };
    sample();
    const timer = setInterval(sample, 1000);
    await Promise.all(workers.map((w) => w.exited));
    // From the first worker's start to the last one's stop: thread start-up and exit are not
    // sending time.
    const spans = counters().filter((x) => x.startedAt > 0 && x.endedAt > 0);
    const elapsed = spans.length
      ? (Math.max(...spans.map((x) => x.endedAt)) - Math.min(...spans.map((x) => x.startedAt))) /
        1000
      : 0;
    clearInterval(timer);
    sample();
    signal.removeEventListener("abort", stop);
    const cs = counters();
    const sent = cs.reduce((a, x) => a + x.sent, 0);
    // The workers send side by side, each over its own span (threads start a few ms apart).
    const rateOf = (x: SenderCounters) =>
      x.endedAt > x.startedAt && x.startedAt > 0 ? x.sent / ((x.endedAt - x.startedAt) / 1000) : 0;
    const achieved = cs.reduce((a, x) => a + rateOf(x), 0);
    const summary = {
      mode: "generate",
      sent,
      bytes: cs.reduce((a, x) => a + x.bytes, 0),
      errors: cs.reduce((a, x) => a + x.errors, 0),
      seconds: Number(elapsed.toFixed(3)),
      target_eps: c.rate,
      achieved_eps: Math.round(achieved),
      achievement_percent: c.rate > 0 ? Number((100 * achieved / c.rate).toFixed(2)) : null,
      // Owed beyond catch_up's worth after stalls: the sender could not keep up (not losses).
      given_up: cs.reduce((a, x) => a + x.givenUp, 0),
      sendmmsg: cs.every((x) => x.ffi),
      gso: cs.every((x) => x.gso),
      threads: threadCount(c.workers, c.threads),
      workers: workers.map((w, i) => ({
        id: w.init.id,
        port: w.init.port,
        sent: cs[i]!.sent,
        achieved_eps: Math.round(rateOf(cs[i]!)),
        errors: cs[i]!.errors,
        ...(w.failed && { error: w.failed }),
      })),
      receiver: await settleReceiver(dashboard, cs.map((x) => x.sent)),
    };
    log.info("generation finished", {
      sent,
      achieved_eps: summary.achieved_eps,
      target_eps: c.rate,
      failures,
    });
    const w = stdout.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify(summary) + "\n"));
    w.releaseLock();
    dashboard.close();
    return failures > 0 ? 1 : 0;
  },
});

function workerState(w: RunningWorker, c: SenderCounters): WorkerView["state"] {
  if (w.failed) return "failed";
  if (c.done) return "done";
  return c.sent > 0 ? "running" : "idle";
}

/** The receiver's account of this run, from its reports and what each worker sent. */
export interface ReceiverAccount {
  /** Messages the receiver counted from this run's workers (copies included). */
  received: number;
  /** Distinct sequence numbers among them. */
  distinct: number;
  /** Sent but never received: Σ (sent − distinct) over the workers, the tail included. */
  lost: number;
  duplicated: number;
  reordered: number;
  loss_percent: number;
  /** False when the receiver's counts had not settled (it stopped reporting) in time. */
  settled: boolean;
}

/**
 * Once sending is over, wait for the receiver's counts to be final: every number each worker
 * sent has arrived, or two reports in a row agree (what is missing then is lost), or `waitMs`
 * passed. Without any report during the run, there is no receiver: null at once.
 */
export async function settleReceiver(
  dashboard: Dashboard,
  sent: number[],
  waitMs = 2500,
): Promise<ReceiverAccount | null> {
  let r = dashboard.receiverReport();
  if (!r) return null;
  const complete = (x: ReceiverReport) =>
    sent.every((n, id) => (x.workers[id]?.distinct ?? 0) >= n);
  const deadline = performance.now() + waitMs;
  let settled = complete(r), previous: number | undefined;
  while (!settled) {
    const next = await dashboard.nextReport(deadline - performance.now());
    if (!next) break;
    settled = complete(next) || next.total.received === previous;
    previous = next.total.received;
    r = next;
  }
  const account: ReceiverAccount = {
    received: 0,
    distinct: 0,
    lost: 0,
    duplicated: 0,
    reordered: 0,
    loss_percent: 0,
    settled,
  };
  sent.forEach((n, id) => {
    const w: Partial<SequenceCounts> = r.workers[id] ?? {};
    account.received += w.received ?? 0;
    account.distinct += w.distinct ?? 0;
    account.duplicated += w.duplicated ?? 0;
    account.reordered += w.reordered ?? 0;
    account.lost += Math.max(0, n - (w.distinct ?? 0));
  });
  const expected = sent.reduce((a, n) => a + n, 0);
  account.loss_percent = expected ? Number((100 * account.lost / expected).toFixed(4)) : 0;
  return account;
}
