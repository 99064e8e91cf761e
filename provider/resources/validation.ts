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
