/**
 * Worker entry of one generator worker: `{ init }` in, `{ done }` or `{ error }` out; counters
 * and the stop flag are in `init.control` (sender.ts).
 * @module
 */

import { runSender, type SenderInit } from "./sender.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<{ init: SenderInit }>) => void) | null;
  postMessage(m: unknown): void;
  close(): void;
};

self.onmessage = (e) => {
  self.onmessage = null;
  runSender(e.data.init).then(
    () => self.postMessage({ done: true }),
    (err) => self.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  ).finally(() => self.close());
};
