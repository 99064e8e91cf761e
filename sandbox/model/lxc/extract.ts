/**
 * The task-log lines a CT create writes while it prepares the root filesystem, as a genuine
 * PVE 8.4 node writes them (recorded in ../shared/pve-api/transcripts):
 * - `mkfs.ext4` on every new raw image (pve-container `format_disk`): mke2fs's summary lines;
 * - GNU tar's `--totals` after `extracting archive '…'` (`restore_tar_archive`);
 * - `detect_architecture` (Create.pm): the ELF machine of `/bin/sh` inside the template.
 */
import * as crypto from "node:crypto";
import { readTar } from "../../tarball";
import { decompress } from "./ostype";

/** mke2fs.conf: `floppy` below 3 MiB, `small` below 512 MiB, else the 4k default. */
function ext4Geometry(bytes: number): { blockSize: number; inodeRatio: number } {
  if (bytes < 3 * 1024 ** 2) return { blockSize: 1024, inodeRatio: 8192 };
  if (bytes < 512 * 1024 ** 2) return { blockSize: 1024, inodeRatio: 4096 };
  return { blockSize: 4096, inodeRatio: 16384 };
}

/** sparse_super: backups in group 1 and in the powers of 3, 5 and 7. */
function hasSuperBackup(group: number): boolean {
  if (group <= 1) return group === 1;
  for (const base of [3, 5, 7]) {
    let n = base;
    while (n < group) n *= base;
    if (n === group) return true;
  }
  return false;
}

/** mke2fs's own summary for an image of `bytes` (the lines PVE's task log shows). */
export function mkfsLines(bytes: number, uuid: string = crypto.randomUUID()): string[] {
  const { blockSize, inodeRatio } = ext4Geometry(bytes);
  const blocks = Math.floor(bytes / blockSize);
  const perGroup = 8 * blockSize;
  const groups = Math.ceil(blocks / perGroup);
  const inodesPerBlock = blockSize / 256;
  const perGroupInodes = Math.ceil(Math.ceil(bytes / inodeRatio) / groups / inodesPerBlock) * inodesPerBlock;
  const lines = [`Creating filesystem with ${blocks} ${blockSize / 1024}k blocks and ${perGroupInodes * groups} inodes`, `Filesystem UUID: ${uuid}`];
  if (groups < 2) return lines;
  // show_stats(): numbers wrapped at 72 columns, each wrapped line starting with a tab.
  let text = "Superblock backups stored on blocks: ";
  let colLeft = 0;
  const first = blockSize === 1024 ? 1 : 0;
  for (let g = 1; g < groups; g++) {
    if (!hasSuperBackup(g)) continue;
    const block = g * perGroup + first;
    if (text.endsWith(": ") === false) text += ", ";
    const need = String(block).length + 1;
    if (need > colLeft) {
      text += "\n\t";
      colLeft = 72;
    }
    colLeft -= need;
    text += String(block);
  }
  return [...lines, ...text.split("\n")];
}

/** GNU tar's human_readable (base 1024, SI suffix, rounded up, one decimal below 10). */
function human(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${n}B`;
  const shown = v < 10 ? Math.ceil(v * 10) / 10 : Math.ceil(v);
  return `${shown}${units[u]}`;
}

/** `Total bytes read: N (2.1MiB, 25MiB/s)` for a tar stream of `bytes` read in `ms`. */
export function tarTotalsLine(bytes: number, ms: number): string {
  const rate = human(Math.floor((bytes * 1000) / Math.max(ms, 1)));
  return `Total bytes read: ${bytes} (${human(bytes)}, ${rate}/s)`;
}

const ELF_MACHINES: Record<number, string> = { 0x03: "i386", 0x3e: "amd64", 0x28: "armhf", 0xb7: "arm64" };

/** Resolve `/bin/sh` inside the archive like a chroot would (symlinks followed, max 16 hops). */
function resolveInArchive(links: Map<string, string>, start: string): string {
  let name = start;
  for (let i = 0; i < 16 && links.has(name); i++) {
    const target = links.get(name)!;
    const dir = name.includes("/") ? name.slice(0, name.lastIndexOf("/")) : "";
    const joined = target.startsWith("/") ? target : `${dir}/${target}`;
    const parts: string[] = [];
    for (const p of joined.split("/")) {
      if (!p || p === ".") continue;
      if (p === "..") parts.pop();
      else parts.push(p);
    }
    name = parts.join("/");
  }
  return name;
}

export interface TemplateExtraction {
  /** Size of the tar stream (what `tar --totals` reports). */
  bytes: number;
  /** The detected architecture, or PVE's error text when detection fails. */
  arch?: string;
  archError?: string;
}

/** What extracting the template shows; undefined when the archive cannot be read. */
export function inspectTemplate(file: string): TemplateExtraction | undefined {
  const tar = decompress(file);
  if (!tar) return undefined;
  try {
    const entries = readTar(tar);
    const links = new Map(entries.filter((e) => e.type === "symlink").map((e) => [e.name, e.link ?? ""]));
    const sh = resolveInArchive(links, "bin/sh");
    const body = readTar(tar, (n) => n === sh).find((e) => e.name === sh && e.data)?.data;
    if (!body) return { bytes: tar.length, archError: "open '/bin/sh' failed: No such file or directory" };
    if (body.length < 20 || body.subarray(0, 4).toString("latin1") !== "\x7fELF") return { bytes: tar.length, archError: "'/bin/sh' does not resolve to an ELF!" };
    // Create.pm: unpack("A4CA12n") reads bytes 17-18 big-endian — on a little-endian ELF
    // that is e_type's high byte (0) and e_machine's low byte.
    const machine = body.readUInt16BE(17);
    const arch = ELF_MACHINES[machine];
    return arch ? { bytes: tar.length, arch } : { bytes: tar.length, archError: `'/bin/sh' has unknown ELF machine '${machine}'!` };
  } catch {
    return undefined;
  }
}

/** The lines `detect_architecture` prints. */
export function archLines(x: TemplateExtraction): string[] {
  if (x.arch) return [`Detected container architecture: ${x.arch}`];
  return [`Architecture detection failed: ${x.archError}`, "", "Falling back to amd64.", "Use `pct set VMID --arch ARCH` to change."];
}

/** ext2fs_default_journal_size: the journal mke2fs puts on a filesystem of `blocks`. */
function journalBlocks(blocks: number): number {
  const steps: Array<[number, number]> = [[32768, 1024], [256 * 1024, 4096], [512 * 1024, 8192], [4096 * 1024, 16384], [8192 * 1024, 32768], [16384 * 1024, 65536], [32768 * 1024, 131072]];
  if (blocks < 2048) return 0;
  for (const [below, size] of steps) if (blocks < below) return size;
  return 262144;
}

/**
 * What `df` (statfs) reports as the size of a fresh ext4 made on `bytes`: the blocks minus
 * ext4's metadata overhead (journal, inode tables, bitmaps, superblock and descriptor
 * backups with the reserved GDT blocks that let it grow 1024-fold). A running CT's
 * `maxdisk` is this figure (vmstatus reads df of the mounted rootfs); 1 GiB → 1020702720.
 */
export function ext4StatfsBytes(bytes: number): number {
  const { blockSize, inodeRatio } = ext4Geometry(bytes);
  const blocks = Math.floor(bytes / blockSize);
  const perGroup = 8 * blockSize;
  const groups = Math.ceil(blocks / perGroup);
  const inodesPerBlock = blockSize / 256;
  const itableBlocks = Math.ceil(Math.ceil(bytes / inodeRatio) / groups / inodesPerBlock);
  const descPerBlock = blockSize / 64;
  const descBlocks = Math.ceil(groups / descPerBlock);
  const firstData = blockSize === 1024 ? 1 : 0;
  const maxBlocks = blocks < Math.floor(0xffffffff / 1024) ? blocks * 1024 : 0xffffffff;
  const reservedGdt = Math.min(Math.ceil(Math.ceil((maxBlocks - firstData) / perGroup) / descPerBlock) - descBlocks, blockSize / 4);
  let overhead = journalBlocks(blocks) + firstData;
  for (let g = 0; g < groups; g++) overhead += (g === 0 || hasSuperBackup(g) ? 1 + descBlocks + reservedGdt : 0) + 2 + itableBlocks;
  return (blocks - overhead) * blockSize;
}

/**
 * What the recorded 8.4 node printed at the end of every volume copy (full clone, move to a
 * storage) while copying the data: four `Cannot stat file /proc/1/fd/N` lines. The recording
 * marks them as the host's permission noise on move_volume; a node like it prints them.
 */
export function copyNoiseLines(version: string): string[] {
  return version === "8.4" ? [248, 249, 250, 251].map((fd) => `Cannot stat file /proc/1/fd/${fd}: Permission denied`) : [];
}

/**
 * What resize_vm's filesystem step prints for a raw image grown to `bytes` (a subvolume needs
 * none): online through the CT's loop device (`unshare -m … resize2fs /dev/loopN`, whose
 * `old_desc_blocks` line the 8.4 recording shows), offline `e2fsck -f -y` then `resize2fs`.
 */
export function resize2fsLines(bytes: number, device: string, online: boolean): string[] {
  const { blockSize } = ext4Geometry(bytes);
  const blocks = Math.floor(bytes / blockSize);
  const descBlocks = (b: number) => Math.ceil(Math.ceil(b / (8 * blockSize)) / (blockSize / 64));
  const k = `${blockSize / 1024}k`;
  const done = `The filesystem on ${device} is now ${blocks} (${k}) blocks long.`;
  if (online) {
    return ["resize2fs 1.47.0 (5-Feb-2023)", `Filesystem at ${device} is mounted on /tmp; on-line resizing required`, `old_desc_blocks = ${descBlocks(blocks)}, new_desc_blocks = ${descBlocks(blocks)}`, done, ""];
  }
  return [
    "e2fsck 1.47.0 (5-Feb-2023)", "Pass 1: Checking inodes, blocks, and sizes", "Pass 2: Checking directory structure", "Pass 3: Checking directory connectivity",
    "Pass 4: Checking reference counts", "Pass 5: Checking group summary information",
    "resize2fs 1.47.0 (5-Feb-2023)", `Resizing the filesystem on ${device} to ${blocks} (${k}) blocks.`, done, "",
  ];
}
