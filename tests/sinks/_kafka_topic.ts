// Reading what a test produced: every message of a topic, up to its end as of the call.
import { kafka, uniqueName } from "../services/mod.ts";

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
  const admin = kafka().admin();
  await admin.connect();
  try {
    const parts = await admin.fetchTopicOffsets(topic);
    return parts.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
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

/** Every message of `topic` up to its end as of now, in partition then offset order. */
export async function readTopic(topic: string): Promise<Read[]> {
  const admin = kafka().admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const want = new Map(ends.map((p) => [p.partition, Number(p.high)]));
  const pending = new Set(
    ends.filter((p) => Number(p.high) > Number(p.low)).map((p) => p.partition),
  );
  const got: Read[] = [];
  if (pending.size > 0) {
    const consumer = kafka().consumer({ groupId: uniqueName("read"), maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const done = Promise.withResolvers<void>();
    const timer = setTimeout(
      () =>
        done.reject(
          new Error(`${topic}: read ${got.length} messages, partitions ${[...pending]} unfinished`),
        ),
      20_000,
    );
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        const offset = Number(message.offset);
        if (offset < want.get(partition)!) {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
          got.push({
            partition,
            offset,
            key: message.key?.toString() ?? null,
            value: message.value?.toString() ?? "",
            headers,
          });
        }
        if (offset + 1 >= want.get(partition)!) pending.delete(partition);
        if (pending.size === 0) done.resolve();
        return Promise.resolve();
      },
    });
    try {
      await done.promise;
    } finally {
      clearTimeout(timer);
      await consumer.disconnect();
    }
  }
  return got.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}
