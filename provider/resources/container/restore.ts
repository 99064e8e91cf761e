/**
 * Creating a container from a backup (`restore` input): `POST /nodes/{node}/lxc` with
 * `ostemplate=<backup volid>` and `restore=1`, task `vzrestore` (BEHAVIOR.md 4.2;
 * pve-container `create_vm`, `recover_config`, `sanitize_and_merge_config`).
 *
 * Only what shapes the restore itself is sent: `storage` (every backed-up volume is
 * recreated there at its backed-up size — taken from `rootfs.storage`), `force`, `unique`,
 * `pool` and `unprivileged` when the program sets it (else the backup's). The backup's config
 * is the starting point; the handler applies the declared inputs on top with the planner,
 * exactly as after a clone.
 */
import type { PveClient } from "../../proxmox/client";
import type { LxcConfigInput } from "../../proxmox/lxc";
import type { VmidSource } from "../../proxmox/vmids";
import type { OperationContext } from "../operation";
import type { ContainerArgs } from "./args";

/** The create parameters of a restore. */
export function restoreParams(a: ContainerArgs): LxcConfigInput {
  const r = a.restore!;
  const p: LxcConfigInput = { ostemplate: r.backup, restore: true, storage: a.rootfs!.storage };
  if (r.force) p.force = true;
  if (r.unique) p.unique = true;
  if (a.unprivileged !== undefined) p.unprivileged = a.unprivileged;
  if (a.pool !== undefined) p.pool = a.pool;
  return p;
}

/** Restore the backup into a new CT (or over CT `vmid` with `force`) and wait for the task. */
export async function restoreContainer(client: PveClient, a: ContainerArgs, vmids: VmidSource, waitMs: number, ctx: OperationContext): Promise<{ vmid: number; node: string }> {
  ctx.log.info({ backup: a.restore!.backup, force: a.restore!.force, vmid: a.vmid }, "restoring container from backup");
  const { vmid } = await client.lxc.createContainer({
    node: a.node,
    vmid: a.vmid,
    vmids,
    config: restoreParams(a),
    waitOptions: { timeoutMs: waitMs },
    logger: ctx.log,
  });
  return { vmid, node: a.node };
}
