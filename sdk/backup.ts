/**
 * Backup: an on-demand vzdump backup of an LXC container (docs/backup.md).
 *
 * - Give `container`: a Container resource, or a vmid. The backup runs on the node the CT
 *   is on; its volume ID, size and time are outputs.
 * - `notesTemplate` and `protected` change in place; `container`, `mode`, `compress`,
 *   `storage` and a new `trigger` value make a new backup (the new one first, then the old
 *   one is deleted).
 * - Destroying deletes the backup volume, unless `retainOnDelete`. A protection flag this
 *   resource set is cleared first; one set outside makes the delete refuse.
 */
import * as pulumi from "@pulumi/pulumi";
import { ProxmoxResource } from "./resource";

type In<T> = pulumi.Input<T>;

/** What a Backup needs from a Container resource. */
export interface BackupTarget {
  id: pulumi.Output<string>;
  node: pulumi.Output<string>;
  vmid: pulumi.Output<number>;
}

export interface BackupArgs {
  /** The container to back up: a Container resource, or its vmid. */
  container: BackupTarget | In<number>;
  /** The CT's node (default: the Container's node, or wherever the vmid is). */
  node?: In<string>;
  /** "snapshot" (default), "suspend" or "stop". */
  mode?: In<"snapshot" | "suspend" | "stop">;
  /** "zstd" (default), "gzip", "lzo" or "none". */
  compress?: In<"zstd" | "gzip" | "lzo" | "none">;
  /** Storage for the backup (content type `backup`); default: the node's vzdump default. */
  storage?: In<string>;
  /** Notes; {{guestname}}, {{node}}, {{vmid}}, {{cluster}} are filled in; `\n` is a new line. */
  notesTemplate?: In<string>;
  /** Protect the backup from deletion and pruning. */
  protected?: In<boolean>;
  /** Keep the backup volume when the resource is destroyed or replaced. */
  retainOnDelete?: In<boolean>;
  /** Any value; changing it to a new value makes a fresh backup. */
  trigger?: In<string | number | boolean>;
  /** Seconds. */
  timeouts?: In<{ create?: In<number>; delete?: In<number> }>;
}

function isTarget(c: unknown): c is BackupTarget {
  return !!c && typeof c === "object" && pulumi.Output.isInstance((c as BackupTarget).vmid) && pulumi.Output.isInstance((c as BackupTarget).id);
}

export class Backup extends ProxmoxResource {
  declare public readonly vmid: pulumi.Output<number>;
  /** The backup's volume ID, e.g. "local:backup/vzdump-lxc-100-2026_11_28-09_30_00.tar.zst". */
  declare public readonly volume: pulumi.Output<string>;
  /** The node the backup ran on. */
  declare public readonly backupNode: pulumi.Output<string>;
  /** Bytes. */
  declare public readonly size: pulumi.Output<number>;
  /** Unix time of the backup. */
  declare public readonly ctime: pulumi.Output<number>;
  /** The notes as Proxmox stores them (the template filled in). */
  declare public readonly notes: pulumi.Output<string>;
  /** The protection flag as Proxmox has it. */
  declare public readonly protected: pulumi.Output<boolean>;

  constructor(name: string, args: BackupArgs, opts?: pulumi.CustomResourceOptions) {
    const { container, ...rest } = args;
    if (container === undefined || container === null) throw new Error(`Backup '${name}': give container (a Container resource or a vmid)`);
    const props: Record<string, unknown> = { ...rest, resourceName: name };
    if (isTarget(container)) {
      // The id, not the vmid output: during a preview the id of a container that is only
      // updated is known, its allocated vmid is not — so the preview replaces the backup
      // only when the container is replaced (and its vmid may change), as `up` does.
      props.vmid = container.id.apply((id) => Number(id));
      if (args.node === undefined) props.node = container.node;
    } else {
      props.vmid = container;
    }
    for (const k of ["volume", "backupNode", "size", "ctime", "notes", "protected"]) if (props[k] === undefined) props[k] = undefined;
    super("Backup", name, props, opts);
  }
}
