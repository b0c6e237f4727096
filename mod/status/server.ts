/**
 * The embedded status endpoint: /healthz, /readyz, /metrics, /status. The handler is a plain
 * `(req: Request) => Response`, served by Deno.serve on 127.0.0.1:8686 by default.
 * @module
 */

import { f, type Infer } from "../config/spec.ts";
import type { Registry } from "../metrics/registry.ts";
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

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
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
        return new Response("ok\n", { headers: { "content-type": "text/plain" } });
      case "/readyz":
        return health.ready
          ? new Response("ready\n", { headers: { "content-type": "text/plain" } })
          : json({ ready: false, reasons: health.reasons() }, 503);
      case "/metrics":
        return new Response(registry.render(), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
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
 * Serve the status endpoint on `listen` (host:port).
 *
 * @returns the server; `shutdown()` it when done.
 */
export function serveStatus(
  config: Infer<typeof statusSpec>,
  handler: (req: Request) => Response | Promise<Response>,
  signal?: AbortSignal,
): Deno.HttpServer<Deno.NetAddr> {
  const i = config.listen.lastIndexOf(":");
  const hostname = config.listen.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(config.listen.slice(i + 1));
  return Deno.serve({
    hostname,
    port,
    ...(signal && { signal }),
    onListen: () => {},
    onError: (e) => new Response(`internal error: ${(e as Error).message}\n`, { status: 500 }),
  }, handler);
}
