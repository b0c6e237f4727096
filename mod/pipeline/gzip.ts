/**
 * Decoding a unit's bytes: gzip detected by its magic bytes `1f 8b` (whatever the name says),
 * plain text passed through, multi-member gzip (appenders write one member per append) decoded
 * completely, member by member, with each member's CRC32 and length checked.
 *
 * `consumed` is the number of input bytes up to the end of the last complete member: the
 * offset a resumable source (Azure append blobs) continues from. A truncated or corrupt member
 * errors the stream with a {@link DecodeError} naming its byte offset, unless `resync` is set:
 * then the corrupt member's output is dropped, the decoder scans on for the next valid gzip
 * header (from the byte after the bad member's start), decodes the members it finds there, and
 * reports what it passed over in `faults` and `skipped`. The lines before the fault are
 * delivered once, the members after it too; only the bad member's bytes are lost.
 *
 * Two implementations sit behind {@link decodeStream}: `zlib` (node:zlib, the default) and
 * `web` (DecompressionStream). In Deno 2.9.6 DecompressionStream("gzip") fails on a second
 * member ("failed to write whole buffer") and decodes several times slower (see README's
 * benchmark table), so `web` is kept only for comparison and single-member input.
 *
 * @example
 * ```ts
 * const decoder = decodeStream();
 * const text = await new Response(file.readable.pipeThrough(decoder)).text();
 * console.log(decoder.consumed, decoder.members);
 * ```
 * @module
 */

import zlib from "node:zlib";

/**
 * Why input could not be decoded: `corrupt_gzip` (bad deflate data, CRC32 or length mismatch,
 * bytes where a member header should be), `truncated_gzip` (input ended inside a member),
 * `not_gzip` (plain input where only gzip is allowed).
 */
export type DecodeReason = "corrupt_gzip" | "truncated_gzip" | "not_gzip";

/**
 * A truncated or corrupt gzip member. `offset` is where the failing member starts. Never worth
 * retrying: the same bytes fail the same way (`retryable` is false).
 */
export class DecodeError extends Error {
  readonly offset: number;
  readonly reason: DecodeReason;
  readonly retryable = false;
  constructor(
    message: string,
    offset: number,
    options: ErrorOptions & { reason?: DecodeReason } = {},
  ) {
    super(message, options);
    this.name = "DecodeError";
    this.offset = offset;
    this.reason = options.reason ?? "corrupt_gzip";
  }
}

/** A stretch of input a resyncing decoder passed over (see {@link DecodeOptions.resync}). */
export interface DecodeFault {
  /** Input offset of the first bad byte (the start of the member that failed). */
  readonly offset: number;
  readonly reason: DecodeReason;
  /** What was wrong, naming the offset. */
  readonly message: string;
  /** Input bytes passed over, up to the next good member (or the end of the input). */
  skipped: number;
}

/** A decoding TransformStream that reports how far it got. */
export interface Decoder extends TransformStream<Uint8Array, Uint8Array> {
  /** Input bytes up to the end of the last complete gzip member (plain input: all bytes). */
  readonly consumed: number;
  /** Complete gzip members decoded (0 for plain input). */
  readonly members: number;
  /** Whether the input was gzip (known after the first two bytes). */
  readonly gzip: boolean | undefined;
  /** Input bytes passed over by `resync` (0 without it). */
  readonly skipped: number;
  /** The corrupt stretches `resync` passed over, in input order (empty without it). */
  readonly faults: readonly DecodeFault[];
  /**
   * Input offset of the gzip member that decoded `chunk` (one of this decoder's output chunks;
   * a chunk never spans two members); for plain input, the input offset of the chunk. A
   * resumable source re-reading from there gets the chunk's bytes again.
   */
  memberOffset(chunk: Uint8Array): number;
  /**
   * The consumer is done with `chunk` (one of this decoder's output chunks), so its bytes may be
   * reused for later output. Optional: output never released is left to the GC.
   */
  release(chunk: Uint8Array): void;
}

/** Options for {@link decodeStream}. */
export interface DecodeOptions {
  /**
   * An input that ends inside a member is not an error: the stream ends after the last complete
   * member (whose end is `consumed`) and the partial member's held output is dropped. For
   * sources that are still being appended to (Azure append blobs). @default false
   */
  allowTruncatedTail?: boolean;
  /**
   * A member's output is held back until its CRC32 and length check out, up to this many bytes
   * (past that it streams): a corrupt or truncated small member (an append) delivers nothing.
   * @default 4194304
   */
  holdMemberBytes?: number;
  /** Where the zlib decoder's output buffers come from (and return to on release). */
  pool?: BufferPool;
  /**
   * Called with each input chunk once the decoder is done with it, so its buffer can be read
   * into again (see {@link readPooled}): gzip input right after it was inflated, plain input
   * (passed on as output) when that output chunk is released.
   */
  recycleInput?: (chunk: Uint8Array) => void;
  /** `zlib`: node:zlib, multi-member, fast. `web`: DecompressionStream, one member only. @default "zlib" */
  impl?: "zlib" | "web";
  /**
   * A corrupt or truncated member does not fail the stream: its output is dropped, the decoder
   * scans for the next valid gzip header and goes on; see {@link Decoder.faults}. `zlib` only.
   * @default false
   */
  resync?: boolean;
  /**
   * Input that does not start with the gzip magic: `allow` passes it through as text, `reject`
   * fails with a {@link DecodeError} (reason `not_gzip`), for sources documented as all-gzip.
   * @default "allow"
   */
  plain?: "allow" | "reject";
  /**
   * How many input bytes of a member `resync` keeps to look for a header inside it once the
   * member fails (a truncated member followed by a good one). Past this, the scan starts where
   * the failure was seen. @default 1048576
   */
  resyncWindow?: number;
}

/**
 * A TransformStream that turns a unit's raw bytes into decoded bytes.
 *
 * @param options which implementation.
 * @returns the decoder; read `consumed`/`members` after (or while) it runs.
 */
export function decodeStream(options: DecodeOptions = {}): Decoder {
  const { impl = "zlib", holdMemberBytes = 4 << 20, allowTruncatedTail = false, pool } = options;
  return impl === "web"
    ? new WebGunzipStream()
    : new GunzipStream(holdMemberBytes, allowTruncatedTail, pool, options.recycleInput, {
      resync: options.resync ?? false,
      plain: options.plain ?? "allow",
      resyncWindow: options.resyncWindow ?? 1 << 20,
    });
}

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

const FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16;

/** Length of the gzip header at the start of `b`, 0 if incomplete, -1 if not a gzip header. */
function headerLength(b: Uint8Array): number {
  if (b.length < 10) return 0;
  if (b[0] !== 0x1f || b[1] !== 0x8b || b[2] !== 8) return -1;
  const flags = b[3]!;
  let p = 10;
  if (flags & FEXTRA) {
    if (b.length < p + 2) return 0;
    p += 2 + (b[p]! | (b[p + 1]! << 8));
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (flags & flag) {
      const end = b.indexOf(0, p);
      if (end < 0) return 0;
      p = end + 1;
    }
  }
  if (flags & FHCRC) p += 2;
  return b.length >= p ? p : 0;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

type State = "detect" | "plain" | "header" | "body" | "trailer" | "scan";

/** Output buffer size: inflating into 256 KiB at a time measured fastest end to end. */
const OUT_BYTES = 256 * 1024;

/**
 * Reusable decoder output buffers, shared by the decoders of one pipeline. A consumer that is
 * done with a chunk calls {@link Decoder.release}; once every chunk cut from a buffer is released,
 * the buffer comes back here and the next decoder fills it again instead of allocating. Output
 * that is never released is simply garbage, as any other allocation.
 */
export class BufferPool {
  readonly #free: Uint8Array[] = [];
  readonly #keep: number;
  readonly size: number;

  /**
   * @param size bytes per buffer.
   * @param keep free buffers kept at most (past that, a given-back buffer is left to the GC).
   */
  constructor(size = OUT_BYTES, keep = 32) {
    this.size = size;
    this.#keep = keep;
  }

  /** A buffer of {@link size} bytes: a given-back one when there is one. */
  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  /** Give a whole buffer back (its contents will be overwritten). */
  give(buf: Uint8Array): void {
    if (this.#free.length < this.#keep && buf.byteLength === this.size) this.#free.push(buf);
  }

  /** Free buffers held. */
  get free(): number {
    return this.#free.length;
  }
}

/**
 * `body` read into buffers taken from `pool` (a BYOB reader), for a decoder that gives each one
 * back through `recycleInput` once it is done with it: reading a download then allocates nothing
 * per chunk (a byte stream's default reads allocate 64 KiB each). A body that is not a byte
 * stream is returned as it is.
 */
export function readPooled(
  body: ReadableStream<Uint8Array>,
  pool: BufferPool,
): ReadableStream<Uint8Array> {
  let reader: ReadableStreamBYOBReader;
  try {
    reader = body.getReader({ mode: "byob" });
  } catch {
    return body; // not a byte stream
  }
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const { value, done } = await reader.read(pool.take());
      if (done) c.close();
      else if (value.length > 0) c.enqueue(value);
      else pool.give(new Uint8Array(value.buffer));
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * node:zlib's native inflate handle, driven synchronously: `writeSync(flush, in, inOff, inLen,
 * out, outOff, outLen)` inflates into the caller's buffer and leaves `[availOut, availIn]` in
 * the stream's `_writeState`; errors arrive through `onerror` during the call. This is the
 * interface node:zlib's own streams use (Node and Deno 2.9.6 alike); going to it directly lets
 * the decoder choose its output buffers (reused: no garbage per decoded byte) and spares an
 * async round trip per chunk.
 */
interface InflateHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  reset(): void;
  close(): void;
  onerror: (message: string, errno: number) => void;
}

function inflateHandle(): { handle: InflateHandle; state: Uint32Array; close(): void } {
  const inf = zlib.createInflateRaw() as unknown as {
    _handle?: InflateHandle;
    _writeState?: Uint32Array;
    close(): void;
  };
  if (typeof inf._handle?.writeSync !== "function" || !(inf._writeState instanceof Uint32Array)) {
    throw new Error("node:zlib has no synchronous inflate handle in this runtime");
  }
  return { handle: inf._handle, state: inf._writeState, close: () => inf.close() };
}

/** Multi-member gzip (or plain) decoding on node:zlib's raw inflate, member by member. */
export class GunzipStream extends TransformStream<Uint8Array, Uint8Array> implements Decoder {
  #state: State = "detect";
  #pending: Uint8Array = new Uint8Array(0);
  /** Absolute input offset of the first byte of `#pending` / the next chunk. */
  #offset = 0;
  #memberStart = 0;
  #consumed = 0;
  #members = 0;
  #gzip: boolean | undefined;
  #zlib: ReturnType<typeof inflateHandle> | undefined;
  #zerror: string | undefined;
  #crc = 0;
  #size = 0;
  #ctrl!: TransformStreamDefaultController<Uint8Array>;
  readonly #holdLimit: number;
  /** The current member's output while it is held back (null once it streams). */
  #held: Uint8Array[] | null = [];
  #heldBytes = 0;
  /** Output chunk → input offset of its member. */
  readonly #origin = new WeakMap<Uint8Array, number>();
  readonly #allowTruncatedTail: boolean;
  readonly #pool: BufferPool;
  /** The buffer being filled, where its unemitted output starts, and how far it is filled. */
  #out: Uint8Array | undefined;
  #outStart = 0;
  #outEnd = 0;
  /** Chunks emitted and not yet released, per buffer. */
  readonly #refs = new Map<ArrayBufferLike, number>();
  readonly #recycleInput: ((chunk: Uint8Array) => void) | undefined;
  /** Plain input chunks passed on as output: recycled when released. */
  readonly #passed = new WeakSet<Uint8Array>();

  readonly #resync: boolean;
  readonly #plain: "allow" | "reject";
  readonly #resyncWindow: number;
  readonly #faults: DecodeFault[] = [];
  #skipped = 0;
  /** Where the current run of bad bytes began (undefined while members decode fine). */
  #skipFrom: number | undefined;
  /** The current member's input from its first byte, kept for `resync` (up to the window). */
  #raw: Uint8Array[] = [];
  #rawBytes = 0;
  #rawWhole = true;

  constructor(
    holdMemberBytes = 4 << 20,
    allowTruncatedTail = false,
    pool?: BufferPool,
    recycleInput?: (chunk: Uint8Array) => void,
    { resync = false, plain = "allow", resyncWindow = 1 << 20 }: {
      resync?: boolean;
      plain?: "allow" | "reject";
      resyncWindow?: number;
    } = {},
  ) {
    let ctrl: TransformStreamDefaultController<Uint8Array> | undefined;
    super({
      start: (c) => {
        ctrl = c;
      },
      transform: (chunk) => {
        this.#push(chunk);
        // Everything of it was inflated or copied (a partial header or trailer is kept as a copy).
        if (!this.#passed.has(chunk)) this.#recycleInput?.(chunk);
      },
      flush: () => this.#finish(),
    });
    this.#ctrl = ctrl!;
    this.#holdLimit = holdMemberBytes;
    this.#allowTruncatedTail = allowTruncatedTail;
    this.#pool = pool ?? defaultPool;
    this.#recycleInput = recycleInput;
    this.#resync = resync;
    this.#plain = plain;
    this.#resyncWindow = resyncWindow;
  }

  get skipped(): number {
    return this.#skipped;
  }
  get faults(): readonly DecodeFault[] {
    return this.#faults;
  }
  get consumed(): number {
    return this.#consumed;
  }
  get members(): number {
    return this.#members;
  }
  get gzip(): boolean | undefined {
    return this.#gzip;
  }
  memberOffset(chunk: Uint8Array): number {
    return this.#origin.get(chunk) ?? 0;
  }

  release(chunk: Uint8Array): void {
    if (this.#passed.has(chunk)) {
      this.#passed.delete(chunk);
      this.#recycleInput?.(chunk);
      return;
    }
    const buf = chunk.buffer;
    const n = this.#refs.get(buf);
    if (n === undefined) return;
    if (n > 1) {
      this.#refs.set(buf, n - 1);
      return;
    }
    this.#refs.delete(buf);
    if (buf !== this.#out?.buffer) this.#pool.give(new Uint8Array(buf));
  }

  #releaseHeld(): void {
    if (this.#held) { for (const d of this.#held) this.#ctrl.enqueue(d); }
    this.#held = null;
    this.#heldBytes = 0;
  }

  /** Hand on the output written since the last emit (one member's bytes). */
  #emit(): void {
    const out = this.#out!;
    if (this.#outEnd === this.#outStart) return;
    const d = out.subarray(this.#outStart, this.#outEnd);
    this.#outStart = this.#outEnd;
    this.#refs.set(out.buffer, (this.#refs.get(out.buffer) ?? 0) + 1);
    this.#origin.set(d, this.#memberStart);
    this.#crc = zlib.crc32(d, this.#crc);
    this.#size += d.length;
    if (this.#held) {
      this.#held.push(d);
      this.#heldBytes += d.length;
      if (this.#heldBytes > this.#holdLimit) this.#releaseHeld();
    } else this.#ctrl.enqueue(d);
  }

  /** The output buffer is full: emit, and take another (the full one returns once released). */
  #nextBuffer(): void {
    this.#emit();
    const old = this.#out;
    if (old && !this.#refs.has(old.buffer)) this.#pool.give(old);
    this.#out = this.#pool.take();
    this.#outStart = this.#outEnd = 0;
  }

  #push(chunk: Uint8Array): void {
    this.#run(this.#pending.length ? concat(this.#pending, chunk) : chunk, chunk);
  }

  /** Keep a copy of the current member's input (resync looks for a header inside it). */
  #keep(bytes: Uint8Array): void {
    if (!this.#resync || !this.#rawWhole || bytes.length === 0) return;
    if (this.#rawBytes + bytes.length > this.#resyncWindow) {
      this.#rawWhole = false;
      this.#raw = [];
      this.#rawBytes = 0;
      return;
    }
    this.#raw.push(bytes.slice());
    this.#rawBytes += bytes.length;
  }

  /**
   * The member that began at `#memberStart` is bad. Without resync: throw. With it: drop the
   * member's output, note the fault, and return the bytes to scan for the next header: from the
   * byte after the member's start when its input was kept whole, else from `rest` (the input
   * not yet consumed, which begins at `#offset`).
   */
  #fault(reason: DecodeReason, message: string, rest: Uint8Array): Uint8Array {
    if (!this.#resync) throw new DecodeError(message, this.#memberStart, { reason });
    if (this.#held) { for (const d of this.#held) this.release(d); }
    this.#held = [];
    this.#heldBytes = 0;
    this.#outEnd = this.#outStart;
    this.#zlib?.close();
    this.#zlib = undefined;
    this.#zerror = undefined;
    if (this.#skipFrom === undefined) {
      this.#skipFrom = this.#memberStart;
      this.#faults.push({ offset: this.#memberStart, reason, message, skipped: 0 });
    }
    let scan = rest;
    if (this.#rawWhole && this.#offset - this.#memberStart === this.#rawBytes) {
      let whole = rest;
      for (let i = this.#raw.length - 1; i >= 0; i--) whole = concat(this.#raw[i]!, whole);
      if (whole.length > 0) {
        scan = whole.subarray(1);
        this.#offset = this.#memberStart + 1;
      }
    }
    this.#raw = [];
    this.#rawBytes = 0;
    this.#rawWhole = true;
    this.#state = "scan";
    return scan;
  }

  /** A member checked out: a run of bad bytes before it ends here. */
  #memberOk(start: number): void {
    this.#raw = [];
    this.#rawBytes = 0;
    this.#rawWhole = true;
    if (this.#skipFrom === undefined) return;
    const n = start - this.#skipFrom;
    this.#faults[this.#faults.length - 1]!.skipped = n;
    this.#skipped += n;
    this.#skipFrom = undefined;
  }

  #run(buf: Uint8Array, chunk: Uint8Array | undefined): void {
    this.#pending = new Uint8Array(0);
    while (buf.length > 0) {
      switch (this.#state) {
        case "scan": {
          // The next "1f 8b 08" with no reserved flag bits: maybe a member header.
          let i = buf.indexOf(0x1f);
          for (; i >= 0; i = buf.indexOf(0x1f, i + 1)) {
            if (i + 3 >= buf.length) break;
            if (buf[i + 1] === 0x8b && buf[i + 2] === 8 && (buf[i + 3]! & 0xe0) === 0) break;
          }
          if (i < 0) {
            this.#offset += buf.length;
            return;
          }
          this.#offset += i;
          buf = buf.subarray(i);
          if (buf.length < 4) {
            this.#pending = buf.slice();
            return;
          }
          this.#memberStart = this.#offset;
          this.#state = "header";
          break;
        }
        case "detect":
        case "header": {
          if (buf.length < 2 || (buf.length < 10 && buf[0] === 0x1f && buf[1] === 0x8b)) {
            this.#pending = buf.slice();
            return;
          }
          if (this.#state === "detect") {
            this.#gzip = buf[0] === 0x1f && buf[1] === 0x8b;
            if (!this.#gzip) {
              if (this.#plain === "reject") {
                throw new DecodeError(
                  `not gzip: starts with ${
                    hex(buf.subarray(0, 2))
                  } at byte 0, not 1f 8b (plain: allow reads such input as text)`,
                  0,
                  { reason: "not_gzip" },
                );
              }
              this.#state = "plain";
              continue;
            }
          }
          const n = headerLength(buf);
          if (n < 0) {
            buf = this.#fault(
              "corrupt_gzip",
              `not a gzip member at byte ${this.#offset}: expected 1f 8b 08, got ${
                hex(buf.subarray(0, 3))
              } (trailing garbage after member ${this.#members}?)`,
              buf,
            );
            continue;
          }
          if (n === 0) {
            this.#pending = buf.slice();
            return;
          }
          this.#memberStart = this.#offset;
          this.#keep(buf.subarray(0, n));
          this.#offset += n;
          buf = buf.subarray(n);
          this.#startMember();
          this.#state = "body";
          break;
        }
        case "plain":
          this.#origin.set(buf, this.#offset);
          if (buf === chunk) this.#passed.add(buf);
          this.#ctrl.enqueue(buf);
          this.#offset += buf.length;
          this.#consumed = this.#offset;
          return;
        case "body": {
          const used = this.#inflate(buf);
          if (used < 0) {
            buf = this.#fault(
              "corrupt_gzip",
              `corrupt gzip member at byte ${this.#memberStart}: ${this.#zerror}`,
              buf,
            );
            continue;
          }
          this.#keep(buf.subarray(0, used));
          this.#offset += used;
          if (used === buf.length && this.#state === "body") return;
          buf = buf.subarray(used);
          break;
        }
        case "trailer": {
          if (buf.length < 8) {
            this.#pending = buf.slice();
            return;
          }
          const dv = new DataView(buf.buffer, buf.byteOffset, 8);
          const crc = dv.getUint32(0, true);
          const isize = dv.getUint32(4, true);
          if (crc !== this.#crc >>> 0 || isize !== this.#size % 2 ** 32) {
            buf = this.#fault(
              "corrupt_gzip",
              `corrupt gzip member at byte ${this.#memberStart}: ${
                crc !== this.#crc >>> 0 ? "CRC32 mismatch" : "length mismatch"
              }`,
              buf,
            );
            continue;
          }
          this.#offset += 8;
          buf = buf.subarray(8);
          this.#releaseHeld();
          this.#members++;
          this.#memberOk(this.#memberStart);
          this.#consumed = this.#offset;
          this.#memberStart = this.#offset;
          this.#state = "header";
          break;
        }
      }
    }
  }

  #startMember(): void {
    this.#crc = 0;
    this.#size = 0;
    this.#held = [];
    this.#heldBytes = 0;
    if (this.#zlib) this.#zlib.handle.reset();
    else {
      this.#zlib = inflateHandle();
      this.#zlib.handle.onerror = (message) => this.#zerror = message;
    }
    this.#out ??= this.#pool.take();
  }

  /**
   * Inflate as much of `input` as belongs to the current member's deflate data.
   *
   * @returns input bytes consumed; when fewer than given, the deflate data ended (state moves to
   *   the trailer); -1 when zlib found the data corrupt (`#zerror` says why).
   */
  #inflate(input: Uint8Array): number {
    const { handle, state } = this.#zlib!;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      const out = this.#out!;
      const room = out.length - this.#outEnd;
      handle.writeSync(0, input, inOff, inLen, out, this.#outEnd, room);
      if (this.#zerror !== undefined) return -1;
      const availOut = state[0]!, availIn = state[1]!;
      this.#outEnd += room - availOut;
      inOff += inLen - availIn;
      inLen = availIn;
      if (availOut === 0) {
        this.#nextBuffer();
        continue;
      }
      this.#emit();
      // Output room left and input left over: the deflate data ended before the input did.
      if (availIn > 0) this.#state = "trailer";
      return inOff;
    }
  }

  #finish(): void {
    while (this.#resync && !this.#allowTruncatedTail && this.#truncatedAtEnd()) {
      // Input ended inside a member: look for a member inside its kept bytes, else skip to the end.
      const rest = this.#pending;
      this.#pending = new Uint8Array(0);
      this.#run(this.#fault("truncated_gzip", this.#truncatedMessage(), rest), undefined);
    }
    this.#zlib?.close();
    // Done writing: the last buffer goes back once its chunks are released (now, if they were).
    const last = this.#out;
    this.#out = undefined;
    if (last && !this.#refs.has(last.buffer)) this.#pool.give(last);
    if (this.#state === "scan") {
      // Bad bytes up to the end: a fault run that no good member ended.
      const end = this.#offset + this.#pending.length;
      this.#faults[this.#faults.length - 1]!.skipped = end - this.#skipFrom!;
      this.#skipped += end - this.#skipFrom!;
      this.#skipFrom = undefined;
      return;
    }
    if (this.#state === "plain" || (this.#state === "header" && this.#pending.length === 0)) {
      return;
    }
    if (this.#state === "detect") {
      // Fewer than two bytes in all.
      if (this.#pending.length && this.#plain === "reject") {
        throw new DecodeError(`not gzip: ${this.#pending.length} byte(s) in all`, 0, {
          reason: "not_gzip",
        });
      }
      if (this.#pending.length) this.#ctrl.enqueue(this.#pending);
      this.#consumed = this.#offset + this.#pending.length;
      this.#gzip = false;
      return;
    }
    if (this.#allowTruncatedTail) {
      // The member is still being written: its held output waits for the next pass.
      this.#held = null;
      this.#heldBytes = 0;
      return;
    }
    throw new DecodeError(this.#truncatedMessage(), this.#memberStart, {
      reason: "truncated_gzip",
    });
  }

  /** The input ended inside a member (or inside its header). */
  #truncatedAtEnd(): boolean {
    return this.#state === "body" || this.#state === "trailer" ||
      (this.#state === "header" && this.#pending.length > 0);
  }

  #truncatedMessage(): string {
    return `truncated gzip member at byte ${this.#memberStart}: input ended ${
      this.#state === "header"
        ? "in its header"
        : this.#state === "body"
        ? "in its data"
        : "in its trailer"
    } (complete members end at byte ${this.#consumed})`;
  }
}

/** The pool decoders use unless given one. */
const defaultPool = new BufferPool();

/**
 * DecompressionStream("gzip") with the same magic-byte detection. One member only in Deno
 * 2.9.6; kept for the benchmark and as a documented alternative.
 */
export class WebGunzipStream extends TransformStream<Uint8Array, Uint8Array> implements Decoder {
  #consumed = 0;
  #members = 0;
  #gzip: boolean | undefined;

  constructor() {
    let writer: WritableStreamDefaultWriter<BufferSource> | undefined;
    let pump: Promise<void> | undefined;
    let head: Uint8Array = new Uint8Array(0);
    let seen = 0;
    const start = (c: TransformStreamDefaultController<Uint8Array>, first: Uint8Array) => {
      this.#gzip = first[0] === 0x1f && first[1] === 0x8b;
      if (!this.#gzip) return;
      const ds = new DecompressionStream("gzip");
      writer = ds.writable.getWriter();
      pump = ds.readable.pipeTo(new WritableStream({ write: (d) => c.enqueue(d) }));
      pump.catch(() => {}); // surfaced by write/close below
    };
    super({
      transform: async (chunk, c) => {
        seen += chunk.length;
        if (this.#gzip === undefined) {
          head = concat(head, chunk);
          if (head.length < 2) return;
          start(c, head);
          chunk = head;
        }
        if (!this.#gzip) {
          c.enqueue(chunk);
          this.#consumed = seen;
          return;
        }
        try {
          await writer!.write(chunk as Uint8Array<ArrayBuffer>);
        } catch (e) {
          throw new DecodeError(`gzip decode failed: ${(e as Error).message}`, 0, { cause: e });
        }
      },
      flush: async (c) => {
        if (this.#gzip === undefined) {
          if (head.length) c.enqueue(head);
          this.#gzip = false;
          this.#consumed = seen;
          return;
        }
        if (!this.#gzip) return;
        try {
          await writer!.close();
          await pump;
        } catch (e) {
          throw new DecodeError(`gzip decode failed: ${(e as Error).message}`, 0, { cause: e });
        }
        this.#members = 1;
        this.#consumed = seen;
      },
    });
  }

  get consumed(): number {
    return this.#consumed;
  }
  get members(): number {
    return this.#members;
  }
  get gzip(): boolean | undefined {
    return this.#gzip;
  }
  /** No resync: always 0. */
  get skipped(): number {
    return 0;
  }
  /** No resync: always empty. */
  get faults(): readonly DecodeFault[] {
    return [];
  }
  /** One member only: always 0. */
  memberOffset(_chunk: Uint8Array): number {
    return 0;
  }
  /** Nothing to reuse: DecompressionStream allocates its own output. */
  release(_chunk: Uint8Array): void {}
}
