import assert from "node:assert/strict";
import { agentCommand } from "../_agent.ts";
import zlib from "node:zlib";
import { parseValue } from "../../mod/config/spec.ts";
import { Logger } from "../../mod/log/logger.ts";
import { ingestMode } from "../../mod/modes/ingest.ts";
import {
  blobServiceClient,
  endpoints,
  freshContainer,
  freshTopic,
  kafka,
  produceTo,
  serviceTest,
  uniqueName,
} from "../services/mod.ts";
import { readTopic, topicCount, waitForCount } from "../sinks/_kafka_topic.ts";
import { modeContext } from "./_context.ts";

const dec = new TextDecoder();
const member = (lines: string[]) => new Uint8Array(zlib.gzipSync(lines.join("\n") + "\n"));
const lines = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => `{"m":"${tag}","i":${i}}`);
const BLOB = "kubernetes/20250606.orders-7d9f8b6c5-x2kqp_shop_app-1a2b3c4d5e6f7a8b.gz";

/** A fresh container with an empty append blob named `name`. */
async function appendBlob(name = BLOB) {
  const container = await freshContainer();
  const blob = blobServiceClient().getContainerClient(container).getAppendBlobClient(name);
  await blob.create();
  const append = async (...parts: Uint8Array[]) => {
    for (const p of parts) await blob.appendBlock(p, p.length);
  };
  return { container, append };
}

/** Run main.ts (the agent's permission set) with `args` and `env`. */
function agent(args: string[], env: Record<string, string> = {}) {
  return agentCommand(args, { env, stdout: "piped", stderr: "piped" });
}

const storage = () => ({ connection_string: endpoints.azuriteConnectionString });

serviceTest(
  "ingest: 3 members from 0, then 2 more plus a partial one, then its rest: each line once, in order",
  ["azurite", "kafka"],
  async () => {
    const { container, append } = await appendBlob();
    const [topic, completion] = [await freshTopic(), await freshTopic()];
    const dir = await Deno.makeTempDir();
    const config = parseValue(ingestMode.spec, {
      kafka: { brokers: endpoints.kafka, topic },
      completion_topic: completion,
      storage_account: storage(),
      subscription: "cp2",
      environment: "P1",
      container,
      blob: BLOB,
      state_file: `${dir}/offsets.json`,
      flush_interval: "5ms",
    });
    const run = async () => assert.equal(await ingestMode.run(modeContext(config, dir)), 0);
    const offset = async () =>
      JSON.parse(await Deno.readTextFile(`${dir}/offsets.json`)).state.blobs[
        `cp2/P1/${container}/${BLOB}`
      ].offset;

    const m = [lines("a", 3), lines("b", 4), lines("c", 2)].map(member);
    await append(...m);
    await run();
    const first = await readTopic(topic);
    assert.deepEqual(first.map((x) => x.value), [
      ...lines("a", 3),
      ...lines("b", 4),
      ...lines("c", 2),
    ]);
    assert.deepEqual(first[0]!.headers, {
      subscription: "cp2",
      environment: "P1",
      blob: BLOB,
      service: "orders",
      member_offset: "0",
    });
    // Each line names the member it came from.
    assert.deepEqual(
      first.map((x) => Number(x.headers.member_offset)),
      [0, 0, 0, ...Array(4).fill(m[0]!.length), ...Array(2).fill(m[0]!.length + m[1]!.length)],
    );
    assert.equal(first[0]!.key, BLOB);
    const size3 = m.reduce((n, x) => n + x.length, 0);
    assert.equal(await offset(), size3);

    // Two complete members and half of a third: only the complete ones now.
    const more = [member(lines("d", 2)), member(lines("e", 3))];
    const partial = member(lines("f", 5));
    const cut = Math.floor(partial.length / 2);
    await append(...more, partial.subarray(0, cut));
    await run();
    const second = await readTopic(topic);
    assert.deepEqual(second.slice(9).map((x) => x.value), [...lines("d", 2), ...lines("e", 3)]);
    assert.equal(second[9]!.headers.member_offset, String(size3));
    assert.equal(second[11]!.headers.member_offset, String(size3 + more[0]!.length));
    const size5 = size3 + more[0]!.length + more[1]!.length;
    assert.equal(await offset(), size5);

    // The partial member completes: its lines come once.
    await append(partial.subarray(cut));
    await run();
    const third = await readTopic(topic);
    assert.deepEqual(third.slice(14).map((x) => x.value), lines("f", 5));
    assert.equal(third.length, 19);
    assert.equal(await offset(), size5 + partial.length);

    const events = (await readTopic(completion)).map((x) => ({
      key: x.key,
      ...JSON.parse(x.value),
    }));
    assert.deepEqual(events.map((e) => [e.start_offset, e.end_offset, e.lines]), [
      [0, size3, 9],
      [size3, size5, 5],
      [size5, size5 + partial.length, 5],
    ]);
    const { at, ...e0 } = events[0];
    assert.ok(Date.parse(at) > 0);
    const lineBytes = first.slice(0, 9).reduce((n, x) => n + x.value.length, 0);
    assert.ok(e0.message_bytes > lineBytes, "lines plus keys and headers");
    assert.deepEqual(e0, {
      key: BLOB,
      type: "BlobIngested",
      subscription: "cp2",
      environment: "P1",
      blob: BLOB,
      service: "orders",
      container,
      start_offset: 0,
      end_offset: size3,
      size: size3,
      lines: 9,
      bytes: size3,
      message_bytes: e0.message_bytes,
      skipped_bytes: 0,
      skipped: [],
      closed: false,
    });
    assert.equal(events[1].size, size5 + cut, "size at the pass includes the partial member");
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest(
  "ingest one-shot from the reference's environment variables; START_OFFSET at a member boundary",
  ["azurite", "kafka"],
  async () => {
    const { container, append } = await appendBlob();
    const m = [member(lines("skip", 3)), member(lines("keep", 4))];
    await append(...m);
    const topic = await freshTopic();
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(
      `${dir}/agent.yaml`,
      `status: {enabled: false}\ningest: {state_file: ${dir}/o.json}\n`,
    );
    const out = await agent(["ingest", "--config", `${dir}/agent.yaml`], {
      SUBSCRIPTION_ID: "cp2",
      ENVIRONMENT: "D1",
      AZURE_STORAGE_CONTAINER_NAME: container,
      AZURE_STORAGE_BLOB_NAME: BLOB,
      KAFKA_BROKERS: endpoints.kafka.join(","),
      KAFKA_TOPIC: topic,
      START_OFFSET: String(m[0]!.length),
      AZURE_STORAGE_CONNECTION_STRING: endpoints.azuriteConnectionString,
    }).output();
    assert.equal(out.code, 0, dec.decode(out.stderr));
    const got = await readTopic(topic);
    assert.deepEqual(got.map((x) => x.value), lines("keep", 4));
    assert.equal(got[0]!.headers.environment, "D1");
    assert.equal(got[0]!.headers.member_offset, String(m[0]!.length));

    const bad = await agent(["ingest", "--config", `${dir}/agent.yaml`], {
      AZURE_STORAGE_CONTAINER_NAME: container,
      AZURE_STORAGE_BLOB_NAME: BLOB,
      KAFKA_BROKERS: endpoints.kafka.join(","),
      START_OFFSET: "12x",
      AZURE_STORAGE_CONNECTION_STRING: endpoints.azuriteConnectionString,
    }).output();
    assert.equal(bad.code, 1);
    assert.match(dec.decode(bad.stderr), /START_OFFSET must be a byte offset .*: got 12x/);
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest(
  "ingest killed mid-blob (SIGKILL) and restarted: no line lost, duplicates within two ranges",
  ["azurite", "kafka"],
  async () => {
    const { container, append } = await appendBlob();
    const all: string[] = [];
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 120; i++) {
      const l = lines(`k${i}`, 200);
      all.push(...l);
      parts.push(member(l));
    }
    await append(...parts);
    const size = parts.reduce((n, p) => n + p.length, 0);
    const rangeBytes = parts[0]!.length * 2 + 100; // two members per range
    const topic = await freshTopic();
    const dir = await Deno.makeTempDir();
    const state = `${dir}/offsets.json`;
    await Deno.writeTextFile(
      `${dir}/agent.yaml`,
      JSON.stringify({
        status: { enabled: false },
        ingest: {
          kafka: { brokers: endpoints.kafka, topic, compression: "none" },
          storage_account: storage(),
          container,
          blob: BLOB,
          range_bytes: rangeBytes,
          batch_lines: 100,
          state_file: state,
        },
      }),
    );
    const committed = async () => {
      try {
        return Object.values(
          JSON.parse(await Deno.readTextFile(state)).state.blobs as Record<
            string,
            { offset: number }
          >,
        )[0]?.offset ?? 0;
      } catch {
        return 0;
      }
    };
    const child = agent(["ingest", "--config", `${dir}/agent.yaml`]).spawn();
    let at = 0;
    while ((at = await committed()) < size / 4) await new Promise((r) => setTimeout(r, 5));
    child.kill("SIGKILL");
    const killed = await child.output();
    assert.notEqual(killed.code, 0);
    at = await committed();
    assert.ok(at < size, "killed before the end");
    const before = await topicCount(topic);

    const again = await agent(["ingest", "--config", `${dir}/agent.yaml`]).output();
    assert.equal(again.code, 0, dec.decode(again.stderr));
    assert.equal(await committed(), size);
    const got = (await readTopic(topic)).map((x) => x.value);
    assert.deepEqual([...new Set(got)].toSorted(), all.toSorted(), "no line lost");
    const duplicates = got.length - all.length;
    // The range being delivered and the one read meanwhile (400 lines each).
    assert.ok(duplicates <= 800, `${duplicates} duplicates: more than two ranges (800 lines)`);
    // The second run started at the committed offset: what it re-sent is exactly the tail
    // delivered after the last commit.
    assert.equal(got.length - before, all.length - linesBefore(parts, at));
    await Deno.remove(dir, { recursive: true });
  },
);

/** Lines in the members that end at or before `offset`. */
function linesBefore(parts: Uint8Array[], offset: number): number {
  let end = 0, n = 0;
  for (const p of parts) {
    end += p.length;
    if (end > offset) break;
    n += 200;
  }
  return n;
}

serviceTest("edge-agent ingest test-kafka answers for a reachable broker, fails for another", [
  "kafka",
], async () => {
  const ok = await agent(["ingest", "test-kafka", endpoints.kafka.join(",")]).output();
  assert.equal(ok.code, 0, dec.decode(ok.stderr));
  assert.match(dec.decode(ok.stdout), /^kafka ok: .* \(cluster \S+, 1 broker\(s\): /);
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const bad = await agent(["ingest", "test-kafka", `127.0.0.1:${port}`]).output();
  assert.equal(bad.code, 1);
  assert.match(
    dec.decode(bad.stderr),
    new RegExp(`Kafka connectivity check failed for 127.0.0.1:${port}`),
  );
});

Deno.test("edge-agent ingest test-kafka gives up on a port that accepts but never answers, without a status endpoint", async () => {
  // A "broker" that accepts connections and reads requests but never answers.
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of l) {
      conns.push(c);
      c.readable.pipeTo(new WritableStream()).catch(() => {});
    }
  })().catch(() => {});
  try {
    const out = await agent(["ingest", "test-kafka", `127.0.0.1:${port}`]).output();
    const stderr = dec.decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    assert.ok(conns.length > 0, "it connected");
    assert.match(stderr, new RegExp(`Kafka connectivity check failed for 127.0.0.1:${port}: .*5s`));
    assert.doesNotMatch(stderr, /status endpoint listening/);
  } finally {
    l.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await accepting;
  }
});

serviceTest(
  "ingest workers: events in a group, only new members each time, BlobClosed ends the blob, offsets follow it to another worker",
  ["azurite", "kafka"],
  async () => {
    const { container, append } = await appendBlob();
    const [events, topic, completion] = [
      await freshTopic(2),
      await freshTopic(),
      await freshTopic(),
    ];
    const offsetsTopic = uniqueName("offsets");
    const group = uniqueName("workers");
    const config = () =>
      parseValue(ingestMode.spec, {
        kafka: { brokers: endpoints.kafka, topic },
        completion_topic: completion,
        worker: true,
        events_topic: events,
        group_id: group,
        offsets_topic: offsetsTopic,
        environments: [{ subscription: "cp2", environment: "P1", storage_account: storage() }],
        flush_interval: "5ms",
      });
    const event = (type: string) =>
      produceTo(events, [{
        key: BLOB,
        value: JSON.stringify({
          type,
          name: BLOB,
          container,
          subscription: "cp2",
          environment: "P1",
        }),
      }]);
    const start = async () => {
      const dir = await Deno.makeTempDir();
      const stop = new AbortController();
      const run = ingestMode.run(modeContext(config(), dir, { signal: stop.signal }));
      return { stop: async () => (stop.abort(), await run), dir };
    };

    const w1 = await start();
    await append(member(lines("w1", 3)));
    await event("BlobObserved");
    await waitForCount(topic, 3);
    await append(member(lines("w2", 2)));
    await event("BlobObserved");
    await produceTo(events, [{ key: "x", value: "not json" }]);
    await waitForCount(topic, 5);
    assert.equal(await w1.stop(), 0);

    // Another worker (another host: no local state) takes over the group: the blob's offset
    // comes from the offsets topic, so only the new member is read.
    const w2 = await start();
    await append(member(lines("w3", 4)));
    await event("BlobObserved");
    await event("BlobClosed");
    await waitForCount(completion, 4);
    assert.equal(await w2.stop(), 0);

    const got = await readTopic(topic);
    assert.deepEqual(got.map((x) => x.value), [
      ...lines("w1", 3),
      ...lines("w2", 2),
      ...lines("w3", 4),
    ]);
    const done = (await readTopic(completion)).map((x) => JSON.parse(x.value));
    assert.deepEqual(done.map((e) => [e.lines, e.closed]), [[3, false], [2, false], [4, false], [
      0,
      true,
    ]]);
    assert.equal(done[3].end_offset, done[3].size, "closed after reading to the end");
    await Deno.remove(w1.dir, { recursive: true });
    await Deno.remove(w2.dir, { recursive: true });
  },
);

serviceTest(
  "ingest: a blob's lines reach a 1-partition topic in blob order, with batches in flight at once",
  ["azurite", "kafka"],
  async () => {
    const { container, append } = await appendBlob();
    const topic = await freshTopic(1);
    const dir = await Deno.makeTempDir();
    const want = [0, 1, 2, 3, 4].flatMap((m) => lines(`m${m}`, 3000));
    await append(...[0, 1, 2, 3, 4].map((m) => member(lines(`m${m}`, 3000))));
    const config = parseValue(ingestMode.spec, {
      kafka: { brokers: endpoints.kafka, topic, compression: "none" },
      storage_account: storage(),
      subscription: "cp2",
      environment: "P1",
      container,
      blob: BLOB,
      state_file: `${dir}/offsets.json`,
      // Many small batches, several produce requests in flight.
      batch_lines: 100,
      workers: 8,
      flush_interval: "5ms",
    });
    assert.equal(await ingestMode.run(modeContext(config, dir)), 0);
    const got = (await readTopic(topic)).map((x) => x.value);
    assert.equal(got.length, want.length);
    const firstOutOfOrder = got.findIndex((v, i) => v !== want[i]);
    assert.equal(firstOutOfOrder, -1, `line ${firstOutOfOrder}: ${got[firstOutOfOrder]}`);
    await Deno.remove(dir, { recursive: true });
  },
);

serviceTest(
  "ingest --worker on SIGTERM leaves its consumer group at once; session_timeout and heartbeat_interval are settings",
  ["kafka"],
  async () => {
    const spec = parseValue(ingestMode.spec, {});
    assert.deepEqual([spec.session_timeout, spec.heartbeat_interval], [10_000, 3_000]);
    const [events, topic] = [await freshTopic(), await freshTopic()];
    const group = uniqueName("workers");
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(
      `${dir}/agent.yaml`,
      JSON.stringify({
        status: { enabled: false },
        ingest: {
          kafka: { brokers: endpoints.kafka, topic },
          worker: true,
          events_topic: events,
          group_id: group,
          session_timeout: "6s",
          heartbeat_interval: "1s",
          state_file: `${dir}/offsets.json`,
        },
      }),
    );
    const client = kafka();
    try {
      const child = agent(["ingest", "--config", `${dir}/agent.yaml`]).spawn();
      while (await client.groupMembers(group) === 0) await new Promise((r) => setTimeout(r, 50));
      child.kill("SIGTERM");
      const out = await child.output();
      assert.equal(out.code, 0, dec.decode(out.stderr));
      // Gone from the group now, not after the session timeout.
      assert.equal(await client.groupMembers(group), 0);
    } finally {
      await client.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/**
 * Ingest a blob of five members once (in process), after `damage` changed its bytes, from
 * `start`: what reached the topic, the completion event and the log.
 */
async function ingestDamaged(
  damage: (blob: Uint8Array, offsets: number[]) => void,
  start?: (offsets: number[]) => number,
) {
  const members = [0, 1, 2, 3, 4].map((m) => member(lines(`m${m}`, 300)));
  const offsets: number[] = [];
  let at = 0;
  for (const m of members) offsets.push((at += m.length) - m.length);
  const blob = new Uint8Array(at);
  members.forEach((m, i) => blob.set(m, offsets[i]));
  damage(blob, offsets);
  const { container, append } = await appendBlob();
  await append(blob);
  const [topic, completion] = [await freshTopic(), await freshTopic()];
  const dir = await Deno.makeTempDir();
  const logged: string[] = [];
  const config = parseValue(ingestMode.spec, {
    kafka: { brokers: endpoints.kafka, topic },
    completion_topic: completion,
    storage_account: storage(),
    subscription: "cp2",
    environment: "P1",
    container,
    blob: BLOB,
    state_file: `${dir}/offsets.json`,
    flush_interval: "5ms",
    ...(start && { start_offset: start(offsets) }),
  });
  const code = await ingestMode.run({
    ...modeContext(config, dir),
    log: new Logger({ write: (line: string) => void logged.push(line) }),
  });
  const got = (await readTopic(topic)).map((x) => x.value);
  const [event] = (await readTopic(completion)).map((x) => JSON.parse(x.value));
  await Deno.remove(dir, { recursive: true });
  return { code, got, event, offsets, size: at, logged };
}

serviceTest(
  "ingest: a member with flipped gzip magic is skipped (counted, logged, in the completion event); the others are sent once",
  ["azurite", "kafka"],
  async () => {
    const r = await ingestDamaged((blob, offsets) => {
      blob[offsets[2]!] = 0x00;
      blob[offsets[2]! + 1] = 0x00;
    });
    assert.equal(r.code, 0);
    assert.deepEqual(r.got, [0, 1, 3, 4].flatMap((m) => lines(`m${m}`, 300)));
    const bad = r.offsets[3]! - r.offsets[2]!;
    assert.equal(r.event.skipped_bytes, bad);
    assert.deepEqual(
      r.event.skipped.map((s: { offset: number; bytes: number }) => [s.offset, s.bytes]),
      [[r.offsets[2], bad]],
    );
    assert.equal(r.event.end_offset, r.size);
    assert.ok(
      r.logged.some((l) =>
        l.includes("corrupt gzip member skipped") && l.includes(`"offset":${r.offsets[2]}`)
      ),
    );
  },
);

serviceTest(
  "ingest: a member with a flipped byte in its body is skipped; the members before it are not sent again",
  ["azurite", "kafka"],
  async () => {
    const r = await ingestDamaged((blob, offsets) => {
      const mid = offsets[2]! + Math.floor((offsets[3]! - offsets[2]!) / 2);
      blob[mid] = blob[mid]! ^ 0xff;
    });
    assert.equal(r.code, 0);
    assert.deepEqual(r.got, [0, 1, 3, 4].flatMap((m) => lines(`m${m}`, 300)));
    const bad = r.offsets[3]! - r.offsets[2]!;
    assert.equal(r.event.skipped_bytes, bad);
    assert.deepEqual(
      r.event.skipped.map((s: { offset: number; bytes: number }) => [s.offset, s.bytes]),
      [[r.offsets[2], bad]],
    );
    assert.equal(r.event.end_offset, r.size);
  },
);

serviceTest(
  "ingest: START_OFFSET inside a member skips to the next member header; no undecoded bytes are sent",
  ["azurite", "kafka"],
  async () => {
    const r = await ingestDamaged(() => {}, (offsets) => offsets[1]! + 7);
    assert.equal(r.code, 0);
    assert.deepEqual(r.got, [2, 3, 4].flatMap((m) => lines(`m${m}`, 300)));
    assert.equal(r.event.skipped_bytes, r.offsets[2]! - (r.offsets[1]! + 7));
    assert.deepEqual(r.event.skipped.map((s: { offset: number }) => s.offset), [r.offsets[1]! + 7]);
    assert.equal(r.event.end_offset, r.size);
  },
);
