/**
 * Decoding a unit's bytes: gzip detected by its magic bytes `1f 8b` (whatever the name says),
 * plain text passed through, multi-member gzip (appenders write one member per append) decoded
 * completely, member by member, with each member's CRC32 and length checked.
 *
 * `consumed` is the number of input bytes up to the end of the last complete member: the
 * offset a resumable source (Azure append blobs) continues from. A truncated or corrupt member
 * errors the stream with a {@link DecodeError} naming its byte offset.
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

/** A truncated or corrupt gzip member. `offset` is where the failing member starts. */
export class DecodeError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "DecodeError";
    this.offset = offset;
  }
}

/** A decoding TransformStream that reports how far it got. */
export interface Decoder extends TransformStream<Uint8Array, Uint8Array> {
  /** Input bytes up to the end of the last complete gzip member (plain input: all bytes). */
  readonly consumed: number;
  /** Complete gzip members decoded (0 for plain input). */
  readonly members: number;
  /** Whether the input was gzip (known after the first two bytes). */
  readonly gzip: boolean | undefined;
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
}

/**
 * A TransformStream that turns a unit's raw bytes into decoded bytes.
 *
 * @param options which implementation.
 * @returns the decoder; read `consumed`/`members` after (or while) it runs.
 */
export function decodeStream(
  { impl = "zlib", holdMemberBytes = 4 << 20, allowTruncatedTail = false, pool, recycleInput }:
    DecodeOptions = {},
): Decoder {
  return impl === "web"
    ? new WebGunzipStream()
    : new GunzipStream(holdMemberBytes, allowTruncatedTail, pool, recycleInput);
}

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

type State = "detect" | "plain" | "header" | "body" | "trailer";

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

  constructor(
    holdMemberBytes = 4 << 20,
    allowTruncatedTail = false,
    pool?: BufferPool,
    recycleInput?: (chunk: Uint8Array) => void,
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
    let buf = this.#pending.length ? concat(this.#pending, chunk) : chunk;
    this.#pending = new Uint8Array(0);
    while (buf.length > 0) {
      switch (this.#state) {
        case "detect":
        case "header": {
          if (buf.length < 2 || (buf.length < 10 && buf[0] === 0x1f && buf[1] === 0x8b)) {
            this.#pending = buf.slice();
            return;
          }
          if (this.#state === "detect") {
            this.#gzip = buf[0] === 0x1f && buf[1] === 0x8b;
            if (!this.#gzip) {
              this.#state = "plain";
              continue;
            }
          }
          const n = headerLength(buf);
          if (n < 0) {
            throw new DecodeError(
              `not a gzip member at byte ${this.#offset}: expected 1f 8b 08, got ${
                [...buf.subarray(0, 3)].map((x) => x.toString(16).padStart(2, "0")).join(" ")
              } (trailing garbage after member ${this.#members}?)`,
              this.#offset,
            );
          }
          if (n === 0) {
            this.#pending = buf.slice();
            return;
          }
          this.#memberStart = this.#offset;
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
            throw new DecodeError(
              `corrupt gzip member at byte ${this.#memberStart}: ${
                crc !== this.#crc >>> 0 ? "CRC32 mismatch" : "length mismatch"
              }`,
              this.#memberStart,
            );
          }
          this.#offset += 8;
          buf = buf.subarray(8);
          this.#releaseHeld();
          this.#members++;
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
   *   the trailer).
   */
  #inflate(input: Uint8Array): number {
    const { handle, state } = this.#zlib!;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      const out = this.#out!;
      const room = out.length - this.#outEnd;
      handle.writeSync(0, input, inOff, inLen, out, this.#outEnd, room);
      if (this.#zerror !== undefined) {
        throw new DecodeError(
          `corrupt gzip member at byte ${this.#memberStart}: ${this.#zerror}`,
          this.#memberStart,
        );
      }
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
    this.#zlib?.close();
    // Done writing: the last buffer goes back once its chunks are released (now, if they were).
    const last = this.#out;
    this.#out = undefined;
    if (last && !this.#refs.has(last.buffer)) this.#pool.give(last);
    if (this.#state === "plain" || (this.#state === "header" && this.#pending.length === 0)) {
      return;
    }
    if (this.#state === "detect") {
      // Fewer than two bytes in all: plain.
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
    throw new DecodeError(
      `truncated gzip member at byte ${this.#memberStart}: input ended ${
        this.#state === "header"
          ? "in its header"
          : this.#state === "body"
          ? "in its data"
          : "in its trailer"
      } (complete members end at byte ${this.#consumed})`,
      this.#memberStart,
    );
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
  /** One member only: always 0. */
  memberOffset(_chunk: Uint8Array): number {
    return 0;
  }
  /** Nothing to reuse: DecompressionStream allocates its own output. */
  release(_chunk: Uint8Array): void {}
}
