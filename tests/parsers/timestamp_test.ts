import assert from "node:assert/strict";
import { extractTimestamp, toEpochMs } from "../../mod/parsers/timestamp.ts";
import { JsonRecordsParser } from "../../mod/parsers/json_records.ts";
import { parseText, testdata } from "./_util.ts";

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

Deno.test("toEpochMs() reads RFC 3339 strings", () => {
  assert.equal(toEpochMs("2024-05-01T12:00:00Z"), T0);
  assert.equal(toEpochMs("2024-05-01T12:00:00.123456789Z"), T0 + 123);
  assert.equal(toEpochMs("2024-05-01T14:00:00.5+02:00"), T0 + 500);
  assert.equal(toEpochMs("2024-05-01T06:30:00-05:30"), T0);
  assert.equal(toEpochMs("2024-05-01 12:00:00z"), T0);
  assert.equal(toEpochMs(" 2024-05-01t12:00:00,25Z "), T0 + 250);
  assert.equal(toEpochMs("2024-05-01T12:00:00"), undefined); // no zone
  assert.equal(toEpochMs("2024-02-30T12:00:00Z"), undefined);
  assert.equal(toEpochMs("2023-02-29T00:00:00Z"), undefined);
  assert.equal(toEpochMs("2024-02-29T00:00:00Z"), Date.UTC(2024, 1, 29));
  assert.equal(toEpochMs("2024-05-01T24:00:00Z"), undefined);
  assert.equal(toEpochMs("2024-05-01T12:00:00+25:00"), undefined);
  assert.equal(toEpochMs("0001-01-01T00:00:00Z"), -62135596800000);
  assert.equal(toEpochMs("yesterday"), undefined);
});

Deno.test("toEpochMs() decides the epoch unit by magnitude", () => {
  assert.equal(toEpochMs(1714564800), T0);
  assert.equal(toEpochMs(1714564800.123), T0 + 123);
  assert.equal(toEpochMs(1714564800123), T0 + 123);
  assert.equal(toEpochMs(1714564800123456), T0 + 123);
  assert.equal(toEpochMs(1714564800123456789), T0 + 123);
  assert.equal(toEpochMs("1714564800"), T0);
  assert.equal(toEpochMs("1714564800.5"), T0 + 500);
  assert.equal(toEpochMs("1714564800123"), T0 + 123);
  assert.equal(toEpochMs(0), 0);
  assert.equal(toEpochMs(99_999_999_999), 99_999_999_999_000); // still seconds below 1e11
  assert.equal(toEpochMs(100_000_000_000), 100_000_000_000); // milliseconds from 1e11
  assert.equal(toEpochMs(Number.NaN), undefined);
  assert.equal(toEpochMs("12abc"), undefined);
  assert.equal(toEpochMs(new Date(T0)), T0);
  assert.equal(toEpochMs(true), undefined);
});

Deno.test("extractTimestamp() takes timestamp, @timestamp, time, ts, then the fallback", () => {
  assert.equal(
    extractTimestamp({ timestamp: "2024-05-01T12:00:00Z", "@timestamp": 1, time: 2, ts: 3 }),
    T0,
  );
  assert.equal(extractTimestamp({ "@timestamp": "2024-05-01T12:00:00Z", time: 2 }), T0);
  assert.equal(extractTimestamp({ time: 1714564800, ts: 5 }), T0);
  assert.equal(extractTimestamp({ ts: "1714564800000" }), T0);
  // an unreadable field gives way to the next one
  assert.equal(extractTimestamp({ timestamp: "soon", ts: 1714564800 }), T0);
  assert.equal(extractTimestamp({ timestamp: null, message: "x" }, T0 - 1), T0 - 1);
  assert.equal(extractTimestamp({ message: "x" }, new Date(T0)), T0);
  assert.equal(extractTimestamp({ message: "x" }), undefined);
});

Deno.test("extractTimestamp() on the NDJSON sample", () => {
  const lastModified = new Date("2024-05-01T13:00:00Z");
  const times = parseText(new JsonRecordsParser(), testdata("k8s_app.ndjson"))
    .slice(0, 5)
    .map((r) => extractTimestamp(r, lastModified));
  assert.deepEqual(times, [T0 + 123, T0 + 1000, T0 + 2000, T0 + 3500, lastModified.getTime()]);
});
