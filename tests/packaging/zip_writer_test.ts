import assert from "node:assert/strict";
import { zipFiles } from "../../packaging/zip_writer.ts";
import { unzipEntry } from "../../packaging/zip_reader.ts";

const enc = new TextEncoder();

/** `unzip` (Debian package unzip) on a zip written to a scratch file. */
async function unzip(zip: Uint8Array, ...args: string[]) {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/t.zip`, zip);
    const out = await new Deno.Command("unzip", {
      args: [...args, `${dir}/t.zip`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { ok: out.success, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("zipFiles() round-trips through unzipEntry(), deflated and stored", () => {
  const big = enc.encode("line\n".repeat(10_000));
  const random = crypto.getRandomValues(new Uint8Array(4096)); // incompressible: stored
  const zip = zipFiles([
    { name: "bootstrap", data: big, mode: 0o755 },
    { name: "dir/random.bin", data: random },
  ]);
  assert.ok(zip.length < big.length / 10, "the repetitive file is deflated");
  assert.deepEqual(unzipEntry(zip, "bootstrap"), big);
  assert.deepEqual(unzipEntry(zip, "dir/random.bin"), random);
  assert.throws(() => unzipEntry(zip, "nope"), /no entry "nope"/);
});

Deno.test("zipFiles() output passes `unzip -t` with Unix modes, deflate and stored entries", async () => {
  const zip = zipFiles([
    { name: "bootstrap", data: enc.encode("#!/bin/sh\n".repeat(100)), mode: 0o755 },
    { name: "agent.yaml", data: crypto.getRandomValues(new Uint8Array(512)) },
  ]);
  const test = await unzip(zip, "-t");
  assert.ok(test.ok, test.text);
  assert.match(test.text, /No errors detected/);
  const list = await unzip(zip, "-Z");
  assert.match(list.text, /^-rwxr-xr-x .* unx .* defN .* bootstrap$/m);
  assert.match(list.text, /^-rw-r--r-- .* unx .* stor .* agent\.yaml$/m);
});

Deno.test("zipFiles() records each entry's CRC-32: `unzip -t` catches a changed byte", async () => {
  const data = crypto.getRandomValues(new Uint8Array(1000)); // stored: its bytes are in the zip
  const zip = zipFiles([{ name: "f", data }]);
  const head = data.subarray(0, 16).join();
  const start = zip.findIndex((_, i) => zip.subarray(i, i + 16).join() === head);
  assert.ok(start > 0);
  zip[start + 500] = zip[start + 500]! ^ 0xff;
  const test = await unzip(zip, "-t");
  assert.equal(test.ok, false);
  assert.match(test.text, /bad CRC/);
});

Deno.test("unzipEntry() rejects what is not a zip", () => {
  assert.throws(
    () => unzipEntry(enc.encode("not a zip at all, no EOCD here"), "x"),
    /not a readable zip archive/,
  );
});
