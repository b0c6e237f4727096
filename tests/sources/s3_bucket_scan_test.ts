// S3BucketScanSource against moto's S3.
import assert from "node:assert/strict";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { Logger } from "../../mod/log/logger.ts";
import { NonRecoverableError } from "../../mod/pipeline/non_recoverable_error.ts";
import { S3BucketScanSource } from "../../mod/sources/s3_bucket_scan.ts";
import { freshBucket, s3Client, serviceTest } from "../services/mod.ts";

const result = { lines: 1, bytes: 1, consumed: 1, truncated: 0 };

serviceTest(
  "S3BucketScanSource() lists again what failed, skips what cannot be delivered, keeps state",
  ["aws"],
  async () => {
    const bucket = await freshBucket();
    for (const k of ["a/1", "a/2", "a/3", "b/4"]) {
      await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: k }));
    }
    const dir = await Deno.makeTempDir();
    const make = () =>
      new S3BucketScanSource({
        client: s3Client(),
        bucket,
        prefix: "a/",
        stateFile: `${dir}/state.json`,
        once: true,
        log: new Logger({ write: () => {} }),
      });
    const scan = async () => {
      const src = make();
      const keys: string[] = [];
      for await (const u of src.units(new AbortController().signal)) {
        keys.push(u.key);
        if (u.key === "a/1") await u.ack(result);
        if (u.key === "a/2") await u.nack(new Error("throttled"));
        if (u.key === "a/3") {
          await u.nack(new NonRecoverableError("unknown tenant", { reason: "unknown_tenant" }));
        }
      }
      await src.close();
      return keys;
    };
    assert.deepEqual(await scan(), ["a/1", "a/2", "a/3"]);
    // a/2 failed in a way worth retrying: listed again; a/1 done, a/3 given up (and logged).
    assert.deepEqual(await scan(), ["a/2"]);
    const state = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
    assert.deepEqual(Object.keys(state.done).sort(), ["a/1", "a/3"]);
    assert.equal(typeof state.state.watermark, "number");
  },
);
