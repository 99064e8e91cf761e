/**
 * `safetySnapshot: true`: before an update that restarts the container or touches its
 * disks, take a snapshot; if the update fails, roll back to it; delete it either way once
 * the outcome is settled. On storage without snapshots, warn and go on unprotected.
 */
import type { PveClient } from "../../proxmox/client";
import type { OperationContext } from "../operation";
import type { ChangePlan } from "./plan";

/** Changes PVE applies live on a running CT (BEHAVIOR.md 1.4): no restart, no disk work. */
export const LIVE_KEYS = /^(description|onboot|startup|protection|hostname|hookscript|cores|tags|cpulimit|cpuunits|memory|swap|net\d+)$/;

export function isRisky(plan: ChangePlan): boolean {
  if (plan.diskResizes.length || plan.diskRewrites.length || plan.power === "stop") return true;
  return [...Object.keys(plan.set), ...plan.delete].some((k) => !LIVE_KEYS.test(k));
}

export async function withSafetySnapshot<T>(
  client: PveClient,
  node: string,
  vmid: number,
  plan: ChangePlan,
  ctx: OperationContext,
  work: () => Promise<T>,
): Promise<T> {
  if (!isRisky(plan)) return work();
  if (plan.migrateTo || plan.diskMoves.length) {
    // PVE cannot move volumes that have snapshots and delete the source (BEHAVIOR.md 4.7).
    ctx.log.warn("safetySnapshot skipped: this update moves volumes, which Proxmox refuses while snapshots exist");
    return work();
  }
  if (!(await client.lxc.hasFeature(node, vmid, "snapshot"))) {
    ctx.log.warn("safetySnapshot skipped: a volume of this container is on storage without snapshot support (dir, nfs, cifs, LVM)");
    return work();
  }
  const name = `pulumi-safety-${Date.now().toString(36)}`;
  const wasRunning = (await client.lxc.status(node, vmid)).status === "running";
  await client.lxc.createSnapshotAndWait(node, vmid, { snapname: name, description: "Taken by pulumi-proxmox-lxc before an update; removed afterwards." });
  ctx.log.info({ snapshot: name }, "safety snapshot taken");
  let result: T;
  try {
    result = await work();
  } catch (err) {
    ctx.log.error({ snapshot: name, err: (err as Error).message }, "update failed; rolling back to the safety snapshot");
    try {
      await client.lxc.rollbackAndWait(node, vmid, name, { start: wasRunning });
      await client.lxc.deleteSnapshotAndWait(node, vmid, name);
    } catch (rollbackErr) {
      throw new Error(
        `${(err as Error).message}\nRolling back to safety snapshot '${name}' also failed: ${(rollbackErr as Error).message}. ` +
          `The snapshot was kept; roll back by hand (pct rollback ${vmid} ${name}) or delete it.`,
      );
    }
    throw new Error(`${(err as Error).message}\nThe container was rolled back to its state before this update (safety snapshot).`);
  }
  await client.lxc.deleteSnapshotAndWait(node, vmid, name);
  return result;
}
