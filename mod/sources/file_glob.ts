/**
 * Globs for the tail source: a glob as a RegExp over a whole "/"-separated path, and the directory
 * a glob's walk starts in.
 *
 * @example
 * ```ts
 * globToRegExp("/var/log/**\/*.log").test("/var/log/a/b.log"); // true
 * globBase("/var/log/app/*.log"); // { base: "/var/log/app", depth: 1 }
 * ```
 * @module
 */

/** Characters that make a path segment a pattern. */
const GLOB_CHARS = /[*?[\]{}]/;

/**
 * A glob as a RegExp over a whole "/"-separated path: `*` and `?` within a segment, `**` across
 * segments, `[abc]` and `{a,b}` as in a shell.
 */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        const slash = glob[i + 2] === "/";
        re += slash ? "(?:.*/)?" : ".*";
        i += slash ? 2 : 1;
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const close = glob.indexOf("]", i + 2);
      if (close < 0) re += "\\[";
      else {
        const body = glob.slice(i + 1, close).replace(/^!/, "^").replace(/\\/g, "\\\\");
        re += `[${body}]`;
        i = close;
      }
    } else if (c === "{") {
      braces++;
      re += "(?:";
    } else if (c === "}" && braces > 0) {
      braces--;
      re += ")";
    } else if (c === "," && braces > 0) re += "|";
    else re += c.replace(/[.+^$()|\\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * The directory a glob starts in (its segments before the first with a glob character) and how
 * many directory levels below it can match (Infinity with `**`).
 */
export function globBase(pattern: string): { base: string; depth: number } {
  const parts = pattern.split("/");
  const i = parts.findIndex((p) => GLOB_CHARS.test(p));
  if (i < 0) return { base: parts.slice(0, -1).join("/") || "/", depth: 1 };
  const rest = parts.slice(i);
  return {
    base: parts.slice(0, i).join("/") || "/",
    depth: rest.includes("**") ? Infinity : rest.length,
  };
}
