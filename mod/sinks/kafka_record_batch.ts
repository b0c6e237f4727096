/**
 * The produce hot path, written for the agent's messages: a Kafka v2 record batch encoded in one
 * buffer per batch. Sizes are computed first, then every record is written in place: zig-zag
 * varints, the value copied once, the headers of a member encoded once and copied per record
 * (a blob's lines share them), and the CRC32C computed over the bytes already held. No object
 * per record, no intermediate buffers (the client library spent most of ingest's CPU there).
 *
 * @example
 * ```ts
 * const batch = encodeRecordBatch(messages, { producerId: -1n, producerEpoch: -1, baseSequence: -1 });
 * ```
 * @module
 */

import zlib from "node:zlib";

/** A message as the encoder takes it (strings are UTF-8 encoded). */
export interface RecordInput {
  key?: string | Uint8Array;
  value: Uint8Array | string | null;
  /** The value as `source[start, end)` (then `value` is not read): no view per record. */
  source?: Uint8Array;
  start?: number;
  end?: number;
  headers?: Record<string, string | Uint8Array>;
}

/** Idempotence fields and compression of one batch. */
export interface RecordBatchOptions {
  /** -1n: not idempotent. */
  producerId: bigint;
  producerEpoch: number;
  /** The first record's sequence number (-1: none). */
  baseSequence: number;
  /** gzip the records. @default "none" */
  compression?: "gzip" | "none";
  /** Milliseconds since the epoch. @default Date.now() */
  timestamp?: number;
  /** Where the batch's bytes go: a buffer of at least `size` bytes (e.g. a reused one). */
  alloc?: (size: number) => Uint8Array;
}

// CRC32C (Castagnoli), slicing by 8. On a little-endian platform the bytes are read as 32-bit
// words (1.3-1.7x the byte-at-a-time reads here); a big-endian one reads bytes.
const CRC_TABLE = (() => {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 8; s++) {
      t[s * 256 + i] = (t[(s - 1) * 256 + i]! >>> 8) ^ t[t[(s - 1) * 256 + i]! & 0xff]!;
    }
  }
  return t;
})();

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * `@node-rs/crc32`'s CRC32C (the CPU's CRC instructions, through N-API; 2.5-4x the JS one here)
 * when its binary loads on this platform, as the Kafka client library loads it too; else none.
 */
const native = await import("@node-rs/crc32").then(
  (m) => m.crc32c as (bytes: Uint8Array) => number,
  () => undefined,
);

/**
 * CRC32C of `bytes` (as Kafka's record batches carry): the native one when it loaded, else
 * {@link crc32cPortable}.
 *
 * @param bytes the data.
 * @returns the checksum, unsigned.
 */
export const crc32c: (bytes: Uint8Array) => number = native
  ? (bytes) => native(bytes) >>> 0
  : crc32cPortable;

/**
 * CRC32C in JavaScript.
 *
 * @param bytes the data.
 * @returns the checksum, unsigned.
 */
export function crc32cPortable(bytes: Uint8Array): number {
  return LITTLE_ENDIAN ? crc32cWords(bytes) : crc32cBytes(bytes);
}

/** Up to a 4-byte boundary a byte at a time, then 8 bytes a step through a Uint32Array view. */
function crc32cWords(bytes: Uint8Array): number {
  const t = CRC_TABLE;
  let crc = 0xffffffff;
  let i = 0;
  const n = bytes.length;
  const lead = Math.min(n, (4 - (bytes.byteOffset & 3)) & 3);
  while (i < lead) crc = t[(crc ^ bytes[i++]!) & 0xff]! ^ (crc >>> 8);
  if (n - i >= 8) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset + i, ((n - i) >>> 3) * 2);
    for (let w = 0; w < words.length; w += 2) {
      const a = words[w]! ^ crc;
      const b = words[w + 1]!;
      crc = t[1792 + (a & 0xff)]! ^ t[1536 + ((a >>> 8) & 0xff)]! ^
        t[1280 + ((a >>> 16) & 0xff)]! ^ t[1024 + (a >>> 24)]! ^
        t[768 + (b & 0xff)]! ^ t[512 + ((b >>> 8) & 0xff)]! ^
        t[256 + ((b >>> 16) & 0xff)]! ^ t[b >>> 24]!;
    }
    i += words.length * 4;
  }
  while (i < n) crc = t[(crc ^ bytes[i++]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Slicing by 8, a byte at a time (any byte order). */
function crc32cBytes(bytes: Uint8Array): number {
  const t = CRC_TABLE;
  let crc = 0xffffffff;
  let i = 0;
  const n = bytes.length;
  const end8 = n - (n & 7);
  while (i < end8) {
    const a = (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) ^
      crc;
    crc = t[7 * 256 + (a & 0xff)]! ^ t[6 * 256 + ((a >>> 8) & 0xff)]! ^
      t[5 * 256 + ((a >>> 16) & 0xff)]! ^ t[4 * 256 + (a >>> 24)]! ^
      t[3 * 256 + bytes[i + 4]!]! ^ t[2 * 256 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^ t[bytes[i + 7]!]!;
    i += 8;
  }
  while (i < n) crc = t[(crc ^ bytes[i++]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const enc = new TextEncoder();
const bytesOf = (v: string | Uint8Array): Uint8Array => typeof v === "string" ? enc.encode(v) : v;

/** Bytes of a zig-zag varint of a 32-bit value. */
function varintSize(v: number): number {
  let z = ((v << 1) ^ (v >> 31)) >>> 0;
  let n = 1;
  while (z >= 0x80) {
    z >>>= 7;
    n++;
  }
  return n;
}

function writeVarint(buf: Uint8Array, at: number, v: number): number {
  let z = ((v << 1) ^ (v >> 31)) >>> 0;
  while (z >= 0x80) {
    buf[at++] = (z & 0x7f) | 0x80;
    z >>>= 7;
  }
  buf[at++] = z;
  return at;
}

/** The encoded headers block (count + pairs) of one headers object. */
function headersBlock(h: Record<string, string | Uint8Array> | undefined): Uint8Array {
  if (!h) return new Uint8Array([0]);
  const pairs = Object.entries(h).map(([k, v]) => [enc.encode(k), bytesOf(v)] as const);
  let size = varintSize(pairs.length);
  for (const [k, v] of pairs) {
    size += varintSize(k.length) + k.length + varintSize(v.length) + v.length;
  }
  const out = new Uint8Array(size);
  let at = writeVarint(out, 0, pairs.length);
  for (const [k, v] of pairs) {
    at = writeVarint(out, at, k.length);
    out.set(k, at);
    at += k.length;
    at = writeVarint(out, at, v.length);
    out.set(v, at);
    at += v.length;
  }
  return out;
}

/** Where the records start in a v2 batch (after the 61-byte header). */
const HEADER = 61;

/**
 * Encode `messages` as one v2 record batch (base offset 0, one timestamp for all).
 *
 * @param messages the records, in order.
 * @param options idempotence fields and compression.
 * @returns the batch's bytes, ready for a produce request.
 */
export function encodeRecordBatch(
  messages: RecordInput[],
  options: RecordBatchOptions,
): Uint8Array {
  const n = messages.length;
  const keys = new Map<unknown, Uint8Array>();
  const blocks = new Map<object | undefined, Uint8Array>();
  const bodySizes = new Int32Array(n);
  // Each value as values[i][starts[i], starts[i] + lengths[i]) (length -1: null).
  const values: Uint8Array[] = new Array(n);
  const starts = new Int32Array(n);
  const lengths = new Int32Array(n);
  const keyOf: (Uint8Array | null)[] = new Array(n);
  const blockOf: Uint8Array[] = new Array(n);
  let total = 0;
  let lastKey: unknown = Symbol();
  let lastKeyBytes: Uint8Array | null = null;
  let lastHeaders: object | undefined | null = null;
  let lastBlock: Uint8Array = new Uint8Array([0]);
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    if (m.key !== lastKey) {
      lastKey = m.key;
      if (m.key === undefined) lastKeyBytes = null;
      else {
        lastKeyBytes = keys.get(m.key) ?? null;
        if (!lastKeyBytes) keys.set(m.key, lastKeyBytes = bytesOf(m.key));
      }
    }
    if (m.headers !== lastHeaders) {
      lastHeaders = m.headers;
      let b = blocks.get(m.headers);
      if (!b) blocks.set(m.headers, b = headersBlock(m.headers));
      lastBlock = b;
    }
    let length: number;
    if (m.source !== undefined) {
      values[i] = m.source;
      starts[i] = m.start!;
      length = m.end! - m.start!;
    } else {
      const value = m.value === null
        ? null
        : typeof m.value === "string"
        ? enc.encode(m.value)
        : m.value;
      if (value) values[i] = value;
      length = value ? value.length : -1;
    }
    lengths[i] = length;
    keyOf[i] = lastKeyBytes;
    blockOf[i] = lastBlock;
    const k = lastKeyBytes ? varintSize(lastKeyBytes.length) + lastKeyBytes.length : 1;
    const v = length >= 0 ? varintSize(length) + length : 1;
    // attributes, timestamp delta 0, offset delta, key, value, headers
    const body = 1 + 1 + varintSize(i) + k + v + lastBlock.length;
    bodySizes[i] = body;
    total += varintSize(body) + body;
  }
  const buf = options.alloc
    ? options.alloc(HEADER + total).subarray(0, HEADER + total)
    : new Uint8Array(HEADER + total);
  let at = HEADER;
  for (let i = 0; i < n; i++) {
    at = writeVarint(buf, at, bodySizes[i]!);
    buf[at++] = 0; // attributes
    buf[at++] = 0; // timestamp delta
    at = writeVarint(buf, at, i);
    const key = keyOf[i];
    if (key) {
      at = writeVarint(buf, at, key.length);
      buf.set(key, at);
      at += key.length;
    } else buf[at++] = 1; // -1
    const length = lengths[i]!;
    if (length >= 0) {
      at = writeVarint(buf, at, length);
      const start = starts[i]!;
      const from = values[i]!;
      buf.set(
        start === 0 && length === from.length ? from : from.subarray(start, start + length),
        at,
      );
      at += length;
    } else buf[at++] = 1;
    const block = blockOf[i]!;
    buf.set(block, at);
    at += block.length;
  }
  let out = buf;
  let attributes = 0;
  if (options.compression === "gzip") {
    const packed = zlib.gzipSync(buf.subarray(HEADER));
    out = new Uint8Array(HEADER + packed.length);
    out.set(packed, HEADER);
    attributes = 1;
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const ts = BigInt(options.timestamp ?? Date.now());
  view.setBigInt64(0, 0n); // base offset
  view.setInt32(8, out.length - 12); // batch length
  view.setInt32(12, -1); // partition leader epoch
  view.setInt8(16, 2); // magic
  view.setInt16(21, attributes);
  view.setInt32(23, n - 1); // last offset delta
  view.setBigInt64(27, ts); // base timestamp
  view.setBigInt64(35, ts); // max timestamp
  view.setBigInt64(43, options.producerId);
  view.setInt16(51, options.producerEpoch);
  view.setInt32(53, options.baseSequence);
  view.setInt32(57, n);
  view.setUint32(17, crc32c(out.subarray(21)));
  return out;
}

/**
 * A copy of an encoded batch with another producer id, epoch and base sequence (the CRC
 * recomputed): a batch re-sent after the broker lost track of the producer.
 *
 * @param batch the encoded batch.
 * @param ids the new idempotence fields.
 * @returns the restamped copy.
 */
export function restampRecordBatch(
  batch: Uint8Array,
  ids: Pick<RecordBatchOptions, "producerId" | "producerEpoch" | "baseSequence">,
): Uint8Array {
  const out = batch.slice();
  const view = new DataView(out.buffer);
  view.setBigInt64(43, ids.producerId);
  view.setInt16(51, ids.producerEpoch);
  view.setInt32(53, ids.baseSequence);
  view.setUint32(17, crc32c(out.subarray(21)));
  return out;
}
