/**
 * Storage endpoints (BEHAVIOR.md §6, §8.5): list/status, content list/get/delete, upload,
 * download-url, aplinfo, oci-registry-pull and query-oci-repo-tags.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import type { ApiRequest, Core } from "../../core";
import { bool, int, route } from "../../core";
import { ApiError, fail, paramError } from "../../http/errors";
import { checkNode } from "../cluster";
import { storagePath, VZTMPL_EXT, ISO_EXT, IMPORT_EXT, normalizeFilename, templateFormat, type ParsedVolid, type StorageDef } from "./storages";
import { downloadFile, fileChecksum } from "./download";
import { aplinfoRecords } from "./appliances";
import { backupItems, isProtected, readNotes, removeAuxiliaries, setProtected, writeNotes } from "./backups";

const EXT: Record<string, RegExp> = { vztmpl: VZTMPL_EXT, iso: ISO_EXT, import: IMPORT_EXT };
/** Uncompressed `.tar` templates exist since pve-storage 9.0.15 (§6.1), so not on 8.4. */
const extOk = (core: Core, content: string, filename: string) =>
  !!EXT[content]?.test(filename) && !(core.version === "8.4" && content === "vztmpl" && /\.tar$/i.test(filename));

/** Where PVE would keep the file, for log lines and messages. */
function shownPath(def: StorageDef, content: string, file: string): string {
  const base = storagePath(def) ?? "/var/lib/vz";
  const sub = content === "vztmpl" ? "template/cache" : content === "iso" ? "template/iso" : content === "backup" ? "dump" : content;
  return `${base}/${sub}/${file}`;
}

/**
 * `file_size_info` of a plain file (Plugin.pm): `qemu-img info` sees any non-image file as
 * `raw` whose virtual size is rounded up to whole 512-byte sectors; `used` is the allocated
 * size (whole 4 KiB blocks). A template's attributes therefore say raw, not tgz.
 */
function fileSizeInfo(bytes: number): { format: string; size: number; used: number } {
  return { format: "raw", size: Math.ceil(bytes / 512) * 512, used: Math.ceil(bytes / 4096) * 4096 };
}

function storageOf(core: Core, req: ApiRequest): StorageDef {
  checkNode(core, req.params.node);
  const def = core.storage.def(req.params.storage);
  if (!def) throw paramError({ storage: "No such storage." });
  return def;
}

/** `check_volume_access` (Storage.pm) for a volume of this storage. */
export function checkVolumeAccess(core: Core, req: ApiRequest, def: StorageDef, pv: ParsedVolid, vmid?: number): void {
  const sid = `/storage/${def.storage}`;
  if (core.auth.isRoot(req.id) || core.auth.has(req.id, sid, "Datastore.Allocate")) return;
  if (pv.vtype === "iso" || pv.vtype === "vztmpl" || pv.vtype === "import") core.auth.checkAny(req.id, sid, ["Datastore.AllocateSpace", "Datastore.Audit"]);
  else if (pv.owner !== undefined && vmid !== undefined && pv.owner === vmid) return;
  else if (pv.vtype === "backup" && pv.owner !== undefined) {
    core.auth.check(req.id, sid, ["Datastore.AllocateSpace"]);
    core.auth.check(req.id, `/vms/${pv.owner}`, ["VM.Backup"]);
  } else throw new ApiError(403, "Permission check failed");
}

function skopeoPath(): string | undefined {
  const r = spawnSync("sh", ["-c", "command -v skopeo"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() || undefined : undefined;
}

function isLoopbackRef(ref: string): boolean {
  return /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?\//.test(ref);
}

export function registerStorage(core: Core): void {
  route(core, "GET", "/nodes/{node}/storage", (req) => {
    checkNode(core, req.params.node);
    const p = req.params;
    return core.storage.defs.filter((s) => core.auth.has(req.id, `/storage/${s.storage}`, "Datastore.Audit") || core.auth.has(req.id, `/storage/${s.storage}`, "Datastore.AllocateSpace"))
      .filter((s) => !p.content || splitContent(p.content).every((c) => s.content.includes(c)))
      .filter((s) => !p.storage || s.storage === p.storage)
      .filter((s) => !p.target || (s.shared && core.nodes.includes(p.target)))
      .map((s) => {
        const st = core.storage.status(p.node, s.storage);
        if (bool(p.format)) {
          const fmt = s.pathBased ? { supported: ["raw", "qcow2", "vmdk", "subvol"], default: "raw" } : { supported: [s.type === "zfspool" ? "subvol" : "raw"], default: "raw" };
          return { ...st, formats: fmt, select_existing: 0 };
        }
        return st;
      });
  });

  route(core, "GET", "/nodes/{node}/storage/{storage}", (req) => {
    storageOf(core, req);
    return ["content", "download-url", "file-restore", "import-metadata", "prunebackups", "rrd", "rrddata", "status", "upload"].map((subdir) => ({ subdir }));
  });

  route(core, "GET", "/nodes/{node}/storage/{storage}/status", (req) => {
    const def = storageOf(core, req);
    core.auth.checkAny(req.id, `/storage/${def.storage}`, ["Datastore.Audit", "Datastore.AllocateSpace"]);
    return core.storage.status(req.params.node, def.storage);
  });

  route(core, "GET", "/nodes/{node}/storage/{storage}/content", (req) => {
    const def = storageOf(core, req);
    core.auth.checkAny(req.id, `/storage/${def.storage}`, ["Datastore.Audit", "Datastore.AllocateSpace"]);
    const node = req.params.node;
    const want = req.params.content as string | undefined;
    const vmid = int(req.params.vmid);
    const items: Array<Record<string, unknown>> = [];
    for (const c of def.content) {
      if (want && want !== c) continue;
      if (c === "backup") {
        items.push(...backupItems(core, node, def.storage, vmid));
        continue;
      }
      if (c === "vztmpl" || c === "iso" || c === "import") {
        if (vmid !== undefined) continue;
        for (const f of core.storage.listFiles(node, def.storage, c)) {
          const volid = `${def.storage}:${c}/${f.name}`;
          const format = c === "vztmpl" ? templateFormat(f.name) : c === "iso" ? "iso" : (path.extname(f.name).slice(1) || "raw");
          items.push({ volid, format, size: f.size, ctime: f.ctime, content: c });
        }
      }
      if (c === "rootdir") {
        for (const v of core.storage.listImages(node, def.storage)) {
          if (vmid !== undefined && v.owner !== vmid) continue;
          if (want === "images") continue;
          const { format, size, used } = core.storage.imageAttributes(node, v.volid)!;
          items.push({ volid: v.volid, format, size, used, vmid: v.owner, ctime: v.data.ctime, content: "rootdir", ...(v.data.base ? { parent: v.data.base } : {}) });
        }
      }
    }
    return items.sort((a, b) => String(a.volid).toLowerCase().localeCompare(String(b.volid).toLowerCase()));
  });

  const volidOf = (core: Core, req: ApiRequest): string => {
    const v = String(req.params.volume);
    const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/i.exec(v);
    if (m && !/^(vztmpl|iso|backup|import)\//.test(v)) {
      if (m[1] !== req.params.storage) throw paramError({ volume: `storage ID mismatch (${m[1]} != ${req.params.storage})\n` });
      return v;
    }
    return `${req.params.storage}:${v}`;
  };

  route(core, "GET", "/nodes/{node}/storage/{storage}/content/{volume}", (req) => {
    const def = storageOf(core, req);
    core.auth.checkAny(req.id, `/storage/${def.storage}`, ["Datastore.Audit", "Datastore.AllocateSpace"]);
    const volid = volidOf(core, req);
    const pv = core.storage.parseVolid(volid);
    if (pv.vtype === "images") {
      const attrs = core.storage.imageAttributes(req.params.node, volid);
      if (!attrs) throw fail(`no such volume '${volid}'`);
      return attrs;
    }
    const f = core.storage.filePath(req.params.node, pv);
    if (!fs.existsSync(f)) throw fail(`no such volume '${volid}'`);
    const attrs = pv.vtype === "backup" ? { notes: readNotes(f), protected: isProtected(f) ? 1 : 0 } : {};
    return { path: shownPath(def, pv.vtype, path.basename(f)), ...fileSizeInfo(fs.statSync(f).size), ...attrs };
  });

  // DirPlugin `update_volume_attribute`: notes and protection exist for backups only.
  route(core, "PUT", "/nodes/{node}/storage/{storage}/content/{volume}", (req) => {
    const def = storageOf(core, req);
    const volid = volidOf(core, req);
    const pv = core.storage.parseVolid(volid);
    checkVolumeAccess(core, req, def, pv);
    const f = core.storage.filePath(req.params.node, pv);
    if (req.params.notes !== undefined) {
      if (pv.vtype !== "backup") throw fail("only backups can have notes");
      writeNotes(f, String(req.params.notes));
    }
    if (req.params.protected !== undefined) {
      if (pv.vtype !== "backup") throw fail("only backups support attribute 'protected'");
      setProtected(f, bool(req.params.protected));
    }
    return null;
  });

  route(core, "DELETE", "/nodes/{node}/storage/{storage}/content/{volume}", async (req) => {
    const def = storageOf(core, req);
    const node = req.params.node;
    const volid = volidOf(core, req);
    const pv = core.storage.parseVolid(volid);
    // A guest's backup needs only Datastore.AllocateSpace plus VM.Backup on the guest.
    if (pv.vtype === "backup" && pv.owner !== undefined) {
      core.auth.check(req.id, `/storage/${def.storage}`, ["Datastore.AllocateSpace"]);
      core.auth.check(req.id, `/vms/${pv.owner}`, ["VM.Backup"]);
    } else core.auth.check(req.id, `/storage/${def.storage}`, ["Datastore.Allocate"]);
    const upid = core.tasks.start({
      node, type: "imgdel", id: pv.owner !== undefined ? `${pv.owner}@${def.storage}` : def.storage, who: req.id,
      worker: async (ctx) => {
        await ctx.work();
        // A file that is already gone: the directory-like plugins' `free_image` warns and
        // carries on (task OK, as recorded from PVE 8.4); block storages fail to remove it.
        if (pv.vtype === "images") {
          if (core.storage.volumeExists(node, volid)) core.storage.freeVolume(node, volid);
          else if (!def.pathBased) throw new Error(`volume '${volid}' does not exist`);
          else if (!pv.volname.endsWith(".subvol")) ctx.log(`disk image '${storagePath(def) ?? "/var/lib/vz"}/images/${pv.volname}' does not exist`);
        } else {
          const f = core.storage.filePath(node, pv);
          // Plugin.pm free_image refuses a protected volume (the backup's `.protected` file).
          if (pv.vtype === "backup" && isProtected(f)) throw new Error(`cannot remove protected volume '${pv.volname}' on '${def.storage}'`);
          if (pv.vtype === "backup") removeAuxiliaries(f);
          if (fs.existsSync(f)) fs.rmSync(f);
          else ctx.log(`disk image '${shownPath(def, pv.vtype, path.basename(f))}' does not exist`);
        }
        ctx.log(`Removed volume '${volid}'`);
      },
    });
    const delay = int(req.params.delay);
    if (delay) {
      // §3.2: null when done OK within the delay, the task's error when it failed, else the UPID.
      if (await core.tasks.waitFor(upid, delay * 1000)) {
        const t = core.tasks.find(upid)?.finished;
        if (t && (t.status === "OK" || /^WARNINGS: \d+$/.test(t.status))) return null;
        if (t) throw fail(t.status);
      }
    }
    return upid;
  });

  // ---- upload (§6.2) ----
  route(core, "POST", "/nodes/{node}/storage/{storage}/upload", (req) => {
    const def = storageOf(core, req);
    const node = req.params.node;
    core.auth.check(req.id, `/storage/${def.storage}`, ["Datastore.AllocateTemplate"]);
    const content = String(req.params.content);
    const filename = normalizeFilename(String(req.params.filename));
    if (!extOk(core, content, filename)) throw paramError({ filename: "wrong file extension" });
    if (!def.pathBased) throw fail(`can't upload to storage type '${def.type}'`);
    if (!def.content.includes(content)) throw fail(`storage '${def.storage}' does not support '${content}' content`);
    const tmp = req.uploadFile ?? "";
    if (!tmp || !fs.existsSync(tmp)) throw fail("upload failed");
    // The request pipeline deletes its temp file when the handler returns; the task owns this one.
    const owned = `${tmp}.task`;
    fs.renameSync(tmp, owned);
    const dest = path.join(core.storage.contentDir(node, def.storage, content), filename);
    const checksum = req.params.checksum as string | undefined;
    const algorithm = req.params["checksum-algorithm"] as string | undefined;
    // Log lines name the file where PVE keeps it (`/var/tmp/pveupload-<hex>`), not the data dir.
    const shownTmp = String(req.params.tmpfilename ?? `/var/tmp/${path.basename(tmp)}`);
    const target = shownPath(def, content, filename);
    return core.tasks.start({
      node, type: "imgcopy", id: "", who: req.id,
      worker: async (ctx) => {
        try {
          ctx.log(`starting file import from: ${shownTmp}`);
          if (checksum && algorithm) {
            ctx.log("calculating checksum...");
            const got = await fileChecksum(owned, algorithm);
            if (got !== checksum.toLowerCase()) throw new Error(`checksum mismatch: got '${got}' != expect '${checksum}'`);
            ctx.log("checksum verified");
          }
          ctx.log(`target node: ${node}`);
          ctx.log(`target file: ${target}`);
          ctx.log(`file size is: ${fs.statSync(owned).size}`);
          // Storage.pm upload: a local target is copied with cp (a remote one with scp).
          ctx.log(`command: cp -- ${shownTmp} ${target}`);
          await ctx.work();
          fs.mkdirSync(path.dirname(dest), { recursive: true });
          fs.copyFileSync(owned, dest);
          ctx.log("finished file import successfully");
        } finally {
          fs.rmSync(owned, { force: true });
        }
      },
    });
  });

  // ---- download-url (§6.3) ----
  route(core, "POST", "/nodes/{node}/storage/{storage}/download-url", (req) => {
    const def = storageOf(core, req);
    const node = req.params.node;
    const p = req.params;
    core.auth.check(req.id, `/storage/${def.storage}`, ["Datastore.AllocateTemplate"]);
    const sysOk = core.auth.has(req.id, "/", "Sys.Audit") && core.auth.has(req.id, "/", "Sys.Modify");
    if (!sysOk && !core.auth.has(req.id, `/nodes/${node}`, "Sys.AccessNetwork")) throw new ApiError(403, "Permission check failed");
    const content = String(p.content);
    if (!def.pathBased) throw fail(`can't upload to storage type '${def.type}', not a file based storage!`);
    if (!def.content.includes(content)) throw fail(`storage '${def.storage}' is not configured for content-type '${content}'`);
    const filename = normalizeFilename(String(p.filename));
    if (!extOk(core, content, filename)) throw paramError({ filename: "wrong file extension" });
    const dest = path.join(core.storage.contentDir(node, def.storage, content), filename);
    return core.tasks.start({
      node, type: "download", id: filename, who: req.id,
      worker: async (ctx) => {
        await ctx.work();
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        await downloadFile(ctx, {
          url: String(p.url), dest, shownDest: shownPath(def, content, filename), checksum: p.checksum, algorithm: p["checksum-algorithm"],
          verify: p["verify-certificates"] === undefined ? true : bool(p["verify-certificates"]),
        });
      },
    });
  });

  // ---- aplinfo (§6.4) ----
  route(core, "GET", "/nodes/{node}/aplinfo", (req) => {
    checkNode(core, req.params.node);
    return aplinfoRecords(core);
  });

  route(core, "POST", "/nodes/{node}/aplinfo", (req) => {
    checkNode(core, req.params.node);
    const node = req.params.node;
    const rec = aplinfoRecords(core).find((r) => r.template === req.params.template);
    if (!rec) throw paramError({ template: "no such template" });
    const def = core.storage.mustDef(req.params.storage);
    core.auth.check(req.id, `/storage/${def.storage}`, ["Datastore.AllocateTemplate"]);
    if (!def.content.includes("vztmpl")) throw fail(`storage '${def.storage}' does not support templates`);
    const dest = path.join(core.storage.templateDir(node, def.storage), rec.template);
    return core.tasks.start({
      node, type: "download", id: rec.template, who: req.id,
      worker: async (ctx) => {
        await ctx.work();
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        await downloadFile(ctx, {
          url: rec.location, dest, shownDest: shownPath(def, "vztmpl", rec.template), checksum: rec.sha512sum, algorithm: "sha512", verify: true, ca: core.caCertPem,
        });
      },
    });
  });

  // ---- OCI (§6.6, 9.1 only: absent from the 8.4 schema, so 8.4 answers 501) ----
  route(core, "POST", "/nodes/{node}/storage/{storage}/oci-registry-pull", (req) => {
    const def = storageOf(core, req);
    const node = req.params.node;
    core.auth.check(req.id, `/storage/${def.storage}`, ["Datastore.AllocateTemplate"]);
    core.auth.check(req.id, `/nodes/${node}`, ["Sys.AccessNetwork"]);
    const skopeo = skopeoPath();
    if (!skopeo) throw fail("Install 'skopeo' to pull OCI images from registries.");
    if (!def.pathBased) throw fail(`can't upload to storage type '${def.type}', not a file based storage!`);
    if (!def.content.includes("vztmpl")) throw fail(`storage '${def.storage}' is not configured for content-type 'vztmpl'`);
    const reference = String(req.params.reference);
    const filename = `${normalizeFilename(String(req.params.filename ?? reference))}.tar`;
    const dest = path.join(core.storage.templateDir(node, def.storage), filename);
    if (fs.existsSync(dest)) throw fail(`refusing to override existing file '${filename}'`);
    return core.tasks.start({
      node, type: "ociregistrypull", id: filename, who: req.id,
      worker: async (ctx) => {
        await ctx.work();
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        const tmp = `${dest}.tmp.${process.pid}`;
        const args = ["copy", ...(isLoopbackRef(reference) ? ["--src-tls-verify=false"] : []), `docker://${reference}`, `oci-archive:${tmp}`];
        ctx.log(`/usr/bin/skopeo ${args.join(" ")}`);
        try {
          await runTool(skopeo, args, (l) => ctx.log(l));
          fs.renameSync(tmp, dest);
        } finally {
          fs.rmSync(tmp, { force: true });
        }
      },
    });
  });

  route(core, "GET", "/nodes/{node}/query-oci-repo-tags", async (req) => {
    checkNode(core, req.params.node);
    core.auth.check(req.id, `/nodes/${req.params.node}`, ["Sys.AccessNetwork"]);
    const skopeo = skopeoPath();
    if (!skopeo) throw fail("Install 'skopeo' to list tags from OCI registries.");
    const ref = String(req.params.reference);
    const lines: string[] = [];
    await runTool(skopeo, ["list-tags", ...(isLoopbackRef(ref) ? ["--tls-verify=false"] : []), `docker://${ref}`], (l) => lines.push(l), true).catch((e) => {
      throw fail(String((e as Error).message));
    });
    return (JSON.parse(lines.join("\n")).Tags ?? []) as string[];
  });
}

function splitContent(v: string): string[] {
  return v.split(/[,;\s]+/).filter(Boolean);
}

function runTool(cmd: string, args: string[], onLine: (l: string) => void, stdoutOnly = false): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    let buf = "";
    child.stdout.on("data", (c: Buffer) => {
      buf += c.toString();
      const parts = buf.split("\n");
      buf = parts.pop() ?? "";
      parts.forEach(onLine);
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
      if (!stdoutOnly) for (const l of c.toString().split("\n")) if (l.trim()) onLine(l);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (buf) onLine(buf);
      if (code === 0) resolve();
      else reject(new Error(`command '${cmd} ${args.join(" ")}' failed: exit code ${code}${err ? `: ${err.trim().split("\n").pop()}` : ""}`));
    });
  });
}

