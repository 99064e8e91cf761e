/**
 * zod helpers for PVE responses. PVE sends booleans as 0/1 and sometimes numbers as
 * strings (BEHAVIOR.md 1.3: `/cluster/nextid` → `"100"`, `cpulimit` → `"2"`), so every
 * numeric or boolean field we read goes through these. Objects are `passthrough` so
 * fields we do not model are kept for callers.
 */
import { z } from "zod";

const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A number, or a numeric string (also scientific notation, pre sto 9.1.1 — BEHAVIOR.md 8.5). */
export const zNum = z.union([z.number(), z.string().regex(NUMERIC, "expected a number")]).transform((v) => Number(v));

/** An integer, or an integer string. */
export const zInt = z
  .union([z.number().int(), z.string().regex(/^[+-]?\d+$/, "expected an integer")])
  .transform((v) => Number(v));

/** PVE booleans: 0/1 (number or string); true/false also accepted. */
export const zBool = z
  .union([z.boolean(), z.literal(0), z.literal(1), z.literal("0"), z.literal("1")])
  .transform((v) => v === true || v === 1 || v === "1");

/** A string that may arrive as a number (`name` of a CT called `123`). */
export const zStr = z.union([z.string(), z.number()]).transform((v) => String(v));

/** Parse with a schema; a mismatch names the endpoint and the field. */
export function parseResponse<T extends z.ZodTypeAny>(schema: T, data: unknown, what: string): z.output<T> {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const issues = r.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
  throw new PveResponseShapeError(`Unexpected response from Proxmox VE for ${what}: ${issues}. This client may not support this PVE version; please report it.`);
}

export class PveResponseShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PveResponseShapeError";
  }
}
