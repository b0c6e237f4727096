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
  { impl = "zlib", holdMemberBytes = 4 << 20, allowTruncatedTail = false }: DecodeOptions = {},
): Decoder {
  return impl === "web"
    ? new WebGunzipStream()
    : new GunzipStream(holdMemberBytes, allowTruncatedTail);
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
  #inflater: zlib.InflateRaw | undefined;
  #fed = 0;
  #ended = false;
  #error: Error | undefined;
  #crc = 0;
  #size = 0;
  #ctrl!: TransformStreamDefaultController<Uint8Array>;
  #onEnd: (() => void) | undefined;
  readonly #holdLimit: number;
  /** The current member's output while it is held back (null once it streams). */
  #held: Uint8Array[] | null = [];
  /** Output chunk → input offset of its member. */
  readonly #origin = new WeakMap<Uint8Array, number>();
  #heldBytes = 0;

  readonly #allowTruncatedTail: boolean;

  constructor(holdMemberBytes = 4 << 20, allowTruncatedTail = false) {
    let ctrl: TransformStreamDefaultController<Uint8Array> | undefined;
    super({
      start: (c) => {
        ctrl = c;
      },
      transform: (chunk) => this.#push(chunk),
      flush: () => this.#finish(),
    });
    this.#ctrl = ctrl!;
    this.#holdLimit = holdMemberBytes;
    this.#allowTruncatedTail = allowTruncatedTail;
  }

  #release(): void {
    if (this.#held) { for (const d of this.#held) this.#ctrl.enqueue(d); }
    this.#held = null;
    this.#heldBytes = 0;
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

  async #push(chunk: Uint8Array): Promise<void> {
    let buf = this.#pending.length ? concat(this.#pending, chunk) : chunk;
    this.#pending = new Uint8Array(0);
    while (buf.length > 0) {
      switch (this.#state) {
        case "detect":
        case "header": {
          if (buf.length < 2 || (buf.length < 10 && buf[0] === 0x1f && buf[1] === 0x8b)) {
            this.#pending = buf;
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
            this.#pending = buf;
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
          this.#ctrl.enqueue(buf);
          this.#offset += buf.length;
          this.#consumed = this.#offset;
          return;
        case "body": {
          const before = this.#fed;
          this.#fed += buf.length;
          await this.#write(buf);
          if (!this.#ended) {
            this.#offset += buf.length;
            return;
          }
          // The member's deflate data ended inside this chunk: the rest is trailer and more.
          const used = this.#inflater!.bytesWritten - before;
          this.#offset += used;
          buf = buf.subarray(used);
          this.#state = "trailer";
          break;
        }
        case "trailer": {
          if (buf.length < 8) {
            this.#pending = buf;
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
          this.#release();
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
    this.#fed = 0;
    this.#ended = false;
    this.#error = undefined;
    this.#held = [];
    this.#heldBytes = 0;
    const inf = zlib.createInflateRaw({ chunkSize: 256 * 1024 });
    const memberStart = this.#memberStart;
    inf.on("data", (buf: Uint8Array) => {
      // A plain Uint8Array view: Buffer's indexOf/subarray are much slower downstream.
      const d = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
      this.#origin.set(d, memberStart);
      this.#crc = zlib.crc32(d, this.#crc);
      this.#size += d.length;
      if (this.#held) {
        this.#held.push(d);
        this.#heldBytes += d.length;
        if (this.#heldBytes > this.#holdLimit) this.#release();
      } else this.#ctrl.enqueue(d);
    });
    inf.on("end", () => {
      this.#ended = true;
      this.#onEnd?.();
    });
    inf.on("error", (e: Error) => {
      this.#error = e;
      this.#onEnd?.();
    });
    this.#inflater = inf;
  }

  async #write(buf: Uint8Array): Promise<void> {
    const inf = this.#inflater!;
    await new Promise<void>((resolve) => inf.write(buf, () => resolve()));
    // The engine stopped short of the input: the deflate stream ended; wait for its "end".
    if (!this.#ended && !this.#error && inf.bytesWritten < this.#fed) {
      await new Promise<void>((resolve) => {
        this.#onEnd = resolve;
        if (this.#ended || this.#error) resolve();
      });
      this.#onEnd = undefined;
    }
    if (this.#error) {
      throw new DecodeError(
        `corrupt gzip member at byte ${this.#memberStart}: ${this.#error.message}`,
        this.#memberStart,
        { cause: this.#error },
      );
    }
  }

  #finish(): void {
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
    this.#inflater?.destroy();
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
}
