// A log writer for the tail tests and benchmark: lines with unique numbers, appended at a rate,
// rotated by rename as logrotate's rename + `create` does.
import { join } from "node:path";

/** `n` distinct lines tagged `tag`, numbered from `from`. */
export const lines = (tag: string, from: number, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `${tag} line ${from + i} ${"x".repeat(i % 40)}`);

/** Lines as file content, each ending in a newline. */
export const text = (ls: string[]): string => ls.map((l) => l + "\n").join("");

/**
 * A writer appending `perSecond` lines (every 10 ms a slice) and rotating app.log → app.log.<n>
 * every `rotateEvery` ms, as logrotate's rename + `create` does.
 */
export async function writeRotating(
  dir: string,
  { seconds, perSecond, rotateEvery, signal }: {
    seconds: number;
    perSecond: number;
    rotateEvery: number;
    signal?: AbortSignal;
  },
): Promise<string[]> {
  const want: string[] = [];
  const path = join(dir, "app.log");
  let file = await Deno.open(path, { create: true, append: true });
  const enc = new TextEncoder();
  const start = Date.now();
  let lastRotate = start;
  let rotations = 0;
  let n = 0;
  while (Date.now() - start < seconds * 1000 && !signal?.aborted) {
    const due = Math.floor((Date.now() - start) * perSecond / 1000);
    const ls = lines("r", n, due - n);
    n = due;
    if (ls.length) {
      want.push(...ls);
      await file.write(enc.encode(text(ls)));
    }
    if (Date.now() - lastRotate >= rotateEvery) {
      lastRotate = Date.now();
      await Deno.rename(path, join(dir, `app.log.${++rotations}`));
      const old = file;
      file = await Deno.open(path, { create: true, append: true });
      old.close();
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  file.close();
  return want;
}
