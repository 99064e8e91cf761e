/**
 * Request parameter encoding (BEHAVIOR.md 1.3): everything becomes a string; booleans
 * as `1`/`0` (PVE rejects `"true"` at top level); list parameters such as `delete` are
 * joined with `,`; `array` parameters are sent as repeated keys; objects are printed as
 * property strings through the shared codec, with the format from the API schema.
 */
import type { ParamSchema } from "./schema";
import { HASH_FORMATS } from "./formats";
import { printPropertyString, type PropertyFormat } from "./propertyString";
import { familyName } from "./schema";

export type Scalar = string | number | boolean;
export type ParamValue = Scalar | undefined | null | Scalar[] | Record<string, Scalar | undefined | null>;
export type Params = Record<string, ParamValue>;
export type EncodedParams = Record<string, string | string[]>;

export class ParamEncodingError extends Error {
  constructor(readonly param: string, message: string) {
    super(message);
    this.name = "ParamEncodingError";
  }
}

function propSchema(props: Record<string, ParamSchema> | undefined, key: string): ParamSchema | undefined {
  if (!props) return undefined;
  return props[key] ?? props[familyName(key) ?? ""];
}

const scalar = (v: Scalar): string => (typeof v === "boolean" ? (v ? "1" : "0") : String(v));

export function encodeParams(params: Params | undefined, props: Record<string, ParamSchema> | undefined): EncodedParams {
  const out: EncodedParams = {};
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value === undefined || value === null) continue;
    const schema = propSchema(props, key);
    if (Array.isArray(value)) {
      out[key] = schema?.type === "array" ? value.map(scalar) : value.map(scalar).join(",");
    } else if (typeof value === "object") {
      const fmt = schema?.format;
      const format: PropertyFormat | undefined = typeof fmt === "object" ? fmt : typeof fmt === "string" ? HASH_FORMATS[fmt] : undefined;
      if (!format) {
        throw new ParamEncodingError(key, `parameter '${key}' was given an object, but PVE expects a plain value for it (no property-string format in the API schema)`);
      }
      try {
        out[key] = printPropertyString(value, format);
      } catch (e) {
        throw new ParamEncodingError(key, `parameter '${key}': ${(e as Error).message.trim()}`);
      }
    } else {
      out[key] = scalar(value);
    }
  }
  return out;
}

/** `application/x-www-form-urlencoded` text (repeated keys for arrays). */
export function toSearchParams(enc: EncodedParams): URLSearchParams {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(enc)) {
    if (Array.isArray(v)) for (const x of v) sp.append(k, x);
    else sp.append(k, v);
  }
  return sp;
}

/** The concrete path with each segment percent-encoded for the wire (volids keep `/`, BEHAVIOR.md 1.1). */
export function wirePath(logical: string): string {
  return logical
    .split("/")
    .map((s) => encodeURIComponent(s))
    .join("/");
}
