/**
 * Restore: `POST /nodes/{node}/lxc` with `restore=1` and `ostemplate=<backup volid>`
 * (pve-container src/PVE/API2/LXC.pm `create_vm`, src/PVE/LXC/Create.pm `recover_config`,
 * `restore_archive`, `sanitize_and_merge_config`). Task `vzrestore`.
 *
 * - `force=1` may overwrite an existing CT on this node (not a running or protected one); its
 *   old volumes are freed after the new ones exist. Without `force` the vmid must be unused.
 * - Without rootfs/mp parameters every mount point of the backup is recreated at its backed-up
 *   size on `storage` (default `local`, like PVE); the backed-up data goes into it.
 * - The backup's config is the base; parameters given in the request win; `unique=1` gives
 *   every restored NIC a new MAC; `template: 1` in the backup converts the restored CT again.
 */
import * as fs from "node:fs";
import type { ApiRequest, Core } from "../../core";
import { bool } from "../../core";
import type { TaskContext } from "../../tasks";
import { ApiError, fail, permError } from "../../http/errors";
import { parseSize } from "../../../provider/proxmox/formats";
import { emptyConf, isUnusedKey, isVolumeKey, parseConf, parseKey, printConf, printKey, setEnv, type CtConf } from "./config";
import { allocateIfNew, checkKeyPerms, normaliseValue, randomHwaddr, volOf } from "./apply";
import { ctOnNode } from "./status";
import { startCt } from "./lifecycle";
import { templateCreate } from "./clone";
import { commitNewCt, discardNewCt } from "./newct";
import { checkNode } from "../cluster";
import { tarTotalsLine } from "./extract";
import { checkVolumeAccess } from "../storage/routes";
import { archiveInfo, readArchive, type BackupArchive } from "../storage/backups";
import { storagePath } from "../storage/storages";

/** Parameters that are not config keys. */
const NON_CONFIG = new Set(["node", "vmid", "ostemplate", "password", "ssh-public-keys", "start", "pool", "storage", "restore", "force", "unique", "ignore-unpack-errors", "bwlimit", "ha-managed", "unprivileged"]);

interface Plan {
  vmid: number;
  node: string;
  volid: string;
  file: string;
  shownFile: string;
  storage: string;
  /** Declared config values (normalised), rootfs/mp[n] included when given. */
  values: Record<string, string>;
  storageOnly: boolean;
}

/** The synchronous part of create_vm for a restore; returns the `vzrestore` UPID. */
export function restoreCt(core: Core, req: ApiRequest): string {
  const plan = checkRestore(core, req);
  const { vmid, node } = plan;
  const existing = core.store.state.cts[String(vmid)];
  // create_and_lock_config($vmid, $force): an overwritten CT keeps its keys under `lock: create`.
  const conf = existing ? parseConf(existing.conf) : emptyConf();
  conf.keys.lock = "create";
  core.store.state.cts[String(vmid)] = { ...(existing ?? { node }), conf: printConf(conf) };
  core.save();
  return core.tasks.start({ node, type: "vzrestore", id: String(vmid), who: req.id, worker: (ctx) => restoreWorker(core, req, plan, ctx) });
}

function checkRestore(core: Core, req: ApiRequest): Plan {
  const p = req.params;
  const node = p.node as string;
  checkNode(core, node);
  const vmid = Number(p.vmid);
  const rec = core.store.state.cts[String(vmid)];
  const sameExists = !!rec && rec.node === node;
  if (!(sameExists && bool(p.force))) {
    if (rec) throw fail(`CT ${vmid} already exists on node '${rec.node}'`);
  } else {
    if (rec.running) throw fail("can't overwrite running container");
    if (parseConf(rec.conf).keys.protection === "1") throw fail(`unable to restore CT ${vmid} - protection mode enabled`);
  }
  if (p.pool && !core.store.state.pools[p.pool]) throw new ApiError(403, `Permission check failed (pool '${p.pool}' does not exist)`);
  const auth = core.auth;
  const allowed = auth.has(req.id, `/vms/${vmid}`, "VM.Allocate") || (p.pool && auth.has(req.id, `/pool/${p.pool}`, "VM.Allocate")) || (bool(p.force) && sameExists && auth.has(req.id, `/vms/${vmid}`, "VM.Backup"));
  if (!allowed) throw permError();
  const storage = String(p.storage ?? "local");
  const volid = String(p.ostemplate);
  const pv = core.storage.parseVolid(volid);
  checkVolumeAccess(core, req, core.storage.mustDef(pv.storage), pv, vmid);
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(p)) if (!NON_CONFIG.has(k) && v !== undefined && !isUnusedKey(k)) values[k] = String(v);
  const storageOnly = !Object.keys(values).some(isVolumeKey);
  if (!storageOnly && !values.rootfs) throw fail("mount points configured, but 'rootfs' not set - aborting");
  checkKeyPerms(core, req.id, vmid, Object.keys(values), values);
  // check_and_activate_storage for every volume given, else the default storage.
  const sids = storageOnly ? [storage] : Object.keys(values).filter(isVolumeKey).map((k) => (parseKey(k, values[k], core.version).volume ?? "").split(":")[0]);
  for (const sid of sids) {
    if (!sid || /^\d+(\.\d+)?$/.test(sid) || sid.startsWith("/")) continue;
    const def = core.storage.mustDef(sid);
    if (!def.content.includes("rootdir")) throw new ApiError(400, "Parameter verification failed.", { storage: `storage '${sid}' does not support container directories` });
    auth.check(req.id, `/storage/${sid}`, ["Datastore.AllocateSpace"]);
  }
  for (const k of Object.keys(values)) values[k] = normaliseValue(core, k, values[k], vmid);
  const def = core.storage.mustDef(pv.storage);
  const file = core.storage.filePath(node, pv);
  const shownFile = `${storagePath(def) ?? "/var/lib/vz"}/dump/${pv.volname.replace(/^backup\//, "")}`;
  return { vmid, node, volid, file, shownFile, storage, values, storageOnly };
}

/** The backed-up mount points as `create_disks` input: `<storage>:<size in GiB>` each. */
function recoveredMounts(core: Core, req: ApiRequest, old: CtConf, storage: string): { mps: Record<string, string>; delayed: Record<string, string> } {
  const mps: Record<string, string> = {};
  const delayed: Record<string, string> = {};
  if (!old.keys.rootfs) throw new Error("rootfs configuration could not be recovered, please check and specify manually!");
  for (const [k, v] of Object.entries(old.keys)) {
    if (!isVolumeKey(k)) continue;
    const d = parseKey(k, v, core.version);
    const vol = d.volume ?? "";
    if (vol.startsWith("/")) {
      const type = vol.startsWith("/dev/") ? "device" : "bind";
      if (k === "rootfs") throw new Error(`restoring rootfs to ${type} mount is only possible by specifying -rootfs manually!`);
      if (!core.auth.isRoot(req.id)) throw new Error(`restoring '${k}' to ${type} mount is only possible for root`);
      delayed[k] = v;
      continue;
    }
    if (d.size === undefined) throw new Error(`unable to detect disk size - please specify ${k} (size)`);
    d.volume = `${storage}:${(parseSize(d.size) ?? 0) / 1024 ** 3}`;
    delete d.size;
    mps[k] = printKey(k, d, core.version);
  }
  return { mps, delayed };
}

/** `sanitize_and_merge_config`: the backup's keys fill what the request did not set. */
function mergeConfig(core: Core, conf: CtConf, old: CtConf, restricted: boolean, unique: boolean, log: (l: string) => void): void {
  for (const [k, v] of Object.entries(old.keys)) {
    if (["digest", "rootfs", "unprivileged", "parent", "template", "lock"].includes(k) || /^mp\d+$/.test(k) || isUnusedKey(k)) continue;
    if (unique && /^net\d+$/.test(k)) {
      const net = parseKey(k, v, core.version);
      net.hwaddr = randomHwaddr();
      conf.keys[k] = printKey(k, net, core.version);
      continue;
    }
    if (conf.keys[k] === undefined) conf.keys[k] = v;
  }
  if (conf.description === undefined && old.description !== undefined) conf.description = old.description;
  if (old.lxc.length && restricted) {
    log("WARN: skipping custom lxc options, restore manually as root:");
    log("--------------------------------");
    for (const [a, b] of old.lxc) log(`${a}: ${b}`);
    log("--------------------------------");
  } else if (conf.lxc.length === 0) conf.lxc = old.lxc.map(([a, b]) => [a, b]);
}

async function restoreWorker(core: Core, req: ApiRequest, plan: Plan, ctx: TaskContext): Promise<void> {
  const { vmid, node, values } = plan;
  const p = req.params;
  const allocated: string[] = [];
  const isRoot = core.auth.isRoot(req.id);
  try {
    await ctx.work(0.5);
    const oldRec = core.store.state.cts[String(vmid)];
    const overwritten = oldRec ? parseConf(oldRec.conf) : emptyConf();
    if (oldRec?.running) throw new Error("can't overwrite running container");
    ctx.log(`recovering backed-up configuration from '${plan.volid}'`);
    // extract_vzdump_config: abs_filesystem_path, then archive_info on the name, then the tar.
    if (!fs.existsSync(plan.file)) throw new Error(`can't find file '${plan.volid}'`);
    if (!archiveInfo(plan.volid.replace(/^.*\//, ""))) throw new Error(`ERROR: couldn't determine archive info from '${plan.shownFile}'`);
    const archive: BackupArchive = readArchive(plan.file, plan.volid);
    const old = parseConf(archive.conf);
    const conf = emptyConf();
    for (const [k, v] of Object.entries(values)) {
      if (k === "env") setEnv(conf, v);
      else if (k === "description") conf.description = v.endsWith("\n") ? v : `${v}\n`;
      else conf.keys[k] = v;
    }
    if (isRoot) conf.lxc = old.lxc.map(([a, b]) => [a, b]);
    if (p.unprivileged !== undefined) {
      if (bool(p.unprivileged)) conf.keys.unprivileged = "1";
    } else if (old.keys.unprivileged !== undefined) conf.keys.unprivileged = old.keys.unprivileged;
    let mps: Record<string, string> = {};
    let delayed: Record<string, string> = {};
    if (plan.storageOnly) ({ mps, delayed } = recoveredMounts(core, req, old, plan.storage));
    else for (const k of Object.keys(conf.keys).filter(isVolumeKey)) mps[k] = conf.keys[k];
    // create_disks walks rootfs, then mp0, mp1, … (foreach_volume order).
    const order = Object.keys(mps).sort((a, b) => (a === "rootfs" ? -1 : b === "rootfs" ? 1 : Number(a.slice(2)) - Number(b.slice(2))));
    for (const k of order) conf.keys[k] = allocateIfNew(core, node, vmid, k, normaliseValue(core, k, mps[k], vmid), plan.storage, allocated);
    // destroy_lxc_container on the overwritten CT's volumes, after the new ones exist.
    for (const [k, v] of Object.entries(overwritten.keys)) {
      if (!isVolumeKey(k) && !isUnusedKey(k)) continue;
      const vol = volOf(core, k, v);
      if (vol && !vol.startsWith("/") && core.storage.parseVolid(vol).owner === vmid) core.storage.freeVolume(node, vol);
    }
    ctx.log(`restoring '${plan.volid}' now..`);
    restoreData(core, node, conf, archive);
    ctx.log(`extracting archive '${plan.shownFile}'`);
    const bytes = Object.values(archive.volumes).reduce((a, v) => a + Math.floor(v.size * 0.1), 0);
    ctx.log(tarTotalsLine(bytes, 80));
    ctx.log("merging backed-up and given configuration..");
    mergeConfig(core, conf, old, !isRoot, bool(p.unique), (l) => (l.startsWith("WARN: ") ? ctx.warn(l.slice(6)) : ctx.log(l)));
    conf.keys.hostname ||= `CT${vmid}`;
    if (!conf.keys.memory || conf.keys.memory === "0") conf.keys.memory = "512";
    conf.keys.swap ??= "512";
    Object.assign(conf.keys, delayed);
    if (old.keys.template === "1") {
      ctx.log("Convert restored container to template...");
      templateCreate(core, node, conf.keys, (l) => ctx.log(l));
    }
    commitNewCt(core, vmid, conf, p.pool as string | undefined, "restore");
  } catch (e) {
    discardNewCt(core, node, vmid, allocated);
    throw new Error(`unable to restore CT ${vmid} - ${String((e as Error).message).replace(/\n$/, "")}`);
  }
  if (bool(p.start)) startCt(core, ctOnNode(core, node, vmid), req.id);
}

/** `restore_archive`: each new volume gets the backed-up content of the same mount point. */
function restoreData(core: Core, node: string, conf: CtConf, archive: BackupArchive): void {
  for (const [k, v] of Object.entries(conf.keys)) {
    if (!isVolumeKey(k)) continue;
    const saved = archive.volumes[k];
    const vol = volOf(core, k, v);
    if (!saved || !vol || vol.startsWith("/")) continue;
    const data = core.storage.readVolume(node, vol);
    if (data) core.storage.writeVolume(node, vol, { ...data, marker: saved.marker });
  }
}
