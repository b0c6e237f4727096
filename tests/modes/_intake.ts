// A real HTTP intake for failure tests: it decides the answer per request from the body's lines
// (503 to one file's batches, 400 to a marker line, 413 to a large body) and keeps what it took.
/** What the intake saw. */
export interface Intake {
  url: string;
  /** Lines of every request answered 2xx, in arrival order. */
  got: string[];
  /** Requests answered with something else. */
  refused: number;
  close(): Promise<void>;
}

/**
 * Start an intake on a free loopback port.
 *
 * @param answer the status for a request carrying `lines` (2xx keeps them).
 * @param delayMs wait this long before answering each request.
 */
export function startIntake(
  answer: (lines: string[], body: string) => number = () => 204,
  delayMs = 0,
): Intake {
  const got: string[] = [];
  const it: Intake = {
    url: "",
    got,
    refused: 0,
    close: () => server.shutdown(),
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.text();
    const lines = body.split("\n").filter(Boolean);
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    const code = answer(lines, body);
    if (code >= 200 && code < 300) {
      got.push(...lines);
      return new Response(null, { status: 204 });
    }
    it.refused++;
    return new Response(`test intake answers ${code}\n`, { status: code });
  });
  it.url = `http://127.0.0.1:${server.addr.port}`;
  return it;
}

/** How many times each line arrived. */
export function tally(lines: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of lines) m.set(l, (m.get(l) ?? 0) + 1);
  return m;
}

/** Wait until `done()` or `ms` pass (polling); returns whether it got done. */
export async function until(done: () => boolean, ms: number, every = 50): Promise<boolean> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, every));
  }
  return true;
}
