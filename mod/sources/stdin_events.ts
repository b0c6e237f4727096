/**
 * Events given on standard input (mode route's `manual` input): one JSON document, or NDJSON with
 * one document per line; each an S3 event, an SNS notification wrapping one, or a Lambda SQS event.
 * @module
 */

import { type EventMessage, eventMessages } from "./s3_event_batch.ts";

/**
 * Read all of `input` as event messages. A line that is not JSON becomes a message of its own
 * (the batch then counts it as malformed and logs its line), so nothing is skipped silently.
 *
 * @param input the bytes (stdin).
 * @param name prefix of the messages' ids. @default "stdin"
 */
export async function readEventMessages(
  input: ReadableStream<Uint8Array>,
  name = "stdin",
): Promise<EventMessage[]> {
  const text = await new Response(input).text();
  try {
    return text.trim() === "" ? [] : eventMessages(JSON.parse(text), name);
  } catch {
    // Not one document: NDJSON.
  }
  const out: EventMessage[] = [];
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue;
    const id = `${name}:${i + 1}`;
    let doc: unknown;
    try {
      doc = JSON.parse(line);
    } catch {
      out.push({ id, body: line });
      continue;
    }
    out.push(...eventMessages(doc, id));
  }
  return out;
}
