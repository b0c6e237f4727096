/**
 * Headless Chromium driven over the Chrome DevTools Protocol with Deno's own WebSocket: enough
 * to load a page, evaluate expressions in it and take a screenshot, with no npm dependency.
 * Needs Debian's `chromium` (/usr/bin/chromium; `.ci/run` installs it).
 * @module
 */

/** One page of a running Chromium. */
export interface CdpPage {
  /** Navigate and wait for the load event. */
  goto(url: string): Promise<void>;
  /** Evaluate an expression in the page; returns its value (JSON-serializable). */
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG of the viewport. */
  screenshot(): Promise<Uint8Array>;
}

/** A DevTools protocol answer: untyped JSON. */
// deno-lint-ignore no-explicit-any
type Json = any;

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--window-size=1200,800",
  "--remote-debugging-port=0",
];

/** Start Chromium, give `fn` a page, and always stop Chromium. */
export async function withChromium(
  fn: (page: CdpPage) => Promise<void>,
  executable = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium",
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cdp-" });
  const child = new Deno.Command(executable, {
    args: [...FLAGS, `--user-data-dir=${dir}`, "about:blank"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let ws: WebSocket | undefined;
  try {
    let port = 0;
    for (let i = 0; i < 200 && !port; i++) {
      try {
        port = Number((await Deno.readTextFile(`${dir}/DevToolsActivePort`)).split("\n")[0]);
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    if (!port) throw new Error(`${executable} did not open its DevTools port in 10 s`);
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
      type: string;
      webSocketDebuggerUrl: string;
    }[];
    const page = targets.find((t) => t.type === "page");
    if (!page) throw new Error("no page target in Chromium");
    ws = new WebSocket(page.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws!.onopen = resolve;
      ws!.onerror = () => reject(new Error("cannot connect to Chromium's DevTools WebSocket"));
    });
    let id = 0;
    const pending = new Map<number, (m: { result?: Json; error?: { message: string } }) => void>();
    const events: ((m: { method: string }) => void)[] = [];
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.id !== undefined) pending.get(m.id)?.(m);
      else for (const l of events) l(m);
    };
    const send = (method: string, params: Record<string, unknown> = {}) =>
      new Promise<Json>((resolve, reject) => {
        const n = ++id;
        pending.set(n, (m) => {
          pending.delete(n);
          m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result);
        });
        ws!.send(JSON.stringify({ id: n, method, params }));
      });
    await send("Page.enable");
    await send("Runtime.enable");
    await fn({
      async goto(url) {
        const loaded = new Promise<void>((r) =>
          events.push((m) => {
            if (m.method === "Page.loadEventFired") r();
          })
        );
        await send("Page.navigate", { url });
        await loaded;
      },
      async evaluate(expression) {
        const r = await send("Runtime.evaluate", { expression, returnByValue: true });
        if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.text}`);
        return r.result.value;
      },
      async screenshot() {
        const r = await send("Page.captureScreenshot", { format: "png" });
        return Uint8Array.from(atob(r.data), (c) => c.charCodeAt(0));
      },
    });
  } finally {
    ws?.close();
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
