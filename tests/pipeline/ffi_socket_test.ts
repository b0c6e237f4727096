import assert from "node:assert/strict";
import { FfiSocket, sockaddr } from "../../mod/pipeline/ffi_socket.ts";
import { loadLibc } from "../../mod/pipeline/libc.ts";
import { MmsgVector } from "../../mod/pipeline/mmsg_vector.ts";

Deno.test("sockaddr() encodes IPv4 and IPv6 literals and rejects names", () => {
  const v4 = sockaddr("127.0.0.1", 514);
  assert.deepEqual([...v4.subarray(0, 8)], [2, 0, 2, 2, 127, 0, 0, 1]);
  const v6 = sockaddr("::1", 8080);
  assert.equal(v6.length, 28);
  assert.deepEqual([...v6.subarray(2, 4)], [0x1f, 0x90]);
  assert.equal(v6[23], 1);
  assert.throws(() => sockaddr("localhost", 1), /not an IP address literal/);
});

Deno.test("MmsgVector checks its size", () => {
  assert.throws(() => new MmsgVector({ capacity: 0 }), /capacity/);
  assert.throws(() => new MmsgVector({ slotSize: 70000 }), /slotSize/);
});

Deno.test("FfiSocket: sendmmsg of 300 datagrams arrives whole through recvmmsg, lengths and bytes intact", () => {
  const libc = loadLibc();
  assert.ok(libc, "libc loads on Linux with --allow-ffi");
  const rx = FfiSocket.udp(libc, "127.0.0.1");
  rx.setBuffer("recv", 1 << 20);
  rx.bind("127.0.0.1", 0);
  const tx = FfiSocket.udp(libc, "127.0.0.1");
  tx.connect("127.0.0.1", rx.localPort());
  const out = new MmsgVector({ capacity: 300, slotSize: 64 });
  for (let i = 0; i < 300; i++) {
    const msg = new TextEncoder().encode(`<13>message ${i}`);
    out.data.set(msg, out.offset(i));
    out.setLength(i, msg.length);
  }
  let sent = 0;
  while (sent < 300) sent += tx.sendmmsg(out, sent, 300 - sent);
  const got: string[] = [];
  const inp = new MmsgVector({ capacity: 128, slotSize: 64 });
  for (let tries = 0; got.length < 300 && tries < 1000; tries++) {
    const n = rx.recvmmsg(inp, inp.capacity);
    assert.ok(n >= 0, `recvmmsg: ${-n}`);
    for (let j = 0; j < n; j++) {
      got.push(
        new TextDecoder().decode(inp.data.subarray(inp.offset(j), inp.offset(j) + inp.received(j))),
      );
    }
  }
  assert.deepEqual(got, Array.from({ length: 300 }, (_, i) => `<13>message ${i}`));
  assert.equal(rx.recvmmsg(inp, inp.capacity), 0, "nothing more queued");
  tx.close();
  rx.close();
  rx.close(); // idempotent
});
