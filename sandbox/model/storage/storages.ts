/**
 * The storages every sandbox node has (BEHAVIOR.md §6, §8.5) and the volumes on them.
 * Each allocated volume is a small JSON file under the data dir recording its size, a
 * content marker (so tests can prove data survives resize/move/migrate) and its snapshots.
 * Templates/ISOs are real files in `<storage>/template/cache|iso`, as on a dir storage.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fail, ApiError } from "../../http/errors";
import { writeFileAtomic } from "../../persist";

export type StorageType = "dir" | "btrfs" | "lvmthin" | "zfspool" | "nfs";

export interface StorageDef {
  storage: string;
  type: StorageType;
  content: string[];
  shared: 0 | 1;
  /** Path-based (dir/btrfs/nfs): can hold templates/ISOs/backups, images are `<vmid>/vm-...raw`. */
  pathBased: boolean;
  /** `volume_has_feature(snapshot)` for CT volumes (BEHAVIOR.md §5 table). */
  snapshots: boolean;
  /** Linked clones of CT volumes (§4.9: zfspool/lvmthin/btrfs yes, dir/nfs no). */
  linkedClone: boolean;
  total: number;
}

/** `--storage NAME:TYPE[:CONTENT,…]` / `startSandbox({storages})`: one storage of a node's layout. */
export interface StorageSpec {
  storage: string;
  type: StorageType;
  /** storage.cfg `content`; default: what the plugin can hold (see `DEFAULT_CONTENT`). */
  content?: string[];
}

const GiB = 1024 ** 3;

/**
 * What each plugin type is (pve-storage PVE/Storage/*Plugin.pm): path-based ones keep
 * images as files under `images/<vmid>/` and can hold templates; btrfs, zfspool and lvmthin
 * snapshot and link-clone CT volumes, dir and nfs (raw files) cannot.
 */
const TYPES: Record<StorageType, Omit<StorageDef, "storage" | "content">> = {
  dir: { type: "dir", shared: 0, pathBased: true, snapshots: false, linkedClone: false, total: 100 * GiB },
  btrfs: { type: "btrfs", shared: 0, pathBased: true, snapshots: true, linkedClone: true, total: 100 * GiB },
  lvmthin: { type: "lvmthin", shared: 0, pathBased: false, snapshots: true, linkedClone: true, total: 200 * GiB },
  zfspool: { type: "zfspool", shared: 0, pathBased: false, snapshots: true, linkedClone: true, total: 200 * GiB },
  nfs: { type: "nfs", shared: 1, pathBased: true, snapshots: false, linkedClone: false, total: 500 * GiB },
};

/** The content a storage.cfg entry of each type lists when none is given (as on the recorded 8.4 host). */
export const DEFAULT_CONTENT: Record<StorageType, string[]> = {
  dir: ["backup", "images", "iso", "rootdir", "snippets", "vztmpl"],
  btrfs: ["backup", "images", "rootdir", "vztmpl"],
  lvmthin: ["images", "rootdir"],
  zfspool: ["images", "rootdir"],
  nfs: ["backup", "images", "iso", "rootdir", "snippets", "vztmpl"],
};

/** Content types each plugin accepts (`plugindata` → content). */
const SUPPORTED_CONTENT: Record<StorageType, string[]> = {
  dir: ["images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"],
  btrfs: ["images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"],
  lvmthin: ["images", "rootdir"],
  zfspool: ["images", "rootdir"],
  nfs: ["images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"],
};

export function defineStorage(spec: StorageSpec): StorageDef {
  const base = TYPES[spec.type];
  if (!base) throw new Error(`storage '${spec.storage}': unknown type '${spec.type}' (one of ${Object.keys(TYPES).join(", ")})`);
  if (!/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i.test(spec.storage)) throw new Error(`storage ID '${spec.storage}' is not a valid PVE storage ID`);
  const content = spec.content ?? DEFAULT_CONTENT[spec.type];
  const bad = content.filter((c) => !SUPPORTED_CONTENT[spec.type].includes(c));
  if (bad.length) throw new Error(`storage '${spec.storage}': content type '${bad[0]}' is not supported by type '${spec.type}' (supported: ${SUPPORTED_CONTENT[spec.type].join(",")})`);
  return { ...base, storage: spec.storage, content: [...content] };
}

/** The storage's `path` in storage.cfg (path-based types), as PVE shows it in paths and logs. */
export function storagePath(def: StorageDef): string | undefined {
  if (def.type === "dir") return def.storage === "local" ? "/var/lib/vz" : `/mnt/${def.storage}`;
  if (def.type === "btrfs") return `/var/lib/pve/${def.storage}`;
  if (def.type === "nfs") return `/mnt/pve/${def.storage}`;
  return undefined;
}

/** Parse `NAME:TYPE[:CONTENT,…]` (the CLI's `--storage`). */
export function parseStorageSpec(text: string): StorageSpec {
  const [storage, type, content, ...rest] = text.split(":");
  if (!storage || !type || rest.length) throw new Error(`--storage '${text}': expected NAME:TYPE[:CONTENT,…], e.g. local:dir or tank:btrfs:images,rootdir`);
  const spec: StorageSpec = { storage, type: type as StorageType, ...(content ? { content: content.split(",").filter(Boolean) } : {}) };
  defineStorage(spec);
  return spec;
}

/** The default layout: a fresh PVE install's `local` and `local-lvm`, plus zfs and nfs. */
export const STORAGES: StorageDef[] = [
  defineStorage({ storage: "local", type: "dir", content: ["vztmpl", "iso", "backup", "import"] }),
  defineStorage({ storage: "local-lvm", type: "lvmthin", content: ["rootdir", "images"] }),
  defineStorage({ storage: "local-zfs", type: "zfspool", content: ["rootdir", "images"] }),
  defineStorage({ storage: "shared-nfs", type: "nfs", content: ["rootdir", "vztmpl", "images", "iso"] }),
];

export interface VolumeData {
  size: number;
  marker: string;
  ctime: number;
  /** Linked clones remember their base volume. */
  base?: string;
  snapshots: Record<string, { size: number; marker: string }>;
}

export interface ParsedVolid {
  storage: string;
  volname: string;
  vtype: "images" | "rootdir" | "vztmpl" | "iso" | "backup" | "import";
  /** Owner vmid for images. */
  owner?: number;
}

/** Template file extensions (§6.1 `$VZTMPL_EXT_RE_1`); `.tgz` is for backups only. */
export const VZTMPL_EXT = /\.(tar|tar\.gz|tar\.xz|tar\.zst|tar\.bz2)$/i;
export const ISO_EXT = /\.(iso|img)$/i;
export const IMPORT_EXT = /\.(ova|ovf|qcow2|raw|vmdk)$/i;

export function templateFormat(name: string): string {
  const m = /\.(tar|tar\.gz|tar\.xz|tar\.zst|tar\.bz2)$/i.exec(name);
  const ext = m ? m[1].toLowerCase() : "";
  return { tar: "tar", "tar.gz": "tgz", "tar.xz": "txz", "tar.zst": "tzst", "tar.bz2": "tbz2" }[ext] ?? "raw";
}

/** `normalize_content_filename`: path stripped, other characters → `_` (§6.2). */
export function normalizeFilename(name: string): string {
  return name.replace(/^.*[/\\]/, "").replace(/[^A-Za-z0-9_.-]/g, "_");
}

export class StorageModel {
  constructor(
    private readonly dataDir: string,
    readonly nodes: string[],
    /** The storages of every node, in storage.cfg order. */
    readonly defs: StorageDef[] = STORAGES,
  ) {
    for (const node of nodes) for (const s of defs) fs.mkdirSync(this.baseDir(node, s.storage), { recursive: true });
  }

  def(storage: string): StorageDef | undefined {
    return this.defs.find((s) => s.storage === storage);
  }

  /** `storage 'x' does not exist` (500) — PVE's storage_config die. */
  mustDef(storage: string): StorageDef {
    const d = this.def(storage);
    if (!d) throw fail(`storage '${storage}' does not exist`);
    return d;
  }

  /** Shared storages have one directory for the whole cluster; local ones one per node. */
  baseDir(node: string, storage: string): string {
    const d = this.def(storage);
    return d?.shared ? path.join(this.dataDir, "shared", storage) : path.join(this.dataDir, "nodes", node, "storage", storage);
  }

  templateDir(node: string, storage: string): string {
    return path.join(this.baseDir(node, storage), "template", "cache");
  }

  isoDir(node: string, storage: string): string {
    return path.join(this.baseDir(node, storage), "template", "iso");
  }

  importDir(node: string, storage: string): string {
    return path.join(this.baseDir(node, storage), "import");
  }

  contentDir(node: string, storage: string, content: string): string {
    if (content === "vztmpl") return this.templateDir(node, storage);
    if (content === "iso") return this.isoDir(node, storage);
    if (content === "import") return this.importDir(node, storage);
    if (content === "backup") return path.join(this.baseDir(node, storage), "dump");
    throw new ApiError(500, `unknown content type '${content}'`);
  }

  /** `PVE::Storage::parse_volname` for the volume kinds the sandbox has. */
  parseVolid(volid: string): ParsedVolid {
    const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/i.exec(volid);
    if (!m) throw fail(`unable to parse volume ID '${volid}'`);
    const [, storage, volname] = m;
    const def = this.mustDef(storage);
    let t = /^(vztmpl|iso|backup|import)\/([^/]+)$/.exec(volname);
    if (t) {
      if (!def.pathBased) throw fail(`unable to parse ${def.type} volume name '${volname}'`);
      // A standard backup name carries its guest: `backup/vzdump-lxc-<vmid>-…`.
      const owner = t[1] === "backup" ? /^vzdump-(?:openvz|lxc|qemu)-(\d+)-/.exec(t[2])?.[1] : undefined;
      return { storage, volname, vtype: t[1] as ParsedVolid["vtype"], ...(owner ? { owner: Number(owner) } : {}) };
    }
    t = /(?:^|\/)(?:vm|base|subvol|basevol)-(\d+)-disk-\d+(?:\.(?:raw|subvol))?$/.exec(volname);
    if (t) return { storage, volname, vtype: "images", owner: Number(t[1]) };
    throw fail(`unable to parse ${def.type} volume name '${volname}'`);
  }

  filePath(node: string, p: ParsedVolid): string {
    const base = this.baseDir(node, p.storage);
    switch (p.vtype) {
      case "vztmpl":
        return path.join(base, "template", "cache", p.volname.slice("vztmpl/".length));
      case "iso":
        return path.join(base, "template", "iso", p.volname.slice("iso/".length));
      case "import":
        return path.join(base, "import", p.volname.slice("import/".length));
      case "backup":
        return path.join(base, "dump", p.volname.slice("backup/".length));
      default:
        return path.join(base, "images", encodeURIComponent(p.volname));
    }
  }

  // ----- image volumes -----

  private volFile(node: string, volid: string): string {
    return this.filePath(node, this.parseVolid(volid));
  }

  readVolume(node: string, volid: string): VolumeData | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.volFile(node, volid), "utf8")) as VolumeData;
    } catch {
      return undefined;
    }
  }

  writeVolume(node: string, volid: string, data: VolumeData): void {
    writeFileAtomic(this.volFile(node, volid), JSON.stringify(data));
  }

  volumeExists(node: string, volid: string): boolean {
    return fs.existsSync(this.volFile(node, volid));
  }

  /** `find_free_diskname` with the per-type naming of §4.1. */
  allocName(node: string, storage: string, vmid: number, prefix: "vm" | "subvol" | "base" | "basevol" = "vm"): string {
    const def = this.mustDef(storage);
    const existing = this.imageNames(node, storage);
    for (let n = 0; ; n++) {
      const names = [`vm-${vmid}-disk-${n}`, `subvol-${vmid}-disk-${n}`, `base-${vmid}-disk-${n}`, `basevol-${vmid}-disk-${n}`];
      const taken = existing.some((v) => names.some((nm) => v.volname === nm || v.volname.endsWith(`/${nm}`) || v.volname.startsWith(`${vmid}/${nm}.`)));
      if (taken) continue;
      const stem = def.type === "zfspool" ? (prefix === "vm" ? "subvol" : prefix) : prefix;
      return def.pathBased ? `${vmid}/${stem}-${vmid}-disk-${n}.raw` : `${stem}-${vmid}-disk-${n}`;
    }
  }

  /** Size 0 on a path-based storage is a subvol directory without a size limit (§4.2). */
  allocVolume(node: string, storage: string, vmid: number, size: number, marker = ""): string {
    let name = this.allocName(node, storage, vmid);
    if (size === 0 && this.mustDef(storage).pathBased) name = name.replace(/\/vm-(\d+-disk-\d+)\.raw$/, "/subvol-$1.subvol");
    const volid = `${storage}:${name}`;
    this.writeVolume(node, volid, { size, marker, ctime: Math.floor(Date.now() / 1000), snapshots: {} });
    return volid;
  }

  /** `subvol` (a directory: zfspool CT volumes, `STORAGE:0` subvolumes) or `raw` (an image to mkfs). */
  volumeFormat(volid: string): "raw" | "subvol" {
    const { volname } = this.parseVolid(volid);
    return /(?:^|\/)(?:subvol|basevol)-\d+-disk-\d+(?:\.subvol)?$/.test(volname) ? "subvol" : "raw";
  }

  /**
   * `volume_size_info` and `path` of an image volume as each plugin reports them: a raw image's
   * virtual size, a zfs subvolume's refquota, 0 for a directory subvolume (dir/btrfs `STORAGE:0`,
   * Plugin.pm file_size_info of a directory); btrfs keeps a raw image as `<name>/disk.raw`
   * inside its own subvolume, LVM volumes live under /dev/<vg>, zfs ones under /<pool>.
   */
  imageAttributes(node: string, volid: string): { path: string; format: "raw" | "subvol"; size: number; used: number } | undefined {
    const data = this.readVolume(node, volid);
    if (!data) return undefined;
    const { storage, volname } = this.parseVolid(volid);
    const def = this.mustDef(storage);
    const format = this.volumeFormat(volid);
    const leaf = volname.replace(/^.*\//, "");
    const dirSubvol = def.pathBased && format === "subvol";
    const size = dirSubvol ? 0 : data.size;
    const used = dirSubvol ? 0 : Math.floor(data.size * 0.1);
    let where: string;
    if (def.type === "lvmthin") where = `/dev/pve/${leaf}`;
    else if (def.type === "zfspool") where = `/rpool/data/${leaf}`;
    else if (def.type === "btrfs" && format === "raw") where = `${storagePath(def)}/images/${volname.replace(/\.raw$/, "")}/disk.raw`;
    else where = `${storagePath(def)}/images/${volname}`;
    return { path: where, format, size, used };
  }

  /** Copy a volume's data to a (possibly other) node/storage under a new owner. */
  copyVolume(srcNode: string, volid: string, dstNode: string, dstStorage: string, vmid: number, keepSnapshots = false): string {
    const data = this.readVolume(srcNode, volid);
    if (!data) throw new Error(`volume '${volid}' does not exist`);
    const target = `${dstStorage}:${this.allocName(dstNode, dstStorage, vmid)}`;
    this.writeVolume(dstNode, target, { ...data, base: undefined, ctime: Math.floor(Date.now() / 1000), snapshots: keepSnapshots ? data.snapshots : {} });
    return target;
  }

  /** Rename a volume in place (template conversion, move to another CT). */
  renameVolume(node: string, volid: string, newVolname: string): string {
    const data = this.readVolume(node, volid);
    if (!data) throw new Error(`volume '${volid}' does not exist`);
    const storage = volid.split(":")[0];
    const target = `${storage}:${newVolname}`;
    this.writeVolume(node, target, data);
    this.freeVolume(node, volid);
    return target;
  }

  /** `volume_is_base_and_used`: a template's base volume that linked clones still use. */
  baseInUse(node: string, volid: string): boolean {
    const { storage, volname } = this.parseVolid(volid);
    if (!/(?:^|\/)(?:base|basevol)-\d+-disk-\d+/.test(volname)) return false;
    // Only names that carry their base (`<base>/<child>`, zfs) keep it referenced; lvmthin and
    // btrfs clones are independent ("LVM-thin allows deletion of still referenced base volumes").
    return this.imageNames(node, storage).some((v) => v.volname.startsWith(`${volname}/`));
  }

  freeVolume(node: string, volid: string): void {
    try {
      fs.rmSync(this.volFile(node, volid), { force: true });
    } catch {
      // already gone
    }
  }

  /**
   * Image volumes on a storage by name and owner, from the directory listing alone: what
   * name allocation and `destroy-unreferenced-disks` need (reading every volume's file for
   * them made each create and delete O(volumes) file reads — bench/pulumi-up at 200 CTs).
   */
  imageNames(node: string, storage: string): Array<{ volname: string; volid: string; owner: number }> {
    const dir = path.join(this.baseDir(node, storage), "images");
    let files: string[] = [];
    try {
      files = fs.readdirSync(dir);
    } catch {
      return [];
    }
    return files
      .filter((f) => !f.includes(".tmp."))
      .map((f) => {
        const volname = decodeURIComponent(f);
        const owner = /(?:vm|base|subvol|basevol)-(\d+)-disk-\d+/.exec(volname.replace(/^.*\//, ""));
        return { volname, volid: `${storage}:${volname}`, owner: owner ? Number(owner[1]) : 0 };
      });
  }

  /** Image volumes on a storage, with their file data. */
  listImages(node: string, storage: string): Array<{ volname: string; volid: string; data: VolumeData; owner: number }> {
    const dir = path.join(this.baseDir(node, storage), "images");
    const out = [];
    for (const v of this.imageNames(node, storage)) {
      try {
        const data = JSON.parse(fs.readFileSync(path.join(dir, encodeURIComponent(v.volname)), "utf8")) as VolumeData;
        out.push({ ...v, data });
      } catch {
        // a half-written file is skipped
      }
    }
    return out;
  }

  /** Files of a content type on a path-based storage. */
  listFiles(node: string, storage: string, content: "vztmpl" | "iso" | "import" | "backup"): Array<{ name: string; size: number; ctime: number }> {
    const dir = this.contentDir(node, storage, content);
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return [];
    }
    const re = content === "vztmpl" ? VZTMPL_EXT : content === "iso" ? ISO_EXT : content === "import" ? IMPORT_EXT : /\.(tar|tgz|tar\.\w+|vma(\.\w+)?)$/;
    return names
      .filter((n) => re.test(n) && !n.includes(".tmp"))
      .map((n) => {
        const st = fs.statSync(path.join(dir, n));
        return { name: n, size: st.size, ctime: Math.floor(st.mtimeMs / 1000) };
      });
  }

  usedBytes(node: string, storage: string): number {
    const def = this.mustDef(storage);
    let used = this.listImages(node, storage).reduce((a, v) => a + v.data.size, 0);
    if (def.pathBased) for (const c of ["vztmpl", "iso", "import", "backup"] as const) used += this.listFiles(node, storage, c).reduce((a, f) => a + f.size, 0);
    return used;
  }

  status(node: string, storage: string): Record<string, unknown> {
    const def = this.mustDef(storage);
    const used = this.usedBytes(node, storage);
    return {
      storage, type: def.type, content: def.content.join(","), enabled: 1, active: 1, shared: def.shared,
      total: def.total, used, avail: def.total - used, used_fraction: used / def.total,
    };
  }
}
