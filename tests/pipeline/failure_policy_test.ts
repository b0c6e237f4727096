import assert from "node:assert/strict";
import {
  classifyReadError,
  requestRequeue,
  takeRequeues,
} from "../../mod/pipeline/failure_policy.ts";
import { DecodeError } from "../../mod/pipeline/gzip.ts";
import { NonRecoverableError } from "../../mod/pipeline/non_recoverable_error.ts";

Deno.test("classifyReadError() makes corrupt, unreadable and gone input permanent, the rest retryable", () => {
  const corrupt = new Error("failed to read x", {
    cause: new DecodeError("corrupt gzip member at byte 5: CRC32 mismatch", 5),
  });
  assert.deepEqual(classifyReadError(corrupt), {
    kind: "permanent",
    reason: "corrupt_gzip",
    offset: 5,
  });
  assert.deepEqual(
    classifyReadError(new Error("x", { cause: new Deno.errors.PermissionDenied("EACCES") })),
    { kind: "permanent", reason: "unreadable" },
  );
  assert.deepEqual(
    classifyReadError(new NonRecoverableError("gone", { reason: "object_gone" })),
    { kind: "permanent", reason: "object_gone" },
  );
  assert.deepEqual(classifyReadError(new Error("connection reset")), { kind: "retry" });
});

Deno.test("requestRequeue() and takeRequeues() hand ids over through a file beside the state", async () => {
  const dir = await Deno.makeTempDir();
  const state = `${dir}/state.json`;
  assert.deepEqual(await takeRequeues(state), []);
  await requestRequeue(state, ["s3://b/a.gz"]);
  await requestRequeue(state, ["s3://b/b.gz", "file:///x"]);
  assert.deepEqual(await takeRequeues(state), ["s3://b/a.gz", "s3://b/b.gz", "file:///x"]);
  assert.deepEqual(await takeRequeues(state), []);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  await Deno.remove(dir, { recursive: true });
});
