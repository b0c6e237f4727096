import assert from "node:assert/strict";
import { formatDuration, parseDuration, parseSize } from "../../mod/config/units.ts";

Deno.test("parseDuration() reads ms, s, m, h, d and compounds", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("15s"), 15_000);
  assert.equal(parseDuration("1m"), 60_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("2d"), 172_800_000);
  assert.equal(parseDuration(0), 0);
});

Deno.test("parseDuration() rejects numbers without a unit and junk", () => {
  assert.match(String(parseDuration(30)), /needs a unit/);
  assert.match(String(parseDuration("15 parsecs")), /must be a duration/);
  assert.match(String(parseDuration("")), /must be a duration/);
  assert.match(String(parseDuration("10x")), /must be a duration/);
});

Deno.test("parseSize() reads SI and IEC units and byte counts", () => {
  assert.equal(parseSize("1MiB"), 1_048_576);
  assert.equal(parseSize("10MB"), 10_000_000);
  assert.equal(parseSize("512KiB"), 524_288);
  assert.equal(parseSize(1048576), 1_048_576);
  assert.equal(parseSize("2GiB"), 2 * 1024 ** 3);
  assert.match(String(parseSize("1 parsec")), /must be a size/);
  assert.match(String(parseSize(-1)), /whole number/);
});

Deno.test("formatDuration() writes durations back", () => {
  assert.equal(formatDuration(90_000), "1m30s");
  assert.equal(formatDuration(500), "500ms");
  assert.equal(formatDuration(0), "0s");
});
