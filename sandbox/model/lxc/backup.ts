/**
 * `POST /nodes/{node}/vzdump` for containers (pve-manager PVE/API2/VZDump.pm, PVE/VZDump.pm
 * `new`/`exec_backup`/`exec_backup_task`; pve-container src/PVE/VZDump/LXC.pm) and
 * `GET /nodes/{node}/vzdump/extractconfig`.
 *
 * - Synchronous: root-only options, option conflicts, `vmid` missing, Datastore.AllocateSpace
 *   on the storage; guests on other nodes are skipped (only remote ones → plain `OK`, no task).
 * - Task `vzdump` (id = the vmid when exactly one local guest, else empty). One job per node at
 *   a time (`/var/run/vzdump.lock`): a second job logs `trying to get global lock - waiting...`.
 * - Per guest: `lock: backup` for the whole backup (a locked CT fails `CT is locked (x)`); a
 *   stopped CT is always backed up in `stop` mode; `snapshot` on a volume without snapshots
 *   logs `mode failure - …` and falls back to `suspend`; `stop` mode stops a running CT and
 *   starts it again. The archive `vzdump-lxc-<vmid>-<time>.tar[.zst|.gz|.lzo]` lands in the
 *   storage's `dump/`; notes from `notes-template`, `protected` marks it.
 * - A guest that fails logs `ERROR: Backup of VM <id> failed - <why>`; the task then ends with
 *   `job errors`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { ApiRequest, Core } from "../../core";
import { bool, route } from "../../core";
import { ApiError, fail, paramError } from "../../http/errors";
import type { TaskContext } from "../../tasks";
import { splitList } from "../../../provider/proxmox/formats";
import { checkNode } from "../cluster";
import { isVolumeKey, parseConf, parseKey, printConf } from "./config";
import { volOf } from "./apply";
import { checkLock, ctOnNode, saveCt, type LoadedCt } from "./status";
import { tarTotalsLine } from "./extract";
import { haResource } from "./ha";
import { storagePath, type StorageDef } from "../storage/storages";
import { backupBasename, backupFile, backupItems, readArchive, setProtected, writeNotes, type BackupArchive } from "../storage/backups";

const ROOT_ONLY = ["maxfiles", "prune-backups", "tmpdir", "dumpdir", "script", "bwlimit", "ionice"];
const EXT: Record<string, string> = { "0": "", zstd: ".zst", gzip: ".gz", lzo: ".lzo", "1": ".lzo" };

/** The per-node `/var/run/vzdump.lock`: jobs on one node run one after the other. */
const globalLocks = new WeakMap<Core, Map<string, Promise<void>>>();

export function registerBackup(core: Core): void {
  route(core, "POST", "/nodes/{node}/vzdump", (req) => vzdump(core, req));
  route(core, "GET", "/nodes/{node}/vzdump/extractconfig", (req) => {
    checkNode(core, req.params.node);
    const volid = String(req.params.volume);
    const pv = core.storage.parseVolid(volid);
    const file = core.storage.filePath(req.params.node, pv);
    core.auth.checkAny(req.id, `/storage/${pv.storage}`, ["Datastore.AllocateSpace", "Datastore.Audit"]);
    if (pv.owner !== undefined) core.auth.check(req.id, `/vms/${pv.owner}`, ["VM.Backup"]);
    if (!fs.existsSync(file)) throw fail(`volume '${volid}' does not exist`);
    return readArchive(file, volid).conf;
  });
}

function verify(core: Core, req: ApiRequest): void {
  const p = req.params;
  for (const k of ROOT_ONLY) if (p[k] !== undefined && !core.auth.isRoot(req.id)) throw paramError({ [k]: "Only root may set this option." });
  if (bool(p.stdout)) throw paramError({ stdout: "option is only allowed on the command line interface." });
  for (const k of ["all", "exclude", "pool"]) if (p[k] !== undefined && p[k] !== "0" && p.vmid) throw paramError({ [k]: "option conflicts with option 'vmid'" });
  if (p["prune-backups"] !== undefined && p.maxfiles !== undefined) throw paramError({ "prune-backups": "option conflicts with option 'maxfiles'" });
  if (typeof p["notes-template"] === "string" && p["notes-template"].includes("\n")) throw paramError({ "notes-template": "contains a line feed" });
  if (!(bool(p.all) || p.exclude || bool(p.stop) || p.pool) && !p.vmid) throw paramError({ vmid: "property is missing" });
}

/** `get_included_guests`: the guests this node backs up (unknown IDs too: they fail later). */
function localGuests(core: Core, req: ApiRequest): { local: number[]; remote: number } {
  const p = req.params;
  const cts = core.store.state.cts;
  let ids: number[];
  if (p.vmid) ids = splitList(String(p.vmid)).map(Number);
  else if (p.pool) ids = [...(core.store.state.pools[p.pool]?.vms ?? [])];
  else {
    const excluded = new Set(splitList(String(p.exclude ?? "")).map(Number));
    ids = Object.keys(cts).map(Number).filter((v) => !excluded.has(v));
  }
  const local = ids.filter((v) => !cts[String(v)] || cts[String(v)].node === req.params.node);
  return { local: [...new Set(local)].sort((a, b) => a - b), remote: ids.length - local.length };
}

function vzdump(core: Core, req: ApiRequest): string {
  checkNode(core, req.params.node);
  verify(core, req);
  const { local } = localGuests(core, req);
  if (!local.length && !bool(req.params.all)) return "OK";
  if (req.params.storage) core.auth.check(req.id, `/storage/${req.params.storage}`, ["Datastore.AllocateSpace"]);
  const node = req.params.node as string;
  return core.tasks.start({
    node, type: "vzdump", id: local.length === 1 ? String(local[0]) : "", who: req.id,
    worker: (ctx) => runJob(core, req, node, local, ctx),
  });
}

/** `PVE::VZDump->new`: the target storage must exist and hold backups. */
function backupStorage(core: Core, name: string): StorageDef {
  const def = core.storage.def(name);
  if (!def) throw new Error(`could not activate storage '${name}': storage '${name}' does not exist\ncould not get storage information for '${name}': storage '${name}' does not exist`);
  if (!def.content.includes("backup")) throw new Error(`could not get storage information for '${name}': can't use storage '${name}' for backups - wrong content type`);
  return def;
}

async function withGlobalLock(core: Core, node: string, ctx: TaskContext, fn: () => Promise<void>): Promise<void> {
  let locks = globalLocks.get(core);
  if (!locks) globalLocks.set(core, (locks = new Map()));
  const before = locks.get(node);
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  locks.set(node, (before ?? Promise.resolve()).then(() => mine));
  if (before) {
    ctx.log("INFO: trying to get global lock - waiting...");
    await before;
    ctx.log("INFO: got global lock");
  }
  try {
    await fn();
  } finally {
    release();
  }
}

/** `PVE::VZDump::Common::command_line` (option order sorted here; PVE uses hash order). */
function commandLine(p: Record<string, any>): string {
  let cmd = "vzdump";
  if (p.vmid) cmd += ` ${splitList(String(p.vmid)).join(" ")}`;
  for (const k of Object.keys(p).sort()) {
    if (k === "vmid" || p[k] === undefined) continue;
    const v = String(p[k]);
    cmd += ` --${k} ${/\s/.test(v) ? `'${v}'` : v}`;
  }
  return cmd;
}

async function runJob(core: Core, req: ApiRequest, node: string, vmids: number[], ctx: TaskContext): Promise<void> {
  const p = req.params;
  const def = backupStorage(core, String(p.storage ?? "local"));
  await withGlobalLock(core, node, ctx, async () => {
    ctx.log(`INFO: starting new backup job: ${commandLine(p)}`);
    for (const vmid of vmids) {
      if (core.store.state.cts[String(vmid)] && !core.auth.has(req.id, `/vms/${vmid}`, "VM.Backup")) {
        if (!bool(p.all)) throw new ApiError(403, `Permission check failed (/vms/${vmid}, VM.Backup)`);
      }
    }
    let errors = 0;
    for (const vmid of vmids) {
      if (bool(p.all) && !core.auth.has(req.id, `/vms/${vmid}`, "VM.Backup")) continue;
      if (!(await backupOne(core, req, node, def, vmid, ctx))) errors++;
    }
    ctx.log(errors ? "INFO: Backup job finished with errors" : "INFO: Backup job finished successfully");
    if (errors) throw new Error("job errors");
  });
}

const stamp = (d = new Date()) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")} ${d.toTimeString().slice(0, 8)}`;

/** `format_size` of VZDump.pm. */
function formatSize(bytes: number): string {
  const kb = bytes / 1024;
  if (kb < 1024) return `${Math.floor(kb)}KB`;
  const mb = kb / 1024;
  if (mb < 1024) return `${Math.floor(mb)}MB`;
  return `${(mb / 1024).toFixed(2)}GB`;
}

/** `$generate_notes`: `\\` and `\n` escapes, then the four variables; anything else dies. */
export function generateNotes(template: string, vars: Record<string, string>): string {
  const unescaped = template.replace(/\\(.)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    throw new Error(`unexpected escape character '${c}'`);
  });
  const out = unescaped.replace(/\{\{(cluster|guestname|node|vmid)\}\}/g, (_, k: string) => vars[k]);
  const left = /\{\{([^\s]+)\}\}/.exec(out);
  if (left) throw new Error(`unexpected variable name '${left[1]}'`);
  return out;
}

interface MountPoint {
  key: string;
  vol: string;
  mp: string;
}

/** `prepare`: which mount points go into the archive (rootfs always, mp[n] with backup=1). */
function includedMounts(core: Core, ct: LoadedCt, ctx: TaskContext): MountPoint[] {
  const out: MountPoint[] = [];
  for (const key of ["rootfs", ...Object.keys(ct.conf.keys).filter((k) => /^mp\d+$/.test(k)).sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)))]) {
    const v = ct.conf.keys[key];
    if (!v || !isVolumeKey(key)) continue;
    const d = parseKey(key, v, core.version);
    const vol = volOf(core, key, v) ?? "";
    const mp = key === "rootfs" ? "/" : d.mp;
    const type = vol.startsWith("/dev/") ? "device" : vol.startsWith("/") ? "bind" : "volume";
    if (key !== "rootfs" && !(type === "volume" && d.backup === "1")) {
      ctx.log(`INFO: excluding ${type} mount point ${key} ('${mp}') from backup (disabled)`);
      continue;
    }
    ctx.log(`INFO: including mount point ${key} ('${mp}') in backup`);
    out.push({ key, vol, mp });
  }
  return out;
}

function prepare(core: Core, ct: LoadedCt, ctx: TaskContext): MountPoint[] {
  if (ct.conf.keys.hostname !== undefined) ctx.log(`INFO: CT Name: ${ct.conf.keys.hostname}`);
  return includedMounts(core, ct, ctx);
}

/** The archive content: pct.conf as `assemble` writes it, plus each mount point's data. */
function assemble(core: Core, node: string, ct: LoadedCt, mounts: MountPoint[]): BackupArchive {
  const conf = parseConf(ct.rec.conf);
  delete conf.keys.lock;
  delete conf.keys.parent;
  conf.snapshots = {};
  conf.pending = {};
  const volumes: BackupArchive["volumes"] = {};
  for (const m of mounts) {
    const data = core.storage.readVolume(node, m.vol);
    volumes[m.key] = { size: data?.size ?? 0, marker: data?.marker ?? "" };
  }
  return { sandboxVzdump: 1, type: "lxc", vmid: ct.vmid, conf: printConf(conf), volumes };
}

/** A fresh archive name; two jobs in one second would collide, so wait for the next second. */
async function freshName(core: Core, node: string, storage: string, vmid: number, ext: string, ctx: TaskContext): Promise<{ time: Date; name: string }> {
  for (;;) {
    const time = new Date();
    const name = `${backupBasename(vmid, time)}${ext}`;
    if (!fs.existsSync(backupFile(core, node, storage, name))) return { time, name };
    await ctx.sleep(1000 - (Date.now() % 1000) + 5);
  }
}

/** `exec_backup_task` for one CT; resolves false when it failed (logged, job goes on). */
async function backupOne(core: Core, req: ApiRequest, node: string, def: StorageDef, vmid: number, ctx: TaskContext): Promise<boolean> {
  const p = req.params;
  const started = Date.now();
  let locked = false;
  let restart = false;
  try {
    if (!core.store.state.cts[String(vmid)]) throw new Error(`unable to find VM '${vmid}'`);
    // Stop mode would fight the HA stack over a service it keeps started.
    if (String(p.mode ?? "snapshot") === "stop" && haResource(core, vmid)?.state === "started") {
      throw new Error("Cannot execute a backup with stop mode on a HA managed and enabled Service. Use snapshot mode or disable the Service.");
    }
    const ext = `.tar${EXT[String(p.compress ?? "0")] ?? ""}`;
    const { time, name } = await freshName(core, node, def.storage, vmid, ext, ctx);
    const target = `${storagePath(def) ?? "/var/lib/vz"}/dump/${name}`;
    checkProtectedLimit(core, req, node, def, vmid);
    ctx.log(`INFO: Starting Backup of VM ${vmid} (lxc)`);
    ctx.log(`INFO: Backup started at ${stamp(time)}`);
    let ct = ctOnNode(core, node, vmid);
    const running = !!ct.rec.running;
    ctx.log(`INFO: status = ${running ? "running" : "stopped"}`);
    // lock_vm → set_lock: check_lock first, so a locked CT is refused.
    checkLock(ct.conf);
    ct.conf.keys.lock = "backup";
    saveCt(core, ct);
    locked = true;
    let mode = running ? String(p.mode ?? "snapshot") : "stop";
    let mounts = prepare(core, ct, ctx);
    if (mode === "snapshot" && !mounts.every((m) => !m.vol.startsWith("/") && core.storage.def(m.vol.split(":")[0])?.snapshots)) {
      ctx.log("INFO: mode failure - some volumes do not support snapshots");
      ctx.log("INFO: trying 'suspend' mode instead");
      mode = "suspend";
      mounts = prepare(core, ct, ctx);
    }
    ctx.log(`INFO: backup mode: ${mode}`);
    ctx.log("INFO: ionice priority: 7");
    const tmpdir = `${storagePath(def) ?? "/var/lib/vz"}/dump/${name.replace(/\.tar.*$/, "")}.tmp`;
    if (mode === "stop" && running) {
      ctx.log("INFO: stopping virtual guest");
      ct.rec.running = undefined;
      core.save();
      restart = true;
    } else if (mode === "suspend") {
      ctx.log(`INFO: starting first sync /proc/${ct.rec.running?.pid}/root/ to ${tmpdir}`);
      await ctx.work(0.3);
      ctx.log("INFO: first sync finished (0 seconds)");
      ctx.log("INFO: suspending guest");
      ctx.log(`INFO: starting final sync /proc/${ct.rec.running?.pid}/root/ to ${tmpdir}`);
      ctx.log("INFO: final sync finished (0 seconds)");
      ctx.log("INFO: resuming guest");
      ctx.log("INFO: guest is online again after <1 seconds");
    } else if (mode === "snapshot") {
      if (ct.conf.snapshots.vzdump) {
        ctx.log("INFO: found old vzdump snapshot (force removal)");
        dropVzdumpSnapshot(core, node, vmid, mounts);
      }
      ctx.log("INFO: create storage snapshot 'vzdump'");
      takeVzdumpSnapshot(core, node, vmid, mounts);
    }
    ctx.log(`INFO: creating vzdump archive '${target}'`);
    await ctx.work();
    ct = ctOnNode(core, node, vmid);
    const archive = assemble(core, node, ct, mounts);
    const file = backupFile(core, node, def.storage, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(archive));
    const used = Object.values(archive.volumes).reduce((a, v) => a + Math.floor(v.size * 0.1), 0);
    ctx.log(`INFO: ${tarTotalsLine(used, Math.max(1, Date.now() - started))}`);
    ctx.log(`INFO: archive file size: ${formatSize(fs.statSync(file).size)}`);
    const tmpl = p["notes-template"] as string | undefined;
    if (tmpl) {
      ctx.log("INFO: adding notes to backup");
      try {
        // {{cluster}}: the cluster name /cluster/status reports (`sandbox`).
        writeNotes(file, generateNotes(tmpl, { cluster: "sandbox", guestname: ct.conf.keys.hostname ?? `CT${vmid}`, node, vmid: String(vmid) }));
      } catch (e) {
        ctx.log(`WARN: unable to add notes - ${(e as Error).message}`);
      }
    }
    if (bool(p.protected)) {
      ctx.log("INFO: marking backup as protected");
      setProtected(file, true);
    }
    unlock(core, node, vmid);
    locked = false;
    if (mode === "snapshot") {
      ctx.log("INFO: cleanup temporary 'vzdump' snapshot");
      dropVzdumpSnapshot(core, node, vmid, mounts);
    }
    if (restart) restartCt(core, node, vmid, ctx, started);
    ctx.log(`INFO: Finished Backup of VM ${vmid} (${duration(Date.now() - started)})`);
    ctx.log(`INFO: Backup finished at ${stamp()}`);
    return true;
  } catch (e) {
    if (locked) unlock(core, node, vmid);
    if (snapshotTaken(core, node, vmid)) dropVzdumpSnapshot(core, node, vmid, []);
    if (restart) restartCt(core, node, vmid, ctx, started);
    ctx.log(`ERROR: Backup of VM ${vmid} failed - ${String((e as Error).message).replace(/\n$/, "")}`);
    ctx.log(`INFO: Failed at ${stamp()}`);
    return false;
  }
}

/** `get_max_protected_backups`: the storage's limit, else unlimited with Datastore.Allocate, else 5. */
function checkProtectedLimit(core: Core, req: ApiRequest, node: string, def: StorageDef, vmid: number): void {
  if (!bool(req.params.protected)) return;
  const max = core.auth.has(req.id, `/storage/${def.storage}`, "Datastore.Allocate") ? -1 : 5;
  const count = backupItems(core, node, def.storage, vmid).filter((b) => b.subtype === "lxc" && b.protected).length;
  if (max > -1 && count >= max) throw new Error(`The number of protected backups per guest is limited to ${max} on storage '${def.storage}'`);
}

/**
 * Snapshot mode's temporary `vzdump` snapshot (LXC.pm `snapshot`/`cleanup`): visible in the
 * snapshot list while the backup runs, `parent` of the current state, gone afterwards.
 */
function takeVzdumpSnapshot(core: Core, node: string, vmid: number, mounts: MountPoint[]): void {
  const ct = ctOnNode(core, node, vmid);
  const keys: Record<string, string> = { ...ct.conf.keys, snaptime: String(Math.floor(Date.now() / 1000)) };
  delete keys.lock;
  ct.conf.snapshots.vzdump = { keys, lxc: ct.conf.lxc.map(([a, b]) => [a, b]), description: "vzdump backup snapshot\n" };
  ct.conf.keys.parent = "vzdump";
  saveCt(core, ct);
  for (const m of mounts) {
    const d = core.storage.readVolume(node, m.vol);
    if (!d) continue;
    d.snapshots.vzdump = { size: d.size, marker: d.marker };
    core.storage.writeVolume(node, m.vol, d);
  }
}

function snapshotTaken(core: Core, node: string, vmid: number): boolean {
  const rec = core.store.state.cts[String(vmid)];
  return !!rec && rec.node === node && !!parseConf(rec.conf).snapshots.vzdump;
}

function dropVzdumpSnapshot(core: Core, node: string, vmid: number, mounts: MountPoint[]): void {
  const ct = ctOnNode(core, node, vmid);
  const snap = ct.conf.snapshots.vzdump;
  if (!snap) return;
  if (ct.conf.keys.parent === "vzdump") {
    if (snap.keys.parent) ct.conf.keys.parent = snap.keys.parent;
    else delete ct.conf.keys.parent;
  }
  delete ct.conf.snapshots.vzdump;
  saveCt(core, ct);
  const vols = mounts.length ? mounts.map((m) => m.vol) : Object.entries(ct.conf.keys).filter(([k]) => isVolumeKey(k)).map(([k, v]) => volOf(core, k, v) ?? "");
  for (const vol of vols) {
    if (!vol || vol.startsWith("/")) continue;
    const d = core.storage.readVolume(node, vol);
    if (d?.snapshots.vzdump) {
      delete d.snapshots.vzdump;
      core.storage.writeVolume(node, vol, d);
    }
  }
}

function unlock(core: Core, node: string, vmid: number): void {
  const rec = core.store.state.cts[String(vmid)];
  if (!rec || rec.node !== node) return;
  const conf = parseConf(rec.conf);
  if (conf.keys.lock === "backup") {
    delete conf.keys.lock;
    rec.conf = printConf(conf);
    core.save();
  }
}

let pidSeq = 300000;

function restartCt(core: Core, node: string, vmid: number, ctx: TaskContext, stoppedAt: number): void {
  const rec = core.store.state.cts[String(vmid)];
  if (!rec || rec.node !== node || rec.running) return;
  ctx.log("INFO: restarting vm");
  rec.running = { since: Date.now(), pid: pidSeq++ };
  core.save();
  const s = Math.floor((Date.now() - stoppedAt) / 1000);
  ctx.log(`INFO: guest is online again after ${s < 1 ? "<1" : s} seconds`);
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(Math.floor(s / 3600))}:${p(Math.floor((s % 3600) / 60))}:${p(s % 60)}`;
}
