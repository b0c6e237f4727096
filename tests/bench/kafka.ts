/**
 * `deno task bench kafka`: issue 16's job, `ingest` side by side with `zcat | kcat -P`
 * (librdkafka, Debian's `kcat`; installed with apt-get when missing, and said so). One Azurite
 * append blob of gzip members (~1 MB decoded each) of lines of about 212 B (705,989 of them by
 * default), into a fresh 1-partition topic each run: acks=all, idempotent, the same key and 5
 * headers per message, no compression. Contenders alternate; each run is verified by the topic's
 * end offset (exactly the line count). Then the same with lines of about 1.3 KB.
 *
 * ingest runs as users run it (`deno run -P=agent main.ts ingest` with the compiled binary's V8
 * flags, a process of its own, default settings), reading the blob from Azurite; kcat reads the same gzip bytes from a local file
 * (downloaded before the clock starts) through zcat. Peak RSS and CPU come from GNU time
 * (`/usr/bin/time`); for kcat, CPU is kcat's plus zcat's and RSS is kcat's. Wall time includes
 * process start. MB = 10^6 bytes of lines (newlines not counted). The 1-minute load average is
 * given for each run: the machine is shared.
 *
 * Knobs: BENCH_KAFKA_LINES (default 705989), BENCH_KAFKA_BIG_LINES (default 115000),
 * BENCH_KAFKA_ROUNDS (default 2), BENCH_KAFKA_PROF=DIR (a CPU profile of each ingest run),
 * BENCH_KAFKA_INGEST (JSON merged into the ingest section, e.g. `{"range_bytes":"16MiB"}`),
 * BENCH_KAFKA_V8_FLAGS (V8 flags for ingest in place of the compiled binary's, e.g.
 * `--max-semi-space-size=2`: the flags before `--expose-gc`, so without the GcGovernor).
 * @module
 */

import zlib from "node:zlib";
import { agentArgs, COMPILED_FLAGS, compiledFlagsWithV8 } from "../_agent.ts";
import {
  blobServiceClient,
  endpoints,
  freshContainer,
  freshTopic,
  kafka,
  unavailableReason,
} from "../services/mod.ts";
import type { BenchRow } from "./row.ts";

const BLOB = "kubernetes/20250606.bench-7d9f8b6c5-x2kqp_ns_app-1a2b3c4d5e6f7a8b.gz";
const HEADERS = {
  subscription: "cp2",
  environment: "P1",
  blob: BLOB,
  service: "bench",
  member_offset: "0",
};

/** One contender's run. */
interface Run {
  who: "ingest" | "kcat";
  seconds: number;
  cpuSeconds: number;
  peakRssMb: number;
  load1: number;
}

const enc = new TextEncoder();

/** Deterministic log lines of about `size` bytes (JSON, varied like real logs). */
function makeLines(count: number, size: number): { members: Uint8Array[]; bytes: number } {
  const words = ["GET", "POST", "order", "cart", "user", "payment", "ok", "timeout", "retry"];
  const members: Uint8Array[] = [];
  let bytes = 0;
  let chunk: string[] = [];
  let chunkBytes = 0;
  let x = 12345;
  const rnd = () => (x = (x * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < count; i++) {
    const head = `{"ts":"2025-06-06T07:${String(i % 60).padStart(2, "0")}:${
      String(rnd() % 60).padStart(2, "0")
    }.${rnd() % 1000}Z","level":"${["info", "warn", "error"][rnd() % 3]}","req":${i},"msg":"`;
    let msg = "";
    while (head.length + msg.length + 2 < size) msg += words[rnd() % words.length] + " ";
    const line = head + msg.slice(0, Math.max(0, size - head.length - 2)) + '"}';
    chunk.push(line);
    chunkBytes += line.length + 1;
    bytes += line.length;
    if (chunkBytes >= 1 << 20 || i === count - 1) {
      members.push(new Uint8Array(zlib.gzipSync(enc.encode(chunk.join("\n") + "\n"))));
      chunk = [];
      chunkBytes = 0;
    }
  }
  return { members, bytes };
}

async function load1(): Promise<number> {
  return Number((await Deno.readTextFile("/proc/loadavg")).split(" ")[0]);
}

/** Run `cmd` under GNU time: wall seconds, CPU seconds, peak RSS (MB). */
async function timed(
  cmd: string[],
  opts: { stdinFile?: string; env?: Record<string, string> } = {},
): Promise<{ seconds: number; cpu: number; rssMb: number; stderr: string }> {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/time.txt`;
  const zc = `${dir}/zcat.txt`;
  const quoted = cmd.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const script = opts.stdinFile
    ? `/usr/bin/time -o ${zc} -f '%M %U %S' zcat '${opts.stdinFile}' | /usr/bin/time -o ${out} -f '%M %U %S' ${quoted}`
    : `/usr/bin/time -o ${out} -f '%M %U %S' ${quoted}`;
  const t = performance.now();
  const r = await new Deno.Command("bash", {
    args: ["-o", "pipefail", "-c", script],
    stdout: "null",
    stderr: "piped",
    env: opts.env ?? {},
  }).output();
  const seconds = (performance.now() - t) / 1000;
  const stderr = new TextDecoder().decode(r.stderr);
  if (r.code !== 0) throw new Error(`${cmd[0]} exited ${r.code}: ${stderr.slice(-2000)}`);
  const parse = async (f: string) => {
    const [kb, user, sys] = (await Deno.readTextFile(f)).trim().split("\n").at(-1)!.split(" ")
      .map(Number);
    return { rssMb: kb! * 1024 / 1e6, cpu: user! + sys! };
  };
  const main = await parse(out);
  const extra = opts.stdinFile ? await parse(zc) : { cpu: 0 };
  await Deno.remove(dir, { recursive: true });
  return { seconds, cpu: main.cpu + extra.cpu, rssMb: main.rssMb, stderr };
}

async function ensureKcat(): Promise<string> {
  const which = await new Deno.Command("bash", { args: ["-c", "command -v kcat"] }).output();
  if (which.code === 0) return "kcat found";
  console.error("bench kafka: kcat is missing: installing Debian's kcat with apt-get");
  const r = await new Deno.Command("bash", {
    args: ["-c", "apt-get install -y kcat || (apt-get update && apt-get install -y kcat)"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (r.code !== 0) {
    throw new Error(`cannot install kcat: ${new TextDecoder().decode(r.stderr).slice(-500)}`);
  }
  return "kcat installed by the bench (apt-get install kcat)";
}

async function endOffset(topic: string): Promise<number> {
  const client = kafka();
  try {
    return (await client.offsets(topic)).reduce((n, p) => n + Number(p.high - p.low), 0);
  } finally {
    await client.close();
  }
}

/** One size: the blob, then alternating runs. */
async function compare(
  label: string,
  count: number,
  size: number,
  rounds: number,
): Promise<BenchRow[]> {
  const { members, bytes } = makeLines(count, size);
  const container = await freshContainer("bench");
  const blob = blobServiceClient().getContainerClient(container).getAppendBlobClient(BLOB);
  await blob.create();
  for (const m of members) await blob.appendBlock(m, m.length);
  const dir = await Deno.makeTempDir();
  const gz = `${dir}/blob.gz`;
  const all = new Uint8Array(members.reduce((n, m) => n + m.length, 0));
  let at = 0;
  for (const m of members) all.set(m, (at += m.length) - m.length);
  await Deno.writeFile(gz, all);
  const runs: Run[] = [];
  const prof = Deno.env.get("BENCH_KAFKA_PROF");
  for (let round = 0; round < rounds; round++) {
    for (const who of ["ingest", "kcat"] as const) {
      const topic = await freshTopic(1, "bench");
      const l = await load1();
      let r;
      if (who === "ingest") {
        const config = `${dir}/agent-${round}.yaml`;
        await Deno.writeTextFile(
          config,
          JSON.stringify({
            status: { enabled: false },
            log: { level: "warn" },
            ingest: {
              kafka: { brokers: endpoints.kafka, topic, compression: "none" },
              storage_account: { connection_string: endpoints.azuriteConnectionString },
              subscription: "cp2",
              environment: "P1",
              container,
              blob: BLOB,
              start_offset: 0,
              state_file: `${dir}/offsets-${round}.json`,
              ...JSON.parse(Deno.env.get("BENCH_KAFKA_INGEST") ?? "{}"),
            },
          }),
        );
        // The compiled binary's V8 flags (what users run), or BENCH_KAFKA_V8_FLAGS in their place.
        const v8 = Deno.env.get("BENCH_KAFKA_V8_FLAGS");
        const denoFlags = [
          ...(v8 ? compiledFlagsWithV8(v8) : COMPILED_FLAGS),
          ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : []),
        ];
        r = await timed([
          Deno.execPath(),
          ...agentArgs(["ingest", "--config", config], denoFlags),
        ], { env: { PATH: Deno.env.get("PATH") ?? "" } });
      } else {
        r = await timed([
          "kcat",
          "-P",
          "-b",
          endpoints.kafka.join(","),
          "-t",
          topic,
          "-k",
          BLOB,
          ...Object.entries(HEADERS).flatMap(([k, v]) => ["-H", `${k}=${v}`]),
          "-z",
          "none",
          "-X",
          "acks=all",
          "-X",
          "enable.idempotence=true",
        ], { stdinFile: gz });
      }
      const got = await endOffset(topic);
      if (got !== count) throw new Error(`${who} wrote ${got} of ${count} messages to ${topic}`);
      runs.push({ who, seconds: r.seconds, cpuSeconds: r.cpu, peakRssMb: r.rssMb, load1: l });
      console.error(
        `bench kafka ${label}: ${who} ${Math.round(count / r.seconds)} msgs/s, ${
          (bytes / 1e6 / r.seconds).toFixed(1)
        } MB/s, ${r.rssMb.toFixed(0)} MB peak RSS, ${
          (r.cpu / (bytes / 1e9)).toFixed(1)
        } CPU s/GB, load ${l}`,
      );
    }
  }
  await Deno.remove(dir, { recursive: true });
  const rows: BenchRow[] = [];
  const best = (who: string) =>
    runs.filter((r) => r.who === who).reduce((a, b) => a.seconds <= b.seconds ? a : b);
  const median = (who: string) => {
    const s = runs.filter((r) => r.who === who).map((r) => count / r.seconds).sort((a, b) => a - b);
    const mid = Math.floor(s.length / 2);
    return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  };
  for (const who of ["ingest", "kcat"]) {
    const b = best(who);
    const all = runs.filter((r) => r.who === who);
    rows.push({
      name: `${label}: ${who === "ingest" ? "ingest" : "zcat | kcat -P"}`,
      mbPerSec: bytes / 1e6 / b.seconds,
      msgsPerSec: Math.round(count / b.seconds),
      peakRssMb: Math.round(Math.max(...all.map((r) => r.peakRssMb))),
      cpuSecPerGb: (b.cpuSeconds / (bytes / 1e9)).toFixed(1),
      load1: all.map((r) => r.load1).join("/"),
      note: `best of ${all.length} (runs: ${
        all.map((r) => Math.round(count / r.seconds)).join(", ")
      } msgs/s); ${count} lines of ~${size} B`,
    });
  }
  rows.push({
    name: `${label}: ratio ingest / kcat`,
    mbPerSec: 0,
    note: `msgs/s best ${
      (rows[0]!.msgsPerSec as number / (rows[1]!.msgsPerSec as number)).toFixed(2)
    }×, median ${(median("ingest") / median("kcat")).toFixed(2)}×`,
  });
  return rows;
}

/**
 * issue 16's comparison at 212 B and 1.3 KB lines.
 *
 * @returns per size: ingest's row, kcat's row, the ratio.
 * @throws {Error} when the services are not up or a contender wrote the wrong count.
 */
export async function kafkaBench(): Promise<BenchRow[]> {
  const why = unavailableReason("azurite") ?? unavailableReason("kafka");
  if (why) throw new Error(`kafka benchmark needs the test services: ${why}`);
  console.error(`bench kafka: ${await ensureKcat()}`);
  const env = (k: string, d: number) => Number(Deno.env.get(k) ?? d);
  const rounds = env("BENCH_KAFKA_ROUNDS", 2);
  return [
    ...await compare("212 B lines", env("BENCH_KAFKA_LINES", 705_989), 212, rounds),
    ...await compare("1.3 KB lines", env("BENCH_KAFKA_BIG_LINES", 115_000), 1300, rounds),
  ];
}

if (import.meta.main) {
  for (const r of await kafkaBench()) console.log(JSON.stringify(r));
}
