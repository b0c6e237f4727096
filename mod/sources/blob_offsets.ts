/**
 * Where `ingest` keeps each blob's committed byte offset: a compacted Kafka topic shared by all
 * workers (key: the blob, value: its offset), or a local state file.
 *
 * The topic is what worker mode needs: when the group rebalances, a blob's events move to another
 * worker, possibly on another host, and its offset must be there too (a local file would restart
 * the blob from 0 and re-send it whole). The state file (atomically replaced JSON) is right for
 * one-shot runs and a single worker, and needs no extra topic.
 *
 * @example
 * ```ts
 * const offsets = await openBlobOffsets({ stateFile: "/var/lib/edge-agent/ingest-offsets.json" });
 * const at = offsets.get("cp2/P1/logs/kubernetes/x.gz")?.offset ?? 0;
 * ```
 * @module
 */

import type { Logger } from "../log/logger.ts";
import { CheckpointStore } from "../pipeline/checkpoint.ts";
import { CompactedTopicStore } from "../pipeline/compacted_topic_store.ts";
import type { KafkaConnection } from "./kafka_client.ts";

/** A blob's committed offset, as stored. */
export interface BlobOffset {
  offset: number;
  /** When it was committed (ISO 8601). */
  updated: string;
  /** A BlobClosed was handled: the blob was read to its end. */
  closed?: boolean;
}

/** Where blob offsets live. */
export interface BlobOffsetStore {
  /** Catch up with other writers (a no-op for a file). */
  sync(): Promise<void>;
  get(id: string): BlobOffset | undefined;
  /** Durable once resolved. */
  put(id: string, v: BlobOffset): Promise<void>;
  close(): Promise<void>;
}

/** How long an untouched blob offset is kept: the topic's retention.ms, the file's pruning. */
export const OFFSET_RETENTION_MS = 7 * 24 * 3600_000;

/** Options for {@link openBlobOffsets}: a topic (with its connection), else a file. */
export interface BlobOffsetsOptions {
  /** The compacted topic; empty or absent: the state file. */
  topic?: string;
  /** The topic's Kafka connection. */
  kafka?: KafkaConnection;
  /** The state file's path. */
  stateFile: string;
  log?: Logger;
}

/**
 * Open the blob offsets: the compacted topic when one is named (created if missing), else the
 * state file (closed blobs untouched for a week are forgotten, as the topic expires them).
 *
 * @param o where.
 * @returns the store, caught up.
 */
export async function openBlobOffsets(o: BlobOffsetsOptions): Promise<BlobOffsetStore> {
  if (o.topic && o.kafka) {
    const store = await CompactedTopicStore.open<BlobOffset>(o.kafka, o.topic, {
      ...(o.log && { log: o.log }),
      retentionMs: OFFSET_RETENTION_MS,
    });
    return {
      sync: () => store.sync(),
      get: (id) => store.get(id),
      put: (id, v) => store.put(id, v),
      close: () => store.close(),
    };
  }
  const file = new CheckpointStore(o.stateFile, { flushInterval: 0, ...(o.log && { log: o.log }) });
  await file.load();
  const blobs = file.get<Record<string, BlobOffset>>("blobs") ?? {};
  const expired = Date.now() - OFFSET_RETENTION_MS;
  for (const [id, v] of Object.entries(blobs)) {
    if (v.closed && Date.parse(v.updated) < expired) delete blobs[id];
  }
  return {
    sync: () => Promise.resolve(),
    get: (id) => blobs[id],
    put: async (id, v) => {
      blobs[id] = v;
      file.set("blobs", blobs);
      await file.flush();
    },
    close: () => file.close(),
  };
}
