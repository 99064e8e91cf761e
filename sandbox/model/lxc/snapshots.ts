/**
 * Snapshots (BEHAVIOR.md §5): list with the `current` pseudo-entry last, create/delete/
 * rollback workers with the lock/snapstate protocol, feature check per storage, snapshot
 * config GET/PUT. Volume files keep per-snapshot size+marker so rollback restores data.
 */
import type { ApiRequest, Core } from "../../core";
import { bool, route } from "../../core";
import { fail } from "../../http/errors";
import { digestOf, isVolumeKey, sectionToApi, type Section } from "./config";
import { volOf } from "./apply";
import { checkLock, ctOnNode, saveCt, type LoadedCt } from "./status";
import { hasFeature, startCt } from "./lifecycle";
import { checkNode } from "../cluster";

const base = "/nodes/{node}/lxc/{vmid}/snapshot";

function load(core: Core, req: ApiRequest): LoadedCt {
  checkNode(core, req.params.node);
  return ctOnNode(core, req.params.node, Number(req.params.vmid));
}

function volumesOf(core: Core, keys: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(keys)) {
    if (!isVolumeKey(k)) continue;
    const vol = volOf(core, k, v);
    if (vol && !vol.startsWith("/")) out.push(vol);
  }
  return out;
}

export function registerSnapshots(core: Core): void {
  route(core, "GET", base, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.Audit"]);
    const list: Array<Record<string, unknown>> = [];
    for (const [name, s] of Object.entries(ct.conf.snapshots)) {
      // `description => $d->{description} || ''`: as stored, i.e. ending in a newline (recorded).
      const item: Record<string, unknown> = { name, snaptime: Number(s.keys.snaptime ?? 0), description: s.description ?? "" };
      if (s.keys.parent) item.parent = s.keys.parent;
      if (s.keys.snapstate) item.snapstate = s.keys.snapstate;
      list.push(item);
    }
    const current: Record<string, unknown> = { name: "current", digest: digestOf(ct.rec.conf), running: ct.rec.running ? 1 : 0, description: "You are here!" };
    if (ct.conf.keys.parent) current.parent = ct.conf.keys.parent;
    list.push(current);
    return list;
  });

  route(core, "POST", base, (req) => {
    const ct = load(core, req);
    const vmid = ct.vmid;
    core.auth.check(req.id, `/vms/${vmid}`, ["VM.Snapshot"]);
    const name = String(req.params.snapname);
    if (name === "current" || name === "vzdump") throw fail(`unable to use snapshot name '${name}' (reserved name)`);
    const node = ct.rec.node;
    return core.tasks.start({
      node, type: "vzsnapshot", id: String(vmid), who: req.id,
      worker: async (ctx) => {
        // prepare: checks, lock + snapstate under the flock
        await core.flock.with(vmid, () => {
          const c = ctOnNode(core, node, vmid);
          checkLock(c.conf);
          if (c.conf.keys.template === "1") throw new Error("you can't take a snapshot if it's a template");
          if (c.conf.snapshots[name]) throw new Error(`snapshot name '${name}' already used`);
          if (!hasFeature(core, c.conf.keys, "snapshot")) throw new Error("snapshot feature is not available");
          const snap: Section = { keys: { ...c.conf.keys }, lxc: c.conf.lxc.map(([a, b]) => [a, b]), description: req.params.description ? `${String(req.params.description).replace(/\n$/, "")}\n` : undefined };
          delete snap.keys.lock;
          snap.keys.snapstate = "prepare";
          snap.keys.snaptime = String(Math.floor(Date.now() / 1000));
          c.conf.snapshots[name] = snap;
          c.conf.keys.lock = "snapshot";
          saveCt(core, c);
        });
        try {
          if (ct.rec.running) ctx.log("freezing container");
          await ctx.work();
          const c = ctOnNode(core, node, vmid);
          for (const vol of volumesOf(core, c.conf.keys)) {
            const d = core.storage.readVolume(node, vol);
            if (!d) continue;
            d.snapshots[name] = { size: d.size, marker: d.marker };
            core.storage.writeVolume(node, vol, d);
          }
          // commit
          delete c.conf.snapshots[name].keys.snapstate;
          c.conf.keys.parent = name;
          delete c.conf.keys.lock;
          saveCt(core, c);
        } catch (e) {
          ctx.log("snapshot create failed: starting cleanup");
          const c = ctOnNode(core, node, vmid);
          delete c.conf.snapshots[name];
          if (c.conf.keys.lock === "snapshot") delete c.conf.keys.lock;
          saveCt(core, c);
          throw e;
        }
      },
    });
  });

  route(core, "GET", `${base}/{snapname}`, (req) => {
    const ct = load(core, req);
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.Audit"]);
    if (!ct.conf.snapshots[req.params.snapname]) throw fail(`snapshot '${req.params.snapname}' does not exist`);
    return [{ rel: "rollback" }, { rel: "config" }];
  });

  route(core, "DELETE", `${base}/{snapname}`, (req) => {
    const ct = load(core, req);
    const vmid = ct.vmid;
    core.auth.check(req.id, `/vms/${vmid}`, ["VM.Snapshot"]);
    const name = String(req.params.snapname);
    const node = ct.rec.node;
    const force = bool(req.params.force);
    return core.tasks.start({
      node, type: "vzdelsnapshot", id: String(vmid), who: req.id,
      worker: async (ctx) => {
        let parent: string | undefined;
        // lock_file_full prints this while it waits for the flock (e.g. a vzstart holds it).
        if (core.flock.isHeld(vmid)) ctx.log("trying to acquire lock...");
        await core.flock.with(vmid, () => {
          const c = ctOnNode(core, node, vmid);
          const snap = c.conf.snapshots[name];
          if (!snap) throw new Error(`snapshot '${name}' does not exist`);
          if (c.conf.keys.template === "1") throw new Error("you can't delete a snapshot if vm is a template");
          if (!force) checkLock(c.conf);
          parent = snap.keys.parent;
          c.conf.keys.lock = "snapshot-delete";
          snap.keys.snapstate = "delete";
          saveCt(core, c);
        });
        await ctx.work();
        const c = ctOnNode(core, node, vmid);
        const snap = c.conf.snapshots[name];
        for (const vol of volumesOf(core, snap?.keys ?? {})) {
          const d = core.storage.readVolume(node, vol);
          if (d?.snapshots[name]) {
            delete d.snapshots[name];
            core.storage.writeVolume(node, vol, d);
          }
        }
        delete c.conf.snapshots[name];
        // re-parent children and the current state
        for (const s of Object.values(c.conf.snapshots)) {
          if (s.keys.parent === name) {
            if (parent) s.keys.parent = parent;
            else delete s.keys.parent;
          }
        }
        if (c.conf.keys.parent === name) {
          if (parent) c.conf.keys.parent = parent;
          else delete c.conf.keys.parent;
        }
        if (c.conf.keys.lock === "snapshot-delete") delete c.conf.keys.lock;
        saveCt(core, c);
      },
    });
  });

  route(core, "POST", `${base}/{snapname}/rollback`, (req) => {
    const ct = load(core, req);
    const vmid = ct.vmid;
    core.auth.checkAny(req.id, `/vms/${vmid}`, ["VM.Snapshot", "VM.Snapshot.Rollback"]);
    const name = String(req.params.snapname);
    const node = ct.rec.node;
    return core.tasks.start({
      node, type: "vzrollback", id: String(vmid), who: req.id,
      worker: async (ctx) => {
        await core.flock.with(vmid, () => {
          const c = ctOnNode(core, node, vmid);
          const snap = c.conf.snapshots[name];
          if (!snap) throw new Error(`snapshot '${name}' does not exist`);
          if (c.conf.keys.template === "1") throw new Error("you can't rollback if vm is a template");
          if (snap.keys.snapstate) throw new Error(`unable to rollback to incomplete snapshot (snapstate = ${snap.keys.snapstate})`);
          checkLock(c.conf);
          if (c.rec.running) {
            ctx.log(`stopping CT ${vmid}`);
            c.rec.running = undefined; // rollback hard-stops a running CT (§5)
          }
          c.conf.keys.lock = "rollback";
          saveCt(core, c);
        });
        await ctx.work();
        const c = ctOnNode(core, node, vmid);
        const snap = c.conf.snapshots[name];
        const unused = Object.entries(c.conf.keys).filter(([k]) => /^unused\d+$/.test(k));
        const keys: Record<string, string> = { ...snap.keys };
        delete keys.snaptime;
        delete keys.snapstate;
        for (const [k, v] of unused) keys[k] = v;
        keys.parent = name;
        c.conf.keys = keys;
        c.conf.lxc = snap.lxc.map(([a, b]) => [a, b]);
        c.conf.pending = {};
        for (const vol of volumesOf(core, keys)) {
          const d = core.storage.readVolume(node, vol);
          const s = d?.snapshots[name];
          if (d && s) core.storage.writeVolume(node, vol, { ...d, size: s.size, marker: s.marker });
        }
        saveCt(core, c);
        if (bool(req.params.start)) startCt(core, c, req.id);
      },
    });
  });

  route(core, "GET", `${base}/{snapname}/config`, (req) => {
    const ct = load(core, req);
    core.auth.checkAny(req.id, `/vms/${ct.vmid}`, ["VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit"]);
    const snap = ct.conf.snapshots[req.params.snapname];
    if (!snap) throw fail(`snapshot '${req.params.snapname}' does not exist`);
    return sectionToApi(snap, false, core.version);
  });

  route(core, "PUT", `${base}/{snapname}/config`, async (req) => {
    const ct0 = load(core, req);
    core.auth.check(req.id, `/vms/${ct0.vmid}`, ["VM.Snapshot"]);
    await core.flock.with(ct0.vmid, () => {
      const ct = ctOnNode(core, req.params.node, ct0.vmid);
      const snap = ct.conf.snapshots[req.params.snapname];
      if (!snap) throw fail(`snapshot '${req.params.snapname}' does not exist`);
      if (req.params.description !== undefined) snap.description = req.params.description ? `${String(req.params.description).replace(/\n$/, "")}\n` : undefined;
      saveCt(core, ct);
    });
    return null;
  });
}
