/**
 * Worker entry of the receiver: `{ init }` in; `{ ready }`, `{ snapshot }` (every reportMs and a
 * final one), then `{ done }` or `{ error }` out. The stop flag is in `init.control`.
 * @module
 */

import { type ReceiverInit, runReceiver } from "./receiver.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<{ init: ReceiverInit }>) => void) | null;
  postMessage(m: unknown): void;
  close(): void;
};

self.onmessage = (e) => {
  self.onmessage = null;
  runReceiver(
    e.data.init,
    (snapshot) => self.postMessage({ snapshot }),
    (ports) => self.postMessage({ ready: ports }),
  ).then(
    () => self.postMessage({ done: true }),
    (err) => self.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  ).finally(() => self.close());
};
