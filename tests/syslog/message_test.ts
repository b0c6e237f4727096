import assert from "node:assert/strict";
import { parseSeqTag, SyslogWriter } from "../../mod/syslog/message.ts";

const dec = new TextDecoder();
// RFC 3164 §4.1: <PRI> (0..191), TIMESTAMP "Mmm dd hh:mm:ss" (day space-padded), HOSTNAME, TAG[pid]: MSG.
// The HOSTNAME carries no domain (§4.1.2): no dot.
const RFC3164 =
  /^<(\d{1,3})>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ 1-3]\d) ([01]\d|2[0-3]):([0-5]\d):[0-5]\d ([!-\-/-~]+) ([!-~]{1,48})\[(\d+)\]: (.+) seq=(\d+):(\d+)$/;
// RFC 5424 §6: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG.
const RFC5424 =
  /^<(\d{1,3})>1 (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) ([!-~]{1,255}) ([!-~]{1,48}) (\d{1,128}) - - (.+) seq=(\d+):(\d+)$/;

Deno.test("SyslogWriter writes RFC 3164 messages: PRI in range, space-padded day, no newline, a tag", () => {
  const w = new SyslogWriter({ timeZone: "UTC" });
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
    assert.equal(m[10], "7");
    assert.equal(Number(m[11]), i);
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
    assert.match(m[3]!, /^[a-z]+-\d\d\.prod\.example\.net$/, "5424 keeps the FQDN");
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
  const a = new SyslogWriter({ seed: 9, timeZone: "UTC" });
  const b = new SyslogWriter({ seed: 9, timeZone: "UTC" });
  const x = new Uint8Array(512), y = new Uint8Array(512);
  const t = Date.UTC(2026, 0, 31, 23, 59, 59);
  const n = a.write(x, 0, 1, 1, t);
  assert.equal(b.write(y, 0, 1, 1, t), n);
  assert.deepEqual(x.subarray(0, n), y.subarray(0, n));
  const m = a.write(x, 0, 1, 2, t + 1000);
  assert.match(dec.decode(x.subarray(0, m)), /^<\d+>Feb {2}1 00:00:00 /);
});

Deno.test("SyslogWriter writes the RFC 3164 HOSTNAME without its domain (§4.1.2), 5424 the FQDN", () => {
  const buf = new Uint8Array(4096);
  const short = new Set<string>(), full = new Set<string>();
  const w3164 = new SyslogWriter({ seed: 5 }),
    w5424 = new SyslogWriter({ seed: 5, format: "rfc5424" });
  for (let i = 0; i < 500; i++) {
    const s = dec.decode(buf.subarray(0, w3164.write(buf, 0, 0, i, Date.now())));
    short.add(/ \d\d:\d\d:\d\d (\S+) /.exec(s)![1]!);
    full.add(dec.decode(buf.subarray(0, w5424.write(buf, 0, 0, i, Date.now()))).split(" ")[2]!);
  }
  for (const h of short) assert.match(h, /^[a-z]+-\d\d$/);
  for (const h of full) assert.match(h, /^[a-z]+-\d\d\.prod\.example\.net$/);
  assert.deepEqual([...short].sort(), [...full].map((h) => h.split(".")[0]).sort());
});

/** `Mmm dd hh:mm:ss` of `ms` in `timeZone` (by Intl, independently of the writer). */
function rfc3164Stamp(ms: number, timeZone: string): string {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone,
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    }).formatToParts(ms).map((x) => [x.type, x.value]),
  );
  return `${p.month} ${p.day!.padStart(2, " ")} ${p.hour}:${p.minute}:${p.second}`;
}

Deno.test("SyslogWriter writes the RFC 3164 TIMESTAMP in the time zone asked: an IANA name, or UTC", () => {
  const buf = new Uint8Array(4096);
  const t = Date.UTC(2026, 11, 31, 20, 15, 7); // Dec 31 20:15:07 UTC = Jan  1 01:45:07 in Kolkata
  for (
    const [zone, stamp] of [
      ["Asia/Kolkata", "Jan  1 01:45:07"],
      ["UTC", "Dec 31 20:15:07"],
      ["America/New_York", "Dec 31 15:15:07"],
    ] as const
  ) {
    const w = new SyslogWriter({ timeZone: zone });
    const s = dec.decode(buf.subarray(0, w.write(buf, 0, 0, 0, t)));
    assert.equal(s.slice(s.indexOf(">") + 1, s.indexOf(">") + 16), stamp, zone);
    assert.equal(rfc3164Stamp(t, zone), stamp);
  }
});

Deno.test("SyslogWriter rejects an unknown time zone with the name", () => {
  assert.throws(
    () => new SyslogWriter({ timeZone: "Mars/Olympus" }),
    (e: Error) => e instanceof RangeError && /Mars\/Olympus/.test(e.message),
  );
});

Deno.test("SyslogWriter writes the RFC 3164 TIMESTAMP in the host's local time by default (TZ=Asia/Kolkata)", async () => {
  // A child process with TZ set, as a host in India runs it.
  const t = Date.UTC(2026, 5, 15, 22, 40, 9);
  const code = `import { SyslogWriter } from "${new URL(
    "../../mod/syslog/message.ts",
    import.meta.url,
  )}";
    const b = new Uint8Array(4096);
    const w = new SyslogWriter();
    console.log(new TextDecoder().decode(b.subarray(0, w.write(b, 0, 0, 0, ${t}))));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    env: { TZ: "Asia/Kolkata" },
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const s = dec.decode(out.stdout).trim();
  assert.match(s, /^<\d+>Jun 16 04:10:09 /, s); // 22:40:09 UTC + 5:30
  assert.equal(rfc3164Stamp(t, "Asia/Kolkata"), "Jun 16 04:10:09");
});
