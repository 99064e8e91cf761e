/**
 * Migration (BEHAVIOR.md §4.8): restart mode for running CTs, volumes on node-local
 * storages are copied to the target node (to `target-storage` if mapped), shared storage
 * volumes stay where they are; `lock: migrate` during the move.
 */
import type { Core } from "../../core";
import { bool, route } from "../../core";
import { fail, paramError } from "../../http/errors";
import { splitList } from "../../../provider/proxmox/formats";
import { isUnusedKey, isVolumeKey, parseKey, printKey } from "./config";
import { volOf } from "./apply";
import { checkLock, ctOnNode, saveCt } from "./status";
import { checkNode } from "../cluster";
import { haRequest, isHaManaged } from "./ha";

const ctPath = "/nodes/{node}/lxc/{vmid}";

/** `target-storage`: `dst` (everything) or `src:dst` pairs; `1` = identity. */
function storageMap(spec: string | undefined): (src: string) => string {
  if (!spec) return (s) => s;
  const pairs = new Map<string, string>();
  let all: string | undefined;
  for (const item of splitList(spec)) {
    const [a, b] = item.split(":");
    if (b === undefined) all = a === "1" ? undefined : a;
    else pairs.set(a, b);
  }
  return (s) => pairs.get(s) ?? all ?? s;
}

export function registerMigrate(core: Core): void {
  route(core, "GET", `${ctPath}/migrate`, (req) => {
    checkNode(core, req.params.node);
    const ct = ctOnNode(core, req.params.node, Number(req.params.vmid));
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.Migrate"]);
    checkLock(ct.conf);
    return { running: ct.rec.running ? 1 : 0, "allowed-nodes": core.nodes.filter((n) => n !== ct.rec.node), "not-allowed-nodes": {} };
  });

  route(core, "POST", `${ctPath}/migrate`, (req) => {
    const p = req.params;
    checkNode(core, p.node);
    const vmid = Number(p.vmid);
    const target = String(p.target);
    if (target === p.node) throw paramError({ target: "target is local node." });
    if (!core.nodes.includes(target)) throw fail(`no such cluster node '${target}'`);
    const ct = ctOnNode(core, p.node, vmid);
    core.auth.check(req.id, `/vms/${vmid}`, ["VM.Migrate"]);
    const map = storageMap(p["target-storage"]);
    if (p["target-storage"]) {
      for (const k of Object.keys(ct.conf.keys)) {
        if (!isVolumeKey(k) && !isUnusedKey(k)) continue;
        const vol = volOf(core, k, ct.conf.keys[k]);
        if (!vol || vol.startsWith("/")) continue;
        const src = vol.split(":")[0];
        const dst = map(src);
        core.auth.check(req.id, `/storage/${dst}`, ["Datastore.AllocateSpace"]);
        if (dst !== src) core.auth.check(req.id, `/vms/${vmid}`, ["VM.Config.Disk"]);
      }
    }
    const online = bool(p.online);
    const restart = bool(p.restart);
    if (ct.rec.running && !online && !restart) throw fail("can't migrate running container without --online or --restart");
    if (isHaManaged(core, vmid) && !req.haAgent) return haRequest(core, req, "migrate");
    const node = p.node as string;
    return core.tasks.start({
      node, type: "vzmigrate", id: String(vmid), who: req.id,
      worker: async (ctx) => {
        const c = ctOnNode(core, node, vmid);
        ctx.log(`starting migration of CT ${vmid} to node '${target}' (127.0.0.1)`);
        if (c.rec.running && online && !restart) throw new Error("lxc live migration is currently not implemented");
        checkLock(c.conf);
        for (const [k, v] of Object.entries(c.conf.keys)) {
          if (!isVolumeKey(k)) continue;
          const vol = volOf(core, k, v)!;
          if (vol.startsWith("/")) {
            const shared = parseKey(k, v, core.version).shared === "1";
            if (!shared) throw new Error(`cannot migrate local bind mount point '${k}'\nmigration aborted`);
          }
        }
        const wasRunning = !!c.rec.running;
        c.conf.keys.lock = "migrate";
        if (wasRunning) {
          ctx.log(`shutdown CT ${vmid}`);
          c.rec.running = undefined;
        }
        saveCt(core, c);
        try {
          await ctx.work();
          const moved = new Map<string, string>();
          const relocate = (keys: Record<string, string>) => {
            for (const [k, v] of Object.entries(keys)) {
              if (!isVolumeKey(k) && !isUnusedKey(k)) continue;
              const vol = volOf(core, k, v);
              if (!vol || vol.startsWith("/")) continue;
              const sid = vol.split(":")[0];
              const def = core.storage.mustDef(sid);
              if (def.shared) continue; // shared storage: nothing to copy
              let nv = moved.get(vol);
              if (!nv) {
                const dst = map(sid);
                const ddef = core.storage.mustDef(dst);
                if (!ddef.content.includes("rootdir")) throw new Error(`storage '${dst}' does not support container directories\nmigration aborted`);
                nv = core.storage.copyVolume(node, vol, target, dst, vmid, true);
                ctx.log(`copied volume '${vol}' to '${nv}' on node '${target}'`);
                moved.set(vol, nv);
              }
              const d = parseKey(k.startsWith("unused") ? "unused0" : k, v, core.version);
              d.volume = nv;
              keys[k] = printKey(k.startsWith("unused") ? "unused0" : k, d, core.version);
            }
          };
          const c2 = ctOnNode(core, node, vmid);
          relocate(c2.conf.keys);
          relocate(c2.conf.pending);
          for (const s of Object.values(c2.conf.snapshots)) relocate(s.keys);
          for (const vol of moved.keys()) core.storage.freeVolume(node, vol);
          delete c2.conf.keys.lock;
          c2.rec.node = target;
          saveCt(core, c2);
          if (wasRunning) {
            ctx.log(`start CT ${vmid} on node '${target}'`);
            c2.rec.running = { since: Date.now(), pid: 300000 + vmid };
            core.save();
          }
          ctx.log("migration finished successfully (duration 00:00:01)");
        } catch (e) {
          const back = core.store.state.cts[String(vmid)];
          if (back && back.node === node) {
            const c3 = ctOnNode(core, node, vmid);
            delete c3.conf.keys.lock;
            if (wasRunning) c3.rec.running = { since: Date.now(), pid: 300000 + vmid };
            saveCt(core, c3);
          }
          throw e;
        }
      },
    });
  });
}
