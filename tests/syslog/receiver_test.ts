import assert from "node:assert/strict";
import { readFrames } from "../../mod/syslog/receiver.ts";

Deno.test("readFrames() takes RFC 6587 octet-counted and LF-delimited frames cut anywhere", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const msgs = ["<13>1 2026-11-23T01:02:03.000Z h a 1 - - hello seq=0:0", "<14>Nov 23 x: two"];
  const wire = new TextEncoder().encode(
    `${msgs[0]!.length} ${msgs[0]}` + `${msgs[1]!.length} ${msgs[1]}` + "plain line one\n" +
      `${new TextEncoder().encode("é").length} é` + "last\n",
  );
  const got: string[] = [];
  const reading = (async () => {
    const conn = await l.accept();
    await readFrames(
      conn,
      (buf, at, len) => got.push(new TextDecoder().decode(buf.subarray(at, at + len))),
    );
  })();
  const c = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
  // One byte at a time at first (lengths and frames split), then the rest.
  for (let i = 0; i < 40; i++) {
    await c.write(wire.subarray(i, i + 1));
    await new Promise((r) => setTimeout(r, 1));
  }
  await c.write(wire.subarray(40));
  c.close();
  await reading;
  l.close();
  // Octet counts are bytes ("é" is two), not characters.
  assert.deepEqual(got, [msgs[0], msgs[1], "plain line one", "é", "last"]);
});
