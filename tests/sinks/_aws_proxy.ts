// A recording HTTP proxy in front of the moto server, for tests that must see the AWS calls the
// agent makes (which action, with which credentials and body) or make some of them fail the way
// AWS does. Failures are protocol-faithful: an AWS JSON 1.1 error (`__type`, `x-amzn-ErrorType`,
// HTTP 400), exactly what CloudWatch Logs answers when it throttles. Everything else is forwarded
// to moto untouched, over real sockets.
import { endpoints } from "../services/mod.ts";

/** One call seen by the proxy. */
export interface Call {
  /** `PutLogEvents`, `AssumeRole`, `CopyObject`, ... (S3 REST calls: `METHOD /path`). */
  action: string;
  /** Access key id of the SigV4 signature. */
  accessKeyId: string;
  body: string;
  /** Status returned to the agent. */
  status: number;
}

/** Options for {@link startAwsProxy}. */
export interface AwsProxyOptions {
  /** Answer this call with an AWS error instead of forwarding it (return undefined to forward). */
  fail?: (call: Omit<Call, "status">, n: number) => { type: string; status?: number } | undefined;
  /** Wait this long before forwarding an action, ms. */
  delay?: (action: string) => number;
}

/** Start the proxy on a free loopback port. */
export function startAwsProxy(opts: AwsProxyOptions = {}) {
  const calls: Call[] = [];
  const counts = new Map<string, number>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = new Uint8Array(await req.arrayBuffer());
    const text = new TextDecoder().decode(body);
    const url = new URL(req.url);
    const target = req.headers.get("x-amz-target");
    const action = target
      ? target.split(".").pop()!
      : new URLSearchParams(text).get("Action") ?? `${req.method} ${url.pathname}`;
    const accessKeyId = /Credential=([^/]+)\//.exec(req.headers.get("authorization") ?? "")?.[1] ??
      "";
    const n = (counts.get(action) ?? 0) + 1;
    counts.set(action, n);
    const failure = opts.fail?.({ action, accessKeyId, body: text }, n);
    if (failure) {
      const status = failure.status ?? 400;
      calls.push({ action, accessKeyId, body: text, status });
      return new Response(JSON.stringify({ __type: failure.type, message: "Rate exceeded" }), {
        status,
        headers: {
          "content-type": "application/x-amz-json-1.1",
          "x-amzn-errortype": failure.type,
          "x-amzn-requestid": crypto.randomUUID(),
        },
      });
    }
    const wait = opts.delay?.(action) ?? 0;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const headers = new Headers(req.headers);
    headers.delete("host");
    const res = await fetch(`${endpoints.aws}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      ...(body.length > 0 && { body }),
    });
    const out = new Headers(res.headers);
    out.delete("content-encoding");
    out.delete("content-length");
    calls.push({ action, accessKeyId, body: text, status: res.status });
    return new Response(await res.arrayBuffer(), { status: res.status, headers: out });
  });
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${addr.port}`,
    calls,
    /** Calls of one action. */
    of: (action: string) => calls.filter((c) => c.action === action),
    close: () => server.shutdown(),
  };
}
