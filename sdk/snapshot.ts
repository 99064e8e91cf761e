/**
 * Snapshot: a named snapshot of an LXC container.
 *
 * - Give `container` (a Container resource) or `node` + `vmid`.
 * - `description` changes in place; `name` or the container replaces the snapshot; a node
 *   change (the container migrated) does not.
 * - `rollbackTrigger`: any value; when it changes to a new value, `pulumi up` rolls the
 *   container back to this snapshot. Proxmox stops a running container hard for that;
 *   `startAfterRollback: true` starts it again. Removing the trigger does nothing.
 * - The container's volumes must be on zfspool, lvmthin, rbd or btrfs storage; otherwise
 *   create fails with a list of the volumes and their storage types.
 */
import * as pulumi from "@pulumi/pulumi";
import { ProxmoxResource } from "./resource";

type In<T> = pulumi.Input<T>;

/** What a Snapshot needs from a Container resource. */
export interface SnapshotTarget {
  node: pulumi.Output<string>;
  vmid: pulumi.Output<number>;
}

export interface SnapshotArgs {
  /** The container to snapshot; alternative to node + vmid. */
  container?: SnapshotTarget;
  node?: In<string>;
  vmid?: In<number>;
  /** Letters, digits, '_' and '-', starting with a letter, 2-40 characters; not 'current' or 'vzdump'. */
  name: In<string>;
  description?: In<string>;
  /** Change to roll the container back to this snapshot. */
  rollbackTrigger?: In<string | number | boolean>;
  /** Start the container after a rollback (Proxmox leaves it stopped). Default false. */
  startAfterRollback?: In<boolean>;
  /** Seconds. */
  timeouts?: In<{ create?: In<number>; delete?: In<number>; rollback?: In<number> }>;
}

export class Snapshot extends ProxmoxResource {
  declare public readonly node: pulumi.Output<string>;
  declare public readonly vmid: pulumi.Output<number>;
  declare public readonly name: pulumi.Output<string>;
  declare public readonly description: pulumi.Output<string | undefined>;
  /** Unix time the snapshot was taken. */
  declare public readonly snaptime: pulumi.Output<number>;
  /** The snapshot this one was taken on top of, if any. */
  declare public readonly parent: pulumi.Output<string | undefined>;

  constructor(name: string, args: SnapshotArgs, opts?: pulumi.CustomResourceOptions) {
    const { container, ...rest } = args;
    if (container && (args.node !== undefined || args.vmid !== undefined)) {
      throw new Error(`Snapshot '${name}': give either container or node + vmid, not both`);
    }
    if (!container && (args.node === undefined || args.vmid === undefined)) {
      throw new Error(`Snapshot '${name}': give container (a Container resource) or both node and vmid`);
    }
    const props: Record<string, unknown> = { ...rest, resourceName: name };
    if (container) {
      props.node = container.node;
      // The Container's id is its vmid, known in a preview while the Container is updated
      // (the vmid output is not): a pending Container update must not replace this snapshot.
      props.vmid = pulumi.CustomResource.isInstance(container) ? container.id.apply(Number) : container.vmid;
    }
    for (const k of ["snaptime", "parent", "description"]) if (props[k] === undefined) props[k] = undefined;
    super("Snapshot", name, props, opts);
  }
}
