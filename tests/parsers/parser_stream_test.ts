import assert from "node:assert/strict";
import { ParserStream } from "../../mod/parsers/parser_stream.ts";
import type { LineParser, LogRecord } from "../../mod/parsers/record.ts";

/** Pairs lines up: emits a record every second line, the odd one out on flush. */
class PairParser implements LineParser {
  #held: string | undefined;
  push(line: Uint8Array): LogRecord[] {
    const text = new TextDecoder().decode(line);
    if (this.#held === undefined) {
      this.#held = text;
      return [];
    }
    const record = { message: `${this.#held}+${text}` };
    this.#held = undefined;
    return [record];
  }
  flush(): LogRecord[] {
    const held = this.#held;
    this.#held = undefined;
    return held === undefined ? [] : [{ message: held }];
  }
}

Deno.test("ParserStream() emits records as lines complete them, then the flushed rest", async () => {
  const enc = new TextEncoder();
  const records = await Array.fromAsync(
    ReadableStream.from(["a", "b", "c"].map((s) => enc.encode(s)))
      .pipeThrough(new ParserStream(new PairParser())),
  );
  assert.deepEqual(records, [{ message: "a+b" }, { message: "c" }]);
});
