/**
 * Mode `discover`: find the database log files that changed and announce each change once in
 * Kafka. Every `poll_interval` it lists the RDS instances of its shard (engines, identifier
 * prefix, tags; `shard_index` of `shard_count` by a stable hash of the identifier), each one's log
 * files, and compares them with the DynamoDB tracking table. A changed file (new, grown, or
 * rotated: smaller or rewritten) is claimed with a conditional write, so of several replicas
 * exactly one publishes it: a JSON event keyed by instance (a file's events stay in order) to
 * `kafka.topic` with instance, engine, file, previous_size, size, last_written.
 *
 * If publishing fails after the claim, the claim is undone so the next poll tries again; a crash
 * between the two loses only that event, not data: `process` reads from its own saved marker,
 * so the next change of the file brings the missed bytes too.
 * @module
 */

import { f } from "../config/spec.ts";
import { sleep } from "../pipeline/retry.ts";
import { KafkaSink, kafkaSpec } from "../sinks/kafka.ts";
import { awsFields } from "../sources/aws.ts";
import { type DbInstance, Rds, rdsSpec, shardOf } from "../sources/rds.ts";
import { LogTracking } from "../sources/rds_tracking.ts";
import { defineMode } from "./mode.ts";

/** The `discover:` config section. */
export const discoverSpec = f.object({
  rds: rdsSpec,
  dynamodb: f.object({ ...awsFields }, { description: "Where the tracking table is" }),
  tracking_table: f.string({
    description: "DynamoDB table (keys: instance S, file S) shared by discover and process",
    default: "aurora-log-tracking",
  }),
  kafka: kafkaSpec({ topic: "aurora-logs", description: "Where the change events go" }),
  poll_interval: f.duration({ description: "Time between scans", default: "60s", min: "1s" }),
  shard_index: f.int({ description: "This replica's shard", default: 0, min: 0 }),
  shard_count: f.int({ description: "Replicas splitting the instances", default: 1, min: 1 }),
  once: f.bool({ description: "Scan once and exit", default: false }),
}, { description: "Mode discover: RDS log files that changed → events in Kafka" });

/** The event `discover` publishes and `process` consumes. */
export interface LogFileChanged {
  type: "LogFileChanged";
  instance: string;
  engine: string;
  file: string;
  previous_size: number;
  size: number;
  /** ISO 8601. */
  last_written: string;
  /** The file got smaller (rotated or truncated): read it from its start. */
  rotated: boolean;
}

export const discoverMode = defineMode({
  name: "discover",
  summary: "Find database log files that changed → events in Kafka",
  spec: discoverSpec,
  flags: {
    once: { key: "once", description: "Scan once and exit", boolean: true },
    "shard-index": { key: "shard_index", description: "This replica's shard" },
    "shard-count": { key: "shard_count", description: "Replicas splitting the instances" },
  },
  async run({ config: c, log, metrics, signal, health }) {
    if (c.shard_index >= c.shard_count) {
      throw new Error(
        `discover.shard_index (${c.shard_index}) must be below discover.shard_count (${c.shard_count})`,
      );
    }
    const m = {
      scans: metrics.counter("discover_scans_total", "Scans of the instances"),
      instances: metrics.gauge("discover_instances", "Instances in this replica's shard"),
      files: metrics.gauge("discover_log_files", "Log files seen in the last scan"),
      published: metrics.counter("discover_changes_published_total", "Change events published"),
      lost: metrics.counter(
        "discover_claims_lost_total",
        "Changes another replica claimed first (not published here)",
      ),
      rotated: metrics.counter("discover_rotations_total", "Files that got smaller"),
      failed: metrics.counter("discover_publish_failures_total", "Claims undone: publish failed"),
      throttled: metrics.counter("rds_throttled_total", "RDS calls throttled and retried"),
      errors: metrics.counter("discover_errors_total", "Instances whose scan failed"),
    };
    const rds = await Rds.open(c.rds, log);
    rds.onThrottle = () => m.throttled.inc();
    const tracking = await LogTracking.open(c.tracking_table, c.dynamodb);
    const kafka = await KafkaSink.connect(c.kafka, { log, metrics });
    health.set("kafka", true);
    try {
      while (!signal.aborted) {
        const started = performance.now();
        try {
          const all = await rds.instances(signal);
          const mine = all.filter((i) => shardOf(i.id, c.shard_count) === c.shard_index);
          m.instances.set(mine.length);
          let files = 0;
          for (const inst of mine) {
            if (signal.aborted) break;
            try {
              files += await scanInstance(inst);
            } catch (e) {
              if (signal.aborted) break;
              m.errors.inc();
              log.error("scan of an instance failed; the others go on", {
                instance: inst.id,
                error: e,
              });
            }
          }
          m.files.set(files);
          m.scans.inc();
          health.set("rds", true);
          log.info("scan done", {
            instances: mine.length,
            files,
            ms: Math.round(performance.now() - started),
          });
        } catch (e) {
          if (signal.aborted) break;
          health.set("rds", false, String(e));
          log.error("scan failed", { error: e });
        }
        if (c.once) break;
        await sleep(c.poll_interval, signal);
      }
    } finally {
      await kafka.close();
    }

    async function scanInstance(inst: DbInstance): Promise<number> {
      const [files, tracked] = await Promise.all([
        rds.logFiles(inst.id, signal),
        tracking.files(inst.id, signal),
      ]);
      for (const file of files) {
        const prev = tracked.get(file.name);
        const had = prev && prev.size !== undefined && prev.lastWritten > 0 ? prev : undefined;
        if (had && had.size === file.size && had.lastWritten === file.lastWritten) continue;
        const next = { size: file.size, lastWritten: file.lastWritten };
        if (!await tracking.claim(inst.id, file.name, had, next)) {
          m.lost.inc();
          continue;
        }
        const rotated = had !== undefined && file.size < had.size;
        if (rotated) m.rotated.inc();
        const event: LogFileChanged = {
          type: "LogFileChanged",
          instance: inst.id,
          engine: inst.engine,
          file: file.name,
          previous_size: had?.size ?? 0,
          size: file.size,
          last_written: new Date(file.lastWritten).toISOString(),
          rotated,
        };
        try {
          await kafka.send(c.kafka.topic, [{ key: inst.id, value: JSON.stringify(event) }], signal);
          m.published.inc();
        } catch (e) {
          m.failed.inc();
          await tracking.unclaim(inst.id, file.name, next, had).catch(() => {});
          throw new Error(`cannot publish the change of ${inst.id}/${file.name}`, { cause: e });
        }
      }
      return files.length;
    }
  },
});
