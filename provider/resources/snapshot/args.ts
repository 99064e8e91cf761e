/**
 * Snapshot inputs. Names follow PVE's `pve-configid` format and reserved names
 * (BEHAVIOR.md 5), checked before anything is sent.
 */
import { z } from "zod";

const seconds = z.number().int().positive();

export const snapshotArgsSchema = z
  .object({
    node: z.string().regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i, "must be a Proxmox node name like 'pve1'"),
    vmid: z.number().int().min(100).max(999999999),
    name: z
      .string()
      .regex(/^[a-z][a-z0-9_-]+$/i, "must start with a letter and contain only letters, digits, '_' and '-' (at least 2 characters), e.g. 'before-upgrade'")
      .max(40, "may be at most 40 characters long")
      .refine((n) => !["current", "vzdump"].includes(n.toLowerCase()), "'current' and 'vzdump' are reserved by Proxmox; pick another name"),
    description: z.string().optional(),
    /** Any value; when it changes, the container is rolled back to this snapshot. */
    rollbackTrigger: z.union([z.string(), z.number(), z.boolean()]).optional(),
    /** Start the container after a rollback (PVE leaves it stopped otherwise). Default false. */
    startAfterRollback: z.boolean().optional(),
    timeouts: z.object({ create: seconds.optional(), delete: seconds.optional(), rollback: seconds.optional() }).strict().optional(),
    resourceName: z.string().optional(),
  })
  .strict();

export type SnapshotArgs = z.infer<typeof snapshotArgsSchema>;
