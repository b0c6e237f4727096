import assert from "node:assert/strict";
import { parseS3Event } from "../../mod/sources/s3_sqs.ts";

const event = {
  Records: [{
    eventName: "ObjectCreated:Put",
    eventTime: "2025-10-12T21:41:32.000Z",
    s3: { bucket: { name: "logs" }, object: { key: "feed/Threat+Team+-+Web/a%2Bb.gz", size: 42 } },
  }],
};

Deno.test("parseS3Event() reads a direct S3 event, URL-decoding the key", () => {
  assert.deepEqual(parseS3Event(JSON.stringify(event)), {
    kind: "objects",
    objects: [{
      bucket: "logs",
      key: "feed/Threat Team - Web/a+b.gz",
      size: 42,
      time: 1760305292000,
    }],
  });
});

Deno.test("parseS3Event() unwraps an SNS notification", () => {
  const sns = { Type: "Notification", Message: JSON.stringify(event) };
  const out = parseS3Event(JSON.stringify(sns));
  assert.equal(out.kind, "objects");
});

Deno.test("parseS3Event() recognises the test event and malformed bodies", () => {
  assert.deepEqual(parseS3Event('{"Event":"s3:TestEvent"}'), { kind: "test" });
  assert.equal(parseS3Event("nope").kind, "malformed");
  assert.match((parseS3Event('{"foo":1}') as { reason: string }).reason, /no Records array/);
  assert.match(
    (parseS3Event('{"Records":[{"s3":{}}]}') as { reason: string }).reason,
    /Records\[0\] has no s3\.bucket\.name/,
  );
});

Deno.test("parseS3Event() skips records that are not ObjectCreated", () => {
  const del = { Records: [{ ...event.Records[0], eventName: "ObjectRemoved:Delete" }] };
  assert.deepEqual(parseS3Event(JSON.stringify(del)), { kind: "objects", objects: [] });
});
