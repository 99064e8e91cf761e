/**
 * PVE's named parameter formats (`format: "pve-vmid"` etc. in the API schema), with the
 * error texts PVE's JSONSchema.pm uses, so the client can refuse bad input before sending
 * and the sandbox can answer exactly as PVE would. Named formats outside what this library
 * touches are accepted unchecked (see `isKnownFormat`).
 *
 * Some named formats are themselves property strings (`pve-startup-order`); those are in
 * HASH_FORMATS and parsed by the property-string codec.
 */
import type { ParamSchema } from "./schema";
import { isIP } from "node:net";

type Check = (value: string) => string | undefined;

const re = (r: RegExp, msg: string | ((v: string) => string)): Check => (v) =>
  r.test(v) ? undefined : typeof msg === "function" ? msg(v) : msg;

const DNS_LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
const DNS_NAME = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

export function isIPv4(v: string): boolean {
  return isIP(v) === 4;
}
export function isIPv6(v: string): boolean {
  return isIP(v) === 6;
}
export function isCidr(v: string, family?: 4 | 6): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(v);
  if (!m) return false;
  const fam = isIP(m[1]);
  if (!fam || (family && fam !== family)) return false;
  const bits = Number(m[2]);
  return fam === 4 ? bits <= 32 : bits <= 128;
}

/** Bytes from PVE's size syntax `\d+(\.\d+)?[KMGT]?` (a bare number is bytes). */
export function parseSize(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMGT])?$/.exec(v.trim());
  if (!m) return undefined;
  const mult = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2] as "K"] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

/** PVE's `format_size`: the largest unit that represents the byte count exactly. */
export function formatSize(bytes: number): string {
  const units = ["", "K", "M", "G", "T"];
  let value = bytes;
  let i = 0;
  while (i < units.length - 1 && value % 1024 === 0 && value >= 1024) {
    value /= 1024;
    i++;
  }
  return `${value}${units[i]}`;
}

/** Split a PVE list (`split_list`: comma, semicolon, whitespace or NUL). */
export function splitList(v: string): string[] {
  return v.split(/[,;\s\0]+/).filter((s) => s.length > 0);
}

const checkTag: Check = re(/^[a-z0-9_][a-z0-9_\-+.]*$/i, (v) => `invalid characters in tag '${v}'\n`);

const NAMED: Record<string, Check> = {
  "pve-vmid": re(/^[1-9][0-9]{2,8}$/, "value does not look like a valid VM ID\n"),
  "pve-node": re(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i, "value does not look like a valid node name\n"),
  "pve-configid": re(/^[a-z][a-z0-9_-]+$/i, (v) => `invalid configuration ID '${v}'\n`),
  "pve-storage-id": re(/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, (v) => `storage ID '${v}' contains illegal characters\n`),
  "pve-poolid": re(/^[A-Za-z0-9.\-_]+$/, (v) => `invalid pool ID '${v}'\n`),
  "pve-bridge-id": re(/^[-_.\w\d]+$/, (v) => `invalid bridge ID '${v}'\n`),
  "pve-iface": re(/^[a-zA-Z][a-zA-Z0-9_]{1,20}([:.]\d+)?$/, (v) => `invalid network interface name '${v}'\n`),
  "pve-userid": re(/^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$/, (v) => `value '${v}' does not look like a valid user name\n`),
  "pve-realm": re(/^[A-Za-z][A-Za-z0-9.\-_]+$/, (v) => `value '${v}' does not look like a valid realm\n`),
  "dns-name": re(DNS_NAME, "value does not look like a valid DNS name\n"),
  ipv4: (v) => (isIPv4(v) ? undefined : "value does not look like a valid IPv4 address\n"),
  ipv6: (v) => (isIPv6(v) ? undefined : "value does not look like a valid IPv6 address\n"),
  ip: (v) => (isIP(v) ? undefined : "value does not look like a valid IP address\n"),
  address: (v) => (isIP(v) || DNS_NAME.test(v) ? undefined : "value does not look like a valid address\n"),
  CIDR: (v) => (isCidr(v) ? undefined : "value does not look like a valid CIDR network\n"),
  CIDRv4: (v) => (isCidr(v, 4) ? undefined : "value does not look like a valid IPv4 CIDR network\n"),
  CIDRv6: (v) => (isCidr(v, 6) ? undefined : "value does not look like a valid IPv6 CIDR network\n"),
  // Lower-case "ipv4"/"ipv6" in these two texts, as pve-common writes them (recorded from 8.4).
  "pve-ipv4-config": (v) =>
    v === "dhcp" || v === "manual" || isCidr(v, 4) ? undefined : "value does not look like a valid ipv4 network configuration\n",
  "pve-ipv6-config": (v) =>
    v === "auto" || v === "dhcp" || v === "manual" || isCidr(v, 6)
      ? undefined
      : "value does not look like a valid ipv6 network configuration\n",
  "mac-addr": (v) => {
    if (!/^[a-f0-9]{2}(?::[a-f0-9]{2}){5}$/i.test(v)) return "value does not look like a valid MAC address\n";
    // PVE refuses multicast addresses: the I/G bit (LSB of the first octet) must be 0.
    return parseInt(v.slice(0, 2), 16) & 1 ? "value does not look like a valid unicast MAC address\n" : undefined;
  },
  "disk-size": (v) => (parseSize(v) !== undefined ? undefined : `value does not look like a valid disk size: ${v}\n`),
  "pve-volume-id": re(/^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$/i, (v) => `unable to parse volume ID '${v}'\n`),
  "pve-volume-id-or-absolute-path": (v) =>
    v.startsWith("/") || /^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$/i.test(v) ? undefined : `unable to parse volume ID '${v}'\n`,
  "pve-lxc-mp-string": (v) => {
    if (/(^|\/)\.\.?(\/|$)/.test(v)) return `${v} contains illegal character sequences\n`;
    if (/[,;=]/.test(v) && !/^[a-z][a-z0-9\-_.]*[a-z0-9]:/i.test(v)) return `${v} contains illegal characters\n`;
    return undefined;
  },
  "pve-lxc-dev-string": (v) =>
    /^\/dev\//.test(v) && !/(^|\/)\.\.?(\/|$)/.test(v) ? undefined : `${v} is not a valid device path\n`,
  "pve-tag": checkTag,
  "pve-ct-timezone": re(/^[A-Za-z0-9_+\-/]+$/, (v) => `invalid time zone '${v}'\n`),
  urlencoded: re(/^[-%a-zA-Z0-9_.!~*'()]*$/, (v) => `invalid urlencoded string: ${v}\n`),
  "pve-storage-content": re(/^[a-z]+$/, (v) => `invalid content type '${v}'\n`),
  "pve-task-status-type": re(/^[a-z]+$/i, (v) => `invalid status type '${v}'\n`),
  "pve-priv": re(/^[A-Za-z.]+$/, (v) => `invalid privilege '${v}'\n`),
};

/** Named formats whose value is a property string. Keys follow the PVE definitions. */
export const HASH_FORMATS: Record<string, Record<string, ParamSchema>> = {
  "pve-startup-order": {
    order: { type: "integer", minimum: 0, optional: 1, default_key: 1, description: "Startup order." },
    up: { type: "integer", minimum: 0, optional: 1, description: "Delay in seconds after startup." },
    down: { type: "integer", minimum: 0, optional: 1, description: "Delay in seconds after shutdown." },
  },
};

/** `*-list` formats check every element of a PVE list with the base format. */
function listBase(format: string): string | undefined {
  if (!format.endsWith("-list")) return undefined;
  const base = format.slice(0, -5);
  if (NAMED[base]) return base;
  if (base === "pve-tag") return base;
  if (base === "dns-name" || base === "address") return base;
  return undefined;
}

export function isKnownFormat(format: string): boolean {
  return format in NAMED || format in HASH_FORMATS || listBase(format) !== undefined;
}

/**
 * Check a scalar value against a named format. Returns PVE's validator message (with its
 * trailing newline) or undefined when the value is fine or the format is not modelled.
 */
export function checkNamedFormat(format: string, value: string): string | undefined {
  const direct = NAMED[format];
  if (direct) return direct(value);
  const base = listBase(format);
  if (base) {
    for (const item of splitList(value)) {
      const err = NAMED[base](item);
      if (err) return err;
    }
  }
  return undefined;
}
