/**
 * For tests/pipeline/gc_governor_test.ts, in a process of its own: frees a 1 MiB block from
 * glibc's malloc, then asks for 512 KiB, and prints how much of that was mapped on its own
 * (mallinfo2's `hblkhd` before and after), with `TUNE=1` after {@link tuneMalloc}.
 * @module
 */
import { tuneMalloc } from "../../mod/pipeline/gc_governor.ts";

const lib = Deno.dlopen("libc.so.6", {
  malloc: { parameters: ["usize"], result: "pointer" },
  free: { parameters: ["pointer"], result: "void" },
  mallinfo2: { parameters: [], result: { struct: Array(10).fill("usize") } },
});
const mapped = () => Number(new BigUint64Array(lib.symbols.mallinfo2().buffer)[4]); // hblkhd
const tuned = Deno.env.get("TUNE") ? tuneMalloc() !== undefined : false;
lib.symbols.free(lib.symbols.malloc(1n << 20n));
const before = mapped();
const block = lib.symbols.malloc(512n << 10n);
const grew = mapped() - before;
lib.symbols.free(block);
console.log(JSON.stringify({ tuned, grew }));
