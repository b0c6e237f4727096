import assert from "node:assert/strict";
import { crc32 } from "../../packaging/crc32.ts";
import { zipFiles } from "../../packaging/zip_writer.ts";
import { ZipReader } from "../../packaging/zip_reader.ts";

const enc = new TextEncoder();

Deno.test("crc32() matches the standard check value", () => {
  assert.equal(crc32(enc.encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array()), 0);
});

Deno.test("zipFiles() round-trips through ZipReader with modes, deflated and stored", async () => {
  const big = enc.encode("line\n".repeat(10_000));
  const random = crypto.getRandomValues(new Uint8Array(4096)); // incompressible: stored
  const zip = await zipFiles([
    { name: "bootstrap", data: big, mode: 0o755 },
    { name: "dir/random.bin", data: random },
  ]);
  const r = new ZipReader(zip);
  assert.deepEqual(r.entries.map((e) => [e.name, e.method, e.mode]), [
    ["bootstrap", 8, 0o755],
    ["dir/random.bin", 0, 0o644],
  ]);
  assert.deepEqual(await r.read("bootstrap"), big);
  assert.deepEqual(await r.read("dir/random.bin"), random);
  await assert.rejects(r.read("nope"), /no entry "nope"/);
});

Deno.test("zipFiles() output passes `unzip -t` and keeps the executable bit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/t.zip`;
    await Deno.writeFile(
      path,
      await zipFiles([{ name: "bootstrap", data: enc.encode("#!/bin/sh\n"), mode: 0o755 }]),
    );
    const test = await new Deno.Command("unzip", { args: ["-t", path], stdout: "piped" }).output();
    assert.ok(test.success, "unzip -t failed (Debian package: unzip)");
    const list = await new Deno.Command("unzip", { args: ["-Z", path], stdout: "piped" }).output();
    assert.match(new TextDecoder().decode(list.stdout), /-rwxr-xr-x .* bootstrap/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ZipReader() rejects what is not a zip", () => {
  assert.throws(() => new ZipReader(enc.encode("not a zip at all, no EOCD here")), TypeError);
});
