// The status server's guard over real sockets: trickling clients are cut, a cap holds.
import assert from "node:assert/strict";
import { serveStatus } from "../../mod/status/server.ts";

const enc = new TextEncoder();

/** Open a connection that sends a request head one byte at a time, never finishing it. */
async function trickler(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let open = true;
  const head = enc.encode("GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: " + "a".repeat(10_000));
  const sending = (async () => {
    for (let i = 0; open && i < head.length; i++) {
      try {
        await conn.write(head.subarray(i, i + 1));
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  /** Resolves once the server closed the connection (a read returns EOF or fails). */
  const closedByServer = (async () => {
    const buf = new Uint8Array(1024);
    let got = "";
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        got += new TextDecoder().decode(buf.subarray(0, n));
      }
    } catch {
      // reset
    }
    return got;
  })();
  return {
    closedByServer,
    async stop() {
      open = false;
      await sending;
      try {
        conn.close();
      } catch {
        // closed
      }
    },
  };
}

Deno.test("serveStatus() closes connections whose request head trickles in, and caps connections", async () => {
  const ac = new AbortController();
  const server = serveStatus(
    { listen: "127.0.0.1:0", header_timeout: 300, max_connections: 5 },
    () => new Response("ok\n"),
    ac.signal,
  );
  const port = server.addr.port;
  const slow = await Promise.all(Array.from({ length: 5 }, () => trickler(port)));
  // A sixth connection is over the cap: answered 503 and closed.
  await new Promise((r) => setTimeout(r, 50));
  const extra = await trickler(port);
  assert.match(await extra.closedByServer, /^HTTP\/1\.1 503/);
  await extra.stop();
  // The trickling ones are closed by the server, though the clients keep sending (a test
  // without the guard waits here until the runner's own limit).
  const got = await Promise.all(slow.map((s) => s.closedByServer));
  assert.deepEqual(got, ["", "", "", "", ""]);
  for (const s of slow) await s.stop();
  // Freed: ordinary requests are answered.
  for (let i = 0; i < 10; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok\n");
  }
  ac.abort();
  await server.finished;
});

Deno.test("serveStatus() passes request bodies, keeps the Host header, refuses an oversized head", async () => {
  const ac = new AbortController();
  const server = serveStatus({ listen: "127.0.0.1:0" }, async (req) => {
    const body = req.method === "POST" ? await req.text() : "";
    return Response.json({ host: new URL(req.url).host, body });
  }, ac.signal);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const big = "x".repeat(200_000);
  const res = await fetch(`${base}/api/receiver`, { method: "POST", body: big });
  const j = await res.json();
  assert.equal(j.host, `127.0.0.1:${server.addr.port}`);
  assert.equal(j.body.length, big.length);
  const huge = await fetch(`${base}/`, { headers: { "x-big": "y".repeat(20_000) } });
  assert.equal(huge.status, 431);
  await huge.body?.cancel();
  ac.abort();
  await server.finished;
});

Deno.test("serveStatus() cuts a request not answered within request_timeout", async () => {
  const ac = new AbortController();
  let release = () => {};
  const never = new Promise<void>((r) => release = r);
  const server = serveStatus(
    { listen: "127.0.0.1:0", request_timeout: 200 },
    async () => {
      await never;
      return new Response("late");
    },
    ac.signal,
  );
  await assert.rejects(fetch(`http://127.0.0.1:${server.addr.port}/slow`));
  release();
  ac.abort();
  await server.finished;
});

Deno.test("serveStatus() keeps a WebSocket open beyond request_timeout", async () => {
  const ac = new AbortController();
  const server = serveStatus({ listen: "127.0.0.1:0", request_timeout: 100 }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(`echo ${e.data}`);
    return response;
  }, ac.signal);
  const ws = new WebSocket(`ws://127.0.0.1:${server.addr.port}/ws`);
  await new Promise((r) => ws.onopen = r);
  await new Promise((r) => setTimeout(r, 300));
  const reply = new Promise<string>((r) => ws.onmessage = (e) => r(e.data));
  ws.send("hi");
  assert.equal(await reply, "echo hi");
  const closed = new Promise((r) => ws.onclose = r);
  ws.close();
  await closed;
  ac.abort();
  await server.finished;
});
