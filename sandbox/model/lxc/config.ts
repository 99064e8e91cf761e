/**
 * The CT config file (BEHAVIOR.md §4.1): `#` description lines, sorted `key: value` lines,
 * `lxc.*` raw lines (env as `lxc.environment.runtime`), then `[pve:pending]` and one
 * `[snapname]` section per snapshot. `digest` is the SHA-1 of the whole text (§1.4).
 * Property-string values are printed canonically via the shared codec.
 */
import * as crypto from "node:crypto";
import { loadSchema, lxcKeyFormat, type PveVersion } from "../../../provider/proxmox/schema";
import { parsePropertyString, printPropertyString } from "../../../provider/proxmox/propertyString";

export interface Section {
  description?: string;
  keys: Record<string, string>;
  lxc: Array<[string, string]>;
}

export interface CtConf extends Section {
  pending: Record<string, string>;
  snapshots: Record<string, Section>;
}

const ENV_KEY = "lxc.environment.runtime";

export function emptyConf(): CtConf {
  return { keys: {}, lxc: [], pending: {}, snapshots: {} };
}

export function parseConf(text: string): CtConf {
  const conf = emptyConf();
  let sec: Section = conf;
  let pendingSec = false;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const s = /^\[([^\]]+)\]\s*$/.exec(line);
    if (s) {
      if (s[1] === "pve:pending") {
        pendingSec = true;
        sec = { keys: conf.pending, lxc: [] };
      } else {
        pendingSec = false;
        sec = conf.snapshots[s[1]] = { keys: {}, lxc: [] };
      }
      continue;
    }
    if (line.startsWith("#")) {
      sec.description = (sec.description ?? "") + line.slice(1) + "\n";
      continue;
    }
    const kv = /^([a-z][a-z0-9_.\-\[\]]*):\s?(.*)$/i.exec(line);
    if (!kv) continue;
    if (kv[1].startsWith("lxc.")) {
      if (pendingSec) continue;
      sec.lxc.push([kv[1], kv[2]]);
    } else {
      sec.keys[kv[1]] = kv[2];
    }
  }
  return conf;
}

function printSection(sec: Section): string {
  let out = "";
  if (sec.description) {
    for (const l of sec.description.replace(/\n$/, "").split("\n")) out += `#${l}\n`;
  }
  for (const k of Object.keys(sec.keys).sort()) {
    if (k === "description") continue;
    out += `${k}: ${sec.keys[k]}\n`;
  }
  for (const [k, v] of sec.lxc) out += `${k}: ${v}\n`;
  return out;
}

export function printConf(conf: CtConf): string {
  let out = printSection(conf);
  if (Object.keys(conf.pending).length) out += `\n[pve:pending]\n` + printSection({ keys: conf.pending, lxc: [] });
  for (const name of Object.keys(conf.snapshots)) out += `\n[${name}]\n` + printSection(conf.snapshots[name]);
  return out;
}

export function digestOf(text: string): string {
  return crypto.createHash("sha1").update(text).digest("hex");
}

/** env as the API shows it: NUL-joined `lxc.environment.runtime` values (§4.3). */
export function envOf(sec: Section): string | undefined {
  const vals = sec.lxc.filter(([k]) => k === ENV_KEY).map(([, v]) => v);
  return vals.length ? vals.join("\0") : undefined;
}

export function setEnv(sec: Section, env: string | undefined): void {
  sec.lxc = sec.lxc.filter(([k]) => k !== ENV_KEY);
  if (env) for (const e of env.split("\0")) if (e) sec.lxc.unshift([ENV_KEY, e]);
  // keep env lines first, in the given order
  const envLines = sec.lxc.filter(([k]) => k === ENV_KEY).reverse();
  sec.lxc = [...envLines, ...sec.lxc.filter(([k]) => k !== ENV_KEY)];
}

/**
 * JSON type of a config value as PVE emits it: `parse_pct_config` runs `check_type`, which
 * returns integers and booleans as numbers but `number` values as the raw string (§1.3).
 */
export function typedValue(key: string, value: string, version: PveVersion = "9.1"): string | number {
  const schema = loadSchema(version).param("/nodes/{node}/lxc/{vmid}/config", "PUT", key);
  const type = schema?.type ?? (key === "snaptime" ? "integer" : key === "template" ? "boolean" : undefined);
  if ((type === "integer" || type === "boolean") && /^[+-]?\d+$/.test(value)) return Number(value);
  return value;
}

/** A section as the API returns it (keys + description + env + lxc). */
export function sectionToApi(sec: Section, withLxc = true, version: PveVersion = "9.1"): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(sec.keys)) out[k] = typedValue(k, v, version);
  if (sec.description !== undefined) out.description = sec.description;
  const env = envOf(sec);
  if (env !== undefined) out.env = env;
  const raw = sec.lxc.filter(([k]) => k !== ENV_KEY);
  if (withLxc && raw.length) out.lxc = raw.map(([k, v]) => [k, v]);
  return out;
}

/** Canonical form of a config value: property strings re-printed, tags/DNS lists normalised. */
export function canonicalValue(key: string, value: string, version: PveVersion): string {
  if (key === "tags") {
    const tags = [...new Set(value.split(/[;, ]+/).filter(Boolean).map((t) => t.toLowerCase()))].sort();
    return tags.join(";");
  }
  if (key === "nameserver" || key === "searchdomain") return value.split(/[\s,;]+/).filter(Boolean).join(" ");
  const fmt = lxcKeyFormat(key, version);
  if (!fmt) return value;
  return printPropertyString(parsePropertyString(value, fmt), fmt);
}

export function parseKey(key: string, value: string, version: PveVersion): Record<string, string> {
  const fmt = lxcKeyFormat(key, version);
  return fmt ? parsePropertyString(value, fmt) : {};
}

export function printKey(key: string, data: Record<string, string | undefined>, version: PveVersion): string {
  const fmt = lxcKeyFormat(key, version);
  if (!fmt) throw new Error(`no property format for ${key}`);
  return printPropertyString(data, fmt);
}

export const isVolumeKey = (k: string) => k === "rootfs" || /^mp\d+$/.test(k);
export const isUnusedKey = (k: string) => /^unused\d+$/.test(k);
