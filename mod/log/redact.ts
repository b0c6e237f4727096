/**
 * Secrets out of printed text: the userinfo of URLs (`http://user:pw@host` → `http://***@host`)
 * and the values of secret-looking query parameters (`?api_key=abc` → `?api_key=***`). Applied
 * where the agent prints: the logger, the status endpoint's answers and `validate --show`, so an
 * endpoint URL that carries credentials, and an error text that quotes it (Deno's fetch errors
 * carry the whole URL), do not leak.
 *
 * @example
 * ```ts
 * redactText("error sending request for url (http://u:p@h/x?api_key=k&a=1)");
 * // "error sending request for url (http://***@h/x?api_key=***&a=1)"
 * ```
 * @module
 */

/** Query parameter names whose values are secrets: names containing one of these words. */
export const SECRET_PARAM = /key|token|secret|passw|signature|sig|credential/i;

/** A URL inside free text: a scheme, `://`, then up to whitespace, a quote or a bracket. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>()\[\]{}`\\]+/gi;

/** The value of one query parameter: `name=value`, up to the next `&`, `;` or `#`. */
const PARAM = /([?&;])([^=&;#]+)=([^&;#]*)/g;

/**
 * `url` with its userinfo and the values of secret-looking query parameters replaced by `***`.
 *
 * @param url a URL (or anything that looks like one; left alone when it has neither part).
 * @returns the URL safe to print.
 */
export function redactUrl(url: string): string {
  let out = url;
  const scheme = out.indexOf("://");
  if (scheme >= 0) {
    const start = scheme + 3;
    const end = out.slice(start).search(/[/?#]/);
    const authority = end < 0 ? out.slice(start) : out.slice(start, start + end);
    const at = authority.lastIndexOf("@");
    if (at >= 0) {
      out = out.slice(0, start) + "***" + out.slice(start + at);
    }
  }
  const q = out.search(/[?#]/);
  if (q < 0) return out;
  return out.slice(0, q) + out.slice(q).replace(
    PARAM,
    (whole, sep: string, name: string, value: string) =>
      value !== "" && SECRET_PARAM.test(safeDecode(name)) ? `${sep}${name}=***` : whole,
  );
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * `text` with every URL in it passed through {@link redactUrl}.
 *
 * @param text a message, an error chain, a rendered page.
 * @returns the text safe to print (the same string when it holds no URL).
 */
export function redactText(text: string): string {
  if (!text.includes("://")) return text;
  return text.replace(URL_IN_TEXT, redactUrl);
}

/**
 * A value with {@link redactText} applied to every string in it (objects and arrays copied).
 *
 * @param value a log field, a JSON document.
 * @returns the value safe to print.
 */
export function redactValue<T>(value: T): T {
  if (typeof value === "string") return redactText(value) as T;
  if (Array.isArray(value)) return value.map(redactValue) as T;
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, redactValue(v)]),
    ) as T;
  }
  return value;
}
