/**
 * Faster varint encoding in kafkajs 2.2.4's protocol encoder. kafkajs writes every varint of
 * every record (length, offset delta, key and value lengths, each header's lengths: about a dozen
 * per log line) by building an array and copying it through `Buffer.from(array)`; under Deno's
 * `node:buffer` each such Buffer costs a typed-array construction, and a CPU profile of ingest
 * put those at 8 to 10% of all samples. These replacements write the same bytes straight into the
 * encoder's buffer (and size small 64-bit varints without 64-bit Long arithmetic).
 *
 * Patched only when the encoder's methods are the ones this was written against (their source is
 * checked), so a kafkajs upgrade falls back to its own code instead of breaking.
 * @module
 */

let applied: Promise<boolean> | undefined;

// deno-lint-ignore no-explicit-any
type EncoderClass = any;

/**
 * Patch kafkajs' Encoder once per process.
 *
 * @returns whether the patch is in place (false: kafkajs' encoder is not the expected one).
 */
export function patchKafkajsVarints(): Promise<boolean> {
  return applied ??= (async () => {
    // @ts-ignore: a CommonJS internal of kafkajs, without types
    const mod = await import("kafkajs/src/protocol/encoder.js");
    const Encoder: EncoderClass = mod.default ?? mod;
    const P = Encoder?.prototype;
    if (
      typeof P?.writeUVarInt !== "function" || typeof P?.writeVarLong !== "function" ||
      typeof Encoder.sizeOfVarLong !== "function" ||
      !String(P.writeUVarInt).includes("Buffer.from(byteArray)") ||
      !String(P.writeVarLong).includes("encodeZigZag64") ||
      !String(Encoder.sizeOfVarLong).includes("encodeZigZag64")
    ) {
      return false;
    }
    const writeVarLong = P.writeVarLong;
    const sizeOfVarLong = Encoder.sizeOfVarLong;
    // Unsigned LEB128 of a 32-bit value, as kafkajs' loop (`>>>` makes it unsigned).
    P.writeUVarInt = function (this: { buf: Uint8Array; offset: number }, value: number) {
      (this as unknown as { ensureAvailable(n: number): void }).ensureAvailable(5);
      const buf = this.buf;
      let o = this.offset;
      while ((value & 0xffffff80) !== 0) {
        buf[o++] = (value & 0x7f) | 0x80;
        value >>>= 7;
      }
      buf[o++] = value & 0x7f;
      this.offset = o;
      return this;
    };
    // ZigZag64 of |v| < 2^30 equals ZigZag32 of v: small numbers skip Long.
    const small = (v: unknown): v is number =>
      typeof v === "number" && Number.isInteger(v) && v > -0x40000000 && v < 0x40000000;
    P.writeVarLong = function (value: unknown) {
      return small(value)
        ? this.writeUVarInt(((value << 1) ^ (value >> 31)) >>> 0)
        : writeVarLong.call(this, value);
    };
    Encoder.sizeOfVarLong = function (value: unknown) {
      if (!small(value)) return sizeOfVarLong.call(this, value);
      let z = ((value << 1) ^ (value >> 31)) >>> 0;
      let bytes = 1;
      while (z >= 0x80) {
        bytes++;
        z >>>= 7;
      }
      return bytes;
    };
    return true;
  })();
}
