/**
 * Version information, baked in at build time by packaging/compile.ts.
 *
 * `deno task compile` writes `dist/.build_info.json` (version, git commit, Deno version, build
 * date), embeds it in the binary with `--include` and removes it afterwards. Run from source, the
 * file is absent and the values fall back to deno.json's version and "dev".
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** What packaging/compile.ts records in `dist/.build_info.json`. */
export interface BuildInfo {
  /** deno.json's version when the binary was built. */
  version: string;
  /** `git rev-parse --short=12 HEAD`, with "-dirty" when the tree had changes. */
  commit: string;
  /** The Deno version that compiled the binary (its denort runtime has the same version). */
  deno: string;
  /** ISO 8601 UTC, from SOURCE_DATE_EPOCH when set (reproducible builds). */
  date: string;
  /** The Deno target triple, e.g. x86_64-unknown-linux-gnu. */
  target: string;
}

/** Where compile.ts writes the build info, relative to this module. */
export const BUILD_INFO_URL: URL = new URL("../dist/.build_info.json", import.meta.url);

function readBuildInfo(): Partial<BuildInfo> {
  try {
    // Without read permission (tests, `deno run` without -P) there is no build info: no prompt.
    if (Deno.permissions.querySync({ name: "read", path: BUILD_INFO_URL }).state !== "granted") {
      return {};
    }
    return JSON.parse(Deno.readTextFileSync(BUILD_INFO_URL)) as Partial<BuildInfo>;
  } catch {
    return {};
  }
}

const info = readBuildInfo();

/** The agent's version. */
export const VERSION: string = info.version ?? denoJson.version;
/** The git commit the binary was built from ("dev" when run from source). */
export const GIT_COMMIT: string = info.commit ?? "dev";
/** When the binary was built (ISO 8601 UTC), "dev" when run from source. */
export const BUILD_DATE: string = info.date ?? "dev";
/** The Deno version the binary was built with; the running Deno's when run from source. */
export const DENO_VERSION: string = info.deno ?? Deno.version.deno;
