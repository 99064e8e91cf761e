/**
 * Clone (BEHAVIOR.md §4.9) and template conversion (§4.10).
 */
import type { Core } from "../../core";
import { bool, route } from "../../core";
import { ApiError, fail } from "../../http/errors";
import { emptyConf, isUnusedKey, isVolumeKey, parseConf, parseKey, printConf, printKey, type CtConf } from "./config";
import { randomHwaddr, volOf } from "./apply";
import { checkLock, ctOnNode, saveCt } from "./status";
import { checkNode } from "../cluster";
import { copyNoiseLines, mkfsLines } from "./extract";

const ctPath = "/nodes/{node}/lxc/{vmid}";

export function registerClone(core: Core): void {
  route(core, "POST", `${ctPath}/clone`, (req) => {
    const p = req.params;
    checkNode(core, p.node);
    const vmid = Number(p.vmid);
    const newid = Number(p.newid);
    const node = p.node as string;
    const src = ctOnNode(core, node, vmid);
    core.auth.check(req.id, `/vms/${vmid}`, ["VM.Clone"]);
    if (p.pool) {
      if (!core.store.state.pools[p.pool]) throw new ApiError(403, `Permission check failed (pool '${p.pool}' does not exist)`);
      core.auth.check(req.id, `/pool/${p.pool}`, ["VM.Allocate"]);
    } else core.auth.check(req.id, `/vms/${newid}`, ["VM.Allocate"]);
    const existing = core.store.state.cts[String(newid)];
    if (existing) throw fail(`CT ${newid} already exists on node '${existing.node}'`);
    // clone_vm's first step under the config lock is set_lock($vmid, 'disk'), whose check_lock
    // refuses a locked source. So while one clone runs (source `lock: disk`) a second clone of
    // the same source — template or not — fails at once with `CT is locked (disk)`; PVE does
    // not queue it (callers retry).
    checkLock(src.conf);
    const isTemplate = src.conf.keys.template === "1";
    const full = p.full === undefined ? !isTemplate : bool(p.full);
    if (!full && p.storage) throw fail("parameter 'storage' not allowed for linked clones");
    let srcKeys: Record<string, string> = src.conf.keys;
    let srcDescr = src.conf.description;
    if (p.snapname) {
      const snap = src.conf.snapshots[p.snapname];
      if (!snap) throw fail(`snapshot '${p.snapname}' does not exist`);
      srcKeys = snap.keys;
      srcDescr = snap.description;
    } else if (full && src.rec.running) {
      throw fail("Cannot do full clones on a running container without snapshots");
    }
    const target = (p.target as string | undefined) ?? node;
    if (p.target) checkNode(core, target);
    const targetStorage = p.storage as string | undefined;
    if (targetStorage) {
      const def = core.storage.mustDef(targetStorage);
      if (target !== node && !def.shared) throw fail(`can't clone to non-shared storage '${targetStorage}'`);
    }
    const vols: Array<{ key: string; vol: string }> = [];
    for (const [k, v] of Object.entries(srcKeys)) {
      if (!isVolumeKey(k)) continue;
      const vol = volOf(core, k, v)!;
      if (vol.startsWith("/")) throw fail(`unable to clone mountpoint '${k}' (type bind)`);
      const def = core.storage.mustDef(vol.split(":")[0]);
      // volume_has_feature('clone'): the storage must link-clone, and only from a base volume
      // (a template's) or a snapshot — a linked clone of a plain CT is refused.
      const isBase = /(?:^|\/)(?:base|basevol)-\d+-disk-\d+(?:\.\w+)?$/.test(vol.slice(def.storage.length + 1));
      if (!full && (!def.linkedClone || (!isBase && !p.snapname))) throw fail(`Linked clone feature for '${vol}' is not available`);
      if (target !== node && !def.shared && !(targetStorage && core.storage.def(targetStorage)?.shared)) throw fail(`can't clone CT to node '${target}' (CT uses local storage)`);
      core.auth.check(req.id, `/storage/${targetStorage ?? def.storage}`, ["Datastore.AllocateSpace"]);
      vols.push({ key: k, vol });
    }
    for (const [k, v] of Object.entries(srcKeys)) {
      if (/^net\d+$/.test(k)) {
        const br = parseKey(k, v, core.version).bridge;
        if (br) core.auth.check(req.id, `/sdn/zones/localnetwork/${br}`, ["SDN.Use"]);
      }
    }
    // Locks before the UPID returns: source `disk`, new CT `create`.
    src.conf.keys.lock = "disk";
    saveCt(core, src);
    const newConf: CtConf = emptyConf();
    for (const [k, v] of Object.entries(srcKeys)) {
      if (["parent", "snaptime", "template", "lock", "snapstate"].includes(k) || isUnusedKey(k)) continue;
      newConf.keys[k] = v;
    }
    if (p.snapname === undefined) newConf.lxc = src.conf.lxc.map(([a, b]) => [a, b]);
    else newConf.lxc = src.conf.snapshots[p.snapname].lxc.map(([a, b]) => [a, b]);
    newConf.description = p.description !== undefined ? `${String(p.description).replace(/\n$/, "")}\n` : srcDescr;
    if (p.hostname) newConf.keys.hostname = String(p.hostname);
    for (const k of Object.keys(newConf.keys)) {
      if (/^net\d+$/.test(k)) {
        const d = parseKey(k, newConf.keys[k], core.version);
        d.hwaddr = randomHwaddr();
        newConf.keys[k] = printKey(k, d, core.version);
      }
    }
    const lockConf = emptyConf();
    lockConf.keys.lock = "create";
    core.store.state.cts[String(newid)] = { node, conf: printConf(lockConf) };
    core.save();
    return core.tasks.start({
      node, type: "vzclone", id: String(vmid), who: req.id,
      worker: async (ctx) => {
        const created: string[] = [];
        try {
          await ctx.work();
          for (const { key, vol } of vols) {
            const sid = vol.split(":")[0];
            let nv: string;
            if (full) {
              nv = core.storage.copyVolume(node, vol, target, targetStorage ?? sid, newid);
              if (p.snapname) {
                const d = core.storage.readVolume(node, vol)?.snapshots[p.snapname];
                const data = core.storage.readVolume(target, nv)!;
                if (d) core.storage.writeVolume(target, nv, { ...data, size: d.size, marker: d.marker });
              }
              ctx.log(`create full clone of mountpoint ${key} (${vol})`);
              // copy_volume: a new raw image is formatted (mkfs), then the data is copied.
              if (core.storage.volumeFormat(nv) === "raw") for (const l of mkfsLines(core.storage.readVolume(target, nv)?.size ?? 0)) ctx.log(l);
              for (const l of copyNoiseLines(core.version)) ctx.log(l);
            } else {
              const base = core.storage.readVolume(node, vol);
              if (!base) throw new Error(`volume '${vol}' does not exist`);
              const baseName = vol.slice(sid.length + 1);
              const type = core.storage.def(sid)?.type;
              const isBase = /(?:^|\/)(?:base|basevol)-\d+-disk-\d+/.test(baseName);
              // ZFSPoolPlugin clone_image clones base volumes only (also from a snapshot).
              if (type === "zfspool" && !isBase) throw new Error("clone_image only works on base images");
              const child = core.storage.allocName(node, sid, newid);
              // vdisk_clone names: zfs `<base>/<child>` (the base stays referenced); lvmthin and
              // btrfs an independent snapshot under the new owner, so a plain `<child>`.
              nv = type === "zfspool" ? `${sid}:${baseName}/${child}` : `${sid}:${child}`;
              const from = (p.snapname ? base.snapshots[p.snapname] : undefined) ?? base;
              core.storage.writeVolume(node, nv, { size: from.size, marker: from.marker, ctime: Math.floor(Date.now() / 1000), ...(type === "zfspool" ? { base: baseName } : {}), snapshots: {} });
              ctx.log(`create linked clone of mount point ${key} (${vol})`);
            }
            created.push(nv);
            const d = parseKey(key, newConf.keys[key], core.version);
            d.volume = nv;
            newConf.keys[key] = printKey(key, d, core.version);
          }
          const rec = core.store.state.cts[String(newid)];
          rec.conf = printConf(newConf);
          rec.node = target;
          if (p.pool) core.store.state.pools[p.pool]?.vms.push(newid);
        } catch (e) {
          for (const v of created) core.storage.freeVolume(target, v);
          delete core.store.state.cts[String(newid)];
          throw new Error(`clone failed: ${(e as Error).message}`);
        } finally {
          const s = core.store.state.cts[String(vmid)];
          if (s) {
            const c = parseConf(s.conf);
            if (c.keys.lock === "disk") {
              delete c.keys.lock;
              s.conf = printConf(c);
            }
          }
          core.save();
        }
      },
    });
  });

  route(core, "POST", `${ctPath}/template`, async (req) => {
    checkNode(core, req.params.node);
    const vmid = Number(req.params.vmid);
    const ct0 = ctOnNode(core, req.params.node, vmid);
    core.auth.check(req.id, `/vms/${vmid}`, ["VM.Allocate"]);
    await core.flock.with(vmid, () => {
      const ct = ctOnNode(core, req.params.node, vmid);
      checkLock(ct.conf);
      if (Object.keys(ct.conf.snapshots).length) throw fail("unable to create template, because CT contains snapshots");
      if (ct.conf.keys.template === "1") throw fail("you can't convert a template to a template");
      if (ct.rec.running) throw fail("you can't convert a CT to template if the CT is running");
    });
    const node = ct0.rec.node;
    // Returns null; the vztemplate worker runs in the background (§3.2, §4.10).
    core.tasks.start({
      node, type: "vztemplate", id: String(vmid), who: req.id,
      // The worker holds the config lock from the start and writes `template: 1` last, so a
      // read right after the POST still shows the CT as it was (recorded on PVE 8.4).
      worker: async (ctx) => {
        await core.flock.with(vmid, async () => {
          await ctx.work();
          const ct = ctOnNode(core, node, vmid);
          templateCreate(core, node, ct.conf.keys, (l) => ctx.log(l));
          saveCt(core, ct);
        });
      },
    });
    return null;
  });
}

/**
 * `PVE::LXC::template_create`: every volume becomes a base volume (`vm-`→`base-`,
 * `subvol-`→`basevol-` where the storage renames; dir/nfs raw files keep their name) and the
 * config gets `template: 1`. Shared by POST …/template and restoring a template's backup.
 */
export function templateCreate(core: Core, node: string, keys: Record<string, string>, log: (line: string) => void): void {
  for (const [k, v] of Object.entries(keys)) {
    if (!isVolumeKey(k)) continue;
    const vol = volOf(core, k, v)!;
    if (vol.startsWith("/")) throw new Error(`Template feature is not available for '${vol}'`);
    const sid = vol.split(":")[0];
    const volname = vol.slice(sid.length + 1);
    // Plugin.pm create_base (dir, nfs) only turns `vm-` into `base-`: a directory subvolume
    // keeps its name; ZFSPoolPlugin/BTRFSPlugin also make `subvol-` a `basevol-`.
    const type = core.storage.def(sid)?.type;
    let newName = volname.replace(/(^|\/)vm-(\d+-disk-\d+)/, "$1base-$2");
    if (type !== "dir" && type !== "nfs") newName = newName.replace(/(^|\/)subvol-(\d+-disk-\d+)/, "$1basevol-$2");
    if (newName === volname) continue;
    const nv = core.storage.renameVolume(node, vol, newName);
    const d = parseKey(k, v, core.version);
    d.volume = nv;
    keys[k] = printKey(k, d, core.version);
    log(`rename '${vol}' to '${nv}'`);
  }
  keys.template = "1";
}
