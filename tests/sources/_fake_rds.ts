/**
 * A protocol-faithful fake of the RDS Query API, for what moto 5.2.5 does not serve: log files
 * with real content that grow and rotate, and DownloadDBLogFilePortion (moto has no such action;
 * its DescribeDBLogFiles lists a fixed 123-byte file with no content). It speaks the wire format
 * the real SDK uses: form-encoded POSTs with `Action=...`, XML answers in the
 * `http://rds.amazonaws.com/doc/2014-10-31/` namespace, `Marker` paging, and RDS's error
 * envelope (e.g. `Throttling`, HTTP 400) when told to throttle.
 *
 * DownloadDBLogFilePortion answers whole lines: `NumberOfLines` (10000 when not given) from the
 * marker ("0": the start; none: the last lines), with an opaque marker `<generation>:<offset>`;
 * a rotated file gets a new generation, so an old marker is not silently reused for new content.
 * Like RDS, a portion larger than its limit (`portionBytes`, RDS: 1 MB) is cut there and ends
 * with " [Your log message was truncated]", while its marker points past all the lines asked
 * for: a client that does not ask again with fewer lines loses the rest (the pain
 * fpietka/rds-pgbadger#10 and aws/aws-sdk-js#1463 describe).
 * @module
 */

/** An instance the fake knows. */
export interface FakeInstance {
  id: string;
  engine: string;
  tags?: Record<string, string>;
  files: Map<string, FakeFile>;
}

/** A log file of the fake: its text, and its bytes once asked for (until it changes). */
interface FakeFile {
  data: string;
  bytes?: Uint8Array;
  lastWritten: number;
  generation: number;
}

const NS = "http://rds.amazonaws.com/doc/2014-10-31/";
const bytesOf = (f: FakeFile) => f.bytes ??= new TextEncoder().encode(f.data);
const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The fake server. */
export class FakeRds {
  readonly instances = new Map<string, FakeInstance>();
  /** Calls by action. */
  readonly calls = new Map<string, number>();
  /** The next `throttle` calls answer `Throttling`. */
  throttle = 0;
  /** Actions answered AccessDenied (an IAM policy without them). */
  readonly deny = new Set<string>();
  /** Portions answered cut at `portionBytes`. */
  cuts = 0;
  portionBytes: number;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;

  constructor({ portionBytes = 1 << 20 }: { portionBytes?: number } = {}) {
    this.portionBytes = portionBytes;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) => this.#handle(req),
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** Add an instance. */
  addInstance(id: string, engine: string, tags: Record<string, string> = {}): void {
    this.instances.set(id, { id, engine, tags, files: new Map() });
  }

  /** Append to (or create) a log file. */
  append(id: string, file: string, text: string, at = Date.now()): void {
    const inst = this.instances.get(id)!;
    const f: FakeFile = inst.files.get(file) ?? { data: "", lastWritten: 0, generation: 0 };
    f.data += text;
    delete f.bytes;
    f.lastWritten = Math.max(at, f.lastWritten + 1);
    inst.files.set(file, f);
  }

  /** Replace a file with new content (log rotation: same name, new file). */
  rotate(id: string, file: string, text: string, at = Date.now()): void {
    const f = this.instances.get(id)!.files.get(file)!;
    f.data = text;
    delete f.bytes;
    f.generation++;
    f.lastWritten = Math.max(at, f.lastWritten + 1);
  }

  /** Delete a log file (RDS retention). */
  remove(id: string, file: string): void {
    this.instances.get(id)!.files.delete(file);
  }

  async #handle(req: Request): Promise<Response> {
    const form = new URLSearchParams(await req.text());
    const action = form.get("Action") ?? "";
    this.calls.set(action, (this.calls.get(action) ?? 0) + 1);
    if (this.deny.has(action)) {
      return this.#error(403, "AccessDenied", `not authorized to perform: rds:${action}`);
    }
    if (this.throttle > 0) {
      this.throttle--;
      return this.#error(400, "Throttling", "Rate exceeded");
    }
    switch (action) {
      case "DescribeDBInstances":
        return this.#instances(form);
      case "DescribeDBLogFiles":
        return this.#files(form);
      case "DownloadDBLogFilePortion":
        return this.#portion(form);
      default:
        return this.#error(400, "InvalidAction", `The action ${action} is not valid`);
    }
  }

  #xml(action: string, result: string): Response {
    return new Response(
      `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${crypto.randomUUID()}</RequestId></ResponseMetadata></${action}Response>`,
      { headers: { "content-type": "text/xml" } },
    );
  }

  #error(status: number, code: string, message: string): Response {
    return new Response(
      `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${
        esc(message)
      }</Message></Error><RequestId>${crypto.randomUUID()}</RequestId></ErrorResponse>`,
      { status, headers: { "content-type": "text/xml" } },
    );
  }

  #instances(form: URLSearchParams): Response {
    // Filters.Filter.N.Name / Filters.Filter.N.Values.Value.M (the Query API's list encoding).
    const engines: string[] = [];
    for (const [k, v] of form) {
      if (/^Filters\.Filter\.\d+\.Values\.Value\.\d+$/.test(k)) {
        const n = k.split(".")[2];
        if (form.get(`Filters.Filter.${n}.Name`) === "engine") engines.push(v);
      }
    }
    // One instance a page, so the client's Marker paging is exercised.
    const all = [...this.instances.values()].filter((i) =>
      !engines.length || engines.includes(i.engine)
    );
    const from = Number(form.get("Marker") ?? 0);
    const page = all.slice(from, from + 1);
    const body = page.map((i) =>
      `<DBInstance><DBInstanceIdentifier>${
        esc(i.id)
      }</DBInstanceIdentifier><Engine>${i.engine}</Engine><DBInstanceStatus>available</DBInstanceStatus><TagList>${
        Object.entries(i.tags ?? {}).map(([k, v]) =>
          `<Tag><Key>${esc(k)}</Key><Value>${esc(v)}</Value></Tag>`
        ).join("")
      }</TagList></DBInstance>`
    ).join("");
    const marker = from + 1 < all.length ? `<Marker>${from + 1}</Marker>` : "";
    return this.#xml("DescribeDBInstances", `<DBInstances>${body}</DBInstances>${marker}`);
  }

  #files(form: URLSearchParams): Response {
    const inst = this.instances.get(form.get("DBInstanceIdentifier") ?? "");
    if (!inst) return this.#error(404, "DBInstanceNotFound", "DBInstance not found");
    const body = [...inst.files].map(([name, f]) =>
      `<DescribeDBLogFilesDetails><LastWritten>${f.lastWritten}</LastWritten><LogFileName>${
        esc(name)
      }</LogFileName><Size>${bytesOf(f).length}</Size></DescribeDBLogFilesDetails>`
    ).join("");
    return this.#xml("DescribeDBLogFiles", `<DescribeDBLogFiles>${body}</DescribeDBLogFiles>`);
  }

  #portion(form: URLSearchParams): Response {
    const inst = this.instances.get(form.get("DBInstanceIdentifier") ?? "");
    if (!inst) return this.#error(404, "DBInstanceNotFound", "DBInstance not found");
    const f = inst.files.get(form.get("LogFileName") ?? "");
    if (!f) return this.#error(404, "DBLogFileNotFoundFault", "DBLogFile not found");
    const bytes = bytesOf(f);
    const lines = Math.min(10000, Number(form.get("NumberOfLines") ?? 10000));
    const marker = form.get("Marker");
    let offset = 0, end: number;
    if (marker === null) {
      // No marker: the most recent `lines` lines.
      end = bytes.length;
      let i = end - 1;
      if (i >= 0 && bytes[i] === 10) i--; // the last line's own newline
      for (let n = 0; i >= 0; i--) if (bytes[i] === 10 && ++n === lines) break;
      offset = i + 1;
    } else {
      // "0" (or another generation's marker: the file was rotated) reads from the start.
      const m = /^(\d+):(\d+)$/.exec(marker);
      if (m && Number(m[1]) === f.generation) offset = Math.min(Number(m[2]), bytes.length);
      end = offset;
      for (let n = 0; end < bytes.length && n < lines;) if (bytes[end++] === 10) n++;
    }
    // RDS's 1 MB limit: the portion is cut, says so, and its marker still points past the lines
    // asked for (what was cut off is not in any answer).
    let data: string;
    if (end - offset > this.portionBytes) {
      data = new TextDecoder().decode(bytes.subarray(offset, offset + this.portionBytes)) +
        "\n [Your log message was truncated]\n";
      this.cuts++;
    } else {
      data = new TextDecoder().decode(bytes.subarray(offset, end));
    }
    return this.#xml(
      "DownloadDBLogFilePortion",
      `<LogFileData>${
        esc(data)
      }</LogFileData><Marker>${f.generation}:${end}</Marker><AdditionalDataPending>${
        end < bytes.length
      }</AdditionalDataPending>`,
    );
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}
