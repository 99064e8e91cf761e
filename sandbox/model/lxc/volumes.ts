/**
 * resize (BEHAVIOR.md §4.6) and move_volume (§4.7): synchronous checks with PVE's texts,
 * then workers that change the volume files (data marker kept) and the config.
 */
import type { ApiRequest, Core } from "../../core";
import { bool, route } from "../../core";
import { ApiError, fail, paramError } from "../../http/errors";
import { formatSize } from "../../../provider/proxmox/formats";
import { digestOf, isUnusedKey, parseKey, printKey } from "./config";
import { volOf } from "./apply";
import { checkLock, ctOnNode, saveCt, type LoadedCt } from "./status";
import { checkNode } from "../cluster";
import { copyNoiseLines, mkfsLines, resize2fsLines } from "./extract";

const ctPath = "/nodes/{node}/lxc/{vmid}";

function load(core: Core, req: ApiRequest): LoadedCt {
  checkNode(core, req.params.node);
  return ctOnNode(core, req.params.node, Number(req.params.vmid));
}

function nextUnused(keys: Record<string, string>): string {
  for (let i = 0; ; i++) if (!keys[`unused${i}`]) return `unused${i}`;
}

export function registerVolumes(core: Core): void {
  route(core, "PUT", `${ctPath}/resize`, async (req) => {
    const ct0 = load(core, req);
    const vmid = ct0.vmid;
    const disk = String(req.params.disk);
    core.auth.check(req.id, `/vms/${vmid}`, ["VM.Config.Disk"]);
    return core.flock.with(vmid, () => {
      const ct = ctOnNode(core, req.params.node, vmid);
      checkLock(ct.conf);
      if (req.params.digest && req.params.digest !== digestOf(ct.rec.conf)) throw fail("detected modified configuration - file changed by other user? Try again.");
      const value = ct.conf.keys[disk];
      // PVE parses the absent value as an empty property string: its required keys are missing.
      if (!value) throw new ApiError(500, "format error", { mp: "property is missing and it is not optional", volume: "property is missing and it is not optional" });
      const mp = parseKey(disk, value, core.version);
      const volid = mp.volume;
      if (volid.startsWith("/")) throw fail(`Could not determine current size of volume '${volid}'`);
      const pv = core.storage.parseVolid(volid);
      core.auth.check(req.id, `/storage/${pv.storage}`, ["Datastore.AllocateSpace"]);
      if (pv.owner !== undefined && pv.owner !== vmid) throw fail(`can't resize mount point owned by another container (${pv.owner})`);
      const data = core.storage.readVolume(ct.rec.node, volid);
      if (!data) throw fail(`Could not determine current size of volume '${volid}'`);
      // `\+?\d+(\.\d+)?[KMGT]?`, a bare number is bytes (§4.6).
      const m = /^(\+)?(\d+(?:\.\d+)?)([KMGT])?$/.exec(String(req.params.size));
      if (!m) throw paramError({ size: "value does not match the regex pattern" });
      const mult = m[3] ? { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[3] as "K"] : 1;
      let newsize = Math.floor(Number(m[2]) * mult);
      if (m[1]) newsize += data.size;
      if (newsize < data.size) throw fail("unable to shrink disk size");
      if (newsize === data.size) throw fail("disk is already at specified size");
      const node = ct.rec.node;
      return core.tasks.start({
        node, type: "resize", id: String(vmid), who: req.id,
        worker: async (ctx) => {
          await ctx.work();
          const d = core.storage.readVolume(node, volid);
          if (!d) throw new Error(`volume '${volid}' does not exist`);
          d.size = newsize;
          core.storage.writeVolume(node, volid, d);
          await core.flock.with(vmid, () => {
            const c = ctOnNode(core, node, vmid);
            const cur = parseKey(disk, c.conf.keys[disk], core.version);
            cur.size = formatSize(newsize);
            c.conf.keys[disk] = printKey(disk, cur, core.version);
            saveCt(core, c);
          });
          // A raw image's ext4 is grown too (a subvolume only gets its new quota).
          if (core.storage.volumeFormat(volid) === "raw") {
            const device = ct.rec.running ? `/dev/loop${vmid % 8}` : core.storage.imageAttributes(node, volid)!.path;
            for (const l of resize2fsLines(newsize, device, !!ct.rec.running)) ctx.log(l);
          }
        },
      });
    });
  });

  route(core, "POST", `${ctPath}/move_volume`, async (req) => {
    const ct0 = load(core, req);
    const vmid = ct0.vmid;
    const p = req.params;
    const key = String(p.volume);
    if (p.storage && p["target-vmid"]) throw fail("either set storage or target-vmid, but not both");
    if (!p.storage && !p["target-vmid"]) {
      const msg = "both 'storage' and 'target-vmid' missing, either needs to be set";
      throw paramError({ storage: msg, "target-vmid": msg });
    }
    core.auth.check(req.id, `/vms/${vmid}`, ["VM.Config.Disk"]);
    if (p.storage) return moveToStorage(core, req, ct0, key);
    return moveToCt(core, req, ct0, key, Number(p["target-vmid"]));
  });
}

function moveToStorage(core: Core, req: ApiRequest, ct0: LoadedCt, key: string): Promise<string> {
  const vmid = ct0.vmid;
  const target = String(req.params.storage);
  core.auth.check(req.id, `/storage/${target}`, ["Datastore.AllocateSpace"]);
  const del = bool(req.params.delete);
  return core.flock.with(vmid, () => {
    const ct = ctOnNode(core, req.params.node, vmid);
    if (ct.rec.running) throw fail("cannot move volumes of a running container");
    if (isUnusedKey(key)) throw fail(`cannot move volume '${key}', only configured volumes can be moved to another storage`);
    const value = ct.conf.keys[key];
    if (!value) throw fail(`no such volume '${key}'`);
    if (del && Object.keys(ct.conf.snapshots).length) throw fail("you can't move a volume with snapshots and delete the source");
    checkLock(ct.conf);
    if (req.params.digest && req.params.digest !== digestOf(ct.rec.conf)) throw fail("detected modified configuration - file changed by other user? Try again.");
    const def = core.storage.mustDef(target);
    if (!def.content.includes("rootdir")) throw fail(`storage '${target}' does not support container directories`);
    const src = volOf(core, key, value)!;
    if (src.startsWith("/")) throw fail(`cannot move volume '${key}' - not a storage volume`);
    ct.conf.keys.lock = "disk";
    saveCt(core, ct);
    const node = ct.rec.node;
    return core.tasks.start({
      node, type: "move_volume", id: String(vmid), who: req.id,
      worker: async (ctx) => {
        try {
          await ctx.work();
          const newVol = core.storage.copyVolume(node, src, node, target, vmid);
          ctx.log(`moving volume '${src}' to '${newVol}'`);
          // copy_volume: mkfs on a new raw image, then the copy (with the recorded node's noise).
          if (core.storage.volumeFormat(newVol) === "raw") for (const l of mkfsLines(core.storage.readVolume(node, newVol)?.size ?? 0)) ctx.log(l);
          for (const l of copyNoiseLines(core.version)) ctx.log(l);
          await core.flock.with(vmid, () => {
            const c = ctOnNode(core, node, vmid);
            const d = parseKey(key, c.conf.keys[key], core.version);
            d.volume = newVol;
            c.conf.keys[key] = printKey(key, d, core.version);
            if (del) {
              core.storage.freeVolume(node, src);
              ctx.log(`removed source volume '${src}'`);
            } else {
              c.conf.keys[nextUnused(c.conf.keys)] = src;
            }
            delete c.conf.keys.lock;
            saveCt(core, c);
          });
        } catch (e) {
          const c = ctOnNode(core, node, vmid);
          if (c.conf.keys.lock === "disk") {
            delete c.conf.keys.lock;
            saveCt(core, c);
          }
          throw e;
        }
      },
    });
  });
}

async function moveToCt(core: Core, req: ApiRequest, src: LoadedCt, key: string, targetVmid: number): Promise<string> {
  const targetKey = String(req.params["target-volume"] ?? key);
  if (key === "rootfs" || targetKey === "rootfs") throw fail("Cannot move to/from 'rootfs'");
  if (isUnusedKey(key) && !isUnusedKey(targetKey)) throw fail("Moving an unused volume to a used one is not possible");
  const trec = core.store.state.cts[String(targetVmid)];
  if (!trec) throw fail(`could not find CT ${targetVmid}`);
  if (trec.node !== src.rec.node) throw fail(`Both containers need to be on the same node (${src.rec.node} != ${trec.node})`);
  core.auth.check(req.id, `/vms/${targetVmid}`, ["VM.Config.Disk"]);
  const node = src.rec.node;
  const tgt = ctOnNode(core, node, targetVmid);
  if (src.conf.keys.template === "1" || tgt.conf.keys.template === "1") throw fail("Can't move volumes from or to template CT");
  if (tgt.conf.keys[targetKey]) throw fail(`Target volume key '${targetKey}' is already in use for container '${targetVmid}'`);
  const value = src.conf.keys[key];
  if (!value) throw fail(`no such volume '${key}'`);
  const vol = volOf(core, key, value)!;
  if (vol.startsWith("/")) throw fail("Cannot move a bindmount or device mount to another container");
  for (const snap of Object.values(src.conf.snapshots)) if (Object.values(snap.keys).some((v) => v.startsWith(`${vol},`) || v === vol)) throw fail("Cannot move volume used by a snapshot to another container");
  if (src.rec.running && !isUnusedKey(key)) throw fail("Cannot move in-use volume while the source CT is running - detach or shutdown first");
  checkLock(src.conf);
  checkLock(tgt.conf);
  return core.tasks.start({
    node, type: "move_volume", id: `${src.vmid}-${key}>${targetVmid}-${targetKey}`, who: req.id,
    worker: async (ctx) => {
      await ctx.work();
      const pv = core.storage.parseVolid(vol);
      const newName = core.storage.allocName(node, pv.storage, targetVmid);
      const newVol = core.storage.renameVolume(node, vol, newName);
      ctx.log(`renamed volume '${vol}' to '${newVol}'`);
      const s = ctOnNode(core, node, src.vmid);
      delete s.conf.keys[key];
      saveCt(core, s);
      const t = ctOnNode(core, node, targetVmid);
      if (isUnusedKey(targetKey)) t.conf.keys[targetKey] = newVol;
      else {
        const d = parseKey(key, value, core.version);
        d.volume = newVol;
        t.conf.keys[targetKey] = printKey(targetKey, d, core.version);
      }
      saveCt(core, t);
    },
  });
}
