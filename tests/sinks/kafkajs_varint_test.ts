import assert from "node:assert/strict";
import { patchKafkajsVarints } from "../../mod/sinks/kafkajs_varint.ts";

/** ZigZag + unsigned LEB128 of a 64-bit value, the reference way (BigInt). */
function varlong(v: bigint): number[] {
  let z = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
  const out: number[] = [];
  while (z >= 0x80n) {
    out.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  out.push(Number(z));
  return out;
}

Deno.test("patchKafkajsVarints() writes the same bytes kafkajs' decoder reads back", async () => {
  assert.equal(await patchKafkajsVarints(), true);
  // @ts-ignore: CommonJS internals of kafkajs, without types
  const { default: Encoder } = await import("kafkajs/src/protocol/encoder.js");
  // @ts-ignore: idem
  const { default: Decoder } = await import("kafkajs/src/protocol/decoder.js");
  const values = [
    0,
    1,
    -1,
    63,
    -64,
    64,
    127,
    128,
    300,
    -300,
    16383,
    16384,
    2 ** 29,
    -(2 ** 29),
    2 ** 30 - 1,
    -(2 ** 30) + 1,
    2 ** 31 - 1,
    -(2 ** 31),
  ];
  for (const v of values) {
    const e = new Encoder().writeVarInt(v);
    assert.deepEqual([...e.buffer], varlong(BigInt(v)), `varint ${v}`);
    assert.equal(new Decoder(e.buffer).readVarInt(), v);
  }
  for (const v of [...values, 2 ** 40, -(2 ** 40), Number.MAX_SAFE_INTEGER]) {
    const e = new Encoder().writeVarLong(v);
    assert.deepEqual([...e.buffer], varlong(BigInt(v)), `varlong ${v}`);
    assert.equal(Encoder.sizeOfVarLong(v), e.buffer.length, `size of varlong ${v}`);
    assert.equal(new Decoder(e.buffer).readVarLong().toString(), String(v));
  }
  // Many writes grow the buffer as before.
  const big = new Encoder(1);
  for (let i = 0; i < 10_000; i++) big.writeVarInt(i * 7919);
  const d = new Decoder(big.buffer);
  for (let i = 0; i < 10_000; i++) assert.equal(d.readVarInt(), i * 7919);
});
