import assert from "node:assert/strict";
import { crc32c, crc32cPortable, encodeRecordBatch } from "../../mod/sinks/kafka_record_batch.ts";

/** One bit at a time: the definition the table-driven crc32c must agree with. */
function bitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

Deno.test("crc32c() and crc32cPortable() give the Castagnoli check value of 123456789", () => {
  for (const f of [crc32c, crc32cPortable]) {
    assert.equal(f(new TextEncoder().encode("123456789")), 0xe3069283);
    assert.equal(f(new Uint8Array(0)), 0);
  }
});

Deno.test("crc32c() and crc32cPortable() agree with the bitwise definition at every alignment and length", () => {
  const buf = new Uint8Array(1100);
  let x = 7;
  for (let i = 0; i < buf.length; i++) buf[i] = (x = (x * 1103515245 + 12345) & 0x7fffffff) >>> 16;
  for (let offset = 0; offset < 8; offset++) {
    for (const length of [0, 1, 7, 8, 63, 64, 65, 71, 72, 100, 1000, 1091 - offset]) {
      const view = buf.subarray(offset, offset + length);
      assert.equal(crc32c(view), bitwise(view), `offset ${offset}, length ${length}`);
      assert.equal(crc32cPortable(view), bitwise(view), `offset ${offset}, length ${length}`);
    }
  }
});

Deno.test("encodeRecordBatch() encodes a value given as a span of a buffer as the value itself", () => {
  const enc = new TextEncoder();
  const chunk = enc.encode("first line\nsecond\n\nthird one\n");
  const headers = { blob: enc.encode("b.gz"), member_offset: "0" };
  const spans: [number, number][] = [[0, 10], [11, 17], [18, 18], [19, 28]];
  const options = { producerId: 7n, producerEpoch: 1, baseSequence: 3, timestamp: 1_700_000_000 };
  const asValues = encodeRecordBatch(
    [...spans.map(([s, e]) => ({ key: "k", value: chunk.slice(s, e), headers })), {
      key: "k",
      value: null,
    }],
    options,
  );
  const asSpans = encodeRecordBatch(
    [
      ...spans.map(([start, end]) => ({
        key: "k",
        value: null,
        source: chunk,
        start,
        end,
        headers,
      })),
      { key: "k", value: null },
    ],
    options,
  );
  assert.deepEqual(asSpans, asValues);
  const view = new DataView(asValues.buffer, asValues.byteOffset);
  assert.equal(view.getInt32(57), 5); // records
  assert.equal(view.getUint32(17), crc32c(asValues.subarray(21)));
});
