/**
 * The embedded status endpoint: /healthz, /readyz, /metrics, /status. The handler is a plain
 * `(req: Request) => Response`, served by Deno.serve behind a guard (header and request timeouts, a
 * connection cap: guarded_server.ts) on 127.0.0.1:8686 by default.
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import type { Registry } from "../metrics/registry.ts";
import { redactText } from "../log/redact.ts";
import { type GuardedServer, serveGuarded } from "./guarded_server.ts";
import type { Health } from "./health.ts";

/** Where the status endpoint listens unless configured. */
export const STATUS_DEFAULT_LISTEN = "127.0.0.1:8686";

/** The `status:` config section. */
export const statusSpec = f.object({
  enabled: f.bool({ description: "Serve the status endpoint", default: true }),
  listen: f.string({
    description:
      "host:port to listen on. Keep 127.0.0.1 unless a probe from outside the host needs it",
    default: STATUS_DEFAULT_LISTEN,
    pattern: /^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/,
    check: (v) => {
      const port = Number(v.slice(v.lastIndexOf(":") + 1));
      return port > 65535 ? `the port must be 0 to 65535: got ${port}` : undefined;
    },
  }),
  header_timeout: f.duration({
    description: "A connection whose request head has not arrived by then is closed",
    default: "10s",
    min: "100ms",
  }),
  request_timeout: f.duration({
    description: "A request not answered by then is cut (WebSockets excepted)",
    default: "30s",
    min: "100ms",
  }),
  max_connections: f.int({
    description: "Connections open at once; more are answered 503 and closed",
    default: 100,
    min: 1,
    max: 10_000,
  }),
}, { description: "Embedded HTTP status endpoint (/healthz, /readyz, /metrics, /status)" });

/** Options for {@link statusHandler}. */
export interface StatusHandlerOptions {
  mode: string;
  version: string;
  registry: Registry;
  health: Health;
  /** When the process started (ms since epoch). @default now */
  startedAt?: number;
  /** Extra fields for /status, e.g. a mode's queue depths. */
  extra?: () => Record<string, unknown>;
  /** A mode's own routes (e.g. a dashboard); return undefined to fall through. */
  routes?: (req: Request) => Response | Promise<Response> | undefined;
}

/**
 * Every standard answer's body goes out through here: URLs in it lose their userinfo and secret
 * query parameters (an endpoint's credentials quoted by an error in `last_errors` or a readiness
 * reason).
 */
function answer(body: string, contentType: string, status = 200): Response {
  return new Response(redactText(body), { status, headers: { "content-type": contentType } });
}

function json(body: unknown, status = 200): Response {
  return answer(JSON.stringify(body, null, 2) + "\n", "application/json; charset=utf-8", status);
}

/**
 * Build the status request handler.
 *
 * @returns a handler answering /healthz, /readyz, /metrics and /status.
 */
export function statusHandler(
  { mode, version, registry, health, startedAt = Date.now(), extra, routes }: StatusHandlerOptions,
): (req: Request) => Response | Promise<Response> {
  return (req) => {
    const own = routes?.(req);
    if (own) return own;
    const { pathname } = new URL(req.url);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    switch (pathname) {
      case "/healthz":
        return answer("ok\n", "text/plain");
      case "/readyz":
        return health.ready
          ? answer("ready\n", "text/plain")
          : json({ ready: false, reasons: health.reasons() }, 503);
      case "/metrics":
        return answer(registry.render(), "text/plain; version=0.0.4; charset=utf-8");
      case "/status": {
        const lag = registry.all().find((m) => m.name === "processing_lag_seconds");
        return json({
          mode,
          version,
          uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
          ready: health.ready,
          components: health.components(),
          lag_seconds: lag ? lag.snapshot() : null,
          counters: registry.snapshot(),
          last_errors: health.lastErrors(),
          quarantined: health.quarantined(),
          ...extra?.(),
        });
      }
      default:
        return new Response("not found\n", { status: 404 });
    }
  };
}

/**
 * Serve the status endpoint on `listen` (host:port), behind the guard of guarded_server.ts
 * (header and request timeouts, a connection cap).
 *
 * @returns the server; `shutdown()` it, or abort `signal`, when done.
 */
export function serveStatus(
  config: Pick<Infer<typeof statusSpec>, "listen"> & Partial<Infer<typeof statusSpec>>,
  handler: (req: Request) => Response | Promise<Response>,
  signal?: AbortSignal,
): GuardedServer {
  const i = config.listen.lastIndexOf(":");
  const hostname = config.listen.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(config.listen.slice(i + 1));
  return serveGuarded({
    hostname,
    port,
    ...(config.header_timeout !== undefined && { headerTimeout: config.header_timeout }),
    ...(config.request_timeout !== undefined && { requestTimeout: config.request_timeout }),
    ...(config.max_connections !== undefined && { maxConnections: config.max_connections }),
    ...(signal && { signal }),
    onError: (e) =>
      new Response(`internal error: ${redactText((e as Error).message)}\n`, { status: 500 }),
  }, handler);
}
