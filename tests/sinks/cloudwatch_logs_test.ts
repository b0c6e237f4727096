// CloudWatchLogsSink against moto's CloudWatch Logs and STS, through a recording proxy
// (tests/sinks/_aws_proxy.ts) that shows each PutLogEvents and AssumeRole call and can throttle.
import assert from "node:assert/strict";
import {
  type CloudWatchLogsClient,
  CreateLogGroupCommand,
  GetLogEventsCommand,
  type OutputLogEvent,
} from "@aws-sdk/client-cloudwatch-logs";
import { Logger } from "../../mod/log/logger.ts";
import { Registry } from "../../mod/metrics/registry.ts";
import { BatchError, SinkError } from "../../mod/pipeline/types.ts";
import { AssumedRoles } from "../../mod/sinks/assumed_roles.ts";
import {
  type CloudWatchEvent,
  CloudWatchLogsSink,
  type CloudWatchLogsSinkOptions,
  type CloudWatchTarget,
  utf8Length,
} from "../../mod/sinks/cloudwatch_logs.ts";
import { logsClient, serviceTest, uniqueName } from "../services/mod.ts";
import { startAwsProxy } from "./_aws_proxy.ts";

const quiet = new Logger({ write: () => {} });
const fast = { initial_backoff: 1, max_backoff: 5, max_retries: 5 };

function makeSink(url: string, extra: Partial<CloudWatchLogsSinkOptions> = {}) {
  const metrics = new Registry();
  const aws = { region: "us-east-1", endpoint: url };
  const roles = new AssumedRoles({ aws, retry: fast });
  const sink = new CloudWatchLogsSink({
    aws,
    roles,
    metrics,
    log: quiet,
    retry: fast,
    ...extra,
  });
  return { sink, metrics };
}

function events(target: CloudWatchTarget, n: number, at: (i: number) => number, size = 0) {
  return Array.from({ length: n }, (_, i): CloudWatchEvent => {
    const message = `event ${i} `.padEnd(size, "x");
    return { target, timestamp: at(i), message, bytes: utf8Length(message) };
  });
}

async function readBack(
  client: CloudWatchLogsClient,
  group: string,
  stream: string,
): Promise<OutputLogEvent[]> {
  const out: OutputLogEvent[] = [];
  let token: string | undefined;
  for (;;) {
    const page = await client.send(
      new GetLogEventsCommand({
        logGroupName: group,
        logStreamName: stream,
        startFromHead: true,
        limit: 10_000,
        ...(token && { nextToken: token }),
      }),
    );
    out.push(...page.events ?? []);
    if (!page.events?.length || page.nextForwardToken === token) return out;
    token = page.nextForwardToken;
  }
}

const putSizes = (calls: { body: string }[]) =>
  calls.map((c) => (JSON.parse(c.body) as { logEvents: unknown[] }).logEvents.length);

const target = (group: string, extra: Partial<CloudWatchTarget> = {}): CloudWatchTarget => ({
  key: `${group}|pod-1|${extra.roleArn ?? ""}`,
  logGroup: group,
  logStream: "pod-1",
  ...extra,
});

serviceTest(
  "CloudWatchLogsSink() sends 25,000 events as 10,000 + 10,000 + 5,000, all read back in order",
  ["aws"],
  async () => {
    const proxy = startAwsProxy();
    try {
      const { sink } = makeSink(proxy.url);
      const t = target(uniqueName("/test/split"));
      const base = Date.now() - 3600_000;
      // Handed over out of order: the sink sorts.
      const evs = events(t, 25_000, (i) => base + i).reverse();
      await sink.write({ items: evs, bytes: 0 }, new AbortController().signal);
      const puts = proxy.of("PutLogEvents").filter((c) => c.status === 200);
      assert.deepEqual(putSizes(puts), [10_000, 10_000, 5_000]);
      const back = await readBack(logsClient(), t.logGroup, t.logStream);
      assert.equal(back.length, 25_000);
      assert.deepEqual(
        back.map((e) => e.message),
        Array.from({ length: 25_000 }, (_, i) => `event ${i} `),
      );
      await sink.close();
    } finally {
      await proxy.close();
    }
  },
);

serviceTest("CloudWatchLogsSink() keeps each request within 1,048,576 bytes", ["aws"], async () => {
  const proxy = startAwsProxy();
  try {
    const { sink } = makeSink(proxy.url);
    const t = target(uniqueName("/test/bytes"));
    const base = Date.now() - 60_000;
    await sink.write(
      { items: events(t, 25, (i) => base + i, 100_000), bytes: 0 },
      new AbortController().signal,
    );
    const puts = proxy.of("PutLogEvents").filter((c) => c.status === 200);
    assert.deepEqual(putSizes(puts), [10, 10, 5]);
    for (const p of puts) {
      const { logEvents } = JSON.parse(p.body) as { logEvents: { message: string }[] };
      const size = logEvents.reduce((n, e) => n + utf8Length(e.message) + 26, 0);
      assert.ok(size <= 1_048_576, `request of ${size} bytes`);
    }
    const back = await readBack(logsClient(), t.logGroup, t.logStream);
    assert.deepEqual(
      back.map((e) => e.message!.replace(/ x+$/, "")),
      Array.from({ length: 25 }, (_, i) => `event ${i}`),
    );
    await sink.close();
  } finally {
    await proxy.close();
  }
});

serviceTest("CloudWatchLogsSink() splits a batch spanning 3 days into 24-hour requests", [
  "aws",
], async () => {
  const proxy = startAwsProxy();
  try {
    const { sink } = makeSink(proxy.url);
    const t = target(uniqueName("/test/span"));
    const start = Date.now() - 5 * 86_400_000;
    const hour = 3600_000;
    // One event every 2 hours over 72 hours, shuffled.
    const evs = events(t, 36, (i) => start + i * 2 * hour);
    const shuffled = evs.toSorted(() => Math.random() - 0.5);
    await sink.write({ items: shuffled, bytes: 0 }, new AbortController().signal);
    const puts = proxy.of("PutLogEvents").filter((c) => c.status === 200);
    assert.deepEqual(putSizes(puts), [12, 12, 12]);
    for (const p of puts) {
      const ts = (JSON.parse(p.body) as { logEvents: { timestamp: number }[] }).logEvents.map((
        e,
      ) => e.timestamp);
      assert.ok(ts.at(-1)! - ts[0]! < 24 * hour, "span under 24 h");
      assert.deepEqual(ts, ts.toSorted((a, b) => a - b), "chronological");
    }
    const back = await readBack(logsClient(), t.logGroup, t.logStream);
    assert.deepEqual(back.map((e) => e.message), evs.map((e) => e.message));
    await sink.close();
  } finally {
    await proxy.close();
  }
});

serviceTest(
  "CloudWatchLogsSink() reports too-old, too-new and empty events and the service's rejections in a BatchError",
  ["aws"],
  async () => {
    const proxy = startAwsProxy();
    try {
      const day = 86_400_000;
      const real = Date.now();
      // The sink's clock runs an hour behind: an event 14 days + 30 min old passes its own check
      // and is refused by the service (moto applies the same 14-day rule) via rejectedLogEventsInfo.
      const { sink } = makeSink(proxy.url, { now: () => real - 3600_000 });
      const t = target(uniqueName("/test/old"));
      const items: CloudWatchEvent[] = [
        { target: t, timestamp: real - 20 * day, message: "way too old", bytes: 11 },
        {
          target: t,
          timestamp: real - 14 * day - 1800_000,
          message: "service says old",
          bytes: 16,
        },
        { target: t, timestamp: real - 60_000, message: "fine", bytes: 4 },
        { target: t, timestamp: real + 3 * 3600_000, message: "too new", bytes: 7 },
        { target: t, timestamp: real, message: "", bytes: 0 },
      ];
      const e = await sink.write({ items, bytes: 0 }, new AbortController().signal)
        .then(() => undefined, (e) => e);
      const puts = proxy.of("PutLogEvents").filter((c) => c.status === 200);
      // Only the two plausible events were sent; 14 days apart, in two requests.
      assert.deepEqual(putSizes(puts), [1, 1]);
      assert.ok(e instanceof BatchError, String(e));
      assert.equal(e.retryable, false);
      assert.deepEqual(
        e.failed.map((f) => [f.index, f.reason]).toSorted((a, b) => Number(a[0]) - Number(b[0])),
        [[0, "too_old"], [1, "too_old"], [3, "too_new"], [4, "empty"]],
      );
      assert.match(e.failed.find((f) => f.index === 1)!.message ?? "", /rejected/);
      const back = await readBack(logsClient(), t.logGroup, t.logStream);
      assert.deepEqual(back.map((e) => e.message), ["fine"]);
      await sink.close();
    } finally {
      await proxy.close();
    }
  },
);

serviceTest("CloudWatchLogsSink() retries throttled PutLogEvents with backoff", [
  "aws",
], async () => {
  // moto does not throttle: the proxy answers the first two PutLogEvents like AWS does.
  const proxy = startAwsProxy({
    fail: (c, n) =>
      c.action === "PutLogEvents" && n <= 3 ? { type: "ThrottlingException" } : undefined,
  });
  try {
    const { sink, metrics } = makeSink(proxy.url);
    const t = target(uniqueName("/test/throttle"));
    await sink.write(
      { items: events(t, 5, (i) => Date.now() - 1000 + i), bytes: 0 },
      new AbortController().signal,
    );
    const puts = proxy.of("PutLogEvents");
    // 3 throttled, then ResourceNotFound (the group is created), then accepted.
    assert.deepEqual(puts.map((c) => c.status), [400, 400, 400, 400, 200]);
    assert.equal(
      metrics.counter("cloudwatch_logs_retries_total", "").get({ reason: "throttled" }),
      3,
    );
    assert.equal((await readBack(logsClient(), t.logGroup, t.logStream)).length, 5);
    await sink.close();
  } finally {
    await proxy.close();
  }
});

serviceTest("CloudWatchLogsSink() gives up after max_retries with a retryable SinkError", [
  "aws",
], async () => {
  const proxy = startAwsProxy({
    fail: (c) =>
      c.action === "PutLogEvents"
        ? { type: "ServiceUnavailableException", status: 503 }
        : undefined,
  });
  try {
    const { sink } = makeSink(proxy.url, {
      retry: { initial_backoff: 1, max_backoff: 2, max_retries: 2 },
    });
    const t = target(uniqueName("/test/down"));
    const e = await sink.write(
      { items: events(t, 3, () => Date.now()), bytes: 0 },
      new AbortController().signal,
    ).then(() => undefined, (e) => e);
    assert.equal(proxy.of("PutLogEvents").length, 3);
    assert.ok(e instanceof SinkError && !(e instanceof BatchError), String(e));
    assert.equal(e.retryable, true);
    assert.match(e.message, /PutLogEvents to .* failed/);
    await sink.close();
  } finally {
    await proxy.close();
  }
});

serviceTest(
  "CloudWatchLogsSink() names the events of a stream that fails for good (missing group, create off) in a BatchError; the other stream is delivered",
  ["aws"],
  async () => {
    const proxy = startAwsProxy();
    try {
      const { sink } = makeSink(proxy.url, { createLogGroup: false });
      const missing = target(uniqueName("/test/nogroup"));
      const group = uniqueName("/test/exists");
      await logsClient().send(new CreateLogGroupCommand({ logGroupName: group }));
      const present = target(group);
      const [m0, m1] = events(missing, 2, () => Date.now());
      const [p0] = events(present, 1, () => Date.now());
      const e = await sink.write({ items: [m0!, p0!, m1!], bytes: 0 }, new AbortController().signal)
        .then(() => undefined, (e) => e);
      assert.ok(e instanceof BatchError, String(e));
      assert.deepEqual(e.failed.map((f) => [f.index, f.reason]), [
        [0, "missing_log_group"],
        [2, "missing_log_group"],
      ]);
      assert.match(e.failed[0]!.message ?? "", /create_log_group is off/);
      assert.equal(proxy.of("CreateLogGroup").length, 0);
      assert.deepEqual((await readBack(logsClient(), group, "pod-1")).map((e) => e.message), [
        p0!.message,
      ]);
      await sink.close();
    } finally {
      await proxy.close();
    }
  },
);

serviceTest(
  "CloudWatchLogsSink() reaches a tenant role in two STS hops with ExternalId, credentials cached",
  ["aws"],
  async () => {
    const proxy = startAwsProxy();
    try {
      const metrics = new Registry();
      const aws = { region: "us-east-1", endpoint: proxy.url };
      const roles = new AssumedRoles({
        aws,
        centralRoleArn: "arn:aws:iam::111111111111:role/central",
        retry: fast,
      });
      const sink = new CloudWatchLogsSink({ aws, roles, metrics, log: quiet, retry: fast });
      const t = target(uniqueName("/tenant/logs"), {
        roleArn: "arn:aws:iam::222222222222:role/tenant-logs",
      });
      for (let i = 0; i < 3; i++) {
        await sink.write(
          { items: events(t, 2, () => Date.now()), bytes: 0 },
          new AbortController().signal,
        );
      }
      const assumes = proxy.of("AssumeRole");
      assert.equal(assumes.length, 2, "two hops, once: later writes use cached credentials");
      const [hop1, hop2] = assumes.map((c) => new URLSearchParams(c.body));
      assert.equal(hop1!.get("RoleArn"), "arn:aws:iam::111111111111:role/central");
      assert.equal(assumes[0]!.accessKeyId, "test", "first hop with the agent's credentials");
      assert.equal(hop2!.get("RoleArn"), "arn:aws:iam::222222222222:role/tenant-logs");
      assert.equal(
        hop2!.get("ExternalId"),
        "111111111111",
        "ExternalId defaults to the central account",
      );
      assert.notEqual(
        assumes[1]!.accessKeyId,
        "test",
        "second hop with the central role's credentials",
      );
      const put = proxy.of("PutLogEvents").at(-1)!;
      assert.ok(![assumes[0]!.accessKeyId, assumes[1]!.accessKeyId].includes(put.accessKeyId));
      assert.equal(roles.calls, 2);
      // moto keeps each account apart: the events are in the tenant's account, not ours.
      const tenant = await roles.tenant(t.roleArn!, "111111111111");
      const { CloudWatchLogsClient } = await import("@aws-sdk/client-cloudwatch-logs");
      const asTenant = new CloudWatchLogsClient({ ...aws, credentials: tenant });
      assert.equal((await readBack(asTenant, t.logGroup, t.logStream)).length, 6);
      await assert.rejects(readBack(logsClient(), t.logGroup, t.logStream));
      await sink.close();
    } finally {
      await proxy.close();
    }
  },
);

serviceTest("CloudWatchLogsSink() creates a missing log stream in an existing group", [
  "aws",
], async () => {
  const proxy = startAwsProxy();
  try {
    const group = uniqueName("/test/existing");
    await logsClient().send(new CreateLogGroupCommand({ logGroupName: group }));
    const { sink } = makeSink(proxy.url);
    await sink.write(
      { items: events(target(group), 1, () => Date.now()), bytes: 0 },
      new AbortController().signal,
    );
    assert.deepEqual(proxy.calls.map((c) => `${c.action} ${c.status}`), [
      "PutLogEvents 400",
      "CreateLogStream 200",
      "PutLogEvents 200",
    ]);
    await sink.close();
  } finally {
    await proxy.close();
  }
});

serviceTest(
  "CloudWatchLogsSink() marks a failing stream's events retryable in a BatchError while the other stream is delivered",
  ["aws"],
  async () => {
    const down = uniqueName("/test/down");
    const proxy = startAwsProxy({
      fail: (c) =>
        c.action === "PutLogEvents" && c.body.includes(down)
          ? { type: "ServiceUnavailableException", status: 503 }
          : undefined,
    });
    try {
      const { sink } = makeSink(proxy.url, {
        retry: { initial_backoff: 1, max_backoff: 2, max_retries: 1 },
      });
      const failing = target(down);
      const fine = target(uniqueName("/test/up"));
      const [d0, d1] = events(failing, 2, () => Date.now());
      const [f0] = events(fine, 1, () => Date.now());
      const e = await sink.write({ items: [d0!, f0!, d1!], bytes: 0 }, new AbortController().signal)
        .then(() => undefined, (e) => e);
      assert.ok(e instanceof BatchError, String(e));
      assert.deepEqual(e.failed.map((f) => [f.index, f.reason, f.retryable]), [
        [0, "retryable", true],
        [2, "retryable", true],
      ]);
      assert.match(e.message, /1 of 2 streams failing/);
      assert.deepEqual(
        (await readBack(logsClient(), fine.logGroup, "pod-1")).map((e) => e.message),
        [f0!.message],
      );
      await sink.close();
    } finally {
      await proxy.close();
    }
  },
);
