// A log writer in its own process for `deno task bench tail`: appends `lines` lines of about
// `lineBytes` bytes spread over `files` files (`<dir>/f<i>.log`), as fast as it can (rate 0) or
// at `rate` lines/s. Every line starts with the time it was written (ms since epoch, with
// fraction), so the receiver can tell the delay from write to delivery.
// Usage: tail_writer_main.ts DIR FILES LINES RATE LINE_BYTES; prints the seconds it took.

const [dir, files, total, rate, lineBytes] = [
  Deno.args[0]!,
  Number(Deno.args[1]),
  Number(Deno.args[2]),
  Number(Deno.args[3]),
  Number(Deno.args[4]),
];
const enc = new TextEncoder();
const handles = Array.from(
  { length: files },
  (_, i) => Deno.openSync(`${dir}/f${i}.log`, { create: true, append: true }),
);
const pad = "x".repeat(lineBytes);
const perChunk = 200;
const started = performance.now();
let written = 0;
let f = 0;
while (written < total) {
  if (rate > 0) {
    const due = (performance.now() - started) * rate / 1000;
    if (written >= due) {
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
  }
  const n = Math.min(perChunk, total - written);
  const t = (performance.timeOrigin + performance.now()).toFixed(3);
  let s = "";
  for (let i = 0; i < n; i++) {
    const head = `${t} ${written + i} `;
    s += head + pad.slice(head.length) + "\n";
  }
  const bytes = enc.encode(s);
  let o = 0;
  while (o < bytes.length) o += handles[f]!.writeSync(bytes.subarray(o));
  f = (f + 1) % files;
  written += n;
  if (rate === 0 && written % (perChunk * 50) === 0) await Promise.resolve();
}
for (const h of handles) h.close();
console.log(((performance.now() - started) / 1000).toFixed(3));
