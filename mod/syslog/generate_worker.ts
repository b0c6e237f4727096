/**
 * Worker entry of one generator thread: `{ inits }` in (one or more senders); `{ failed }` for
 * each sender that failed, then `{ done }` (or `{ error }` if the thread itself failed) out.
 * Counters and stop flags are in each `init.control` (sender.ts).
 * @module
 */

import { runSenders, type SenderInit } from "./sender.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<{ inits: SenderInit[] }>) => void) | null;
  postMessage(m: unknown): void;
  close(): void;
};

self.onmessage = (e) => {
  self.onmessage = null;
  runSenders(e.data.inits).then(
    (failures) => {
      for (const f of failures) self.postMessage({ failed: { id: f.id, error: f.error.message } });
      self.postMessage({ done: true });
    },
    (err) => self.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  ).finally(() => self.close());
};
