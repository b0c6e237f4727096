/**
 * `edge-agent demo`: the main job (object storage → decompress → lines → HTTP batches) end to
 * end with nothing to set up. It writes a directory laid out like the reference's bucket (Hive
 * partitions `year=/month=/day=`, gzip JSONL named `<unix_ts>_<id>_<id>_<seq>[.gz]`, some without
 * `.gz`, one multi-member, one plain), starts two local HTTP intakes, runs the `stream` mode's
 * delivery over it with the `file` source, shows progress on stderr and checks that every line
 * arrived. It imports no cloud SDK: `deno task demo` (mod/demo/main.ts) downloads only what it
 * uses.
 * @module
 */

import zlib from "node:zlib";
import { join } from "node:path";
import { parseValue } from "../config/spec.ts";
import { Logger } from "../log/logger.ts";
import { Registry } from "../metrics/registry.ts";
import { deliverStream } from "../modes/stream_deliver.ts";
import { streamSpec } from "../modes/stream_spec.ts";
import { FileSource } from "../sources/file.ts";
import { Health } from "../status/health.ts";
import { startReceiver } from "./receiver.ts";
import { zscalerFile } from "./zscaler.ts";

/** `edge-agent demo --help` and `deno task demo --help`. */
export const DEMO_HELP = `edge-agent demo: run the main job on generated data, no cloud needed

Usage: edge-agent demo          (from a checkout: deno task demo)

Writes 24 files of ~10 MB of Zscaler-like gzip JSONL into a temporary directory laid out like
an S3 bucket (year=/month=/day= partitions), starts two local HTTP intakes, runs the stream
mode's pipeline over it with the file source, prints progress and the final counts on stderr,
and removes the directory. Exit code 0 when the intakes received exactly the lines written,
1 otherwise.
`;

/** Options for {@link runDemo}. */
export interface DemoOptions {
  /** Files to generate. @default 24 */
  files?: number;
  /** Uncompressed size of each file, bytes. @default 10 MiB */
  fileBytes?: number;
  /** Where progress goes. @default stderr */
  write?: (line: string) => void;
  signal?: AbortSignal;
}

/** What the demo measured. */
export interface DemoResult {
  files: number;
  lines: number;
  bytes: number;
  seconds: number;
  mbPerSec: number;
  received: number;
  ok: boolean;
}

/** Write the bucket-like directory; returns the number of lines written. */
async function generate(root: string, files: number, fileBytes: number): Promise<number> {
  const base = Math.floor(Date.now() / 1000) - 3 * 86_400;
  let lines = 0;
  for (let i = 0; i < files; i++) {
    const ts = base + i * Math.floor(2 * 86_400 / files); // spans a day boundary
    const d = new Date(ts * 1000);
    const dir = join(
      root,
      `year=${d.getUTCFullYear()}`,
      `month=${d.getUTCMonth() + 1}`,
      `day=${d.getUTCDate()}`,
    );
    await Deno.mkdir(dir, { recursive: true });
    const text = zscalerFile(fileBytes, i + 1, { start: ts });
    for (const b of text) if (b === 10) lines++;
    let bytes: Uint8Array;
    let ext = ".gz";
    if (i === 3) {
      bytes = text; // plain text, yet named .gz
    } else if (i === 5) {
      // Several gzip members, as appenders write them.
      const cut = text.indexOf(10, text.length >> 1) + 1;
      bytes = new Uint8Array(
        Buffer.concat([zlib.gzipSync(text.subarray(0, cut)), zlib.gzipSync(text.subarray(cut))]),
      );
    } else {
      bytes = new Uint8Array(zlib.gzipSync(text));
      if (i % 6 === 1) ext = ""; // gzip without .gz
    }
    await Deno.writeFile(join(dir, `${ts}_56442_130_${i + 1}${ext}`), bytes);
  }
  return lines;
}

/**
 * Run the demo.
 *
 * @returns what it measured; `ok` when the intakes received exactly the lines written.
 */
export async function runDemo(
  {
    files = 24,
    fileBytes = 10 * 1024 * 1024,
    write = (l) => console.error(l),
    signal = new AbortController().signal,
  }: DemoOptions = {},
): Promise<DemoResult> {
  const root = await Deno.makeTempDir({ prefix: "edge-agent-demo-" });
  try {
    write(`demo: writing ${files} files of ~${(fileBytes / 1e6).toFixed(0)} MB to ${root}/bucket`);
    const written = await generate(join(root, "bucket"), files, fileBytes);
    const intakes = [startReceiver(), startReceiver()];
    write(`demo: two HTTP intakes at ${intakes.map((r) => r.url).join(", ")}`);

    const config = parseValue(streamSpec, {
      source: "file",
      file: { path: join(root, "bucket") },
      http: { endpoints: intakes.map((r) => r.url), workers: 4 },
      // One demo file is plain text, which the reference's layout does not have.
      processing: { once: true, delay_window: "0s", worker_count: 2, plain: "allow" },
      state_file: join(root, "state.json"),
      dead_letter: { path: join(root, "dead-letter.ndjson") },
    });
    const metrics = new Registry();
    const log = new Logger({ level: "warn", format: "text", write });
    const started = performance.now();
    const counter = (n: string) => metrics.counter(n, "");
    const progress = setInterval(() => {
      const s = (performance.now() - started) / 1000;
      const mb = counter("http_bytes_sent_total").get() / 1e6;
      write(
        `demo: ${counter("file_files_processed_total").get()}/${files} files, ${
          counter("http_lines_sent_total").get()
        } lines, ${mb.toFixed(0)} MB, ${(mb / s).toFixed(0)} MB/s`,
      );
    }, 1000);
    try {
      const source = new FileSource({
        root: config.file.path,
        stateFile: config.state_file,
        scanInterval: config.processing.scan_interval,
        delayWindow: config.processing.delay_window,
        once: true,
        log,
      });
      await deliverStream(source, config, { metrics, log, health: new Health(), signal });
    } finally {
      clearInterval(progress);
    }
    const seconds = (performance.now() - started) / 1000;
    await Promise.all(intakes.map((r) => r.close()));
    const received = intakes.reduce((n, r) => n + r.stats.lines, 0);
    const bytes = counter("http_bytes_sent_total").get();
    const result: DemoResult = {
      files: counter("file_files_processed_total").get(),
      lines: counter("http_lines_sent_total").get(),
      bytes,
      seconds,
      mbPerSec: bytes / 1e6 / seconds,
      received,
      ok: received === written && counter("file_files_errored_total").get() === 0,
    };
    write(
      `demo: done: ${result.files} files, ${result.lines} lines, ${
        (bytes / 1e6).toFixed(0)
      } MB in ${seconds.toFixed(2)} s = ${
        result.mbPerSec.toFixed(0)
      } MB/s; intakes received ${received} of ${written} lines: ${
        result.ok ? "nothing lost" : "MISMATCH"
      }`,
    );
    return result;
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}
