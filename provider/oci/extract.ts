/**
 * Unpacks a flattened rootfs tar (the Flattener's output) into a directory, for runtime
 * bundles. The input is already sanitised, but this still never follows a symlink: files
 * are opened O_NOFOLLOW|O_EXCL and parents must be directories this extraction created.
 *
 * Not handled: xattrs (Node has no xattr API; they are reported as a warning), and device
 * nodes, which the flattener drops by default (they need `mknod` and privileges).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { OciError } from "./errors";
import { normalizePath } from "./flatten";
import { readTar } from "./tar";

const execFileP = promisify(execFile);

export interface ExtractStats {
  entries: number;
  warnings: string[];
}

export async function extractRootfs(input: AsyncIterable<Buffer>, root: string, warn?: (m: string) => void): Promise<ExtractStats> {
  const stats: ExtractStats = { entries: 0, warnings: [] };
  const note = (m: string) => {
    if (stats.warnings.length < 100) stats.warnings.push(m);
    warn?.(m);
  };
  const asRoot = process.getuid?.() === 0;
  await fs.promises.mkdir(root, { recursive: true });
  const dirs = new Set<string>([""]);
  // A later entry for the same directory updates its metadata but keeps its position.
  const dirMeta = new Map<string, { mode: number; uid: number; gid: number; mtime: number }>();
  let xattrWarned = false;
  const abs = (p: string) => (p ? path.join(root, p) : root);
  const ensureParent = async (p: string) => {
    const parts = p.split("/").slice(0, -1);
    let cur = "";
    for (const part of parts) {
      cur = cur ? `${cur}/${part}` : part;
      if (dirs.has(cur)) continue;
      const st = await fs.promises.lstat(abs(cur)).catch(() => undefined);
      if (st && !st.isDirectory()) throw new OciError("BUNDLE", `extract: '${p}' would be written beneath non-directory '${cur}'`);
      if (!st) await fs.promises.mkdir(abs(cur), { mode: 0o755 });
      dirs.add(cur);
    }
  };
  for await (const e of readTar(input)) {
    const h = e.header;
    const p = normalizePath(h.name, "rootfs");
    const target = abs(p);
    stats.entries++;
    if (h.xattrs?.size && !xattrWarned) {
      xattrWarned = true;
      note("extended attributes (e.g. file capabilities) are not applied in runtime bundles");
    }
    await ensureParent(p);
    if (h.type === "dir") {
      const st = await fs.promises.lstat(target).catch(() => undefined);
      if (st && !st.isDirectory()) await fs.promises.rm(target, { force: true });
      if (!st || !st.isDirectory()) await fs.promises.mkdir(target, { mode: 0o700 });
      dirs.add(p);
      dirMeta.set(p, { mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime });
      continue;
    }
    if (dirs.has(p)) throw new OciError("BUNDLE", `extract: '${p}' replaces a directory`);
    await fs.promises.rm(target, { force: true });
    switch (h.type) {
      case "file": {
        const fh = await fs.promises.open(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of e.body()) {
            let off = 0;
            while (off < chunk.length) off += (await fh.write(chunk, off)).bytesWritten;
          }
          if (asRoot) await fh.chown(h.uid, h.gid);
          await fh.chmod(h.mode); // after chown, which clears setuid/setgid
          await fh.utimes(h.mtime, h.mtime);
        } finally {
          await fh.close();
        }
        break;
      }
      case "symlink":
        await fs.promises.symlink(h.linkname, target);
        if (asRoot) await fs.promises.lchown(target, h.uid, h.gid);
        await fs.promises.lutimes(target, h.mtime, h.mtime);
        break;
      case "link": {
        const src = normalizePath(h.linkname, "rootfs hardlink");
        await fs.promises.link(abs(src), target);
        break;
      }
      case "fifo":
      case "char":
      case "block": {
        const args = h.type === "fifo" ? [target, "p"] : [target, h.type === "char" ? "c" : "b", String(h.devmajor), String(h.devminor)];
        try {
          await execFileP("mknod", ["-m", (h.mode & 0o7777).toString(8), ...args]);
          if (asRoot) await fs.promises.lchown(target, h.uid, h.gid);
        } catch (err) {
          note(`could not create ${h.type} '${p}': ${(err as Error).message.split("\n")[0]}`);
        }
        break;
      }
    }
  }
  // Directory metadata last, deepest first, so creating children does not change the
  // parents' mtimes afterwards and read-only directories were writable while filling.
  for (const [p, d] of [...dirMeta].reverse()) {
    const t = abs(p);
    if (asRoot) await fs.promises.lchown(t, d.uid, d.gid);
    await fs.promises.chmod(t, d.mode);
    await fs.promises.utimes(t, d.mtime, d.mtime);
  }
  return stats;
}
