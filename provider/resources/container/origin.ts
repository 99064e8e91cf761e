/**
 * Where a container comes from: a template volume (`template`), another container or CT
 * template (`clone`), or a backup (`restore`) — exactly one of them — and whether it is
 * itself turned into a CT template (`isTemplate`). The input schemas and the cross-field
 * rules live here; args.ts includes them. Clone and restore make a CT whose config is the
 * source's; the declared inputs are applied on top by the planner (handler `converge`).
 */
import { z } from "zod";

const storageId = z.string().regex(/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, "not a storage ID (letters, digits, '-', '_', '.'; e.g. 'local-lvm')");

/** `clone`: POST /nodes/{node}/lxc/{source}/clone (BEHAVIOR.md 4.9). */
export const cloneSchema = z
  .object({
    /** VMID of the CT (or CT template) to clone. The SDK fills it from a Container resource. */
    source: z.number().int().min(100).max(999999999),
    /** The source's node; found through /cluster/resources when unset. */
    node: z.string().regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i, "must be a Proxmox node name like 'pve1'").optional(),
    /** Clone the state of this snapshot of the source. */
    snapshot: z.string().regex(/^[a-z][a-z0-9_-]{1,39}$/i, "must be a snapshot name (a letter, then letters, digits, '_' or '-', 2-40 characters)").optional(),
    /** Full copy (true) or linked clone (false). Proxmox's default: linked for a template, full otherwise. */
    full: z.boolean().optional(),
    /** Storage for a full clone's volumes (default: the source's). */
    storage: storageId.optional(),
    /** Pool the new CT is created in (default: `pool`). */
    pool: z.string().regex(/^[A-Za-z0-9.\-_]+$/, "must be a pool ID").optional(),
    /**
     * Set by the SDK from a source Container's declared `isTemplate`; read by check() only
     * (to refuse a linked clone of a non-template) and never stored — see `checkCloneHint`.
     */
    sourceIsTemplate: z.boolean().optional(),
  })
  .strict();

/** `restore`: POST /nodes/{node}/lxc with `ostemplate=<backup>` and `restore=1` (BEHAVIOR.md 4.2). */
export const restoreSchema = z
  .object({
    /** Backup volume ID, e.g. `local:backup/vzdump-lxc-105-2026_11_28-09_30_00.tar.zst`. The SDK fills it from a Backup resource. */
    backup: z.string().regex(/^[a-z][a-z0-9\-_.]*[a-z0-9]:backup\/.+$/i, "must be a backup volume ID like 'local:backup/vzdump-lxc-105-2026_11_28-09_30_00.tar.zst'"),
    /** Overwrite the existing (stopped, unprotected) CT `vmid`. */
    force: z.boolean().optional(),
    /** Give every restored network interface a new MAC address. */
    unique: z.boolean().optional(),
  })
  .strict();

export type CloneArgs = z.infer<typeof cloneSchema>;
export type RestoreArgs = z.infer<typeof restoreSchema>;

interface OriginFields {
  template?: string;
  clone?: CloneArgs;
  restore?: RestoreArgs;
  adopt?: boolean;
  vmid?: number;
  rootfs?: unknown;
  password?: string;
  sshPublicKeys?: string;
}

/** The cross-field rules of template / clone / restore / adopt (called from args.ts superRefine). */
export function originRules(a: OriginFields, ctx: z.RefinementCtx): void {
  const issue = (path: Array<string | number>, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path, message });
  const set = (["template", "clone", "restore"] as const).filter((k) => a[k] !== undefined);
  if (set.length > 1) {
    for (const k of set) issue([k], `${set.join(", ")} are mutually exclusive: a container is made from a template volume (template), another container (clone) or a backup (restore) — set only one`);
  }
  if (a.adopt && (a.clone || a.restore)) issue([a.clone ? "clone" : "restore"], "cannot be combined with adopt: true (adopt takes over an existing container as it is)");
  if (!a.adopt && set.length === 0) {
    issue(["template"], "is required to create a container (a template volume ID, or a Template/OciImage resource); or set clone (another container), restore (a backup), or adopt: true with vmid to take over an existing CT");
  }
  const from = a.clone ? "clone" : a.restore ? "restore" : undefined;
  if (from) {
    // PVE applies password and SSH keys only when it sets up a CT from a template (post_create_hook).
    if (a.password !== undefined) issue(["password"], `cannot be set with ${from}: Proxmox sets the root password only when it creates a container from a template; the ${from === "clone" ? "source's" : "backup's"} password is kept — change it inside the container`);
    if (a.sshPublicKeys !== undefined) issue(["sshPublicKeys"], `cannot be set with ${from}: Proxmox installs SSH keys only when it creates a container from a template; add them inside the container`);
  }
  if (a.clone?.storage !== undefined && a.clone.full === false) {
    issue(["clone", "storage"], "only applies to a full clone (Proxmox: parameter 'storage' not allowed for linked clones); remove it, or set full: true");
  }
  if (a.restore) {
    if (a.restore.force && a.vmid === undefined) issue(["restore", "force"], "needs vmid: the existing container the backup overwrites");
    if (a.rootfs === undefined) {
      issue(["rootfs"], "is required with restore: its storage is where Proxmox restores the backup's volumes (at their backed-up sizes; a bigger size grows them)");
    }
  }
}

/**
 * `clone.sourceIsTemplate` is a hint from the SDK, not an input: it says whether the source
 * Container is declared a template. A linked clone (`full: false`) of a known non-template is
 * refused here, as PVE requires. Returns the failures and the inputs without the hint, so it
 * never reaches the state (a later conversion of the source must not replace its clones).
 */
export function checkCloneHint(news: Record<string, unknown>): { news: Record<string, unknown>; failures: Array<{ field: string; message: string }> } {
  const clone = news.clone as Record<string, unknown> | undefined;
  if (!clone || typeof clone !== "object" || !("sourceIsTemplate" in clone)) return { news, failures: [] };
  const { sourceIsTemplate, ...rest } = clone;
  const failures =
    clone.full === false && sourceIsTemplate === false
      ? [{ field: "clone.full", message: `false asks for a linked clone, but the source CT ${typeof clone.source === "number" ? clone.source + " " : ""}is not a template; Proxmox links clones only to a CT template: set isTemplate: true on the source, or full: true` }]
      : [];
  return { news: { ...news, clone: rest }, failures };
}

/**
 * The inputs as the provider acts on them: `unprivileged` defaults to true, except that a
 * clone or restore keeps its source's; a template is never started (`started` is ignored —
 * check() warns when it is set); a clone made in `clone.pool` stays there unless `pool`
 * says otherwise.
 */
export function effectiveArgs<T extends { unprivileged?: boolean; isTemplate?: boolean; started?: boolean; pool?: string; clone?: CloneArgs; restore?: RestoreArgs }>(a: T): T {
  let out = a;
  if (a.unprivileged === undefined && !a.clone && !a.restore) out = { ...out, unprivileged: true };
  if (a.isTemplate && a.started !== false) out = { ...out, started: false };
  if (a.clone?.pool !== undefined && a.pool === undefined) out = { ...out, pool: a.clone.pool };
  return out;
}

/** `isTemplate` true → false (or removed) replaces: Proxmox cannot turn a template back into a container. */
export function templateReplaces(prev: unknown, next: unknown): boolean {
  return prev === true && next !== true;
}

/** Whether a clone's source changed: `clone.node` only locates the source, so it alone is no change of it. */
export function cloneSourceChanged(prev: CloneArgs | undefined, next: CloneArgs | undefined): boolean {
  const id = (c: CloneArgs | undefined) =>
    c
      ? JSON.stringify(
          Object.entries(c)
            .filter(([k, v]) => v !== undefined && k !== "node" && k !== "sourceIsTemplate")
            .sort(([x], [y]) => (x < y ? -1 : 1)),
        )
      : undefined;
  return id(prev) !== id(next);
}
