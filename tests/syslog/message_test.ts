import assert from "node:assert/strict";
import { parseSeqTag, SyslogWriter } from "../../mod/syslog/message.ts";

const dec = new TextDecoder();
// RFC 3164 §4.1: <PRI> (0..191), TIMESTAMP "Mmm dd hh:mm:ss" (day space-padded), HOSTNAME, TAG[pid]: MSG.
const RFC3164 =
  /^<(\d{1,3})>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ 1-3]\d) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d ([!-~]+) ([!-~]{1,48})\[(\d+)\]: (.+) seq=(\d+):(\d+)$/;
// RFC 5424 §6: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG.
const RFC5424 =
  /^<(\d{1,3})>1 (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) ([!-~]{1,255}) ([!-~]{1,48}) (\d{1,128}) - - (.+) seq=(\d+):(\d+)$/;

Deno.test("SyslogWriter writes RFC 3164 messages: PRI in range, space-padded day, no newline, a tag", () => {
  const w = new SyslogWriter();
  const buf = new Uint8Array(4096);
  const t = Date.UTC(2026, 10, 3, 4, 5, 6); // Nov  3 04:05:06
  const pris = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const n = w.write(buf, 0, 7, i, t);
    const s = dec.decode(buf.subarray(0, n));
    const m = RFC3164.exec(s);
    assert.ok(m, s);
    const pri = Number(m[1]);
    assert.ok(pri >= 0 && pri <= 191, s);
    pris.add(pri);
    assert.equal(m[2], "Nov");
    assert.equal(m[3], " 3");
    assert.equal(`${m[4]}`, "04");
    assert.equal(m[9], "7");
    assert.equal(Number(m[10]), i);
    assert.ok(!s.includes("\n") && !s.includes("\r"));
  }
  assert.ok(pris.size >= 10, `variety of facilities/severities: ${pris.size}`);
});

Deno.test("SyslogWriter writes RFC 5424 messages", () => {
  const w = new SyslogWriter({ format: "rfc5424" });
  const buf = new Uint8Array(4096);
  for (let i = 0; i < 500; i++) {
    const n = w.write(buf, 0, 0, i * 1000003, Date.UTC(2026, 10, 23, 1, 2, 3, 456));
    const s = dec.decode(buf.subarray(0, n));
    const m = RFC5424.exec(s);
    assert.ok(m, s);
    assert.ok(Number(m[1]) <= 191);
    assert.equal(m[2], "2026-11-23T01:02:03.000Z");
    assert.equal(Number(m[8]), i * 1000003);
  }
});

Deno.test("SyslogWriter pads or cuts to message_size exactly, tag kept", () => {
  for (const size of [120, 300, 1400]) {
    const w = new SyslogWriter({ messageSize: size });
    const buf = new Uint8Array(2048);
    for (let i = 0; i < 300; i++) {
      const n = w.write(buf, 10, 12, 99999 + i, Date.now());
      assert.equal(n, size);
      const out: [number, number] = [0, 0];
      assert.ok(parseSeqTag(buf, 10, n, new TextEncoder().encode("seq="), out));
      assert.deepEqual(out, [12, 99999 + i]);
    }
  }
});

Deno.test("SyslogWriter with a message_size below header and tag stays within maxLength", () => {
  for (const format of ["rfc3164", "rfc5424"] as const) {
    const w = new SyslogWriter({ format, messageSize: 20 });
    const buf = new Uint8Array(w.maxLength);
    for (let i = 0; i < 300; i++) {
      const n = w.write(buf, 0, 255, Number.MAX_SAFE_INTEGER - i, Date.now());
      assert.ok(n > 20 && n <= w.maxLength, `${n} of ${w.maxLength}`);
      assert.match(dec.decode(buf.subarray(0, n)), /: seq=255:\d+$| - - seq=255:\d+$/);
    }
  }
});

Deno.test("parseSeqTag() takes a custom prefix, ignores a trailing newline, rejects untagged text", () => {
  const e = new TextEncoder();
  const out: [number, number] = [0, 0];
  const msg = e.encode("<13>Nov 23 01:02:03 h app: hi id#4:17\n");
  assert.ok(parseSeqTag(msg, 0, msg.length, e.encode("id#"), out));
  assert.deepEqual(out, [4, 17]);
  for (const s of ["<13>no tag", "seq=:5", "seq=3:", "xseq=3"]) {
    const b = e.encode(s);
    assert.equal(parseSeqTag(b, 0, b.length, e.encode("seq="), out), false, s);
  }
});

Deno.test("SyslogWriter with the same seed writes the same messages; timestamps follow the clock", () => {
  const a = new SyslogWriter({ seed: 9 }), b = new SyslogWriter({ seed: 9 });
  const x = new Uint8Array(512), y = new Uint8Array(512);
  const t = Date.UTC(2026, 0, 31, 23, 59, 59);
  const n = a.write(x, 0, 1, 1, t);
  assert.equal(b.write(y, 0, 1, 1, t), n);
  assert.deepEqual(x.subarray(0, n), y.subarray(0, n));
  const m = a.write(x, 0, 1, 2, t + 1000);
  assert.match(dec.decode(x.subarray(0, m)), /^<\d+>Feb {2}1 00:00:00 /);
});
