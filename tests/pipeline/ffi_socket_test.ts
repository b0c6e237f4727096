import assert from "node:assert/strict";
import { FfiSocket, sockaddr } from "../../mod/pipeline/ffi_socket.ts";
import { LINUX, loadLibc } from "../../mod/pipeline/libc.ts";
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
  assert.throws(
    () => new MmsgVector({ capacity: 4, slotSize: 100, data: new Uint8Array(399) }),
    /below capacity × slotSize = 400/,
  );
});

/** The iovec (base, len) of each of `vec`'s headers, read back from its memory. */
function iovecs(vec: MmsgVector): { base: bigint; len: bigint; iovlen: bigint }[] {
  const hdr = new DataView(vec.headers.buffer);
  return Array.from({ length: vec.capacity }, (_, i) => {
    const iovAt = hdr.getBigUint64(i * 64 + 16, true);
    const iov = new Deno.UnsafePointerView(Deno.UnsafePointer.create(iovAt)!);
    return {
      base: iov.getBigUint64(0),
      len: iov.getBigUint64(8),
      iovlen: hdr.getBigUint64(i * 64 + 24, true),
    };
  });
}

Deno.test("MmsgVector over another's bytes: one iovec per header spanning its slot of the shared buffer", () => {
  const data = new Uint8Array(3 * 64 * 10);
  const perMessage = new MmsgVector({ capacity: 150, slotSize: 10, data });
  const groups = new MmsgVector({ capacity: 3, slotSize: 64 * 10, data });
  assert.equal(perMessage.data, data);
  assert.equal(groups.data, data);
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(data)));
  const g = iovecs(groups);
  assert.deepEqual(g.map((x) => x.base - base), [0n, 640n, 1280n]);
  assert.deepEqual(g.map((x) => x.len), [640n, 640n, 640n]);
  assert.deepEqual(g.map((x) => x.iovlen), [1n, 1n, 1n]);
  const m = iovecs(perMessage);
  assert.equal(m[149]!.base - base, 1490n, "message 149 is inside the third group");
  groups.setLength(2, 22 * 10);
  assert.equal(groups.length(2), 220);
  assert.equal(iovecs(groups)[2]!.len, 220n);
  perMessage.setLength(5, 7);
  assert.equal(perMessage.length(5), 7);
});

Deno.test("FfiSocket with UDP GSO: 135 messages in 3 sends (64, 64, 7) arrive as 135 datagrams of 300 bytes, in order", () => {
  const libc = loadLibc();
  assert.ok(libc);
  const rx = FfiSocket.udp(libc, "127.0.0.1");
  rx.setBuffer("recv", 1 << 20);
  rx.bind("127.0.0.1", 0);
  const tx = FfiSocket.udp(libc, "127.0.0.1");
  tx.connect("127.0.0.1", rx.localPort());
  assert.equal(tx.setUdpSegment(300), 0, "UDP_SEGMENT is available (Linux ≥ 4.18)");
  const segs = LINUX.UDP_MAX_SEGMENTS;
  const data = new Uint8Array(3 * segs * 300);
  const out = new MmsgVector({ capacity: 3, slotSize: segs * 300, data });
  const total = 2 * segs + 7;
  for (let i = 0; i < total; i++) {
    const text = new TextEncoder().encode(`<13>message ${i} `);
    data.fill(46, i * 300, (i + 1) * 300); // '.' padding to 300 bytes
    data.set(text, i * 300);
  }
  out.setLength(0, segs * 300);
  out.setLength(1, segs * 300);
  out.setLength(2, 7 * 300);
  let sent = 0;
  while (sent < 3) {
    const r = tx.sendmmsg(out, sent, 3 - sent);
    assert.ok(r >= 0, `sendmmsg: ${libc.errnoName(-r)}`);
    sent += r;
  }
  const inp = new MmsgVector({ capacity: 256, slotSize: 2048 });
  const got: string[] = [];
  for (let tries = 0; got.length < total && tries < 1000; tries++) {
    inp.resetLengths();
    const n = rx.recvmmsg(inp, inp.capacity);
    assert.ok(n >= 0, `recvmmsg: ${-n}`);
    for (let j = 0; j < n; j++) {
      assert.equal(
        inp.received(j),
        300,
        "one message a datagram: the receiver did not ask for GRO",
      );
      const bytes = inp.data.subarray(inp.offset(j), inp.offset(j) + 300);
      got.push(new TextDecoder().decode(bytes).replace(/\.+$/, ""));
    }
  }
  assert.deepEqual(got, Array.from({ length: total }, (_, i) => `<13>message ${i} `));
  assert.equal(rx.recvmmsg(inp, inp.capacity), 0, "nothing more queued");
  assert.equal(tx.setUdpSegment(0), 0, "GSO can be turned off again");
  tx.close();
  rx.close();
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
