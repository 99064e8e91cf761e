/**
 * Replaying a recorded real-PVE transcript (../shared/pve-api/transcripts/*.json) against the
 * sandbox: the one normaliser both sides go through, and the comparison that collects every
 * difference instead of stopping at the first.
 *
 * The recording already has its volatile values replaced by placeholders (`<upid>`, `<n>`,
 * `<mac>`, `<digest>`, `<uuid>`, `<tmp>`, `/dev/loop<N>`, …) and its hash-ordered lists sorted.
 * A live answer is brought into the same form by `normalise` (string patterns, sorted lists);
 * a placeholder left in the expectation that has no textual pattern (`<n>`, `<vmid>`,
 * `<secret>`, `<fingerprint>`) then matches any live value of its class, nothing else.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export interface RecordedTask {
  task_status: string;
  exitstatus: string;
  log_tail: string[];
}

export interface Exchange {
  step: string;
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  params: Record<string, string | number> | null;
  status: number;
  reason: string;
  body: any;
  task?: RecordedTask;
  /** What the recording host did differently from a normal PVE host; see `artifactRules`. */
  host_artifact?: string;
  /** Multipart file parts: field → {filename, bytes, sha256} of the file the recording sent. */
  files?: Record<string, { filename: string; bytes: number; sha256: string }>;
}

/** The transcripts live outside the repo (never copied into it): `<repo>/../shared/pve-api/transcripts`. */
export const TRANSCRIPT_DIR = path.resolve(__dirname, "../../../shared/pve-api/transcripts");

export function loadTranscript(file: string): Exchange[] {
  const full = path.join(TRANSCRIPT_DIR, file);
  if (!fs.existsSync(full)) throw new Error(`transcript ${full} not found: the recordings live in ../shared/pve-api/transcripts next to the repository`);
  return JSON.parse(fs.readFileSync(full, "utf8")) as Exchange[];
}

// ---- normalisation ----

const STRING_RULES: Array<[RegExp, string]> = [
  [/UPID:[^:\s]+:[0-9A-F]{8}:[0-9A-F]{8,}:[0-9A-F]{8}:[^:\s]*:[^:\s]*:[^:\s]+:/g, "<upid>"],
  [/\b[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\b/gi, "<uuid>"],
  // exactly six octets: not a piece of a longer colon-separated fingerprint
  [/(?<![0-9A-F]:?)(?:[0-9A-F]{2}:){5}[0-9A-F]{2}(?!:?[0-9A-F])/gi, "<mac>"],
  [/\/dev\/loop\d+/g, "/dev/loop<N>"],
  [/pveupload-[0-9a-zA-Z_.-]+?(?=\s|$|')/g, "pveupload-<tmp>"],
  // tar's throughput is timing: `Total bytes read: 2140160 (2.1MiB, 33MiB/s)`
  [/(Total bytes read: \d+ \([^,]+), [^)]+\)/g, "$1, <rate>)"],
];

export function normaliseString(s: string): string {
  let out = s;
  for (const [re, rep] of STRING_RULES) out = out.replace(re, rep);
  return out;
}

/** The key PVE lists are told apart by, for sorting hash-ordered lists. */
const SORT_KEYS = ["volid", "storage", "vmid", "key", "name", "node", "id", "subdir"];

function sortKey(v: unknown): string {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    for (const k of SORT_KEYS) if (k in o) return `${k}=${String(o[k])}`;
  }
  return JSON.stringify(v);
}

/**
 * Live (or recorded) value → placeholder form. `sortLists`: the answer's lists come from a
 * Perl hash in PVE (every GET list except task lists and task logs), so their order is not
 * part of the behaviour.
 */
export function normalise(value: unknown, sortLists: boolean): unknown {
  if (typeof value === "string") {
    // a config digest (SHA-1), also as the `value` of the pending list's `digest` row
    if (/^[0-9a-f]{40}$/.test(value)) return "<digest>";
    return normaliseString(value);
  }
  if (Array.isArray(value)) {
    const items = value.map((v) => normalise(v, sortLists));
    return sortLists ? items.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0)) : items;
  }
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = normalise(v, sortLists);
    return out;
  }
  return value;
}

/** Placeholders without a textual pattern: the class of live value each one stands for. */
const CLASS_PLACEHOLDERS: Record<string, (v: unknown) => boolean> = {
  "<n>": (v) => typeof v === "number" || (typeof v === "string" && /^-?\d+(\.\d+)?(e[-+]?\d+)?$/i.test(v)),
  "<vmid>": (v) => (typeof v === "string" || typeof v === "number") && /^\d+$/.test(String(v)),
  "<secret>": (v) => typeof v === "string" && v.length > 0,
  "<fingerprint>": (v) => typeof v === "string" && /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/i.test(v),
};

const show = (v: unknown) => (v === undefined ? "(absent)" : JSON.stringify(v));

/** Push one line per difference between `expected` and `actual` (both normalised) into `out`. */
export function compare(expected: unknown, actual: unknown, where: string, out: string[]): void {
  if (typeof expected === "string" && CLASS_PLACEHOLDERS[expected]) {
    if (!CLASS_PLACEHOLDERS[expected](actual)) out.push(`${where}: expected ${expected}, got ${show(actual)}`);
    return;
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (expected.length !== actual.length) {
      out.push(`${where}: expected ${expected.length} items ${show(expected)}, got ${actual.length} ${show(actual)}`);
      return;
    }
    expected.forEach((e, i) => compare(e, actual[i], `${where}[${i}]`, out));
    return;
  }
  const isObj = (v: unknown) => !!v && typeof v === "object" && !Array.isArray(v);
  if (isObj(expected) && isObj(actual)) {
    const e = expected as Record<string, unknown>;
    const a = actual as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (!(k in a)) out.push(`${where}.${k}: expected ${show(e[k])}, missing`);
      else compare(e[k], a[k], `${where}.${k}`, out);
    }
    for (const k of Object.keys(a)) if (!(k in e)) out.push(`${where}.${k}: unexpected key, value ${show(a[k])}`);
    return;
  }
  if (JSON.stringify(expected) !== JSON.stringify(actual)) out.push(`${where}: expected ${show(expected)}, got ${show(actual)}`);
}

/** Replace every occurrence of the recording's values (checksums, …) with the live ones. */
export function substitute<T>(value: T, subs: Map<string, string>): T {
  if (!subs.size) return value;
  let text = JSON.stringify(value);
  for (const [from, to] of subs) text = text.split(from).join(to);
  return JSON.parse(text) as T;
}

/**
 * How a `host_artifact` note is honoured: the note names what the recording host could not do
 * like a normal PVE host, so that part of the exchange is not compared.
 */
export function artifactRules(note: string | undefined): { skipLogTail: boolean; ignoreKeys: string[] } {
  if (!note) return { skipLogTail: false, ignoreKeys: [] };
  const keys = /not ([a-z][a-z-]+)$/.exec(note.trim());
  return {
    skipLogTail: /log tail/.test(note),
    ignoreKeys: /compare the shape only/.test(note) && keys ? [keys[1]] : [],
  };
}

/**
 * Keys PVE derives from an ignored one and sends only when it has content: `interfaces` adds
 * `inet`/`inet6` (the last address of each family) only for an interface with addresses.
 */
const DERIVED: Record<string, string[]> = { "ip-addresses": ["inet", "inet6"] };

/**
 * Set every value under one of `keys` to a marker on both sides (the key itself still counts)
 * and drop the keys derived from it.
 */
export function blank(value: unknown, keys: string[]): unknown {
  if (!keys.length) return value;
  const dropped = keys.flatMap((k) => DERIVED[k] ?? []);
  if (Array.isArray(value)) return value.map((v) => blank(v, keys));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (dropped.includes(k)) continue;
      out[k] = keys.includes(k) ? "<not compared>" : blank(v, keys);
    }
    return out;
  }
  return value;
}
