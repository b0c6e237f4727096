/**
 * Mode `receive`: a dummy SIEM that counts exactly what a `generate` run (or loggen, or any
 * syslog sender) delivered. It listens on `port_start`..`port_end` (UDP through recvmmsg with an
 * 8 MiB kernel buffer per socket, or TCP), counts messages and bytes per port, reads each
 * message's sequence tag and reports received, lost (gaps), duplicated and reordered, per sender
 * worker and in total (receiver.ts). Live on its own dashboard and `/metrics`; with `report_to`
 * it posts its counts to a generator's dashboard every second. It stops on a signal, after
 * `duration`, or after `idle_timeout` without a message once messages came, and prints one JSON
 * summary line to stdout.
 * @module
 */

import { f } from "../config/spec.ts";
import { Dashboard, type ReceiverReport } from "../syslog/dashboard.ts";
import {
  receiverControl,
  type ReceiverInit,
  type ReceiverSnapshot,
  stopReceiver,
} from "../syslog/receiver.ts";
import { defineMode } from "./mode.ts";

/** The `receive:` config section. */
export const receiveSpec = f.object({
  host: f.string({
    description: "Address to listen on (0.0.0.0 to take traffic from other hosts)",
    default: "127.0.0.1",
  }),
  port_start: f.int({ description: "First port", default: 514, min: 0, max: 65535 }),
  port_end: f.int({ description: "Last port", default: 553, min: 0, max: 65535 }),
  protocol: f.enum(["udp", "tcp"] as const, {
    description: "udp, or tcp (RFC 6587 octet counting or LF-delimited)",
    default: "udp",
  }),
  rcvbuf: f.size({ description: "Kernel receive buffer per UDP socket", default: "8MiB" }),
  seq_prefix: f.string({
    description: "Text before the sequence tag <worker>:<n>",
    default: "seq=",
    pattern: /^[!-~]{1,16}$/,
  }),
  duration: f.duration({ description: "Stop after this long; 0s: until stopped", default: "0s" }),
  idle_timeout: f.duration({
    description: "Stop this long after the last message (once any came); 0s: never",
    default: "0s",
  }),
  report_to: f.optional(f.string({
    description: "A generator's dashboard (http://host:8080) to post the counts to every second",
    pattern: /^https?:\/\/\S+$/,
  })),
  ffi: f.bool({
    description: "Use recvmmsg through FFI where available (Linux); false: node:dgram",
    default: true,
  }),
}, {
  description: "Mode receive: syslog receiver with exact loss accounting",
  check: (c) =>
    c.port_end >= c.port_start ? [] : [{
      key: "port_end",
      message: `must not be below port_start (${c.port_start}): got ${c.port_end}`,
    }],
});

export const receiveMode = defineMode({
  name: "receive",
  summary: "Syslog receiver with exact loss accounting (a dummy SIEM)",
  spec: receiveSpec,
  flags: {
    host: { key: "host", description: "Address to listen on" },
    "port-start": { key: "port_start", description: "First port" },
    "port-end": { key: "port_end", description: "Last port" },
    protocol: { key: "protocol", description: "udp or tcp" },
    duration: { key: "duration", description: "Stop after this long" },
    "idle-timeout": { key: "idle_timeout", description: "Stop this long after the last message" },
    "report-to": { key: "report_to", description: "Generator dashboard URL to report loss to" },
    ffi: {
      key: "ffi",
      description: "recvmmsg through FFI (default); --no-ffi: node:dgram",
      boolean: true,
    },
  },
  usage: `Port 0 picks a free port (logged). At the end, one JSON summary line goes to stdout:
messages and bytes per port, and per sender worker and in total: received, lost, duplicated,
reordered, loss %.`,
  async run({ config: c, log, metrics, signal, status, stdout }) {
    const m = {
      messages: metrics.counter("receiver_messages_total", "Messages received"),
      bytes: metrics.counter("receiver_bytes_total", "Bytes received"),
      lost: metrics.gauge("receiver_lost_messages", "Sequence numbers never received"),
      duplicated: metrics.gauge("receiver_duplicated_messages", "Messages received again"),
      reordered: metrics.gauge("receiver_reordered_messages", "Messages after a higher one"),
      loss: metrics.gauge("receiver_loss_percent", "Lost / expected, percent"),
      untagged: metrics.gauge("receiver_untagged_messages", "Messages without a sequence tag"),
    };
    const dashboard = new Dashboard("receive", 0);
    status.routes = dashboard.routes;
    status.extra = () => ({ receive: dashboard.metrics() });
    const control = receiverControl();
    const ports = Array.from({ length: c.port_end - c.port_start + 1 }, (_, i) => c.port_start + i);
    const init: ReceiverInit = {
      host: c.host,
      ports,
      protocol: c.protocol,
      rcvbuf: c.rcvbuf,
      seqPrefix: c.seq_prefix,
      ffi: c.ffi,
      reportMs: 1000,
      control,
    };
    const worker = new Worker(new URL("../syslog/receive_worker.ts", import.meta.url), {
      type: "module",
    });
    let last: ReceiverSnapshot | undefined;
    let bound: number[] = ports;
    // Idle is judged on snapshots (one per report interval): only a snapshot taken idle_timeout
    // after the last change, still showing no new message, stops the receiver. A clock check
    // between snapshots would stop it early whenever a snapshot comes late (a loaded machine).
    let lastMessages = 0, lastChange = performance.now(), lastSnapshotAt = lastChange;
    let reportFailed = false;
    const onSnapshot = (s: ReceiverSnapshot) => {
      m.messages.inc(s.messages - (last?.messages ?? 0));
      m.bytes.inc(s.bytes - (last?.bytes ?? 0));
      m.lost.set(s.total.lost);
      m.duplicated.set(s.total.duplicated);
      m.reordered.set(s.total.reordered);
      m.loss.set(s.total.lossPercent);
      m.untagged.set(s.untagged);
      last = s;
      dashboard.setLoss(s.total, "self");
      dashboard.sample({
        messages: s.messages,
        bytes: s.bytes,
        errors: s.truncated,
        workers: bound.map((port, i) => ({
          id: i,
          port,
          messages: s.ports[ports[i]!]?.messages ?? 0,
          errors: 0,
          state: "running" as const,
        })),
      });
      lastSnapshotAt = performance.now();
      if (s.messages !== lastMessages) {
        lastMessages = s.messages;
        lastChange = lastSnapshotAt;
      }
      if (c.report_to) {
        fetch(new URL("/api/receiver", c.report_to), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ total: s.total, workers: s.workers } satisfies ReceiverReport),
          signal: AbortSignal.timeout(900),
        }).then(async (r) => {
          await r.body?.cancel();
          if (!r.ok) throw new Error(`HTTP ${r.status}`);
          reportFailed = false;
        }).catch((e) => {
          if (!reportFailed) {
            log.warn("cannot report to the generator", { url: c.report_to, error: e });
          }
          reportFailed = true;
        });
      }
    };
    const finished = new Promise<string | undefined>((resolve) => {
      worker.onmessage = (
        e: MessageEvent<
          { ready?: number[]; snapshot?: ReceiverSnapshot; done?: boolean; error?: string }
        >,
      ) => {
        if (e.data.ready) {
          bound = e.data.ready;
          log.info("receiving", { host: c.host, ports: bound, protocol: c.protocol });
        }
        if (e.data.snapshot) onSnapshot(e.data.snapshot);
        if (e.data.done) resolve(undefined);
        if (e.data.error) resolve(e.data.error);
      };
      worker.onerror = (e) => {
        e.preventDefault();
        resolve(e.message);
      };
    });
    worker.postMessage({ init });
    const stop = () => stopReceiver(control);
    signal.addEventListener("abort", stop, { once: true });
    const started = performance.now();
    const watch = setInterval(() => {
      const now = performance.now();
      if (c.duration > 0 && now - started >= c.duration) stop();
      if (c.idle_timeout > 0 && lastMessages > 0 && lastSnapshotAt - lastChange >= c.idle_timeout) {
        stop();
      }
    }, 50);
    const error = await finished;
    clearInterval(watch);
    signal.removeEventListener("abort", stop);
    dashboard.close();
    if (error) {
      log.error("receiver failed", { error });
      return 1;
    }
    const s = last!;
    const summary = {
      mode: "receive",
      seconds: Number((s.elapsedMs / 1000).toFixed(3)),
      messages: s.messages,
      bytes: s.bytes,
      untagged: s.untagged,
      truncated: s.truncated,
      recvmmsg: s.ffi,
      rcvbuf: s.rcvbuf,
      ports: Object.fromEntries(bound.map((p, i) => [p, s.ports[ports[i]!]])),
      total: s.total,
      workers: s.workers,
    };
    log.info("receiving finished", {
      messages: s.messages,
      lost: s.total.lost,
      loss_percent: s.total.lossPercent,
    });
    const w = stdout.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify(summary) + "\n"));
    w.releaseLock();
    return 0;
  },
});
