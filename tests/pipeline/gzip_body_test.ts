import assert from "node:assert/strict";
import zlib from "node:zlib";
import { gzipBody } from "../../mod/pipeline/gzip_body.ts";

Deno.test("gzipBody() makes one gzip member that decodes to the body, smaller at a higher level", async () => {
  const body = new TextEncoder().encode(
    Array.from({ length: 2000 }, (_, i) => `{"n":${i},"message":"row ${i % 37}"}`).join(","),
  );
  const fast = await gzipBody(body, 1);
  const small = await gzipBody(body, 9);
  assert.deepEqual([fast[0], fast[1]], [0x1f, 0x8b]);
  assert.deepEqual(new Uint8Array(zlib.gunzipSync(fast)), body);
  assert.deepEqual(new Uint8Array(zlib.gunzipSync(small)), body);
  assert.ok(small.byteLength <= fast.byteLength, `${small.byteLength} > ${fast.byteLength}`);
});
