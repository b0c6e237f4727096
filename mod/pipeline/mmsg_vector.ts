/**
 * A preallocated vector of `struct mmsghdr` for sendmmsg(2)/recvmmsg(2): `capacity` slots of
 * `slotSize` bytes in one buffer, each slot with its own iovec. Built once; sending or receiving
 * a batch then allocates nothing.
 *
 * A vector may be laid over another's bytes (`data`): e.g. for UDP GSO (`UDP_SEGMENT`), one
 * header per run of equal-size messages, each header's one iovec spanning `slotSize` =
 * segments × message size of the same buffer a per-message vector writes into.
 *
 * Layout (Linux LP64): `iovec` = { base u64, len u64 } (16 bytes); `msghdr` = { name u64,
 * namelen u32, pad, iov u64, iovlen u64, control u64, controllen u64, flags i32, pad } (56 bytes);
 * `mmsghdr` = { msghdr, msg_len u32, pad } (64 bytes).
 * @module
 */

const HDR = 64;
const IOV = 16;

/** Options for {@link MmsgVector}. */
export interface MmsgVectorOptions {
  /** Messages per call. @default 256 */
  capacity?: number;
  /** Bytes reserved per message. @default 2048 */
  slotSize?: number;
  /** The bytes to point into (at least capacity × slotSize; shared, not copied); default: new. */
  data?: Uint8Array;
}

/** Slots, iovecs and headers for one sendmmsg/recvmmsg call. */
export class MmsgVector {
  /** Messages per call. */
  readonly capacity: number;
  /** Bytes reserved per message. */
  readonly slotSize: number;
  /** All message bytes: slot `i` starts at `i * slotSize`. */
  readonly data: Uint8Array;
  /** The mmsghdr array, passed to the syscall. */
  readonly headers: Uint8Array;
  /** `headers` from slot `i` on, for resuming a partly sent batch without allocating. */
  readonly #tails: Uint8Array[];
  readonly #iovs: Uint8Array;
  readonly #iov32: Uint32Array;
  readonly #hdr32: Uint32Array;

  /**
   * @throws {RangeError} when capacity or slotSize is not a positive integer, or `data` is
   * shorter than capacity × slotSize.
   */
  constructor({ capacity = 256, slotSize = 2048, data }: MmsgVectorOptions = {}) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1024) {
      throw new RangeError(`capacity must be an integer in 1..1024: got ${capacity}`);
    }
    if (!Number.isInteger(slotSize) || slotSize < 1 || slotSize > 65536) {
      throw new RangeError(`slotSize must be an integer in 1..65536: got ${slotSize}`);
    }
    this.capacity = capacity;
    this.slotSize = slotSize;
    if (data && data.length < capacity * slotSize) {
      throw new RangeError(
        `data holds ${data.length} bytes, below capacity × slotSize = ${capacity * slotSize}`,
      );
    }
    this.data = data ?? new Uint8Array(capacity * slotSize);
    this.headers = new Uint8Array(capacity * HDR);
    this.#iovs = new Uint8Array(capacity * IOV);
    this.#iov32 = new Uint32Array(this.#iovs.buffer);
    this.#hdr32 = new Uint32Array(this.headers.buffer);
    const dataBase = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.data)));
    const iovBase = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#iovs)));
    const iov = new DataView(this.#iovs.buffer);
    const hdr = new DataView(this.headers.buffer);
    for (let i = 0; i < capacity; i++) {
      iov.setBigUint64(i * IOV, dataBase + BigInt(i * slotSize), true);
      iov.setBigUint64(i * IOV + 8, BigInt(slotSize), true);
      hdr.setBigUint64(i * HDR + 16, iovBase + BigInt(i * IOV), true); // msg_iov
      hdr.setBigUint64(i * HDR + 24, 1n, true); // msg_iovlen
    }
    this.#tails = Array.from({ length: capacity }, (_, i) => this.headers.subarray(i * HDR));
  }

  /** The header array starting at slot `i` (no allocation). */
  from(i: number): Uint8Array {
    return this.#tails[i]!;
  }

  /** Byte offset of slot `i` in {@link data}. */
  offset(i: number): number {
    return i * this.slotSize;
  }

  /** Set the length sent for slot `i`. */
  setLength(i: number, len: number): void {
    this.#iov32[i * 4 + 2] = len;
  }

  /** The length set for slot `i` (its iovec's length). */
  length(i: number): number {
    return this.#iov32[i * 4 + 2]!;
  }

  /** Reset every slot's iovec to the full slot (before recvmmsg). */
  resetLengths(): void {
    for (let i = 0; i < this.capacity; i++) this.#iov32[i * 4 + 2] = this.slotSize;
  }

  /** Bytes the kernel put in slot `i` (after recvmmsg) or sent from it (after sendmmsg). */
  received(i: number): number {
    return this.#hdr32[i * 16 + 14]!;
  }

  /** msg_flags of slot `i` after recvmmsg (e.g. MSG_TRUNC). */
  flags(i: number): number {
    return this.#hdr32[i * 16 + 12]!;
  }
}
