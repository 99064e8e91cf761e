/**
 * Turning zod issues into messages that name the field and say how to fix it. Shared by
 * every resource's check().
 */
import { z } from "zod";

export class InputError extends Error {
  constructor(readonly resourceType: string, readonly failures: Array<{ field: string; message: string }>) {
    super(
      `Invalid ${resourceType} inputs:\n` + failures.map((f) => `  - ${f.field}: ${f.message}`).join("\n"),
    );
    this.name = "InputError";
  }
}

export function fieldPath(path: Array<string | number>): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${p}` : p;
  return out || "(inputs)";
}

function describe(issue: z.ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.received === "undefined" ? "is required" : `expected ${issue.expected}, got ${issue.received}`;
    case "unrecognized_keys":
      return `unknown field(s) ${issue.keys.map((k) => `'${k}'`).join(", ")} — check the spelling against the docs`;
    case "invalid_enum_value":
      return `must be one of ${issue.options.map((o) => `'${String(o)}'`).join(", ")} (got '${String(issue.received)}')`;
    case "invalid_union":
      return issue.message === "Invalid input" ? "does not match any accepted form" : issue.message;
    default:
      return issue.message;
  }
}

/** Parse with a zod schema or throw an InputError listing every problem. */
export function parseInputs<T extends z.ZodTypeAny>(resourceType: string, schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const failures = r.error.issues.map((i) => {
    const path = i.code === "unrecognized_keys" ? i.path : i.path;
    return { field: fieldPath(path), message: describe(i) };
  });
  throw new InputError(resourceType, failures);
}

/** Pulumi check() result: failures with property names, instead of throwing. */
export function toCheckFailures(err: unknown): Array<{ property: string; reason: string }> | undefined {
  if (err instanceof InputError) return err.failures.map((f) => ({ property: f.field, reason: `${f.field}: ${f.message}` }));
  return undefined;
}

/** The engine's marker for a value not known yet during preview (an output of another resource). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** Paths (as field strings) of every unknown value in an input tree. */
export function unknownPaths(value: unknown, path: Array<string | number> = []): string[] {
  if (value === UNKNOWN) return [fieldPath(path)];
  if (Array.isArray(value)) return value.flatMap((v, i) => unknownPaths(v, [...path, i]));
  if (value && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => unknownPaths(v, [...path, k]));
  return [];
}

function withoutUnknowns(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUnknowns);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== UNKNOWN).map(([k, v]) => [k, withoutUnknowns(v)]));
  }
  return value;
}

export interface CheckOutcome<T> {
  inputs: T;
  failures?: Array<{ property: string; reason: string }>;
}

/**
 * check() for every resource: validate and normalise the inputs. While some inputs are
 * still unknown (preview), validate the known part and keep the raw inputs, so the engine
 * still sees the unknowns; a problem in a known field is reported all the same.
 * `extra` adds checks that need the parsed value (e.g. root-only options).
 */
export function checkInputs<T extends z.ZodTypeAny>(
  resourceType: string,
  schema: T,
  news: Record<string, unknown>,
  extra?: (parsed: z.infer<T>) => Array<{ field: string; message: string }>,
): CheckOutcome<Record<string, unknown>> {
  const unknown = unknownPaths(news);
  const candidate = unknown.length ? withoutUnknowns(news) : news;
  const r = schema.safeParse(candidate);
  let failures: Array<{ field: string; message: string }> = [];
  if (!r.success) {
    // A cross-field rule (zod `custom` issue) that asks for a field the preview does not
    // have yet ("exactly one source" while `path` is unknown) is judged again by check() at
    // `up`, when all values are known; one about a field that is there (a bad fileName) counts.
    const absent = (i: z.ZodIssue) => i.code === "custom" && (i.path.length === 0 || (candidate as Record<string, unknown>)[String(i.path[0])] === undefined);
    const judged = unknown.length ? r.error.issues.filter((i) => !absent(i)) : r.error.issues;
    failures = judged.map((i) => ({ field: fieldPath(i.path), message: describe(i) }));
    // A "required" complaint about a field that is merely unknown yet is not a failure.
    failures = failures.filter((f) => !unknown.some((u) => f.field === u || f.field.startsWith(`${u}.`) || f.field.startsWith(`${u}[`)));
    if (unknown.length) failures = failures.filter((f) => f.field !== "(inputs)");
  } else if (extra) {
    failures = extra(r.data);
  }
  if (failures.length) {
    return { inputs: news, failures: failures.map((f) => ({ property: f.field.split(/[.[]/)[0], reason: `${resourceType} ${f.field}: ${f.message}` })) };
  }
  return { inputs: unknown.length || !r.success ? news : (r.data as Record<string, unknown>) };
}

/**
 * The engine prints a check failure's property *with its value* ("property password value
 * {&{{abc}}} has a problem"). For inputs stored as secrets the failure goes without a
 * property: the engine then prints only the reason, which names the field but never
 * carries the value.
 */
export function hideSecretValues<T extends { failures?: Array<{ property: string; reason: string }> }>(outcome: T, secretInputs: readonly string[]): T {
  outcome.failures = outcome.failures?.map((f) => (secretInputs.includes(f.property) ? { property: "", reason: f.reason } : f));
  return outcome;
}
