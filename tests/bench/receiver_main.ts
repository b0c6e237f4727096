// A local HTTP intake in its own process, for the end-to-end benchmark: prints its URL, then on
// stdin EOF prints its counts as JSON and exits.
import { startReceiver } from "../../mod/demo/receiver.ts";

const r = startReceiver();
console.log(r.url);
for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
console.log(JSON.stringify(r.stats));
await r.close();
