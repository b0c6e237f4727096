/**
 * The live dashboard of `generate` and `receive`, served on the status endpoint next to
 * /healthz, /readyz, /metrics and /status: a web page (`/`), `GET /api/metrics` (now),
 * `GET /api/summary` (since start), `WebSocket /ws` (the metrics every second) and
 * `POST /api/receiver`, where a `receive` run reports what arrived so the generator's page shows
 * loss.
 *
 * EPS is computed over a sliding window of the last {@link WINDOW_S} one-second samples.
 * @module
 */

import process from "node:process";
import type { SequenceCounts } from "./sequence.ts";

/** Seconds in the EPS window. */
export const WINDOW_S = 5;

/** One worker's line on the page. */
export interface WorkerView {
  id: number;
  port: number;
  /** Messages so far (sent or received). */
  messages: number;
  errors: number;
  /** Messages per second over the window. */
  eps: number;
  state: "running" | "done" | "failed" | "idle";
}

/** Loss as a receiver counted it. */
export interface LossView {
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  percent: number;
}

/** `GET /api/metrics`. */
export interface DashboardMetrics {
  mode: string;
  time: string;
  elapsed_seconds: number;
  target_eps: number;
  eps: number;
  achievement_percent: number | null;
  bytes_per_second: number;
  messages_total: number;
  bytes_total: number;
  errors_total: number;
  cpu_percent: number | null;
  rss_bytes: number;
  workers: WorkerView[];
  loss: LossView | null;
  /** generate: whether every sender uses sendmmsg through FFI. */
  sendmmsg?: boolean;
  /** generate: whether every sender uses UDP GSO (UDP_SEGMENT). */
  gso?: boolean;
}

/** What a receiver posts to a generator's dashboard (`POST /api/receiver`) every second. */
export interface ReceiverReport {
  total: SequenceCounts;
  /** Per sender worker, keyed by its number. */
  workers: Record<string, SequenceCounts>;
}

/** What a mode feeds the dashboard each second. */
export interface Sample {
  /** generate: whether every sender uses sendmmsg through FFI. */
  sendmmsg?: boolean;
  /** generate: whether every sender uses UDP GSO. */
  gso?: boolean;
  messages: number;
  bytes: number;
  errors: number;
  workers: {
    id: number;
    port: number;
    messages: number;
    errors: number;
    state: WorkerView["state"];
  }[];
}

/** Live figures of a run: samples once a second, serves the page and the API. */
export class Dashboard {
  readonly mode: string;
  readonly targetEps: number;
  readonly #started = performance.now();
  readonly #startedAt = new Date();
  #samples: { t: number; s: Sample }[] = [];
  #peakEps = 0;
  #loss: LossView | null = null;
  #lossFrom: "receiver" | "self" | null = null;
  #report: ReceiverReport | null = null;
  #reportWaiters: ((r: ReceiverReport) => void)[] = [];
  #cpu: { t: number; micros: number } | null = null;
  #cpuPercent: number | null = null;
  #current: DashboardMetrics;
  readonly #sockets = new Set<WebSocket>();

  constructor(mode: string, targetEps: number) {
    this.mode = mode;
    this.targetEps = targetEps;
    this.#current = this.#metrics();
  }

  /** Record this second's counters (cumulative) and push them to every WebSocket. */
  sample(s: Sample): void {
    const t = performance.now();
    this.#samples.push({ t, s });
    if (this.#samples.length > WINDOW_S + 1) this.#samples.shift();
    this.#cpuPercent = this.#readCpu(t);
    this.#current = this.#metrics();
    this.#peakEps = Math.max(this.#peakEps, this.#current.eps);
    const text = JSON.stringify(this.#current);
    for (const ws of this.#sockets) {
      if (ws.readyState === WebSocket.OPEN) ws.send(text);
    }
  }

  /** Loss counted by this process (receive) or reported by a receiver (generate). */
  setLoss(total: SequenceCounts | LossView, from: "receiver" | "self"): void {
    this.#loss = {
      received: total.received,
      lost: total.lost,
      duplicated: total.duplicated,
      reordered: total.reordered,
      percent: "lossPercent" in total ? total.lossPercent : total.percent,
    };
    this.#lossFrom = from;
  }

  /** The last report a receiver posted, if any. */
  receiverReport(): ReceiverReport | null {
    return this.#report;
  }

  /** The next report a receiver posts, or null when none comes within `ms`. */
  nextReport(ms: number): Promise<ReceiverReport | null> {
    return new Promise((resolve) => {
      const waiter = (r: ReceiverReport) => {
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.#reportWaiters = this.#reportWaiters.filter((w) => w !== waiter);
        resolve(null);
      }, Math.max(0, ms));
      this.#reportWaiters.push(waiter);
    });
  }

  /** The figures of the last sample. */
  metrics(): DashboardMetrics {
    return this.#current;
  }

  /** Aggregates since start. */
  summary(): Record<string, unknown> {
    const m = this.#current;
    const elapsed = (performance.now() - this.#started) / 1000;
    const avg = elapsed > 0 ? m.messages_total / elapsed : 0;
    return {
      mode: this.mode,
      started_at: this.#startedAt.toISOString(),
      elapsed_seconds: Number(elapsed.toFixed(3)),
      messages_total: m.messages_total,
      bytes_total: m.bytes_total,
      errors_total: m.errors_total,
      average_eps: Math.round(avg),
      peak_eps: Math.round(this.#peakEps),
      target_eps: this.targetEps,
      achievement_percent: this.targetEps > 0
        ? Number((100 * avg / this.targetEps).toFixed(2))
        : null,
      loss: this.#loss,
      loss_reported_by: this.#lossFrom,
      workers: m.workers,
    };
  }

  #readCpu(t: number): number | null {
    try {
      // getrusage(2) of the whole process, every thread (/proc/self needs --allow-all in Deno).
      const u = process.cpuUsage();
      const micros = u.user + u.system;
      const prev = this.#cpu;
      this.#cpu = { t, micros };
      if (!prev || t <= prev.t) return this.#cpuPercent;
      return Number(((micros - prev.micros) / 1000 / (t - prev.t) * 100).toFixed(1));
    } catch {
      return null;
    }
  }

  #metrics(): DashboardMetrics {
    const last = this.#samples.at(-1);
    const first = this.#samples[0];
    const span = last && first && last !== first ? (last.t - first.t) / 1000 : 0;
    const rate = (f: (s: Sample) => number) => span > 0 ? (f(last!.s) - f(first!.s)) / span : 0;
    const eps = rate((s) => s.messages);
    const workers: WorkerView[] = (last?.s.workers ?? []).map((w) => {
      const before = first?.s.workers.find((x) => x.id === w.id);
      return {
        ...w,
        eps: span > 0 && before ? Math.round((w.messages - before.messages) / span) : 0,
      };
    });
    return {
      mode: this.mode,
      time: new Date().toISOString(),
      elapsed_seconds: Number(((performance.now() - this.#started) / 1000).toFixed(3)),
      target_eps: this.targetEps,
      eps: Math.round(eps),
      achievement_percent: this.targetEps > 0
        ? Number((100 * eps / this.targetEps).toFixed(2))
        : null,
      bytes_per_second: Math.round(rate((s) => s.bytes)),
      messages_total: last?.s.messages ?? 0,
      bytes_total: last?.s.bytes ?? 0,
      errors_total: last?.s.errors ?? 0,
      cpu_percent: this.#cpuPercent,
      rss_bytes: Deno.memoryUsage().rss,
      workers,
      loss: this.#loss,
      ...(last?.s.sendmmsg !== undefined && { sendmmsg: last.s.sendmmsg }),
      ...(last?.s.gso !== undefined && { gso: last.s.gso }),
    };
  }

  /** Routes for the status endpoint's `routes` hook. */
  routes = (req: Request): Response | Promise<Response> | undefined => {
    const { pathname } = new URL(req.url);
    if (pathname === "/" && req.method === "GET") {
      return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    if (pathname === "/api/metrics") return Response.json(this.#current);
    if (pathname === "/api/summary") return Response.json(this.summary());
    if (pathname === "/api/receiver" && req.method === "POST") return this.#receiverReport(req);
    if (pathname === "/ws") {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("expected a WebSocket upgrade", { status: 426 });
      }
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onopen = () => {
        this.#sockets.add(socket);
        socket.send(JSON.stringify(this.#current));
      };
      socket.onclose = () => this.#sockets.delete(socket);
      socket.onerror = () => this.#sockets.delete(socket);
      return response;
    }
    return undefined;
  };

  async #receiverReport(req: Request): Promise<Response> {
    let body: Partial<ReceiverReport>;
    try {
      body = await req.json();
    } catch {
      return Response.json({ error: "body is not JSON" }, { status: 400 });
    }
    const t = body?.total;
    if (!t || typeof t.received !== "number" || typeof t.lost !== "number") {
      return Response.json({ error: "expected {total: {received, lost, ...}}" }, { status: 400 });
    }
    const workers = body.workers && typeof body.workers === "object" ? body.workers : {};
    this.setLoss(t, "receiver");
    this.#report = { total: t, workers };
    const waiters = this.#reportWaiters;
    this.#reportWaiters = [];
    for (const w of waiters) w(this.#report);
    return Response.json({ ok: true });
  }

  /** Close every WebSocket (at shutdown). */
  close(): void {
    for (const ws of this.#sockets) {
      try {
        ws.close(1001, "shutting down");
      } catch { /* closed */ }
    }
  }
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edge-agent · syslog load</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:24px;background:#0f1419;color:#e6e6e6}
h1{font-size:18px;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}
.card{background:#1b2129;border-radius:8px;padding:12px}
.card .k{color:#8b949e;font-size:12px}.card .v{font-size:24px;font-variant-numeric:tabular-nums;margin-top:4px}
#workers{display:flex;flex-wrap:wrap;gap:6px;margin-top:16px}
.w{width:86px;padding:6px;border-radius:6px;background:#1b2129;font-size:11px;border-left:4px solid #6e7681}
.w.running{border-color:#3fb950}.w.idle{border-color:#d29922}.w.failed{border-color:#f85149}.w.done{border-color:#58a6ff}
#status{color:#8b949e;margin-top:12px;font-size:12px}
</style></head><body>
<h1>edge-agent <span id="mode"></span> · live</h1>
<div class="cards">
<div class="card"><div class="k">EPS (5 s window)</div><div class="v" id="eps">–</div></div>
<div class="card"><div class="k">target EPS</div><div class="v" id="target">–</div></div>
<div class="card"><div class="k">achievement</div><div class="v" id="achievement">–</div></div>
<div class="card"><div class="k">bytes/s</div><div class="v" id="bps">–</div></div>
<div class="card"><div class="k">messages</div><div class="v" id="total">–</div></div>
<div class="card"><div class="k">loss</div><div class="v" id="loss">–</div></div>
<div class="card"><div class="k">CPU</div><div class="v" id="cpu">–</div></div>
<div class="card"><div class="k">memory (RSS)</div><div class="v" id="rss">–</div></div>
</div>
<div id="workers"></div>
<div id="status">connecting…</div>
<script>
const $ = (id) => document.getElementById(id);
const num = (n) => n == null ? "–" : Intl.NumberFormat("en", {maximumFractionDigits: 1}).format(n);
const bytes = (n) => n >= 1e9 ? num(n / 1e9) + " GB" : n >= 1e6 ? num(n / 1e6) + " MB" : num(n / 1e3) + " kB";
let updates = 0;
function show(m) {
  updates++;
  $("mode").textContent = m.mode;
  $("eps").textContent = num(m.eps);
  $("target").textContent = m.target_eps ? num(m.target_eps) : "max";
  $("achievement").textContent = m.achievement_percent == null ? "–" : num(m.achievement_percent) + " %";
  $("bps").textContent = bytes(m.bytes_per_second);
  $("total").textContent = num(m.messages_total);
  $("loss").textContent = m.loss ? num(m.loss.percent) + " %" : "–";
  $("cpu").textContent = m.cpu_percent == null ? "–" : num(m.cpu_percent) + " %";
  $("rss").textContent = bytes(m.rss_bytes);
  $("workers").innerHTML = m.workers.map((w) =>
    '<div class="w ' + w.state + '" title="' + w.state + '">#' + w.id + ' :' + w.port + '<br>' + num(w.eps) + ' eps</div>').join("");
  $("status").textContent = "updated " + m.time + " (" + updates + " updates)";
}
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onmessage = (e) => show(JSON.parse(e.data));
  ws.onclose = () => { $("status").textContent = "disconnected; retrying"; setTimeout(connect, 1000); };
}
connect();
</script></body></html>`;
