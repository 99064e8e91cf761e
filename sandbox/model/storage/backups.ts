/**
 * Backup archives on path-based storages (`<path>/dump/`), as pve-storage keeps them:
 * - names `vzdump-lxc-<vmid>-<YYYY_MM_DD-HH_MM_SS>.tar[.zst|.gz|.lzo]` (`archive_info`, the
 *   time is local time and is the item's `ctime`);
 * - content items `{volid, format: "tar.zst", size, ctime, subtype, vmid, notes?, protected?}`
 *   (Plugin.pm `$get_subdir_files`; notes = first line of `<archive>.notes`, protected =
 *   `<archive>.protected` exists);
 * - attributes via GET/PUT …/content/{volume} (DirPlugin.pm `get/update_volume_attribute`).
 *
 * The archive file itself holds what the sandbox needs to restore faithfully: the CT's
 * pct.conf and, per backed-up mount point, its size and content marker (JSON, not a tar).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Core } from "../../core";
import { fail } from "../../http/errors";

/** `$BACKUP_EXT_RE_2`: `.tgz` or `.tar`/`.vma` with an optional known compressor. */
export const BACKUP_EXT = /\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?)$/;
const STD_NAME = /^vzdump-(lxc|qemu|openvz)-(\d+)-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})\./;

/** What a sandbox backup archive carries (`etc/vzdump/pct.conf` plus the volume data). */
export interface BackupArchive {
  sandboxVzdump: 1;
  type: "lxc";
  vmid: number;
  /** pct.conf as `assemble` writes it: no lock, snapshots, parent or pending. */
  conf: string;
  /** Backed-up mount points (rootfs, mp[n] with backup=1): size in bytes and content marker. */
  volumes: Record<string, { size: number; marker: string }>;
}

/** `archive_info`: type, vmid and ctime from a standard name (undefined otherwise). */
export function archiveInfo(filename: string): { type: string; vmid: number; ctime: number } | undefined {
  const m = STD_NAME.exec(filename);
  if (!m) return undefined;
  const [, type, vmid, y, mo, d, h, mi, s] = m;
  const ctime = Math.floor(new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)).getTime() / 1000);
  return { type, vmid: Number(vmid), ctime };
}

/** `vzdump-lxc-<vmid>-` + strftime("%Y_%m_%d-%H_%M_%S", localtime). */
export function backupBasename(vmid: number, time: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `vzdump-lxc-${vmid}-${time.getFullYear()}_${p(time.getMonth() + 1)}_${p(time.getDate())}-${p(time.getHours())}_${p(time.getMinutes())}_${p(time.getSeconds())}`;
}

export function backupFile(core: Core, node: string, storage: string, filename: string): string {
  return path.join(core.storage.contentDir(node, storage, "backup"), filename);
}

const notesFile = (archive: string) => `${archive}.notes`;
const protectionFile = (archive: string) => `${archive}.protected`;

export function isProtected(archive: string): boolean {
  return fs.existsSync(protectionFile(archive));
}

export function readNotes(archive: string): string {
  try {
    return fs.readFileSync(notesFile(archive), "utf8");
  } catch {
    return "";
  }
}

/** `update_volume_notes`: empty notes remove the file. */
export function writeNotes(archive: string, notes: string): void {
  if (notes !== "") fs.writeFileSync(notesFile(archive), notes);
  else fs.rmSync(notesFile(archive), { force: true });
}

export function setProtected(archive: string, on: boolean): void {
  if (on) fs.writeFileSync(protectionFile(archive), "");
  else fs.rmSync(protectionFile(archive), { force: true });
}

/** `archive_auxiliaries_remove`: the log and notes next to a removed archive. */
export function removeAuxiliaries(archive: string): void {
  const stem = archive.replace(BACKUP_EXT, "");
  fs.rmSync(`${stem}.log`, { force: true });
  fs.rmSync(notesFile(archive), { force: true });
}

/** Content items of type backup on one storage (optionally only those of `vmid`). */
export function backupItems(core: Core, node: string, storage: string, vmid?: number): Array<Record<string, unknown>> {
  const dir = core.storage.contentDir(node, storage, "backup");
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const items: Array<Record<string, unknown>> = [];
  for (const name of names) {
    const ext = BACKUP_EXT.exec(name);
    if (!ext || name.includes(".tmp")) continue;
    if (vmid !== undefined && !new RegExp(`\\S+-${vmid}-\\S+`).test(name)) continue;
    const file = path.join(dir, name);
    const st = fs.statSync(file);
    if (!st.isFile()) continue;
    const info = archiveInfo(name);
    const item: Record<string, unknown> = { volid: `${storage}:backup/${name}`, format: ext[1], size: st.size, ctime: info?.ctime ?? Math.floor(st.ctimeMs / 1000), subtype: info?.type ?? "unknown", content: "backup" };
    const owner = vmid ?? /-([1-9][0-9]{2,8})-[^/]+$/.exec(name)?.[1];
    if (owner !== undefined) item.vmid = Number(owner);
    if (fs.existsSync(notesFile(file))) item.notes = readNotes(file).split("\n")[0];
    if (isProtected(file)) item.protected = 1;
    items.push(item);
  }
  return items;
}

/** Read a sandbox archive; PVE's restore fails like this on an archive it cannot read. */
export function readArchive(file: string, volid: string): BackupArchive {
  let data: BackupArchive | undefined;
  try {
    data = JSON.parse(fs.readFileSync(file, "utf8")) as BackupArchive;
  } catch {
    data = undefined;
  }
  // Anything but a sandbox archive (e.g. a template tarball renamed) has no pct.conf to recover.
  if (!data || data.sandboxVzdump !== 1) throw fail("ERROR: archive contains no configuration file");
  return data;
}
