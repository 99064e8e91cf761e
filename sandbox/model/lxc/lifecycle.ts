/**
 * CT config read/write, status and power management, delete (BEHAVIOR.md §1.4, §4.3–4.5,
 * §4.11). Workers re-load the config when they run, so they see what happened meanwhile.
 */
import type { ApiRequest, Core } from "../../core";
import { bool, route } from "../../core";
import type { Identity } from "../../auth";
import { ApiError, fail, paramError } from "../../http/errors";
import { splitList } from "../../../provider/proxmox/formats";
import { digestOf, sectionToApi, isVolumeKey, isUnusedKey, typedValue } from "./config";
import { applyAllPending, checkDeleteRevert, checkKeyPerms, mergedKeys, updateConfig, volOf } from "./apply";
import { checkLock, ctOnNode, ctStatus, saveCt, type LoadedCt } from "./status";
import { checkNode } from "../cluster";
import { haRequest, haResource, haStatus, isHaManaged, removeHaResource } from "./ha";

const ctPath = "/nodes/{node}/lxc/{vmid}";

function load(core: Core, req: ApiRequest): LoadedCt {
  checkNode(core, req.params.node);
  return ctOnNode(core, req.params.node, Number(req.params.vmid));
}

function skiplockCheck(core: Core, req: ApiRequest): void {
  if (bool(req.params.skiplock) && !core.auth.isRoot(req.id)) throw paramError({ skiplock: "Only root may use this option." });
}

/** Re-load inside a worker; the CT may have been removed meanwhile. */
function reload(core: Core, node: string, vmid: number): LoadedCt {
  return ctOnNode(core, node, vmid);
}

let pidSeq = 200000;

/** Start worker (`vzstart`); shared by start, create start=1, rollback start=1. */
export function startCt(core: Core, ct: LoadedCt, who: Identity, skiplock = false): string {
  const node = ct.rec.node;
  const vmid = ct.vmid;
  return core.tasks.start({
    node, type: "vzstart", id: String(vmid), who,
    // The worker holds the config flock for the whole start (Status.pm `vm_start` wraps it
    // in lock_config), so e.g. a snapshot delete meanwhile waits and may time out.
    worker: (ctx) => core.flock.with(vmid, async () => {
      await ctx.work();
      const c = reload(core, node, vmid);
      if (!skiplock) checkLock(c.conf, ["mounted"]);
      if (c.conf.keys.template === "1") throw new Error("you can't start a CT if it's a template");
      if (c.rec.running) throw new Error(`CT ${vmid} already running`);
      // foreach_volume: rootfs and every mp[n], not only rootfs.
      const quota = Object.entries(c.conf.keys).some(([k, v]) => isVolumeKey(k) && /(?:^|,)quota=1(?:,|$)/.test(v));
      if (c.conf.keys.unprivileged === "1" && quota) throw new Error("Quotas are not supported by unprivileged containers.");
      applyAllPending(core, c);
      c.rec.running = { since: Date.now(), pid: pidSeq++ };
      saveCt(core, c);
      // Every start the 8.4 node recorded logs this before TASK OK (../shared/pve-api/transcripts).
      if (core.version === "8.4") ctx.log("failed to connect to monitor socket: Connection refused");
    }),
  });
}

function stopNow(core: Core, ct: LoadedCt): void {
  ct.rec.running = undefined;
  core.save();
}

export function registerLifecycle(core: Core): void {
  route(core, "GET", "/nodes/{node}/lxc", (req) => {
    checkNode(core, req.params.node);
    return Object.entries(core.store.state.cts)
      .filter(([vmid, rec]) => rec.node === req.params.node && core.auth.has(req.id, `/vms/${vmid}`, "VM.Audit"))
      .map(([vmid, rec]) => ctStatus(core, Number(vmid), rec));
  });

  route(core, "GET", ctPath, (req) => {
    load(core, req);
    return ["config", "status", "vncproxy", "termproxy", "vncwebsocket", "spiceproxy", "migrate", "clone", "snapshot", "firewall", "rrd", "rrddata", "pending", "feature", "template", "resize", "move_volume", "interfaces"].map((subdir) => ({ subdir }));
  });

  route(core, "GET", `${ctPath}/status/current`, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.Audit"]);
    return { ...ctStatus(core, ct.vmid, ct.rec), ha: haStatus(core, ct.vmid) };
  });

  // ---- config (§1.4, §4.3) ----
  route(core, "GET", `${ctPath}/config`, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.Audit"]);
    const p = req.params;
    if (p.snapshot !== undefined && bool(p.current)) {
      throw paramError({ snapshot: "cannot use 'snapshot' parameter with 'current'", current: "cannot use 'snapshot' parameter with 'current'" });
    }
    let out: Record<string, unknown>;
    if (p.snapshot !== undefined) {
      const snap = ct.conf.snapshots[p.snapshot];
      if (!snap) throw fail(`snapshot '${p.snapshot}' does not exist`);
      out = sectionToApi(snap, true, core.version);
    } else if (bool(p.current)) {
      out = sectionToApi(ct.conf, true, core.version);
    } else {
      out = sectionToApi(ct.conf, true, core.version);
      const merged = mergedKeys(ct.conf);
      for (const k of Object.keys(ct.conf.keys)) delete out[k];
      for (const [k, v] of Object.entries(merged.keys)) out[k] = typedValue(k, v, core.version);
      const dels = splitList(ct.conf.pending.delete ?? "").map((d) => d.replace(/^!/, ""));
      if (merged.env !== undefined) out.env = merged.env;
      for (const d of dels) delete out[d];
    }
    out.digest = digestOf(ct.rec.conf);
    if (!core.auth.has(req.id, `/vms/${ct.vmid}`, "VM.Config.Options")) delete out.env;
    return out;
  });

  route(core, "GET", `${ctPath}/pending`, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.Audit"]);
    const conf = ct.conf;
    const cur: Record<string, unknown> = sectionToApi(conf, false, core.version);
    cur.digest = digestOf(ct.rec.conf);
    const items = new Map<string, Record<string, unknown>>();
    for (const [k, v] of Object.entries(cur)) items.set(k, { key: k, value: v });
    for (const [k, v] of Object.entries(conf.pending)) {
      if (k === "delete") continue;
      items.set(k, { ...(items.get(k) ?? { key: k }), pending: typedValue(k, v, core.version) });
    }
    for (const d of splitList(conf.pending.delete ?? "")) {
      const k = d.replace(/^!/, "");
      items.set(k, { ...(items.get(k) ?? { key: k }), delete: d.startsWith("!") ? 2 : 1 });
    }
    return [...items.values()].sort((a, b) => String(a.key).localeCompare(String(b.key)));
  });

  route(core, "PUT", `${ctPath}/config`, async (req) => {
    const ct0 = load(core, req);
    const vmid = ct0.vmid;
    const p = req.params;
    core.auth.checkAny(req.id, `/vms/${vmid}`, ["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options"]);
    const set: Record<string, string> = {};
    for (const [k, v] of Object.entries(p)) if (!["node", "vmid", "digest", "delete", "revert"].includes(k)) set[k] = String(v);
    const del = p.delete ? splitList(String(p.delete)) : [];
    const revert = p.revert ? splitList(String(p.revert)) : [];
    checkDeleteRevert(core, Object.keys(set), del, revert);
    if (!Object.keys(set).length && !del.length && !revert.length) throw fail("no options specified");
    // Reverted keys are checked like deleted ones (`check_ct_modify_config_perm(…, [@revert])`).
    checkKeyPerms(core, req.id, vmid, [...Object.keys(set), ...del, ...revert], set, ct0.conf);
    await core.flock.with(vmid, () => {
      const ct = reload(core, p.node, vmid);
      checkLock(ct.conf);
      if (p.digest && p.digest !== digestOf(ct.rec.conf)) throw fail("detected modified configuration - file changed by other user? Try again.");
      updateConfig(core, ct, { set, del, revert });
      saveCt(core, ct);
    });
    return null;
  });

  // ---- power (§4.5) ----
  route(core, "POST", `${ctPath}/status/start`, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.PowerMgmt"]);
    skiplockCheck(core, req);
    if (ct.rec.running) throw fail(`CT ${ct.vmid} already running`);
    if (isHaManaged(core, ct.vmid) && !req.haAgent) return haRequest(core, req, "start");
    return startCt(core, ct, req.id, bool(req.params.skiplock));
  });

  route(core, "POST", `${ctPath}/status/stop`, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.PowerMgmt"]);
    skiplockCheck(core, req);
    if (!ct.rec.running) throw fail(`CT ${ct.vmid} not running`);
    if (isHaManaged(core, ct.vmid) && !req.haAgent) {
      if (bool(req.params["overrule-shutdown"])) throw paramError({ "overrule-shutdown": "Not applicable for HA resources." });
      return haRequest(core, req, "stop");
    }
    const { node } = ct.rec;
    return core.tasks.start({
      node, type: "vzstop", id: String(ct.vmid), who: req.id,
      worker: async (ctx) => {
        const c = reload(core, node, ct.vmid);
        if (!bool(req.params.skiplock)) checkLock(c.conf, ["mounted"]);
        await ctx.work();
        stopNow(core, reload(core, node, ct.vmid));
      },
    });
  });

  route(core, "POST", `${ctPath}/status/shutdown`, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.PowerMgmt"]);
    if (!ct.rec.running) throw fail(`CT ${ct.vmid} not running`);
    if (isHaManaged(core, ct.vmid) && !req.haAgent) return haRequest(core, req, "shutdown");
    const { node } = ct.rec;
    return core.tasks.start({
      node, type: "vzshutdown", id: String(ct.vmid), who: req.id,
      worker: async (ctx) => {
        checkLock(reload(core, node, ct.vmid).conf);
        await ctx.work();
        stopNow(core, reload(core, node, ct.vmid));
      },
    });
  });

  route(core, "POST", `${ctPath}/status/reboot`, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.PowerMgmt"]);
    if (!ct.rec.running) throw fail(`VM ${ct.vmid} not running`);
    const { node } = ct.rec;
    return core.tasks.start({
      node, type: "vzreboot", id: String(ct.vmid), who: req.id,
      worker: async (ctx) => {
        checkLock(reload(core, node, ct.vmid).conf);
        await ctx.work();
        const c = reload(core, node, ct.vmid);
        applyAllPending(core, c); // reboot applies pending changes (§1.4)
        c.rec.running = { since: Date.now(), pid: pidSeq++ };
        saveCt(core, c);
      },
    });
  });

  for (const action of ["suspend", "resume"] as const) {
    route(core, "POST", `${ctPath}/status/${action}`, (req) => {
      const ct = load(core, req);
      core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.PowerMgmt"]);
      if (!ct.rec.running) throw fail(`CT ${ct.vmid} not running`);
      return core.tasks.start({ node: ct.rec.node, type: `vz${action}`, id: String(ct.vmid), who: req.id, worker: (ctx) => ctx.work() });
    });
  }

  // ---- delete (§4.11) ----
  route(core, "DELETE", ctPath, (req) => {
    const ct = load(core, req);
    const vmid = ct.vmid;
    core.auth.check(req.id, `/vms/${vmid}`, ["VM.Allocate"]);
    if (ct.conf.keys.protection === "1") throw fail(`can't remove CT ${vmid} - protection mode enabled`);
    checkLock(ct.conf);
    // destroy_vm: an HA resource (even `ignored`) needs purge=1, checked before "running".
    const ha = !!haResource(core, vmid);
    if (ha && !bool(req.params.purge)) throw fail(`unable to remove CT ${vmid} - used in HA resources and purge parameter not set.`);
    const force = bool(req.params.force);
    if (ct.rec.running && !force) throw fail(`unable to destroy CT ${vmid} - container is running`);
    const node = ct.rec.node;
    return core.tasks.start({
      node, type: "vzdestroy", id: String(vmid), who: req.id,
      worker: async (ctx) => {
        const c = reload(core, node, vmid);
        if (c.rec.running) {
          ctx.log(`forced to stop CT ${vmid} before destroying!`);
          c.rec.running = undefined;
        }
        const before = c.conf;
        // Storage.pm vdisk_free: a template's base volume stays while linked clones use it; the
        // task fails before anything is removed and the config is left as it was.
        for (const [k, v] of Object.entries(before.keys)) {
          const vol = isVolumeKey(k) ? volOf(core, k, v) : undefined;
          if (vol && !vol.startsWith("/") && core.storage.baseInUse(node, vol)) throw new Error(`base volume '${core.storage.parseVolid(vol).volname}' is still in use by linked clones`);
        }
        c.rec.conf = "lock: destroyed\n";
        core.save();
        await ctx.work();
        const vols = new Set<string>();
        const sections = [before.keys, before.pending, ...Object.values(before.snapshots).map((s) => s.keys)];
        for (const keys of sections) {
          for (const [k, v] of Object.entries(keys)) {
            if (!isVolumeKey(k) && !isUnusedKey(k)) continue;
            const vol = volOf(core, k, v);
            if (vol && !vol.startsWith("/")) vols.add(vol);
          }
        }
        for (const vol of vols) {
          let owner: number | undefined;
          try {
            owner = core.storage.parseVolid(vol).owner;
          } catch {
            owner = undefined;
          }
          if (owner !== undefined && owner !== vmid) {
            ctx.warn(`skipping volume '${vol}' - owned by CT ${owner}`);
            continue;
          }
          core.storage.freeVolume(node, vol);
          ctx.log(`Removed volume '${vol}'`);
        }
        if (bool(req.params["destroy-unreferenced-disks"])) {
          for (const { storage: s } of core.storage.defs) {
            for (const v of core.storage.imageNames(node, s)) {
              if (v.owner === vmid) {
                core.storage.freeVolume(node, v.volid);
                ctx.log(`Removed unreferenced volume '${v.volid}'`);
              }
            }
          }
        }
        core.auth.removeAclsOn(`/vms/${vmid}`);
        for (const pool of Object.values(core.store.state.pools)) pool.vms = pool.vms.filter((v) => v !== vmid);
        if (bool(req.params.purge)) {
          ctx.log(`purging CT ${vmid} from related configurations..`);
          if (ha) {
            removeHaResource(core, vmid);
            ctx.log(`NOTE: removed CT ${vmid} from HA resource configuration.`);
          }
        }
        delete core.store.state.cts[String(vmid)];
        core.save();
      },
    });
  });

  route(core, "GET", `${ctPath}/feature`, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.Audit"]);
    const feature = req.params.feature as string;
    const keys = req.params.snapname ? ct.conf.snapshots[req.params.snapname]?.keys : ct.conf.keys;
    if (!keys) throw fail(`snapshot '${req.params.snapname}' does not exist`);
    return { hasFeature: hasFeature(core, keys, feature) ? 1 : 0 };
  });
}

/** `has_feature` over every mount point (§5): bind/device mounts block; storage decides. */
export function hasFeature(core: Core, keys: Record<string, string>, feature: string): boolean {
  for (const [k, v] of Object.entries(keys)) {
    if (!isVolumeKey(k)) continue;
    const vol = volOf(core, k, v);
    if (!vol || vol.startsWith("/")) return false;
    const def = core.storage.def(vol.split(":")[0]);
    if (!def) return false;
    if (feature === "snapshot" && !def.snapshots) return false;
    if (feature === "clone" && !def.linkedClone) return false;
    if (feature === "template" && !def.linkedClone && !def.pathBased) return false;
  }
  return true;
}

