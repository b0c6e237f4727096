// Reading what a test produced: every message of a topic, up to its end as of the call.
import { kafka } from "../services/mod.ts";

/** A message as a test sees it. */
export interface Read {
  partition: number;
  offset: number;
  key: string | null;
  value: string;
  headers: Record<string, string>;
}

/** Messages in `topic` now (sum over partitions of high − low). */
export async function topicCount(topic: string): Promise<number> {
  const client = kafka();
  try {
    const parts = await client.offsets(topic);
    return parts.reduce((n, p) => n + Number(p.high - p.low), 0);
  } finally {
    await client.close();
  }
}

/** Wait until `topic` holds at least `n` messages (or throw after `timeout` ms). */
export async function waitForCount(topic: string, n: number, timeout = 20_000): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const got = await topicCount(topic);
    if (got >= n) return;
    if (Date.now() > deadline) throw new Error(`${topic}: ${got} of ${n} messages`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const dec = new TextDecoder();

/** Every message of `topic` up to its end as of now, in partition then offset order. */
export async function readTopic(topic: string): Promise<Read[]> {
  const client = kafka();
  const reader = client.reader([topic], { fromBeginning: true, maxWait: 100 });
  const got: Read[] = [];
  try {
    const ends = await reader.start();
    const deadline = Date.now() + 20_000;
    const behind = () =>
      [...ends].filter(([key, p]) => (reader.positions.get(key) ?? 0n) < p.high).map(([k]) => k);
    while (behind().length > 0) {
      if (Date.now() > deadline) {
        throw new Error(`${topic}: read ${got.length} messages, partitions ${behind()} unfinished`);
      }
      for (const r of await reader.fetch()) {
        if (r.offset >= ends.get(`${r.topic}/${r.partition}`)!.high) continue;
        got.push({
          partition: r.partition,
          offset: Number(r.offset),
          key: r.key ? dec.decode(r.key) : null,
          value: r.value ? dec.decode(r.value) : "",
          headers: r.headers,
        });
      }
    }
  } finally {
    await reader.close();
    await client.close();
  }
  return got.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}
