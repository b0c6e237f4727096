/**
 * A duration field that also takes a plain number of seconds (`polling_interval: 300`), as the
 * reference configs wrote them. Strings parse as every duration does (`5m`, `300s`).
 * @module
 */

import { f, type Field, type FieldOptions } from "./spec.ts";

/**
 * A duration in milliseconds, written `5m` or as plain seconds `300`.
 *
 * @param opts as for `f.duration`.
 * @returns a field parsing to milliseconds.
 */
export function durationOrSeconds(
  opts: FieldOptions<string> & { min?: string; max?: string },
): Field<number> {
  const inner = f.duration(opts);
  return {
    ...inner,
    typeName: "duration, or plain seconds",
    parse(input, path, ctx) {
      const v = input?.value;
      const seconds = typeof v === "number" || (input?.interpolated && typeof v === "string" &&
          /^\d+(\.\d+)?$/.test(v.trim()))
        ? Number(v)
        : undefined;
      if (input && seconds !== undefined && Number.isFinite(seconds) && seconds >= 0) {
        return inner.parse({ ...input, value: `${seconds}s` }, path, ctx);
      }
      return inner.parse(input, path, ctx);
    },
  };
}
