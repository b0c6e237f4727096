/**
 * The dead letter: items a destination refused for good (an HTTP 400 or 422, a single line too
 * large for a 413, a record a CloudWatch put rejected), appended to one newline-delimited JSON
 * file so nothing refused is lost silently. One line per item:
 *
 * ```json
 * {"at":"2026-12-03T12:00:00.000Z","unit":"s3://bucket/key.gz","reason":"rejected","message":"http://x answered 400 ...","item":"the line"}
 * ```
 *
 * A line item that is not valid UTF-8 is written as `item_base64` instead of `item`.
 * @module
 */

import { f, type Infer } from "../config/spec.ts";

/** The `dead_letter:` config section. */
export const deadLetterSpec = f.object({
  path: f.string({
    description:
      "File (newline-delimited JSON) where items a destination refused for good are appended, with unit id and reason. Relative to the config file",
    default: "/var/lib/edge-agent/dead-letter.ndjson",
  }),
}, { description: "Items a destination refused for good (400, 422, one line too large)" });

/** The dead letter config. */
export type DeadLetterConfig = Infer<typeof deadLetterSpec>;

/** One refused item. */
export interface DeadLetterEntry {
  unit: string;
  reason: string;
  message?: string;
  item: unknown;
}

const strict = new TextDecoder("utf-8", { fatal: true });

function encodeItem(item: unknown): Record<string, unknown> {
  if (item instanceof Uint8Array) {
    try {
      return { item: strict.decode(item) };
    } catch {
      let bin = "";
      for (const b of item) bin += String.fromCharCode(b);
      return { item_base64: btoa(bin) };
    }
  }
  return { item };
}

/** Appends refused items to a file; writes are serialized. */
export class DeadLetter {
  readonly path: string;
  #chain: Promise<void> = Promise.resolve();

  /** @param path the NDJSON file (created when first written). */
  constructor(path: string) {
    this.path = path;
  }

  /**
   * Encode the entries now (items may be reused by the caller once this returns) and append
   * them in the background; {@link flush} waits for the writes.
   *
   * @returns the write's promise.
   * @throws {Error} (from the promise) naming the file when it cannot be written.
   */
  write(entries: DeadLetterEntry[], now = Date.now()): Promise<void> {
    if (entries.length === 0) return this.#chain;
    const at = new Date(now).toISOString();
    const text = entries.map((e) =>
      JSON.stringify({
        at,
        unit: e.unit,
        reason: e.reason,
        ...(e.message !== undefined && { message: e.message }),
        ...encodeItem(e.item),
      }) + "\n"
    ).join("");
    const p = this.#chain.then(() => Deno.writeTextFile(this.path, text, { append: true }))
      .catch((e) => {
        throw new Error(`cannot write the dead letter ${this.path}: ${(e as Error).message}`, {
          cause: e,
        });
      });
    this.#chain = p.catch(() => {});
    return p;
  }

  /** Wait for the writes so far. */
  flush(): Promise<void> {
    return this.#chain;
  }
}
