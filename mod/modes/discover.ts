/**
 * Mode `discover`: find the database log files that changed and announce each change once in
 * Kafka. Every `poll_interval` it lists the RDS instances of its shard (engines, identifier
 * prefix, tags; `shard_index` of `shard_count` by a stable hash of the identifier), each one's log
 * files, and compares them with the DynamoDB tracking table. A changed file (new, grown, or
 * rotated: smaller or rewritten) is claimed with a conditional write, so of several replicas
 * exactly one publishes it: a JSON event keyed by instance (a file's events stay in order) to
 * `kafka.topic` with instance, engine, file, previous_size, size, last_written.
 *
 * The claim stays `pending` until the event is confirmed published. If publishing fails, the
 * claim is undone so the next poll tries again; if the replica dies between claim and publish,
 * any replica's scan publishes the change once `republish_after` has passed (an hourly log file
 * that never changes again would otherwise keep its last bytes unread). Files RDS no longer lists
 * (rotated away, retention) are dropped from the table, so a scan reads only live files.
 * @module
 */

import { f } from "../config/spec.ts";
import { sleep } from "../pipeline/retry.ts";
import { kafkaSpec } from "../sources/kafka_spec.ts";
import { awsFields } from "../sources/aws.ts";
import { type DbInstance, type DbLogFile, Rds, rdsSpec, shardOf } from "../sources/rds.ts";
import { LogTracking } from "../sources/rds_tracking.ts";
import { defineMode } from "./mode.ts";
import type { LogFileChanged } from "../sources/events.ts";

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
  republish_after: f.duration({
    description:
      "A claimed change whose event is still not confirmed published this long after (its replica died in between) is published by the next scan",
    default: "5m",
    min: "1s",
  }),
  shard_index: f.int({ description: "This replica's shard", default: 0, min: 0 }),
  shard_count: f.int({ description: "Replicas splitting the instances", default: 1, min: 1 }),
  once: f.bool({ description: "Scan once and exit", default: false }),
}, {
  description: "Mode discover: RDS log files that changed → events in Kafka",
  check: (c) =>
    c.shard_index < c.shard_count ? [] : [{
      key: "shard_index",
      message: `must be below shard_count (${c.shard_count}): got ${c.shard_index}`,
    }],
});

/** The event `discover` publishes and `process` consumes (its shape: sources/events.ts). */
export type { LogFileChanged };

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
      republished: metrics.counter(
        "discover_changes_republished_total",
        "Changes published by a later scan: the claiming replica had not confirmed its event",
      ),
      forgotten: metrics.counter(
        "discover_files_forgotten_total",
        "Tracked files RDS no longer lists, dropped from the tracking table",
      ),
      errors: metrics.counter("discover_errors_total", "Instances whose scan failed"),
    };
    const rds = await Rds.open(c.rds, log, metrics);
    const tracking = await LogTracking.open(c.tracking_table, c.dynamodb);
    // The Kafka client loads with the mode that uses it (kafka_spec.ts says why).
    const { KafkaSink } = await import("../sinks/kafka.ts");
    const kafka = await KafkaSink.connect(c.kafka, { log, metrics });
    health.set("kafka", true);
    try {
      while (!signal.aborted) {
        const started = performance.now();
        let failed = 0;
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
              failed++;
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
          failed++;
          health.set("rds", false, String(e));
          log.error("scan failed", { error: e });
        }
        // One scan run by a scheduler (cron, a Kubernetes CronJob) must not report success
        // when part of it failed.
        if (c.once && failed) {
          throw new Error(`discover --once: ${failed} part(s) of the scan failed`);
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
        tracked.delete(file.name);
        const had = prev && prev.size !== undefined && prev.lastWritten > 0 ? prev : undefined;
        if (had && had.size === file.size && had.lastWritten === file.lastWritten) {
          // Claimed, but never confirmed published: the claiming replica died in between.
          const now = Date.now();
          if (had.pending === undefined || now - had.pending < c.republish_after) continue;
          if (!await tracking.reclaim(inst.id, file.name, had.pending, now)) continue;
          log.warn("a claimed change was never confirmed published: publishing it now", {
            instance: inst.id,
            file: file.name,
            claimed_at: new Date(had.pending).toISOString(),
          });
          // On failure the claim stays pending: retried after republish_after again.
          await publish(inst, file, had.pendingFrom ?? 0, now);
          m.republished.inc();
          continue;
        }
        const next = { size: file.size, lastWritten: file.lastWritten, pending: Date.now() };
        if (!await tracking.claim(inst.id, file.name, had, next)) {
          m.lost.inc();
          continue;
        }
        await publish(
          inst,
          file,
          had?.size ?? 0,
          next.pending,
          () => tracking.unclaim(inst.id, file.name, file, had),
        );
        m.published.inc();
      }
      // What is left is tracked but no longer listed: rotated away or past retention.
      for (const name of tracked.keys()) {
        await tracking.forget(inst.id, name);
        m.forgotten.inc();
        log.info("log file no longer listed: dropped from tracking", {
          instance: inst.id,
          file: name,
        });
      }
      return files.length;
    }

    /** Publish a claimed change; `undo` the claim if that fails. */
    async function publish(
      inst: DbInstance,
      file: DbLogFile,
      previousSize: number,
      pending: number,
      undo?: () => Promise<void>,
    ): Promise<void> {
      const rotated = file.size < previousSize;
      if (rotated) m.rotated.inc();
      const event: LogFileChanged = {
        type: "LogFileChanged",
        instance: inst.id,
        engine: inst.engine,
        file: file.name,
        previous_size: previousSize,
        size: file.size,
        last_written: new Date(file.lastWritten).toISOString(),
        rotated,
      };
      try {
        await kafka.send(c.kafka.topic, [{ key: inst.id, value: JSON.stringify(event) }], signal);
      } catch (e) {
        m.failed.inc();
        await undo?.().catch(() => {});
        throw new Error(`cannot publish the change of ${inst.id}/${file.name}`, { cause: e });
      }
      // Not confirmed (DynamoDB unreachable now): a later scan publishes it again, a duplicate
      // event that reads nothing new. We prefer that to a change never announced.
      await tracking.published(inst.id, file.name, pending).catch((e) =>
        log.warn("cannot confirm a published change", {
          instance: inst.id,
          file: file.name,
          error: e,
        })
      );
    }
  },
});
