/**
 * A protocol-faithful stand-in for OpenObserve's JSON ingestion endpoint (OpenObserve is not
 * installable here): `POST /api/{org}/{stream}/_json` with HTTP basic auth and a JSON array body
 * (gzip if `content-encoding: gzip`), answered as OpenObserve documents it:
 * `{"code":200,"status":[{"name":"<stream>","successful":N,"failed":M}]}`. Anything else is
 * refused the way OpenObserve does (401 without valid credentials, 400 for a body that is not a
 * JSON array, 404 for another path). A record with `"reject": true` counts as failed; `fail`
 * makes the next requests answer 503.
 * @module
 */

import zlib from "node:zlib";

/** The fake server and what it accepted, by stream. */
export class FakeOpenObserve {
  readonly streams = new Map<string, Record<string, unknown>[]>();
  /** How many records each stream accepted (counted whether or not they are kept). */
  readonly accepted = new Map<string, number>();
  /**
   * Keep accepted records in `streams`. A benchmark turns it off: it needs the counts only, and
   * a receiver holding every record it parsed collects garbage on the same 2 cores as the agent.
   */
  keep = true;
  readonly requests: { path: string; auth: string | null; gzip: boolean; records: number }[] = [];
  /** The next `fail` requests answer 503. */
  fail = 0;
  /** Requests answered 401 (wrong credentials). */
  refused = 0;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;

  constructor(
    readonly org = "default",
    readonly user = "root@example.com",
    readonly password = "Complexpass#123",
  ) {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (r) => this.#handle(r),
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
  }

  async #handle(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const m = /^\/api\/([^/]+)\/([^/]+)\/_json$/.exec(path);
    const auth = req.headers.get("authorization");
    const gzip = req.headers.get("content-encoding") === "gzip";
    if (!m || req.method !== "POST" || decodeURIComponent(m[1]!) !== this.org) {
      return Response.json({ code: 404, message: "not found" }, { status: 404 });
    }
    if (auth !== "Basic " + btoa(`${this.user}:${this.password}`)) {
      this.refused++;
      return new Response("Unauthorized Access", { status: 401 });
    }
    if (this.fail > 0) {
      this.fail--;
      return new Response("service unavailable", { status: 503 });
    }
    let raw = new Uint8Array(await req.arrayBuffer());
    if (gzip) raw = new Uint8Array(zlib.gunzipSync(raw));
    let records: unknown;
    try {
      records = JSON.parse(new TextDecoder().decode(raw));
    } catch {
      return Response.json({ code: 400, message: "Invalid json" }, { status: 400 });
    }
    if (!Array.isArray(records)) {
      return Response.json({ code: 400, message: "expected an array" }, { status: 400 });
    }
    const stream = decodeURIComponent(m[2]!);
    this.requests.push({ path, auth, gzip, records: records.length });
    const ok = records.filter((r) => !(r as { reject?: boolean }).reject);
    this.accepted.set(stream, (this.accepted.get(stream) ?? 0) + ok.length);
    if (this.keep) {
      const list = this.streams.get(stream) ?? [];
      list.push(...ok as Record<string, unknown>[]);
      this.streams.set(stream, list);
    }
    const failed = records.length - ok.length;
    return Response.json({
      code: 200,
      status: [{
        name: stream,
        successful: ok.length,
        failed,
        ...(failed && { error: `${failed} records rejected` }),
      }],
    });
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}
