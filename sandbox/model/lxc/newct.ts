/**
 * The end of a CT creation (create and restore alike, as create_vm in pve-container's
 * API2/LXC.pm): the finished config replaces the `lock: create` placeholder, or, on failure,
 * the volumes allocated for it are freed and the placeholder removed.
 */
import type { Core } from "../../core";
import { parseConf, printConf, type CtConf } from "./config";

/** Store `conf` as CT `vmid`'s config and add the CT to `pool` (if given); `op` names the operation for the error. */
export function commitNewCt(core: Core, vmid: number, conf: CtConf, pool: string | undefined, op: string): void {
  const rec = core.store.state.cts[String(vmid)];
  if (!rec) throw new Error(`CT ${vmid} vanished during ${op}`);
  rec.conf = printConf(conf);
  if (pool) {
    const p = core.store.state.pools[pool];
    if (p && !p.vms.includes(vmid)) p.vms.push(vmid);
  }
  core.save();
}

/** Undo a failed creation: free `allocated` on `node` and drop the CT if it is still only the placeholder. */
export function discardNewCt(core: Core, node: string, vmid: number, allocated: string[]): void {
  for (const v of allocated) core.storage.freeVolume(node, v);
  const rec = core.store.state.cts[String(vmid)];
  if (rec && parseConf(rec.conf).keys.lock === "create") delete core.store.state.cts[String(vmid)];
  core.save();
}
