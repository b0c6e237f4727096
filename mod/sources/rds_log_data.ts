/**
 * DownloadDBLogFilePortion's `LogFileData` taken out of the raw XML answer as bytes, before the
 * SDK parses it: the SDK's XML parser builds a text node one character at a time (`text += c`),
 * which for a 1 MB portion makes a million strings that all live until the end, so every young
 * generation collection copies them (most of `process`'s CPU went to the garbage collector).
 * The SDK still signs, sends, retries and reads the rest of the answer (marker, errors).
 * @module
 */

const LT = 0x3c, AMP = 0x26, SEMI = 0x3b;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Where a byte is next in `bytes` from `from` on, or -1. `Uint8Array.indexOf` is a loop per byte
 * in V8 (~0.7 ms a MB); decoding the bytes once (~0.1 ms a MB of ASCII) and searching the text
 * is several times faster. The text's indices are the bytes' when it is as long as the bytes
 * (each byte one UTF-16 unit: ASCII, or a lone invalid byte as one U+FFFD; a multi-byte
 * character makes it shorter), else the bytes are searched.
 */
function byteFinder(bytes: Uint8Array): (byte: number, from: number) => number {
  const text = dec.decode(bytes);
  if (text.length !== bytes.byteLength) return (byte, from) => bytes.indexOf(byte, from);
  return (byte, from) => text.indexOf(String.fromCharCode(byte), from);
}

/**
 * Cuts the element `<name>...</name>` (or `<name/>`) out of an XML document.
 *
 * @param xml the document's bytes; its element's text is unescaped in place.
 * @param name the element's name (no namespace prefix, no attributes).
 * @returns the element's text (a view of `xml`), and the document without the element; or
 *   `undefined` when the document has no such element.
 */
export function takeXmlText(
  xml: Uint8Array,
  name: string,
): { text: Uint8Array; rest: Uint8Array } | undefined {
  const open = enc.encode(`<${name}>`);
  const close = enc.encode(`</${name}>`);
  const empty = enc.encode(`<${name}/>`);
  const find = byteFinder(xml);
  let start = indexOf(xml, open, 0, find);
  if (start < 0) {
    start = indexOf(xml, empty, 0, find);
    if (start < 0) return undefined;
    return { text: xml.subarray(0, 0), rest: join(xml, start, start + empty.length) };
  }
  const from = start + open.length;
  // The text has no "<" (it would be escaped): the first one after it closes the element.
  const end = find(LT, from);
  if (end < 0 || !startsWith(xml, close, end)) return undefined;
  const rest = join(xml, start, end + close.length);
  const within = (byte: number, i: number) => {
    const at = find(byte, from + i);
    return at < 0 || at >= end ? -1 : at - from;
  };
  return { text: unescapeXml(xml.subarray(from, end), within), rest };
}

/**
 * Replaces XML's entities (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&#N;` `&#xH;`) with the
 * characters they stand for, in place (the result is never longer). An unknown entity is kept.
 *
 * @param bytes the escaped text, unescaped in place.
 * @param find where a byte is next in `bytes` as they were (default: `bytes.indexOf`; a faster
 *   search of the same bytes may be passed, see byteFinder()).
 * @returns a view of `bytes`' start, as long as the unescaped text.
 */
export function unescapeXml(
  bytes: Uint8Array,
  find: (byte: number, from: number) => number = (b, i) => bytes.indexOf(b, i),
): Uint8Array {
  let r = find(AMP, 0);
  if (r < 0) return bytes;
  let w = r;
  while (r < bytes.length) {
    const amp = find(AMP, r);
    const next = amp < 0 ? bytes.length : amp;
    if (next > r) {
      // (a loop moves a short run faster than a call of copyWithin)
      if (w === r) w = next;
      else if (next - r > 64) w += (bytes.copyWithin(w, r, next), next - r);
      else for (let i = r; i < next; i++) bytes[w++] = bytes[i]!;
      r = next;
    }
    if (amp < 0) break;
    // An entity is short: its ";" is at most 12 bytes after the "&".
    let semi = -1;
    for (let i = amp + 1, last = Math.min(bytes.length, amp + 13); i < last; i++) {
      if (bytes[i] === SEMI) {
        semi = i;
        break;
      }
    }
    const cp = semi < 0 ? undefined : entity(bytes, amp + 1, semi);
    if (cp === undefined) {
      bytes[w++] = AMP;
      r = amp + 1;
      continue;
    }
    w = putUtf8(bytes, w, cp);
    r = semi + 1;
  }
  return bytes.subarray(0, w);
}

/** The code point of the entity between `&` and `;`, or undefined. */
function entity(b: Uint8Array, from: number, to: number): number | undefined {
  const n = to - from;
  const c = b[from]!;
  if (c === 0x23) { // #
    const hex = b[from + 1] === 0x78 || b[from + 1] === 0x58;
    let v = 0;
    const start = from + (hex ? 2 : 1);
    if (start >= to) return undefined;
    for (let i = start; i < to; i++) {
      const d = b[i]!;
      const digit = d >= 0x30 && d <= 0x39
        ? d - 0x30
        : hex && (d | 0x20) >= 0x61 && (d | 0x20) <= 0x66
        ? (d | 0x20) - 0x61 + 10
        : -1;
      if (digit < 0) return undefined;
      v = v * (hex ? 16 : 10) + digit;
    }
    return v <= 0x10ffff ? v : undefined;
  }
  const at = (i: number) => b[from + i];
  if (n === 4 && c === 0x71 && at(1) === 0x75 && at(2) === 0x6f && at(3) === 0x74) return 0x22; // quot
  if (n === 3 && c === 0x61 && at(1) === 0x6d && at(2) === 0x70) return 0x26; // amp
  if (n === 2 && at(1) === 0x74) return c === 0x6c ? 0x3c : c === 0x67 ? 0x3e : undefined; // lt gt
  if (n === 4 && c === 0x61 && at(1) === 0x70 && at(2) === 0x6f && at(3) === 0x73) return 0x27; // apos
  return undefined;
}

function putUtf8(b: Uint8Array, w: number, cp: number): number {
  if (cp < 0x80) b[w++] = cp;
  else if (cp < 0x800) {
    b[w++] = 0xc0 | (cp >> 6);
    b[w++] = 0x80 | (cp & 0x3f);
  } else if (cp < 0x10000) {
    b[w++] = 0xe0 | (cp >> 12);
    b[w++] = 0x80 | ((cp >> 6) & 0x3f);
    b[w++] = 0x80 | (cp & 0x3f);
  } else {
    b[w++] = 0xf0 | (cp >> 18);
    b[w++] = 0x80 | ((cp >> 12) & 0x3f);
    b[w++] = 0x80 | ((cp >> 6) & 0x3f);
    b[w++] = 0x80 | (cp & 0x3f);
  }
  return w;
}

function indexOf(
  hay: Uint8Array,
  needle: Uint8Array,
  from: number,
  find: (byte: number, from: number) => number,
): number {
  for (let i = find(needle[0]!, from); i >= 0; i = find(needle[0]!, i + 1)) {
    if (startsWith(hay, needle, i)) return i;
  }
  return -1;
}

function startsWith(hay: Uint8Array, needle: Uint8Array, at: number): boolean {
  if (at + needle.length > hay.length) return false;
  for (let j = 0; j < needle.length; j++) if (hay[at + j] !== needle[j]) return false;
  return true;
}

/** `xml` without the bytes from `cut` to `resume`, in a new buffer. */
function join(xml: Uint8Array, cut: number, resume: number): Uint8Array {
  const out = new Uint8Array(cut + xml.length - resume);
  out.set(xml.subarray(0, cut));
  out.set(xml.subarray(resume), cut);
  return out;
}
