import assert from "node:assert/strict";
import zlib from "node:zlib";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { runPipeline } from "../../mod/pipeline/run.ts";
import type { Batch } from "../../mod/pipeline/types.ts";
import {
  AppendBlobSource,
  type AppendBlobSourceOptions,
  type CommittedRange,
} from "../../mod/sources/azure_append_blob.ts";
import { AzureBlobContainer } from "../../mod/sources/azure_blob.ts";
import { blobServiceClient, endpoints, freshContainer, serviceTest } from "../services/mod.ts";

const member = (tag: string, n: number) =>
  new Uint8Array(
    zlib.gzipSync(Array.from({ length: n }, (_, i) => `${tag}-${i}`).join("\n") + "\n"),
  );
const lines = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}-${i}`);

/** A fresh append blob made of `parts`, and its container. */
async function blobOf(parts: Uint8Array[]) {
  const name = await freshContainer();
  const b = blobServiceClient().getContainerClient(name).getAppendBlobClient("b.gz");
  await b.create();
  for (const p of parts) await b.appendBlock(p, p.length);
  const c = await AzureBlobContainer.open(
    { connection_string: endpoints.azuriteConnectionString },
    name,
  );
  return { c, blob: b };
}

/** One pass through runPipeline into memory. */
async function pass(
  c: AzureBlobContainer,
  options: Omit<AppendBlobSourceOptions, "commit"> & { failCommit?: boolean },
) {
  const commits: CommittedRange[] = [];
  const got: string[] = [];
  const source = new AppendBlobSource(c, "b.gz", {
    ...options,
    commit: (r) => {
      if (options.failCommit) return Promise.reject(new Error("disk full"));
      commits.push(r);
      return Promise.resolve();
    },
  });
  await runPipeline({
    source,
    sink: {
      kind: "memory",
      write: (b: Batch) => {
        for (const l of b.items) got.push(new TextDecoder().decode(l));
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
    },
    metrics: new Registry(),
    log: new Logger({ write: () => {} }),
    signal: new AbortController().signal,
    decode: { allowTruncatedTail: true },
    batch: { flush_interval: 5 },
  });
  return { got, commits, progress: source.progress };
}

serviceTest(
  "AppendBlobSource reads consecutive ranges, committing each at a member boundary",
  "azurite",
  async () => {
    const m = ["a", "b", "c", "d", "e", "f"].map((t) => member(t, 50));
    const { c } = await blobOf(m);
    const ends = m.map((_, i) => m.slice(0, i + 1).reduce((n, x) => n + x.length, 0));
    const r = await pass(c, { start: 0, rangeBytes: m[0]!.length * 2 + 10 });
    assert.deepEqual(r.got, ["a", "b", "c", "d", "e", "f"].flatMap((t) => lines(t, 50)));
    // Each range ends after its last complete member; the next starts there.
    assert.deepEqual(r.commits.map((x) => x.end), [ends[1], ends[3], ends[5]]);
    assert.deepEqual(r.commits.map((x) => x.start), [0, ends[1], ends[3]]);
    assert.deepEqual(r.commits.map((x) => x.lines), [100, 100, 100]);
    assert.equal(r.progress.committed, ends[5]);
    assert.equal(r.progress.ranges, 3);
    assert.equal(r.progress.failure, undefined);
  },
);

serviceTest(
  "AppendBlobSource leaves a member still being appended for the next pass",
  "azurite",
  async () => {
    const whole = member("p", 20);
    const first = member("x", 10);
    const { c, blob } = await blobOf([first, whole.subarray(0, 30)]);
    const r1 = await pass(c, { start: 0 });
    assert.deepEqual(r1.got, lines("x", 10));
    assert.equal(r1.progress.committed, first.length);
    assert.equal(r1.progress.size, first.length + 30);
    await blob.appendBlock(whole.subarray(30), whole.length - 30);
    const r2 = await pass(c, { start: r1.progress.committed });
    assert.deepEqual(r2.got, lines("p", 20));
    assert.equal(r2.progress.committed, first.length + whole.length);
  },
);

serviceTest("AppendBlobSource grows a range that holds no complete member", "azurite", async () => {
  const big = member("big", 2000);
  const { c } = await blobOf([member("s", 1), big]);
  const r = await pass(c, { start: 0, rangeBytes: 64 });
  assert.deepEqual(r.got, [...lines("s", 1), ...lines("big", 2000)]);
  assert.equal(r.progress.committed, r.progress.size);
});

serviceTest(
  "AppendBlobSource skips a corrupt member, reports it, and goes on",
  "azurite",
  async () => {
    const bad = member("bad", 5);
    bad[bad.length - 6]! ^= 0xff; // CRC32 no longer matches
    const good = [member("g1", 3), member("g2", 3)];
    const after = member("g3", 3);
    const { c } = await blobOf([...good, bad, after]);
    const corrupt: { offset: number; skipped: number }[] = [];
    const r = await pass(c, {
      start: 0,
      onCorrupt: ({ offset, skipped }) => corrupt.push({ offset, skipped }),
    });
    const offset = good[0]!.length + good[1]!.length;
    assert.deepEqual(corrupt, [{ offset, skipped: bad.length }]);
    assert.equal(r.progress.skipped, bad.length);
    assert.equal(r.progress.committed, r.progress.size);
    // Every good line arrives; the first try of the range may have sent the good ones already.
    assert.deepEqual(
      [...new Set(r.got)].toSorted(),
      [...lines("g1", 3), ...lines("g2", 3), ...lines("g3", 3)].toSorted(),
    );
    assert.ok(!r.got.some((l) => l.startsWith("bad")));
  },
);

serviceTest("AppendBlobSource stops at a failed commit and says so", "azurite", async () => {
  const { c } = await blobOf([member("a", 3), member("b", 3)]);
  const r = await pass(c, { start: 0, failCommit: true });
  assert.equal(r.progress.committed, 0);
  assert.match(String(r.progress.failure?.message), /cannot commit azure:.*b\.gz at byte/);
});
