import assert from "node:assert/strict";
import { Logger } from "../../mod/log/logger.ts";

Deno.test("Logger redacts URLs in the message, in fields and in errors, in both formats", () => {
  for (const format of ["json", "text"] as const) {
    const lines: string[] = [];
    const errors: Record<string, unknown>[] = [];
    const log = new Logger({
      format,
      write: (l) => lines.push(l),
      onError: (_m, f) => errors.push(f),
    });
    log.error("POST http://u:pw@h/in?api_key=k failed", {
      endpoint: "http://u:pw@h/in?api_key=k",
      error: new Error("outer", { cause: new Error("for url (http://h/in?api_key=k)") }),
      nested: { urls: ["http://u:pw@h/"] },
    });
    assert.ok(!lines[0]!.includes("pw") && !lines[0]!.includes("api_key=k"), lines[0]);
    assert.ok(!JSON.stringify(errors).includes("pw"));
    assert.match(lines[0]!, /http:\/\/\*\*\*@h\/in\?api_key=\*\*\*/);
  }
});

Deno.test("Logger writes every field in snake_case, whatever object it came from", () => {
  const lines: string[] = [];
  const log = new Logger({ write: (l) => lines.push(l) });
  log.info("stream finished", { unitsFailed: 1, compressedBytes: 2, lines: 3, apiKey: "k" });
  const { ts: _, ...rest } = JSON.parse(lines[0]!);
  assert.deepEqual(rest, {
    level: "info",
    msg: "stream finished",
    units_failed: 1,
    compressed_bytes: 2,
    lines: 3,
    api_key: "***",
  });
});
