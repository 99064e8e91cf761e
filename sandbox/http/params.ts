/**
 * Request parameter decoding per BEHAVIOR.md §1.3: urlencoded or JSON bodies, query merged
 * in and overriding, `_dc` dropped, repeated keys → arrays, `*-list` arrays joined with
 * `,`, scalars wrapped for `array` params, and URL parameters that conflict with the body
 * rejected. After validation every scalar is stringified as PVE's `untaint_recursive` does.
 */
import type { ParamSchema } from "../../provider/proxmox/schema";
import { familyName } from "../../provider/proxmox/schema";
import { ApiError, paramError } from "./errors";

export function parseUrlencoded(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(text)) {
    const cur = out[k];
    if (cur === undefined) out[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else out[k] = [cur, v];
  }
  return out;
}

export function parseBody(contentType: string | undefined, body: Buffer): Record<string, unknown> {
  if (!body.length) return {};
  const ct = (contentType ?? "").split(";")[0].trim().toLowerCase();
  if (ct === "" || ct === "application/x-www-form-urlencoded") return parseUrlencoded(body.toString("utf8"));
  if (ct === "application/json") {
    let v: unknown;
    try {
      v = JSON.parse(body.toString("utf8"));
    } catch (e) {
      throw new ApiError(400, `malformed JSON string: ${(e as Error).message}`);
    }
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new ApiError(400, "malformed JSON object");
    return v as Record<string, unknown>;
  }
  throw new ApiError(506, `upload 'Content-Type '${contentType}' not implemented`);
}

/** Merge query (wins) over body, drop `_dc`, add path params (conflicts → 400). */
export function mergeParams(
  body: Record<string, unknown>,
  query: Record<string, unknown>,
  pathParams: Record<string, string>,
): Record<string, unknown> {
  const params: Record<string, unknown> = { ...body, ...query };
  delete params._dc;
  const errors: Record<string, string> = {};
  for (const [k, v] of Object.entries(pathParams)) {
    if (params[k] !== undefined && String(params[k]) !== v) errors[k] = "duplicate parameter (already defined in URI) with conflicting values!";
    params[k] = v;
  }
  if (Object.keys(errors).length) throw paramError(errors);
  return params;
}

/** `$normalize_legacy_param_formats`: join arrays for *-list params, wrap scalars for arrays. */
export function normaliseParams(props: Record<string, ParamSchema>, params: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(params)) {
    const schema = props[k] ?? props[familyName(k) ?? ""];
    if (!schema) continue;
    if (Array.isArray(v) && typeof schema.format === "string" && schema.format.endsWith("-list")) params[k] = v.join(",");
    else if (schema.type === "array" && !Array.isArray(v)) params[k] = [v];
  }
}

/** Stringify validated scalars; JSON booleans become "1"/"0". */
export function stringifyParams(params: Record<string, unknown>): Record<string, any> {
  const out: Record<string, any> = {};
  for (const [k, v] of Object.entries(params)) {
    if (v === true) out[k] = "1";
    else if (v === false) out[k] = "0";
    else if (typeof v === "number") out[k] = String(v);
    else out[k] = v;
  }
  return out;
}
