/**
 * `safetySnapshot: true`: before an update that restarts the container or touches its
 * disks, take a snapshot; if the update fails, roll back to it; delete it either way once
 * the outcome is settled. On storage without snapshots, warn and go on unprotected.
 */
import type { PveClient } from "../../proxmox/client";
import { LOCK_RES, PveLockedError, PveTaskFailedError } from "../../proxmox/errors";
import type { OperationContext } from "../operation";
import type { ChangePlan } from "./plan";

/** Changes PVE applies live on a running CT (BEHAVIOR.md 1.4): no restart, no disk work. */
export const LIVE_KEYS = /^(description|onboot|startup|protection|hostname|hookscript|cores|tags|cpulimit|cpuunits|memory|swap|net\d+)$/;

export function isRisky(plan: ChangePlan): boolean {
  if (plan.diskResizes.length || plan.diskRewrites.length || plan.power === "stop") return true;
  return [...Object.keys(plan.set), ...plan.delete].some((k) => !LIVE_KEYS.test(k));
}

export interface SafetyTimeouts {
  /** Waiting for the container to start again after a rollback. */
  startMs: number;
  /** Waiting out a lock on the container before the snapshot is deleted. */
  lockMs: number;
}

export async function withSafetySnapshot<T>(
  client: PveClient,
  node: string,
  vmid: number,
  plan: ChangePlan,
  ctx: OperationContext,
  timeouts: SafetyTimeouts,
  work: () => Promise<T>,
): Promise<T> {
  if (!isRisky(plan)) return work();
  if (plan.migrateTo || plan.diskMoves.length) {
    // PVE cannot move volumes that have snapshots and delete the source (BEHAVIOR.md 4.7).
    await ctx.warn("safetySnapshot skipped: this update moves volumes, which Proxmox refuses while snapshots exist");
    return work();
  }
  if (!(await client.lxc.hasFeature(node, vmid, "snapshot"))) {
    await ctx.warn("safetySnapshot skipped: a volume of this container is on storage without snapshot support (dir, nfs, cifs, LVM)");
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
    throw new Error(`${(err as Error).message}\n${await rollBack(client, node, vmid, name, wasRunning, ctx, timeouts)}`);
  }
  try {
    await deleteWhenUnlocked(client, node, vmid, name, timeouts.lockMs, ctx);
  } catch (e) {
    throw new Error(`The update was applied, but deleting the safety snapshot '${name}' failed: ${(e as Error).message}. Delete it by hand (pct delsnapshot ${vmid} ${name}).`);
  }
  return result;
}

/**
 * Roll back, start again if it was running, delete the snapshot — each step on its own, so
 * a failure is reported as what it is. Rollback without `start`: with it, PVE forks a
 * separate vzstart that keeps the CT locked after the rollback task ended (95 s on a slow
 * start), and the snapshot delete right after fails on that lock. Returns the sentence
 * that says how it ended.
 */
async function rollBack(client: PveClient, node: string, vmid: number, name: string, wasRunning: boolean, ctx: OperationContext, t: SafetyTimeouts): Promise<string> {
  try {
    await client.lxc.rollbackAndWait(node, vmid, name, {}, { wait: { timeoutMs: t.lockMs } });
  } catch (e) {
    return `Rolling back to safety snapshot '${name}' failed: ${(e as Error).message}. The snapshot was kept; roll back by hand (pct rollback ${vmid} ${name}) or delete it.`;
  }
  const notes = ["The container was rolled back to its state before this update (safety snapshot)."];
  if (wasRunning) {
    try {
      await client.lxc.startAndWait(node, vmid, {}, { wait: { timeoutMs: t.startMs } });
    } catch (e) {
      notes.push(`Starting it again after the rollback failed: ${(e as Error).message}.`);
    }
  }
  try {
    await deleteWhenUnlocked(client, node, vmid, name, t.lockMs, ctx);
  } catch (e) {
    notes.push(`Deleting the safety snapshot '${name}' failed: ${(e as Error).message}; delete it by hand (pct delsnapshot ${vmid} ${name}).`);
  }
  return notes.join(" ");
}

/** Delete the snapshot, waiting out a lock someone else (a start, a backup) holds, up to `lockMs`. */
async function deleteWhenUnlocked(client: PveClient, node: string, vmid: number, name: string, lockMs: number, ctx: OperationContext): Promise<void> {
  const deadline = Date.now() + lockMs;
  for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
    try {
      await client.lxc.deleteSnapshotAndWait(node, vmid, name);
      return;
    } catch (e) {
      const locked = e instanceof PveLockedError || (e instanceof PveTaskFailedError && LOCK_RES.some((r) => r.test(e.exitstatus)));
      if (!locked || Date.now() + delay > deadline) throw e;
      ctx.log.info({ snapshot: name, delayMs: delay }, "container locked; retrying the safety snapshot delete");
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
