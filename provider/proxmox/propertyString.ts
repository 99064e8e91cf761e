/**
 * The one codec for PVE property strings (`net0: name=eth0,bridge=vmbr0,ip=dhcp`,
 * `rootfs: local-lvm:vm-100-disk-0,size=8G`, `features: nesting=1`, `startup: order=1`).
 * A port of PVE's `parse_property_string` / `print_property_string`
 * (pve-common src/PVE/JSONSchema.pm), driven by the `format` objects in the API schema.
 * Shared by the client (encode what we send, parse what we read) and the sandbox (parse
 * what it receives, print its config files canonically).
 *
 * Values are kept as strings, as PVE stores them; booleans are normalised to "1"/"0".
 * Typed views belong to the callers.
 */
import type { ParamSchema } from "./schema";
import { formatSize, parseSize, HASH_FORMATS } from "./formats";

export type PropertyFormat = Record<string, ParamSchema>;
export type PropertyValues = Record<string, string>;

/** A structural error (PVE dies with this text; the caller prefixes `invalid format - `). */
export class PropertyStringError extends Error {}

/** Resolve a format given as a name (`pve-startup-order`) or as an object. */
export function resolveFormat(format: string | PropertyFormat): PropertyFormat {
  if (typeof format === "object") return format;
  const f = HASH_FORMATS[format];
  if (!f) throw new PropertyStringError(`unknown format: ${format}\n`);
  return f;
}

export function defaultKey(format: PropertyFormat): string | undefined {
  return Object.keys(format).find((k) => format[k].default_key);
}

/** PVE's parse_boolean: 1|on|yes|true → "1", 0|off|no|false → "0", else unchanged. */
export function normaliseBoolean(v: string): string {
  if (/^(1|on|yes|true)$/i.test(v)) return "1";
  if (/^(0|off|no|false)$/i.test(v)) return "0";
  return v;
}

/**
 * Parse a property string into key → value. Aliases resolve to their target key.
 * Throws PropertyStringError with PVE's message for structural problems; value checks
 * (types, required keys, patterns) are the validator's job (`checkObject`).
 */
export function parsePropertyString(text: string, formatIn: string | PropertyFormat): PropertyValues {
  const format = resolveFormat(formatIn);
  const res: PropertyValues = {};
  let defaultKeyUsed: string | undefined;
  for (const part of text.split(",")) {
    if (/^\s*$/.test(part)) continue;
    const kv = /^([^=]+)=(.+)$/s.exec(part);
    if (kv) {
      let k = kv[1];
      let v = kv[2];
      if (res[k] !== undefined) throw new PropertyStringError(`duplicate key in comma-separated list property: ${k}\n`);
      let schema = format[k];
      if (schema?.alias) {
        if (schema.keyAlias) {
          if (res[schema.keyAlias] !== undefined) throw new PropertyStringError(`key alias '${schema.keyAlias}' is already defined\n`);
          res[schema.keyAlias] = k;
        }
        k = schema.alias;
        schema = format[k];
      }
      if (!schema) throw new PropertyStringError(`invalid key in comma-separated list property: ${k}\n`);
      if (schema.type === "boolean") v = normaliseBoolean(v);
      res[k] = v;
    } else if (!part.includes("=")) {
      if (defaultKeyUsed) throw new PropertyStringError(`duplicate key in comma-separated list property: ${defaultKeyUsed}\n`);
      const dk = defaultKey(format);
      if (!dk) throw new PropertyStringError("value without key, but schema does not define a default key\n");
      defaultKeyUsed = dk;
      if (res[dk] !== undefined) throw new PropertyStringError(`duplicate key in comma-separated list property: ${dk}\n`);
      res[dk] = part;
    } else {
      throw new PropertyStringError("missing key in comma-separated list property\n");
    }
  }
  return res;
}

/**
 * Print canonically, as PVE writes config files: the default key first (bare), then the
 * required keys, then the rest alphabetically; sizes in the largest exact unit, booleans
 * as 1/0. Undefined and null values are skipped.
 */
export function printPropertyString(
  data: Record<string, string | number | boolean | undefined | null>,
  formatIn: string | PropertyFormat,
): string {
  const format = resolveFormat(formatIn);
  const parts: string[] = [];
  const done = new Set<string>();
  const fmtValue = (key: string, value: string | number | boolean, schema: ParamSchema | undefined): string => {
    if (schema?.type === "boolean" || typeof value === "boolean") {
      const s = typeof value === "boolean" ? (value ? "1" : "0") : normaliseBoolean(String(value));
      return s;
    }
    if (schema?.format === "disk-size") {
      const n = typeof value === "number" ? value : parseSize(String(value));
      if (n !== undefined) return formatSize(n);
    }
    const s = String(value);
    if (s.includes(",")) throw new PropertyStringError(`illegal value with commas for ${key}\n`);
    return s;
  };
  const add = (key: string, isDefault: boolean) => {
    if (done.has(key)) return;
    done.add(key);
    const value = data[key];
    if (value === undefined || value === null) return;
    const schema = format[key];
    const text = fmtValue(key, value, schema);
    parts.push(isDefault ? text : `${key}=${text}`);
  };
  const dk = defaultKey(format);
  if (dk) add(dk, true);
  const keys = Object.keys(data).sort();
  for (const k of keys) if (format[k] && !format[k].optional) add(k, false);
  for (const k of keys) add(k, false);
  return parts.join(",");
}
