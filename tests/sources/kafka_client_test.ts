import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import net from "node:net";
import { releaseWrittenRequests } from "../../mod/sources/kafka_client.ts";

/** A socket-like object whose write completes at once, recording what it was given. */
function fakeSocket() {
  const written: number[] = [];
  return {
    written,
    write(chunk: Uint8Array, encoding?: unknown, cb?: (e?: Error | null) => void): boolean {
      if (typeof encoding === "function") cb = encoding as typeof cb;
      written.push(chunk.byteLength);
      cb?.(null);
      return true;
    },
  };
}

Deno.test("releaseWrittenRequests() frees a large request's buffer once it is written", () => {
  const socket = fakeSocket();
  releaseWrittenRequests(socket);
  const request = Buffer.alloc(1 << 20, 7);
  let called = 0;
  socket.write(request, () => called++);
  assert.equal(called, 1);
  assert.deepEqual(socket.written, [1 << 20]);
  assert.equal(request.buffer.detached, true);
  assert.equal(request.length, 0);
});

Deno.test("releaseWrittenRequests() leaves small chunks and views of shared buffers alone", () => {
  const socket = fakeSocket();
  releaseWrittenRequests(socket);
  releaseWrittenRequests(socket); // wrapped once
  const small = Buffer.alloc(1000);
  const shared = new Uint8Array(2 << 20);
  const view = shared.subarray(0, 1 << 20);
  socket.write(small);
  socket.write(view, "buffer", () => {});
  assert.equal(small.buffer.detached, false);
  assert.equal(shared.buffer.detached, false);
  assert.equal(view.byteLength, 1 << 20);
});

Deno.test("releaseWrittenRequests() skips a buffer that cannot be detached", () => {
  const socket = fakeSocket();
  releaseWrittenRequests(socket);
  const memory = new WebAssembly.Memory({ initial: 2 }); // its buffer is not detachable
  const chunk = new Uint8Array(memory.buffer);
  let error: unknown = "not called";
  socket.write(chunk, (e?: Error | null) => error = e);
  assert.equal(error, null);
  assert.equal(chunk.byteLength, 2 * 65536);
});

Deno.test("releaseWrittenRequests() on a real socket: the peer gets every byte, then it is freed", async () => {
  const size = 8 << 20; // more than one socket write
  const received: Buffer[] = [];
  const done = Promise.withResolvers<void>();
  const server = net.createServer((peer) => {
    peer.on("data", (b: Buffer) => received.push(Buffer.from(b)));
    peer.on("end", () => done.resolve());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((r) => socket.once("connect", () => r()));
  releaseWrittenRequests(socket);
  const request = Buffer.alloc(size);
  for (let i = 0; i < size; i++) request[i] = i * 31 & 0xff;
  const expected = Buffer.from(request); // a copy to compare with
  const written = Promise.withResolvers<void>();
  socket.write(request, (e?: Error | null) => e ? written.reject(e) : written.resolve());
  await written.promise;
  assert.equal(request.buffer.detached, true);
  socket.end();
  await done.promise;
  await new Promise<void>((r) => server.close(() => r()));
  const got = Buffer.concat(received);
  assert.equal(got.length, size);
  assert.ok(got.equals(expected));
});
