/**
 * Deterministic Zscaler-NSS-like web log lines (JSONL, `{"sourcetype": ..., "event": {...}}`),
 * about 1.3 KB a line and about 15:1 under gzip, like the S3 feed the `stream` mode was built
 * for. Used by `deno task demo` (which writes them as a bucket-like directory) and by the
 * benchmarks. The same seed always gives the same bytes.
 *
 * @example
 * ```ts
 * import { zscalerFile, zscalerLines } from "./zscaler.ts";
 * const lines = zscalerLines(3, 42); // three JSON strings, no newlines
 * const file = zscalerFile(10 * 1024 * 1024, 7); // ~10 MB of JSONL, each line ending in "\n"
 * ```
 * @module
 */

/** Options for {@linkcode zscalerLines} and {@linkcode zscalerFile}. */
export interface ZscalerOptions {
  /**
   * Unix time (seconds) of the first event; events advance by 0–2 s each.
   * @default 1760305292
   */
  start?: number;
}

const ACTIONS = ["Allowed", "Allowed", "Allowed", "Allowed", "Blocked", "Caution"];
const METHODS = ["GET", "GET", "GET", "POST", "POST", "CONNECT", "PUT", "HEAD", "OPTIONS"];
const PROTOCOLS = ["HTTPS", "HTTPS", "HTTPS", "HTTP", "SSL", "TUNNEL"];
const STATUS = ["200", "200", "200", "200", "204", "301", "302", "304", "403", "404", "500"];
const CATEGORIES: [string, string, string][] = [
  ["Web Search", "Information Technology", "Business Use"],
  ["Professional Services", "Business and Economy", "Business Use"],
  ["Corporate Marketing", "Business and Economy", "Business Use"],
  ["Social Networking", "Internet Communication", "Productivity Loss"],
  ["Streaming Media", "Entertainment/Recreation", "Bandwidth Loss"],
  ["News and Media", "News and Media", "General Surfing"],
  ["Online Shopping", "Shopping and Auctions", "General Surfing"],
  ["Web Banner", "Advertising", "General Surfing"],
  ["Content Server", "Information Technology", "Bandwidth Loss"],
  ["Miscellaneous or Unknown", "Miscellaneous", "Security Risk"],
  ["Malicious Content", "Security", "Security Risk"],
  ["Collaboration", "Internet Communication", "Business Use"],
];
const APPS: [string, string][] = [
  ["General Browsing", "General Browsing"],
  ["Office 365", "Enterprise Collaboration"],
  ["Microsoft Teams", "Enterprise Collaboration"],
  ["Google Search", "Web Search"],
  ["YouTube", "Streaming Media"],
  ["Salesforce", "Sales and Marketing"],
  ["Slack", "Instant Messaging"],
  ["Dropbox", "File Sharing"],
  ["LinkedIn", "Social Networking"],
  ["Zoom", "Online Meetings"],
];
const DOMAINS = [
  "www.google.com",
  "login.microsoftonline.com",
  "outlook.office365.com",
  "teams.microsoft.com",
  "graph.microsoft.com",
  "www.youtube.com",
  "i.ytimg.com",
  "salesforce.com",
  "na123.salesforce.com",
  "slack.com",
  "files.slack.com",
  "www.dropbox.com",
  "www.linkedin.com",
  "zoom.us",
  "cdn.jsdelivr.net",
  "fonts.gstatic.com",
  "ad.doubleclick.net",
  "news.ycombinator.com",
  "www.bbc.co.uk",
  "www.amazon.com",
  "images-na.ssl-images-amazon.com",
  "api.github.com",
  "objects.githubusercontent.com",
  "update.code.visualstudio.com",
  "s3.amazonaws.com",
  "telemetry.example-cdn.net",
  "tracker.adnet-example.com",
  "malware-test.example.org",
];
const PATHS = [
  "/",
  "/search",
  "/api/v1/events",
  "/common/oauth2/v2.0/token",
  "/owa/service.svc",
  "/v1.0/me/messages",
  "/watch",
  "/vi/thumbnail/hqdefault.jpg",
  "/services/data/v58.0/query",
  "/api/conversations.history",
  "/s/files/report.pdf",
  "/feed/update",
  "/wc/join",
  "/npm/bootstrap@5.3.0/dist/css/bootstrap.min.css",
  "/s/roboto/v30/font.woff2",
  "/pagead/ads",
  "/item",
  "/news/world",
  "/dp/B0C1234567",
  "/repos/org/repo/releases/latest",
  "/stable/update.json",
  "/bucket/object.tar.gz",
];
const CONTENT_TYPES = [
  "text/html",
  "application/json",
  "image/jpeg",
  "image/png",
  "application/javascript",
  "text/css",
  "application/octet-stream",
  "font/woff2",
  "video/mp4",
  "application/pdf",
];
const FILE_TYPES = ["None", "None", "None", "PDF Documents", "ZIP", "Windows Executables"];
const USER_AGENTS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36 Edg/141.0.0.0",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
  "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
  "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
  "Teams/25.1.0 (Windows NT 10.0; Win64; x64)",
  "curl/8.5.0",
  "python-requests/2.32.3",
];
const DEPARTMENTS = [
  "Engineering",
  "Finance",
  "Sales",
  "Marketing",
  "Human Resources",
  "Legal",
  "IT Operations",
  "Customer Support",
  "Executive",
];
const LOCATIONS = [
  "HQ-NewYork",
  "Branch-London",
  "Branch-Frankfurt",
  "Branch-Singapore",
  "Remote-Users",
  "DC-Ashburn",
];
const FIRST = ["james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda"];
const LAST = ["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis"];
const THREATS: [string, string, string][] = [
  ["None", "None", "None"],
  ["None", "None", "None"],
  ["None", "None", "None"],
  ["None", "None", "None"],
  ["Phishing", "Phishing", "Phish.Generic"],
  ["Virus", "Malware", "Win32.Trojan.Agent"],
  ["Spyware", "Adware", "Adware.Tracker"],
];
const REASONS = ["Allowed", "Not allowed to browse this category", "Allowed", "Threat detected"];

/** mulberry32: a small, fast, deterministic PRNG returning 32-bit unsigned integers. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Zscaler's NSS datetime: `Sun Oct 12 21:41:32 2025`. */
function nssTime(unix: number): string {
  const d = new Date(unix * 1000);
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${pad2(d.getUTCDate())} ` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} ` +
    `${d.getUTCFullYear()}`;
}

/**
 * Generate `n` Zscaler-like JSON log lines (without newlines).
 *
 * @param n how many lines.
 * @param seed any integer; the same seed gives the same lines.
 * @param options see {@linkcode ZscalerOptions}.
 * @returns the lines as strings, ~1.3 KB each.
 * @throws {RangeError} if `n` is not a non-negative integer.
 */
export function zscalerLines(n: number, seed: number, options: ZscalerOptions = {}): string[] {
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`n must be a non-negative integer: got ${n}`);
  }
  const { start = 1760305292 } = options;
  const r = prng(seed);
  const pick = <T>(a: readonly T[]): T => a[r() % a.length]!;
  const hex = (digits: number): string => {
    let s = "";
    while (s.length < digits) s += r().toString(16).padStart(8, "0");
    return s.slice(0, digits);
  };
  const ip = (a: number, b: number): string => `${a}.${b}.${r() % 256}.${1 + r() % 254}`;
  const out = new Array<string>(n);
  let t = start;
  let eventId = 7_300_000_000_000_000 + (r() % 1_000_000) * 1000;
  for (let i = 0; i < n; i++) {
    t += r() % 3;
    eventId += 1 + (r() % 7);
    const [cat, superCat, cls] = pick(CATEGORIES);
    const [app, appClass] = pick(APPS);
    const [threatClass, threatCat, threatName] = pick(THREATS);
    const host = pick(DOMAINS);
    const path = pick(PATHS);
    const query = r() % 3 === 0 ? `?q=${hex(6 + r() % 18)}&id=${r() % 100000}` : "";
    const user = `${pick(FIRST)}.${pick(LAST)}${r() % 50}@corp.example.com`;
    const reqSize = 200 + r() % 4000;
    const respSize = 300 + r() % 250_000;
    const action = pick(ACTIONS);
    const event = {
      datetime: nssTime(t),
      reason: action === "Allowed" ? "Allowed" : pick(REASONS),
      event_id: String(eventId),
      protocol: pick(PROTOCOLS),
      action,
      transactionsize: String(reqSize + respSize),
      responsesize: String(respSize),
      requestsize: String(reqSize),
      urlcategory: cat,
      serverip: ip(13 + r() % 200, r() % 256),
      clienttranstime: String(r() % 2000),
      requestmethod: pick(METHODS),
      refererURL: r() % 2 === 0 ? "None" : `https://${pick(DOMAINS)}${pick(PATHS)}`,
      useragent: pick(USER_AGENTS),
      product: "NSS",
      location: pick(LOCATIONS),
      ClientIP: ip(10, r() % 32),
      status: pick(STATUS),
      user,
      url: `${host}${path}${query}`,
      vendor: "Zscaler",
      hostname: host,
      clientpublicIP: ip(203, 0),
      threatcategory: threatCat,
      threatname: threatName,
      filetype: pick(FILE_TYPES),
      appname: app,
      pagerisk: String(r() % 100),
      department: pick(DEPARTMENTS),
      urlsupercategory: superCat,
      appclass: appClass,
      dlpengine: "None",
      urlclass: cls,
      threatclass: threatClass,
      dlpidentifier: "0",
      bwthrottle: "NO",
      servertranstime: String(r() % 1500),
      contenttype: pick(CONTENT_TYPES),
      unscannabletype: "None",
      deviceowner: user.slice(0, user.indexOf("@")),
      devicehostname: `WS-${hex(8).toUpperCase()}`,
      ssldecrypted: r() % 4 === 0 ? "No" : "Yes",
      ruletype: "None",
      rulelabel: r() % 5 === 0 ? `Rule_${r() % 40}` : "None",
      cltsslcipher: "TLS_AES_256_GCM_SHA384",
      srvsslcipher: "TLS_AES_128_GCM_SHA256",
      epochtime: String(t),
      recordid: hex(16),
    };
    out[i] = JSON.stringify({ sourcetype: "zscalernss-web", event });
  }
  return out;
}

/**
 * Generate a JSONL file of Zscaler-like lines of at least `targetBytes` bytes (whole lines,
 * each ending with `\n`).
 *
 * @param targetBytes the minimum size in bytes (~10 MB is a typical feed file).
 * @param seed any integer; the same seed gives the same bytes.
 * @param options see {@linkcode ZscalerOptions}.
 * @returns the UTF-8 bytes.
 * @throws {RangeError} if `targetBytes` is not a non-negative integer.
 */
export function zscalerFile(
  targetBytes: number,
  seed: number,
  options: ZscalerOptions = {},
): Uint8Array {
  if (!Number.isInteger(targetBytes) || targetBytes < 0) {
    throw new RangeError(`targetBytes must be a non-negative integer: got ${targetBytes}`);
  }
  const parts: string[] = [];
  let size = 0;
  const r = prng(seed ^ 0x5bd1e995);
  const { start = 1760305292 } = options;
  let t = start;
  // Generate in blocks so a large file does not need one giant array of strings up front.
  while (size < targetBytes) {
    const block = zscalerLines(256, r(), { start: t }).join("\n") + "\n";
    t += 256;
    parts.push(block);
    size += block.length; // ASCII only: string length == byte length
  }
  const all = parts.join("");
  // Trim to whole lines just past targetBytes.
  const end = all.indexOf("\n", Math.max(0, targetBytes - 1)) + 1;
  return new TextEncoder().encode(end > 0 ? all.slice(0, end) : all);
}
