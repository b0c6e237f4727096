import assert from "node:assert/strict";
import zlib from "node:zlib";
import {
  BufferPool,
  DecodeError,
  type DecodeOptions,
  decodeStream,
  readPooled,
} from "../../mod/pipeline/gzip.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const gz = (s: string) => new Uint8Array(zlib.gzipSync(enc(s)));
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

async function decode(data: Uint8Array, chunk = 7, impl: "zlib" | "web" = "zlib") {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
  const d = decodeStream({ impl });
  try {
    const text = await new Response(ReadableStream.from(parts).pipeThrough(d)).text();
    return { text, d };
  } catch (error) {
    return { error: error as Error, d };
  }
}

Deno.test("decodeStream() detects gzip by magic bytes, not by name", async () => {
  const { text, d } = await decode(gz("a\nb\n"));
  assert.equal(text, "a\nb\n");
  assert.equal(d.gzip, true);
});

Deno.test("decodeStream() passes plain text through (a .gz-named plain file)", async () => {
  const { text, d } = await decode(enc("plain\ntext"));
  assert.equal(text, "plain\ntext");
  assert.equal(d.gzip, false);
  assert.equal(d.consumed, 10);
  assert.equal((await decode(enc("x"))).text, "x");
  assert.equal((await decode(new Uint8Array(0))).text, "");
});

Deno.test("decodeStream() decodes every member of a multi-member file at any chunking", async () => {
  const a = gz("one\ntwo\n".repeat(500));
  const b = gz("three\n");
  const c = gz("");
  const all = cat(a, b, c);
  for (const chunk of [1, 2, 9, 10, 11, 64, 4096, all.length]) {
    const { text, d, error } = await decode(all, chunk);
    assert.equal(error, undefined);
    assert.equal(text, "one\ntwo\n".repeat(500) + "three\n", `chunk ${chunk}`);
    assert.equal(d.members, 3);
    assert.equal(d.consumed, all.length);
  }
});

Deno.test("decodeStream() reports a truncated member with its offset; consumed stops at the last complete member", async () => {
  const a = gz("complete\n");
  const b = gz("truncated member\n".repeat(100));
  for (const cut of [3, 12, b.length - 4]) {
    const { error, d } = await decode(cat(a, b.subarray(0, cut)));
    assert.ok(error instanceof DecodeError, `cut ${cut}: ${error}`);
    assert.equal(error.offset, a.length);
    assert.match(error.message, new RegExp(`truncated gzip member at byte ${a.length}`));
    assert.equal(d.consumed, a.length);
    assert.equal(d.members, 1);
  }
});

Deno.test("decodeStream() reports a corrupt member (bad data, bad CRC) with its offset", async () => {
  const a = gz("ok\n");
  const b = gz("some data that will be damaged\n".repeat(20));
  const badCrc = cat(a, b);
  badCrc[badCrc.length - 6]! ^= 0xff;
  let r = await decode(badCrc);
  assert.ok(r.error instanceof DecodeError);
  assert.match(
    r.error.message,
    new RegExp(`corrupt gzip member at byte ${a.length}: CRC32 mismatch`),
  );
  const badData = cat(a, b);
  badData[a.length + 10]! = 0xff;
  badData[a.length + 11]! = 0xff;
  r = await decode(badData);
  assert.ok(r.error instanceof DecodeError);
  assert.equal(r.error.offset, a.length);
  assert.equal(r.d.consumed, a.length);
});

Deno.test("decodeStream() rejects garbage after a member, naming the offset", async () => {
  const a = gz("ok\n");
  const { error } = await decode(cat(a, enc("garbage after it")));
  assert.ok(error instanceof DecodeError);
  assert.match(error.message, new RegExp(`not a gzip member at byte ${a.length}`));
});

Deno.test("decodeStream({impl: 'web'}) decodes one member and fails on a second", async () => {
  const { text } = await decode(gz("web\n"), 5, "web");
  assert.equal(text, "web\n");
  const multi = await decode(cat(gz("a\n"), gz("b\n")), 5, "web");
  assert.ok(multi.error instanceof DecodeError);
});

Deno.test("decodeStream() holds a member's output until its trailer checks out", async () => {
  const a = gz("first member\n");
  const b = gz("from a damaged member\n");
  const data = cat(a, b);
  data[data.length - 6]! ^= 0xff; // CRC of the second member
  const d = decodeStream();
  const seen: string[] = [];
  await assert.rejects(() =>
    ReadableStream.from([data]).pipeThrough(d).pipeTo(
      new WritableStream({ write: (c) => void seen.push(new TextDecoder().decode(c)) }),
    )
  );
  assert.equal(seen.join(""), "first member\n");
  // Past holdMemberBytes a member streams (bounded memory), so its head is delivered.
  const big = gz("y".repeat(100) + "\n");
  const d2 = decodeStream({ holdMemberBytes: 10 });
  const out: Uint8Array[] = [];
  await ReadableStream.from([big]).pipeThrough(d2).pipeTo(
    new WritableStream({ write: (c) => void out.push(c) }),
  );
  assert.equal(out.reduce((n, c) => n + c.length, 0), 101);
});

Deno.test("memberOffset() names the member each output chunk was decoded from", async () => {
  const members = [gz("a1\na2\n"), gz("b1\n".repeat(100_000)), gz("c1\n")];
  const input = cat(...members);
  const d = decodeStream({ holdMemberBytes: 64 * 1024 });
  const seen: [string, number][] = [];
  const chunks = ReadableStream.from([input.subarray(0, 7), input.subarray(7)]).pipeThrough(d);
  for await (const c of chunks) {
    seen.push([new TextDecoder().decode(c.subarray(0, 2)), d.memberOffset(c)]);
  }
  const starts = [0, members[0]!.length, members[0]!.length + members[1]!.length];
  assert.deepEqual(seen[0], ["a1", starts[0]]);
  assert.ok(
    seen.slice(1, -1).every(([, o]) => o === starts[1]),
    "the long member's chunks",
  );
  assert.ok(seen.length > 3, "the long member came in several chunks");
  assert.deepEqual(seen.at(-1), ["c1", starts[2]]);
});

Deno.test("memberOffset() of plain input is the chunk's own offset", async () => {
  const d = decodeStream();
  const offsets: number[] = [];
  for await (const c of ReadableStream.from([enc("ab\n"), enc("cd\n"), enc("e")]).pipeThrough(d)) {
    offsets.push(d.memberOffset(c));
  }
  assert.deepEqual(offsets, [0, 3, 6]);
});

Deno.test("decodeStream() reuses an output buffer once every chunk cut from it is released", async () => {
  const pool = new BufferPool(1024, 4);
  const text = Array.from({ length: 4000 }, (_, i) => `line ${i}\n`).join("");
  const data = cat(gz(text.slice(0, 15000)), gz(text.slice(15000)));
  // No hold: a held member's chunks reach the consumer (and come back) only at its end.
  const d = decodeStream({ pool, holdMemberBytes: 0 });
  const seen = new Set<ArrayBufferLike>();
  let out = "";
  let chunks = 0;
  const td = new TextDecoder();
  const parts: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += 16) parts.push(data.subarray(i, i + 16));
  await ReadableStream.from(parts).pipeThrough(d).pipeTo(
    new WritableStream({
      write(chunk) {
        chunks++;
        seen.add(chunk.buffer);
        out += td.decode(chunk);
        d.release(chunk);
        chunk.fill(0); // released: the decoder may overwrite it, so may we
      },
    }),
  );
  assert.equal(out, text);
  // 38 KB of output through 1 KiB buffers: a handful (those the streams' queues hold while the
  // next is filled) take turns, and all are back in the pool at the end.
  assert.ok(text.length > 38_000 && chunks > 37, `${chunks} chunks`);
  assert.ok(seen.size <= 4, `${seen.size} buffers`);
  assert.equal(pool.free, seen.size);
});

Deno.test("decodeStream() never hands out bytes of a chunk that is not released", async () => {
  const pool = new BufferPool(512, 4);
  const text = Array.from({ length: 300 }, (_, i) => `entry ${i}\n`).join("");
  const d = decodeStream({ pool });
  const kept: Uint8Array[] = [];
  const copies: string[] = [];
  await ReadableStream.from([gz(text)]).pipeThrough(d).pipeTo(
    new WritableStream({
      write(chunk) {
        kept.push(chunk);
        copies.push(new TextDecoder().decode(chunk));
        if (kept.length % 2 === 0) d.release(chunk); // every other chunk stays in use
      },
    }),
  );
  // Chunks still in use were never overwritten by later output.
  kept.forEach((chunk, i) => {
    if (i % 2 === 0) assert.equal(new TextDecoder().decode(chunk), copies[i]);
  });
  assert.equal(copies.join(""), text);
});

Deno.test("readPooled() reads a byte stream into pooled buffers the decoder gives back", async () => {
  const text = Array.from({ length: 3000 }, (_, i) => `row ${i}\n`).join("");
  for (const [name, bytes] of [["gzip", gz(text)], ["plain", enc(text)]] as const) {
    // BYOB reads transfer a buffer (a new ArrayBuffer object each time): count allocations.
    let fresh = 0;
    const input = new (class extends BufferPool {
      override take() {
        if (this.free === 0) fresh++;
        return super.take();
      }
    })(512, 8);
    const seen = new Set<ArrayBufferLike>();
    const d = decodeStream({
      holdMemberBytes: 0,
      recycleInput: (chunk) => input.give(new Uint8Array(chunk.buffer)),
    });
    let out = "";
    let at = 0;
    const body2 = new ReadableStream({
      type: "bytes",
      pull(c) {
        const n = Math.min(300, bytes.length - at);
        if (n === 0) {
          // A byte stream ends a pending BYOB read by closing and answering it with 0 bytes.
          c.close();
          return c.byobRequest?.respond(0);
        }
        c.enqueue(bytes.slice(at, at += n));
      },
    });
    const td = new TextDecoder();
    await readPooled(body2, input).pipeThrough(
      new TransformStream({
        transform(c, ctrl) {
          seen.add(c.buffer);
          ctrl.enqueue(c);
        },
      }),
    ).pipeThrough(d).pipeTo(
      new WritableStream({
        write(chunk) {
          out += td.decode(chunk);
          d.release(chunk);
        },
      }),
    );
    assert.equal(out, text, name);
    assert.ok(bytes.length / 300 > 10);
    assert.ok(seen.size > 10);
    assert.ok(fresh <= 4, `${name}: ${fresh} input buffers for ${seen.size} reads`);
  }
  // Not a byte stream: passed through as it is.
  const plain = ReadableStream.from([enc("x")]);
  assert.equal(readPooled(plain, new BufferPool(16)), plain);
});

async function resync(data: Uint8Array, chunk: number, options: DecodeOptions = {}) {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
  const d = decodeStream({ resync: true, ...options });
  const text = await new Response(ReadableStream.from(parts).pipeThrough(d)).text();
  return { text, d };
}

const CHUNKINGS = [1, 3, 10, 64, 4096, 1 << 20];

Deno.test("decodeStream({resync}) drops a member with bad data and decodes the members after it", async () => {
  const a = gz("before\n".repeat(50));
  const b = gz("damaged\n".repeat(300));
  const c = gz("after\n".repeat(50));
  const data = cat(a, b, c);
  data[a.length + 12]! ^= 0xff;
  data[a.length + 13]! ^= 0xff;
  data[a.length + 14]! ^= 0xff;
  for (const chunk of CHUNKINGS) {
    const { text, d } = await resync(data, chunk);
    assert.equal(text, "before\n".repeat(50) + "after\n".repeat(50), `chunk ${chunk}`);
    assert.equal(d.skipped, b.length, `chunk ${chunk}`);
    assert.equal(d.faults.length, 1);
    assert.equal(d.faults[0]!.offset, a.length);
    assert.equal(d.faults[0]!.reason, "corrupt_gzip");
    assert.match(d.faults[0]!.message, new RegExp(`at byte ${a.length}`));
    assert.equal(d.members, 2);
    assert.equal(d.consumed, data.length);
  }
});

Deno.test("decodeStream({resync}) drops a member whose CRC32 does not match", async () => {
  const a = gz("a\n"), b = gz("b\n".repeat(20)), c = gz("c\n");
  const data = cat(a, b, c);
  data[a.length + b.length - 6]! ^= 0xff;
  for (const chunk of CHUNKINGS) {
    const { text, d } = await resync(data, chunk);
    assert.equal(text, "a\nc\n", `chunk ${chunk}`);
    assert.equal(d.skipped, b.length);
    assert.match(d.faults[0]!.message, /CRC32 mismatch/);
  }
});

Deno.test("decodeStream({resync}) passes over garbage between members and counts it", async () => {
  const a = gz("a\n"), c = gz("c\n");
  const garbage = enc("not gzip at all \x1f\x8b but not a header either");
  for (const chunk of CHUNKINGS) {
    const { text, d } = await resync(cat(a, garbage, c), chunk);
    assert.equal(text, "a\nc\n", `chunk ${chunk}`);
    assert.equal(d.skipped, garbage.length);
    assert.equal(d.faults[0]!.offset, a.length);
    assert.match(d.faults[0]!.message, new RegExp(`not a gzip member at byte ${a.length}`));
  }
});

Deno.test("decodeStream({resync}) finds a good member right after a truncated one", async () => {
  const a = gz("a\n"), b = gz("cut short\n".repeat(200)), c = gz("c\n".repeat(10));
  for (const cut of [5, 11, 30, b.length - 3]) {
    for (const chunk of [1, 7, 4096]) {
      const { text, d } = await resync(cat(a, b.subarray(0, cut), c), chunk);
      assert.equal(text, "a\n" + "c\n".repeat(10), `cut ${cut} chunk ${chunk}`);
      assert.equal(d.skipped, cut, `cut ${cut} chunk ${chunk}`);
      assert.equal(d.faults.length, 1);
      assert.equal(d.faults[0]!.offset, a.length);
    }
  }
});

Deno.test("decodeStream({resync}) skips a truncated last member to the end, keeping what came before", async () => {
  const a = gz("a\n"), b = gz("cut short\n".repeat(200));
  for (const cut of [2, 9, 40, b.length - 1]) {
    const { text, d } = await resync(cat(a, b.subarray(0, cut)), 5);
    assert.equal(text, "a\n", `cut ${cut}`);
    assert.equal(d.skipped, cut, `cut ${cut}`);
    assert.equal(d.faults[0]!.reason, "truncated_gzip");
    assert.equal(d.faults[0]!.offset, a.length);
    assert.equal(d.consumed, a.length);
  }
});

Deno.test("decodeStream({resync}) recovers after garbage right behind the first gzip magic", async () => {
  const bad = cat(new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), enc("\xff\xfegarbage!"));
  const c = gz("c\n");
  const { text, d } = await resync(cat(bad, c), 4);
  assert.equal(text, "c\n");
  assert.equal(d.skipped, bad.length);
  assert.equal(d.faults[0]!.offset, 0);
});

Deno.test("decodeStream({resync}) with a small window still resumes after the bad member", async () => {
  const a = gz("a\n"), c = gz("c\n");
  const b = gz(crypto.getRandomValues(new Uint8Array(4096)).join("\n"));
  const data = cat(a, b, c);
  data[a.length + b.length - 6]! ^= 0xff;
  const { text, d } = await resync(data, 512, { resyncWindow: 100 });
  assert.equal(text, "a\nc\n");
  assert.equal(d.skipped, b.length);
});

Deno.test("decodeStream({plain: 'reject'}) fails input that is not gzip; 'allow' passes it", async () => {
  const d = decodeStream({ plain: "reject" });
  await assert.rejects(
    () => new Response(ReadableStream.from([enc("plain text\n")]).pipeThrough(d)).text(),
    (e) => e instanceof DecodeError && e.reason === "not_gzip" && /at byte 0/.test(e.message),
  );
  const ok = decodeStream({ plain: "reject" });
  assert.equal(await new Response(ReadableStream.from([gz("z\n")]).pipeThrough(ok)).text(), "z\n");
  const allow = decodeStream({ plain: "allow" });
  assert.equal(
    await new Response(ReadableStream.from([enc("p\n")]).pipeThrough(allow)).text(),
    "p\n",
  );
});

Deno.test("DecodeError is not retryable and names its reason", async () => {
  const { error } = await decode(gz("x\n").subarray(0, 12));
  assert.ok(error instanceof DecodeError);
  assert.equal(error.reason, "truncated_gzip");
  assert.equal(error.retryable, false);
});
