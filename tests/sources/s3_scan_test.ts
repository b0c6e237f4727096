import assert from "node:assert/strict";
import zlib from "node:zlib";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { Logger } from "../../mod/log/logger.ts";
import { dayPrefixes, fileTime, S3ScanSource } from "../../mod/sources/s3_scan.ts";
import { freshBucket, s3Client, serviceTest } from "../services/mod.ts";

const quiet = new Logger({ write: () => {} });

Deno.test("fileTime() reads <unix_ts>_<id>_<id>_<seq>[.gz] names only", () => {
  assert.equal(fileTime("p/year=2025/month=10/day=12/1760305292_56442_130_1.gz"), 1760305292);
  assert.equal(fileTime("1760305292_56442_130_1"), 1760305292);
  assert.equal(fileTime("p/notes.txt"), undefined);
  assert.equal(fileTime("p/1760305292.gz"), undefined);
});

Deno.test("dayPrefixes() lists unpadded and padded day partitions across month ends", () => {
  const from = Date.UTC(2025, 0, 31, 23) / 1000;
  const to = Date.UTC(2025, 1, 1, 1) / 1000;
  assert.deepEqual(dayPrefixes("feed/", from, to), [
    "feed/year=2025/month=1/day=31/",
    "feed/year=2025/month=01/day=31/",
    "feed/year=2025/month=2/day=1/",
    "feed/year=2025/month=02/day=01/",
  ]);
});

Deno.test("S3ScanSource rejects an s3:// bucket with the fix", () => {
  assert.throws(
    () =>
      new S3ScanSource({
        client: s3Client(),
        bucket: "s3://b",
        prefix: "",
        stateFile: "x",
        log: quiet,
      }),
    /without "s3:\/\/"/,
  );
});

async function put(bucket: string, key: string, body: string) {
  await s3Client().send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: zlib.gzipSync(body) }),
  );
}

function keyFor(prefix: string, t: number, seq: number, padded = false) {
  const d = new Date(t * 1000);
  const p = (n: number) => padded ? String(n).padStart(2, "0") : String(n);
  return `${prefix}year=${d.getUTCFullYear()}/month=${p(d.getUTCMonth() + 1)}/day=${
    p(d.getUTCDate())
  }/${t}_1_2_${seq}.gz`;
}

serviceTest("S3ScanSource: oldest first, delay window, late files once, restart from state", [
  "aws",
], async () => {
  const bucket = await freshBucket();
  const dir = await Deno.makeTempDir();
  const stateFile = `${dir}/state.json`;
  const now = Date.UTC(2025, 2, 1, 0, 5) / 1000; // 5 minutes after midnight: spans a day boundary
  const prefix = "_weblog/feedname=Threat Team - Web/";
  await put(bucket, keyFor(prefix, now - 400, 1), "a\n"); // yesterday (Feb 28)
  await put(bucket, keyFor(prefix, now - 200, 2, true), "b\n"); // today, zero-padded partition
  await put(bucket, keyFor(prefix, now - 30, 3), "too new\n"); // inside delay_window
  await put(bucket, `${prefix}year=2025/month=3/day=1/README.txt`, "no timestamp\n");
  const state = { last_processed_timestamp: now - 500 };
  await Deno.writeTextFile(stateFile, JSON.stringify(state));

  const make = (at: number) =>
    new S3ScanSource({
      client: s3Client(),
      bucket,
      prefix,
      stateFile,
      delayWindow: 60_000,
      lateness: 600_000,
      once: true,
      log: quiet,
      now: () => at * 1000,
    });
  const ack = { lines: 1, bytes: 1, consumed: 1, truncated: 0 };
  let src = make(now);
  let units = await Array.fromAsync(src.units(new AbortController().signal));
  assert.deepEqual(units.map((u) => u.id.split("/").pop()), [
    "1740787100_1_2_1.gz",
    "1740787300_1_2_2.gz",
  ]);
  for (const u of units) await u.ack(ack);
  await src.close();
  assert.equal(src.watermark, now - 200);

  // A file lands late with a timestamp below the watermark: picked up once.
  await put(bucket, keyFor(prefix, now - 300, 9), "late\n");
  src = make(now + 60);
  units = await Array.fromAsync(src.units(new AbortController().signal));
  assert.deepEqual(units.map((u) => u.id.split("/").pop()), [
    "1740787200_1_2_9.gz",
    "1740787470_1_2_3.gz",
  ]);
  for (const u of units) await u.ack(ack);
  await src.close();
  // Nothing is read twice after a restart.
  src = make(now + 120);
  assert.deepEqual(await Array.fromAsync(src.units(new AbortController().signal)), []);
  const saved = JSON.parse(await Deno.readTextFile(stateFile));
  assert.equal(saved.last_processed_timestamp, now - 30);
  assert.ok(saved.last_processed_time.endsWith("Z"));
  await Deno.remove(dir, { recursive: true });
});

serviceTest("S3ScanSource: a nacked file is listed again on the next scan", ["aws"], async () => {
  const bucket = await freshBucket();
  const dir = await Deno.makeTempDir();
  const now = Date.UTC(2025, 5, 10, 12) / 1000;
  await put(bucket, keyFor("", now - 100, 1), "x\n");
  await Deno.writeTextFile(
    `${dir}/s.json`,
    JSON.stringify({ last_processed_timestamp: now - 1000 }),
  );
  const make = () =>
    new S3ScanSource({
      client: s3Client(),
      bucket,
      prefix: "",
      stateFile: `${dir}/s.json`,
      once: true,
      log: quiet,
      now: () => now * 1000,
    });
  const [u] = await Array.fromAsync(make().units(new AbortController().signal));
  await u!.nack(new Error("sink gave up"));
  const again = await Array.fromAsync(make().units(new AbortController().signal));
  assert.equal(again.length, 1);
  await Deno.remove(dir, { recursive: true });
});

serviceTest(
  "S3ScanSource: a reference state file (last_processed_timestamp only) means every file at or below it was delivered (issue #15, failure 2)",
  ["aws"],
  async () => {
    const bucket = await freshBucket();
    const dir = await Deno.makeTempDir();
    const now = Date.UTC(2025, 5, 10, 12) / 1000;
    const w = now - 1000;
    for (const [t, seq] of [[w - 120, 1], [w - 30, 2], [w, 3], [w + 10, 4]] as const) {
      await put(bucket, keyFor("", t, seq), "x\n");
    }
    await Deno.writeTextFile(`${dir}/s.json`, JSON.stringify({ last_processed_timestamp: w }));
    const make = () =>
      new S3ScanSource({
        client: s3Client(),
        bucket,
        prefix: "",
        stateFile: `${dir}/s.json`,
        once: true,
        log: quiet,
        now: () => now * 1000,
      });
    const units = await Array.fromAsync(make().units(new AbortController().signal));
    assert.deepEqual(units.map((u) => u.id), [`s3://${bucket}/${keyFor("", w + 10, 4)}`]);
    await units[0]!.ack({ lines: 1, bytes: 1, consumed: 1, truncated: 0 });
    // After our first save (which writes a done map) the files at or below W are still done.
    const src = make();
    assert.deepEqual(await Array.fromAsync(src.units(new AbortController().signal)), []);
    await src.close();
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest(
  "S3ScanSource: a failed file holds the watermark back and keeps its delivered-line count across a restart",
  ["aws"],
  async () => {
    const bucket = await freshBucket();
    const dir = await Deno.makeTempDir();
    const now = Date.UTC(2025, 5, 10, 12) / 1000;
    for (let i = 0; i < 3; i++) await put(bucket, keyFor("", now - 300 + i, i), "x\n");
    const make = () =>
      new S3ScanSource({
        client: s3Client(),
        bucket,
        prefix: "",
        stateFile: `${dir}/s.json`,
        once: true,
        lateness: 0,
        delayWindow: 0,
        log: quiet,
        now: () => now * 1000,
      });
    await Deno.writeTextFile(
      `${dir}/s.json`,
      JSON.stringify({ last_processed_timestamp: now - 400, done: {} }),
    );
    let src = make();
    const [a, b, c] = await Array.fromAsync(src.units(new AbortController().signal));
    a!.progress!(7);
    await a!.nack(new Error("intake down"));
    await b!.ack({ lines: 1, bytes: 1, consumed: 1, truncated: 0 });
    await c!.ack({ lines: 1, bytes: 1, consumed: 1, truncated: 0 });
    await src.close();
    assert.equal(src.watermark, now - 301, "held below the failed file");
    src = make();
    const again = await Array.fromAsync(src.units(new AbortController().signal));
    assert.deepEqual(again.map((u) => u.id), [a!.id]);
    assert.equal(again[0]!.resumeItems, 7);
    await src.close();
    await Deno.remove(dir, { recursive: true });
  },
);
