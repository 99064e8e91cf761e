/**
 * Parameter validation with PVE's semantics and error texts (pve-common JSONSchema.pm
 * `validate`, `check_prop`, `check_type`, `check_object`). The sandbox answers
 * `400 Parameter verification failed.` with the map this returns; the client runs the same
 * check before sending, so nothing invalid ever leaves the provider.
 */
import type { ParamSchema } from "./schema";
import { familyName } from "./schema";
import { checkNamedFormat, HASH_FORMATS } from "./formats";
import { parsePropertyString, PropertyStringError, type PropertyFormat } from "./propertyString";

export type ParamErrors = Record<string, string>;

function addError(errors: ParamErrors, path: string, msg: string): void {
  // PVE joins several errors for one key with a literal backslash-n (`add_error`).
  errors[path] = errors[path] ? `${errors[path]}\\n${msg}` : msg;
}

const isOptional = (s: ParamSchema) => s.optional === 1 || s.optional === true;

/** PVE's `check_type`; returns false (after recording the error) on a mismatch. */
function checkType(path: string, type: string | undefined, value: unknown, errors: ParamErrors): boolean {
  if (!type) return true;
  const shown = typeof value === "object" ? JSON.stringify(value) : String(value);
  switch (type) {
    case "boolean":
      if (value === true || value === false || value === 0 || value === 1 || value === "0" || value === "1") return true;
      addError(errors, path, `type check ('boolean') failed - got '${shown}'`);
      return false;
    case "integer":
      if ((typeof value === "number" && Number.isInteger(value)) || (typeof value === "string" && /^[+-]?\d+$/.test(value))) return true;
      addError(errors, path, `type check ('integer') failed - got '${shown}'`);
      return false;
    case "number":
      if ((typeof value === "number" && Number.isFinite(value)) || (typeof value === "string" && /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value))) return true;
      addError(errors, path, `type check ('number') failed - got '${shown}'`);
      return false;
    case "string":
      if (typeof value === "string" || typeof value === "number") return true;
      addError(errors, path, `type check ('string') failed - got '${shown}'`);
      return false;
    case "array":
      if (Array.isArray(value)) return true;
      addError(errors, path, "type check ('array') failed");
      return false;
    case "object":
      if (value && typeof value === "object" && !Array.isArray(value)) return true;
      addError(errors, path, "type check ('object') failed");
      return false;
    default:
      return true; // 'null', 'any' and friends
  }
}

/** Perl regexes in the schema use `(?^:...)`; JavaScript spells that `(?:...)`. */
function jsPattern(p: string): RegExp {
  return new RegExp(`^(?:${p.replace(/\(\?\^[a-z]*:/g, "(?:")})$`, "s");
}
const patternCache = new Map<string, RegExp>();

/** PVE's `check_prop` for one value. */
export function checkProp(path: string, schema: ParamSchema, value: unknown, errors: ParamErrors): void {
  if (value === undefined || value === null) {
    if (!isOptional(schema)) addError(errors, path, "property is missing and it is not optional");
    return;
  }
  if (!checkType(path, schema.type, value, errors)) return;
  if (schema.type === "array" && Array.isArray(value) && schema.items) {
    value.forEach((v, i) => checkProp(`${path}[${i}]`, schema.items!, v, errors));
    return;
  }
  if (typeof value === "object") return;
  const s = String(value);
  if (schema.format !== undefined) {
    const fmt = schema.format;
    if (typeof fmt === "object" || HASH_FORMATS[fmt]) {
      const format = (typeof fmt === "object" ? fmt : HASH_FORMATS[fmt]) as PropertyFormat;
      try {
        const parsed = parsePropertyString(s, format);
        const inner: ParamErrors = {};
        checkObject(path, format, parsed, false, inner);
        if (Object.keys(inner).length) {
          const lines = Object.entries(inner).map(([k, v]) => `${k}: ${v}\n`).join("");
          addError(errors, path, `invalid format - format error\n${lines}`);
          return;
        }
      } catch (e) {
        if (e instanceof PropertyStringError) {
          addError(errors, path, `invalid format - ${e.message}`);
          return;
        }
        throw e;
      }
    } else {
      const err = checkNamedFormat(fmt, s);
      if (err) {
        addError(errors, path, `invalid format - ${err}`);
        return;
      }
    }
  }
  if (schema.pattern) {
    let r = patternCache.get(schema.pattern);
    if (!r) patternCache.set(schema.pattern, (r = jsPattern(schema.pattern)));
    if (!r.test(s)) {
      addError(errors, path, "value does not match the regex pattern");
      return;
    }
  }
  if (schema.maxLength !== undefined && s.length > schema.maxLength) {
    addError(errors, path, `value may only be ${schema.maxLength} characters long`);
    return;
  }
  if (schema.minLength !== undefined && s.length < schema.minLength) {
    addError(errors, path, `value must be at least ${schema.minLength} characters long`);
    return;
  }
  if (schema.type === "integer" || schema.type === "number") {
    const n = Number(s);
    if (schema.minimum !== undefined && n < schema.minimum) {
      addError(errors, path, `value must have a minimum value of ${schema.minimum}`);
      return;
    }
    if (schema.maximum !== undefined && n > schema.maximum) {
      addError(errors, path, `value must have a maximum value of ${schema.maximum}`);
      return;
    }
  }
  if (schema.enum && !schema.enum.includes(s)) {
    addError(errors, path, `value '${s}' does not have a value in the enumeration '${schema.enum.join(", ")}'`);
  }
}

/** PVE's `check_object` over a property map (top-level params or property-string keys). */
export function checkObject(
  path: string,
  props: Record<string, ParamSchema>,
  value: Record<string, unknown>,
  additionalProperties: boolean,
  errors: ParamErrors,
): void {
  const sub = (k: string) => (path ? `${path}.${k}` : k);
  for (const [k, schema] of Object.entries(props)) {
    if (/\[n\]$/.test(k)) continue; // numbered families are checked per concrete key below
    checkProp(sub(k), schema, value[k], errors);
  }
  for (const [k, v] of Object.entries(value)) {
    const requires = props[k]?.requires;
    // A key that needs another (`checksum` needs `checksum-algorithm`): PVE reports it on the missing one.
    if (typeof requires === "string" && (value[requires] === undefined || value[requires] === null)) {
      addError(errors, sub(requires), `missing property - '${sub(k)}' requires this property`);
    }
    if (props[k]) continue;
    const fam = familyName(k);
    if (fam && props[fam]) {
      checkProp(sub(k), props[fam], v, errors);
      continue;
    }
    if (!additionalProperties) {
      addError(errors, sub(k), "property is not defined in schema and the schema does not allow additional properties");
    }
  }
}

/**
 * Validate request parameters (path params merged in) against an endpoint's schema.
 * Returns PVE's `errors` map, or undefined when everything passes.
 */
export function validateParams(
  props: Record<string, ParamSchema> | undefined,
  params: Record<string, unknown>,
  additionalProperties = false,
): ParamErrors | undefined {
  const errors: ParamErrors = {};
  checkObject("", props ?? {}, params, additionalProperties, errors);
  return Object.keys(errors).length ? errors : undefined;
}
