/**
 * Finding the denort runtime that `deno compile` builds on, without ever waiting on a network
 * that is not there.
 *
 * Deno 2.9 takes the runtime from, in order: `DENORT_BIN` (an unzipped denort, used for every
 * target as is), the cache `$DENO_DIR/dl/release/v<version>/denort-<target>.zip` (a zip with a
 * root entry `denort`), then a download from the Deno download host. Where that host is
 * black-holed, `deno compile` hangs (seen: still waiting after 90 s), so we look first.
 * @module
 */

import { dirname, join } from "node:path";
import { unzipEntry } from "./zip_reader.ts";

/** The Linux targets we ship, by short name. */
export const TARGETS = {
  x64: "x86_64-unknown-linux-gnu",
  arm64: "aarch64-unknown-linux-gnu",
} as const;

/** A Deno target triple we can build. */
export type Target = (typeof TARGETS)[keyof typeof TARGETS];

/** ELF e_machine of each target. */
const ELF_MACHINE: Record<Target, number> = {
  "x86_64-unknown-linux-gnu": 62,
  "aarch64-unknown-linux-gnu": 183,
};

/** Where Deno downloads denort from (not overridable in Deno 2.9). */
export const DOWNLOAD_HOST = "https://dl.deno.land";

/** Thrown when no runtime can be had; the message says how to supply one. */
export class DenortError extends Error {
  override name = "DenortError";
}

/**
 * Resolve a short name (`x64`, `arm64`) or a triple to a supported target.
 *
 * @param name short name or triple.
 * @returns the target triple.
 * @throws {RangeError} for anything else.
 */
export function parseTarget(name: string): Target {
  const t = (TARGETS as Record<string, Target>)[name] ?? name;
  if (!(t in ELF_MACHINE)) {
    throw new RangeError(
      `unsupported target "${name}": use ${
        Object.entries(TARGETS).map(([k, v]) => `${k} (${v})`).join(" or ")
      }`,
    );
  }
  return t as Target;
}

/**
 * The target an ELF executable was built for, from its header.
 *
 * @param bytes at least the first 20 bytes of the file.
 * @returns the target, or undefined when it is not a 64-bit little-endian ELF of a known machine.
 */
export function elfTarget(bytes: Uint8Array): Target | undefined {
  if (bytes.length < 20) return undefined;
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    return undefined;
  }
  if (bytes[4] !== 2 || bytes[5] !== 1) return undefined; // ELFCLASS64, little-endian
  const machine = bytes[18]! | (bytes[19]! << 8);
  return (Object.keys(ELF_MACHINE) as Target[]).find((t) => ELF_MACHINE[t] === machine);
}

/** Whether `bytes` carries Deno's user agent for `version` (denort embeds "Deno/<version>"). */
function hasVersion(bytes: Uint8Array, version: string): boolean {
  const needle = new TextEncoder().encode(`Deno/${version}`);
  const first = needle[0]!;
  outer: for (let i = bytes.indexOf(first); i >= 0; i = bytes.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/**
 * Where Deno looks for a cached denort zip.
 *
 * @param denoDir Deno's cache directory (`deno info --json` → denoDir).
 * @param version Deno version, e.g. "2.9.6".
 * @param target target triple.
 * @returns the zip's path.
 */
export function denortCachePath(denoDir: string, version: string, target: Target): string {
  return join(denoDir, "dl", "release", `v${version}`, `denort-${target}.zip`);
}

/**
 * The download URL Deno would use.
 *
 * @param version Deno version.
 * @param target target triple.
 * @returns the URL.
 */
export function denortUrl(version: string, target: Target): string {
  return `${DOWNLOAD_HOST}/release/v${version}/denort-${target}.zip`;
}

/**
 * Check a denort zip (a root entry `denort`, an ELF executable) and tell its target.
 *
 * @param zipPath the zip.
 * @param version the Deno version it must be, for a warning when it does not say so.
 * @returns the target and any warnings.
 * @throws {DenortError} when the file is not such a zip.
 */
export async function inspectDenortZip(
  zipPath: string,
  version: string,
): Promise<{ target: Target; warnings: string[] }> {
  let denort: Uint8Array;
  try {
    denort = unzipEntry(await Deno.readFile(zipPath), "denort");
  } catch (e) {
    throw new DenortError(
      `${zipPath} is not a denort zip (expected a zip with a root entry "denort")`,
      { cause: e },
    );
  }
  const target = elfTarget(denort);
  if (!target) {
    throw new DenortError(
      `${zipPath}: its "denort" entry is not a Linux x86_64/aarch64 executable`,
    );
  }
  const warnings = hasVersion(denort, version)
    ? []
    : [`${zipPath}: could not confirm it is denort ${version} (no "Deno/${version}" inside)`];
  return { target, warnings };
}

/**
 * Copy a denort zip into Deno's cache, where `deno compile` finds it for its target.
 *
 * @param zipPath the zip (e.g. denort-aarch64-unknown-linux-gnu.zip from the Deno release).
 * @param denoDir Deno's cache directory.
 * @param version Deno version.
 * @returns the target it serves, the cache path and warnings.
 * @throws {DenortError} when the zip is not a denort zip.
 */
export async function fillDenortCache(
  zipPath: string,
  denoDir: string,
  version: string,
): Promise<{ target: Target; path: string; warnings: string[] }> {
  const { target, warnings } = await inspectDenortZip(zipPath, version);
  const path = denortCachePath(denoDir, version, target);
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.copyFile(zipPath, tmp);
  await Deno.rename(tmp, path);
  return { target, path, warnings };
}

/** How `deno compile` will get its runtime for one target. */
export type DenortSource =
  | { kind: "env"; path: string; warnings: string[] }
  | { kind: "cache"; path: string; warnings: string[] }
  | { kind: "download"; url: string; warnings: string[] };

/** Options of {@linkcode resolveDenort}. */
export interface ResolveDenortOptions {
  /** Deno's cache directory. */
  denoDir: string;
  /** Deno version. @default Deno.version.deno */
  version?: string;
  /** `DENORT_BIN`. @default Deno.env.get("DENORT_BIN") */
  denortBin?: string | undefined;
  /** How long to wait for the download host. @default 5000 */
  probeTimeout?: number;
}

/** The heading of packaging/README.md that explains building without the download host. */
export const OFFLINE_SECTION = "Building offline: the denort runtime";

function howToSupply(target: Target, cache: string, version: string): string {
  return [
    `deno compile needs the denort runtime of Deno ${version} for ${target}. Supply one:`,
    `  - deno task compile --denort /path/to/denort-${target}.zip   (copied to the cache below)`,
    `  - or put that zip at ${cache}`,
    `  - or DENORT_BIN=/path/to/denort (the unzipped runtime; used for every target)`,
    `The zip is published with each Deno release as ${denortUrl(version, target)};`,
    `fetch it on a machine that can reach the host. See packaging/README.md, "${OFFLINE_SECTION}".`,
  ].join("\n");
}

/**
 * Decide where the runtime for `target` comes from, failing fast with instructions when there is
 * none: DENORT_BIN (checked against the target), the cache zip (checked), else a short probe of
 * the download host.
 *
 * @param target the target triple.
 * @param options see {@linkcode ResolveDenortOptions}.
 * @returns the source `deno compile` will use.
 * @throws {DenortError} when DENORT_BIN or the cached zip is wrong, or nothing is there and the
 *   download host does not answer within `probeTimeout`.
 */
export async function resolveDenort(
  target: Target,
  {
    denoDir,
    version = Deno.version.deno,
    denortBin = Deno.env.get("DENORT_BIN"),
    probeTimeout = 5000,
  }: ResolveDenortOptions,
): Promise<DenortSource> {
  const cache = denortCachePath(denoDir, version, target);
  if (denortBin) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(denortBin);
    } catch (e) {
      throw new DenortError(`DENORT_BIN=${denortBin} cannot be read`, { cause: e });
    }
    const got = elfTarget(bytes);
    if (got !== target) {
      throw new DenortError(
        `DENORT_BIN=${denortBin} is ${got ? `a ${got} runtime` : "not a Linux executable"}, ` +
          `not ${target}; deno compile would use it for every target. Unset DENORT_BIN and ` +
          `use --denort with one zip per target.\n${howToSupply(target, cache, version)}`,
      );
    }
    const warnings = hasVersion(bytes, version)
      ? []
      : [`DENORT_BIN=${denortBin}: could not confirm it is denort ${version}`];
    return { kind: "env", path: denortBin, warnings };
  }
  try {
    await Deno.stat(cache);
    const { target: got, warnings } = await inspectDenortZip(cache, version);
    if (got !== target) {
      throw new DenortError(`${cache} holds a ${got} runtime, not ${target}: remove it`);
    }
    return { kind: "cache", path: cache, warnings };
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const url = denortUrl(version, target);
  let reason: string;
  try {
    const res = await fetch(url, { method: "HEAD", signal: AbortSignal.timeout(probeTimeout) });
    await res.body?.cancel();
    if (res.ok) return { kind: "download", url, warnings: [] };
    reason = `HTTP ${res.status}`;
  } catch (e) {
    reason = e instanceof DOMException && e.name === "TimeoutError"
      ? `no answer within ${probeTimeout} ms`
      : [e, (e as Error).cause].filter(Boolean).map((x) => (x as Error).message ?? x).join(": ");
  }
  throw new DenortError(
    `no denort runtime for ${target}: DENORT_BIN is not set, ${cache} does not exist, and the ` +
      `Deno download host is unreachable (${url}: ${reason}).\n${
        howToSupply(target, cache, version)
      }`,
  );
}
