/**
 * Backup inputs, checked before anything is sent. `notesTemplate` follows PVE's rules
 * (pve-manager `PVE/VZDump.pm`): no line feed (write `\n`), only the variables
 * {{cluster}}, {{guestname}}, {{node}}, {{vmid}}, and `\` escapes only `\` and `n`.
 */
import { z } from "zod";

const seconds = z.number().int().positive();

export const NOTES_VARIABLES = ["cluster", "guestname", "node", "vmid"] as const;

export const BACKUP_MODES = ["snapshot", "suspend", "stop"] as const;
/** `none` is PVE's `compress=0`. */
export const BACKUP_COMPRESSIONS = ["zstd", "gzip", "lzo", "none"] as const;

export const DEFAULT_MODE = "snapshot";
export const DEFAULT_COMPRESS = "zstd";

/** Why PVE would refuse or mangle this notes template, or undefined. */
export function notesTemplateProblem(t: string): string | undefined {
  if (/[\r\n]/.test(t)) return "may not contain a line break (Proxmox refuses it); write \\n for a new line";
  const badEscape = /\\(.)/g;
  for (let m = badEscape.exec(t); m; m = badEscape.exec(t)) {
    if (m[1] !== "\\" && m[1] !== "n") return `has the escape '\\${m[1]}'; only \\n (new line) and \\\\ (a backslash) are allowed`;
  }
  if (/\\$/.test(t.replace(/\\\\/g, ""))) return "ends with a lone backslash; write \\\\ for a backslash";
  const unknown = [...t.matchAll(/\{\{([^\s}]+)\}\}/g)].map((m) => m[1]).filter((v) => !(NOTES_VARIABLES as readonly string[]).includes(v));
  if (unknown.length) return `uses the unknown variable {{${unknown[0]}}}; Proxmox knows ${NOTES_VARIABLES.map((v) => `{{${v}}}`).join(", ")}`;
  return undefined;
}

export const backupArgsSchema = z
  .object({
    vmid: z.number().int().min(100).max(999999999),
    /** The container's node, as the program knows it; the backup runs where the CT is. */
    node: z.string().regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i, "must be a Proxmox node name like 'pve1'").optional(),
    mode: z.enum(BACKUP_MODES).optional(),
    compress: z.enum(BACKUP_COMPRESSIONS).optional(),
    storage: z
      .string()
      .regex(/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, "must be a Proxmox storage ID like 'local' or 'backup-nfs'")
      .optional(),
    notesTemplate: z.string().max(1024, "may be at most 1024 characters long (Proxmox's limit)").superRefine((t, ctx) => {
      const problem = notesTemplateProblem(t);
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
    }).optional(),
    protected: z.boolean().optional(),
    retainOnDelete: z.boolean().optional(),
    /** Any value; a change to a new value makes a fresh backup (replacement). */
    trigger: z.union([z.string(), z.number(), z.boolean()]).optional(),
    timeouts: z.object({ create: seconds.optional(), delete: seconds.optional() }).strict().optional(),
    resourceName: z.string().optional(),
  })
  .strict();

export type BackupArgs = z.infer<typeof backupArgsSchema>;
