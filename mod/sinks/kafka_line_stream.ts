/**
 * {@link KafkaLineStream}: decoded bytes of a blob range → Kafka messages, one per line, keyed
 * by the blob, with the unit's attributes as headers plus `member_offset`, the blob byte offset
 * of the gzip member the line was decoded from (re-reading from there yields the line again).
 *
 * @example
 * ```ts
 * await runPipeline<KafkaMessage>({
 *   source, sink, metrics, log, signal,
 *   frame: (unit, decoder) => new KafkaLineStream(unit, decoder, { maxLineBytes: 1 << 19 }),
 * });
 * ```
 * @module
 */

import type { Decoder } from "../pipeline/gzip.ts";
import { LineStream } from "../pipeline/line_stream.ts";
import { reportDecoded } from "../sources/azure_append_blob.ts";
import type { Unit } from "../pipeline/types.ts";
import type { HeldInput, KafkaMessage } from "../sources/kafka_client.ts";

/** Options for {@link KafkaLineStream}. */
export interface KafkaLineStreamOptions {
  /** Longer lines are cut here. @default 524288 */
  maxLineBytes?: number;
}

const enc = new TextEncoder();

/**
 * A line as a Kafka message: its value is `source[start, end)`, a span of the decoded chunk
 * (no view object per line until `value` is asked for; the encoder reads the span).
 */
export class LineMessage implements KafkaMessage {
  /**
   * @param source the bytes the line is in.
   * @param start the line's first byte.
   * @param end after its last byte.
   * @param key the message key.
   * @param headers the headers (shared by a member's lines).
   * @param held the chunk to release once the message was delivered.
   */
  constructor(
    readonly source: Uint8Array,
    readonly start: number,
    readonly end: number,
    readonly key: Uint8Array,
    readonly headers: Record<string, Uint8Array>,
    readonly held: HeldInput | undefined,
  ) {}

  /** The line's bytes (a view, made on each call). */
  get value(): Uint8Array {
    return this.source.subarray(this.start, this.end);
  }
}

/**
 * Lines of one unit as Kafka messages. The unit's attributes become headers (`start_offset`, the
 * range's first blob byte, is not one: it is added to member offsets); `blob` is also the key.
 */
export class KafkaLineStream implements TransformStream<Uint8Array, KafkaMessage[]> {
  readonly #inner: TransformStream<Uint8Array, KafkaMessage[]>;
  readonly #lines: LineStream;

  /**
   * @param unit the unit (its attributes: headers; `blob`: the key; `start_offset`).
   * @param decoder the unit's decoder (which member a chunk came from).
   * @param options line length limit.
   * @throws {RangeError} when `maxLineBytes` is not a positive integer.
   */
  constructor(
    unit: Unit,
    decoder: Decoder,
    { maxLineBytes = 1 << 19 }: KafkaLineStreamOptions = {},
  ) {
    const lines = this.#lines = new LineStream({ maxLineBytes });
    const { start_offset, ...fixed } = unit.attributes ?? {};
    const base = Number(start_offset ?? 0);
    const key = enc.encode(fixed.blob ?? unit.id);
    const shared: Record<string, Uint8Array> = {};
    for (const [k, v] of Object.entries(fixed)) shared[k] = enc.encode(v);
    // Headers are shared by the messages of one member.
    let member = -1;
    let headers = shared;
    const headersAt = (at: number) => {
      if (at !== member) {
        member = at;
        headers = { ...shared, member_offset: enc.encode(String(base + at)) };
      }
      return headers;
    };
    this.#inner = new TransformStream<Uint8Array, KafkaMessage[]>({
      transform: (chunk, ctrl) => {
        const h = headersAt(decoder.memberOffset(chunk));
        // The chunk goes back to the decoder once every message made from it was delivered.
        const held: HeldInput = { n: 0, release: () => decoder.release(chunk) };
        const out: KafkaMessage[] = [];
        lines.splitEach(chunk, (buf, start, end) => {
          out.push(new LineMessage(buf, start, end, key, h, held));
        });
        if (out.length === 0) return decoder.release(chunk);
        held.n = out.length;
        ctrl.enqueue(out);
      },
      flush: (ctrl) => {
        const h = headersAt(member < 0 ? 0 : member);
        const out: KafkaMessage[] = [];
        lines.endEach((buf, start, end) => {
          out.push(new LineMessage(buf, start, end, key, h, undefined));
        });
        if (out.length) ctrl.enqueue(out);
        // How far the decoder got and what it skipped go to the unit (an append blob range).
        reportDecoded(unit, decoder);
      },
    });
  }

  /** Lines cut at `maxLineBytes` so far. */
  get linesTruncated(): number {
    return this.#lines.linesTruncated;
  }

  get readable(): ReadableStream<KafkaMessage[]> {
    return this.#inner.readable;
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#inner.writable;
  }
}
