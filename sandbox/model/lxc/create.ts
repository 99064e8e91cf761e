/**
 * POST /nodes/{node}/lxc (BEHAVIOR.md §4.2): synchronous checks with PVE's texts, then a
 * `vzcreate` worker that allocates disks, "extracts" the template (detecting OCI archives,
 * §7), autodetects ostype/arch, writes the final config and joins the pool; `start=1`
 * forks a separate `vzstart` task.
 */
import * as fs from "node:fs";
import type { ApiRequest, Core } from "../../core";
import { bool } from "../../core";
import { ApiError, fail, permError } from "../../http/errors";
import { printConf, emptyConf, setEnv, parseKey, printKey } from "./config";
import { allocateIfNew, checkKeyPerms, normaliseValue } from "./apply";
import { ctOnNode } from "./status";
import { startCt } from "./lifecycle";
import { checkNode } from "../cluster";
import { archLines, inspectTemplate, mkfsLines, tarTotalsLine } from "./extract";
import { isOciArchive, readOciImage, shellJoin } from "../storage/ociArchive";
import { addHaResource } from "./ha";
import { restoreCt } from "./restore";
import { commitNewCt, discardNewCt } from "./newct";
import { archFromFilename, detectOstypeOfTemplate, ostypeFromFilename, ostypeFromId } from "./ostype";

/** Create parameters that are not config keys. */
const NON_CONFIG = new Set([
  "node", "vmid", "ostemplate", "password", "ssh-public-keys", "start", "pool", "storage", "restore", "force", "unique",
  "ignore-unpack-errors", "bwlimit", "ha-managed",
]);

const SSH_KEY_RE = /^(?:(?:[^\s"]+|"[^"]*")\s+)?(ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d+|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/]+=*(\s.*)?$/;

/**
 * Time from the early vmid check to the config write (see createCt). 100 ms makes 10
 * parallel nextid+create clients average 2.4 creates and 4.1 nextid per container, against
 * 2.5 and 3.9 measured on a real PVE 8.4 node (issue 19).
 */
const CREATE_CHECKS_MS = 100;

export function registerCreate(core: Core): void {
  // restore=1 is its own flow (restore.ts): the backup, not a template, is the source.
  core.routes.set("POST /nodes/{node}/lxc", (req) => (bool(req.params.restore) ? restoreCt(core, req) : createCt(core, req)));
}

async function createCt(core: Core, req: ApiRequest): Promise<string> {
  const p = req.params;
  const node = p.node as string;
  checkNode(core, node);
  const vmid = Number(p.vmid);
  const existing = core.store.state.cts[String(vmid)];
  if (existing) throw fail(`CT ${vmid} already exists on node '${existing.node}'`);
  if (p.pool && !core.store.state.pools[p.pool]) throw new ApiError(403, `Permission check failed (pool '${p.pool}' does not exist)`);
  if (bool(p["ha-managed"]) && !core.auth.isRoot(req.id)) core.auth.check(req.id, "/", ["Sys.Console"]);

  // ---- permissions (§2.4) ----
  const auth = core.auth;
  // VM.Allocate on the CT or on the pool; refused without naming a path (`raise_perm_exc()`).
  if (!auth.has(req.id, `/vms/${vmid}`, "VM.Allocate") && !(p.pool && auth.has(req.id, `/pool/${p.pool}`, "VM.Allocate"))) throw permError();
  if (p.unprivileged === "0") auth.check(req.id, "/", ["Sys.Modify"]);

  const storage = (p.storage as string | undefined) ?? "local";
  const set: Record<string, string> = {};
  for (const [k, v] of Object.entries(p)) if (!NON_CONFIG.has(k) && v !== undefined) set[k] = String(v);
  const hasMp = Object.keys(set).some((k) => /^mp\d+$/.test(k));
  if (hasMp && !set.rootfs) throw fail("mount points configured, but 'rootfs' not set - aborting");
  if (!set.rootfs) set.rootfs = `${storage}:4`;
  else if (/^\d+(\.\d+)?$/.test(parseKey("rootfs", set.rootfs, core.version).volume ?? "")) {
    const d = parseKey("rootfs", set.rootfs, core.version);
    d.volume = `${storage}:${d.volume}`;
    set.rootfs = printKey("rootfs", d, core.version);
  }
  checkKeyPerms(core, req.id, vmid, Object.keys(set).filter((k) => k !== "unprivileged" && k !== "lock"), set);

  // ---- ostemplate (§4.2): volid of type vztmpl; existence is checked in the task ----
  const tmpl = String(p.ostemplate);
  let tmplFile: string;
  if (tmpl.startsWith("/")) {
    if (!auth.isRoot(req.id)) throw fail("Only root can pass arbitrary filesystem paths. at /usr/share/perl5/PVE/Storage.pm line 571.");
    tmplFile = tmpl;
  } else {
    // Before pve-storage 9.0.15 (PVE 8.4) a plain `.tar` is no template name: parse_volname dies.
    const tarName = /^[^:]+:(vztmpl\/[^/]+\.tar)$/i.exec(tmpl);
    if (core.version === "8.4" && tarName) throw fail(`unable to parse directory volume name '${tarName[1]}'`);
    const pv = core.storage.parseVolid(tmpl);
    if (!bool(p.restore) && pv.vtype !== "vztmpl") throw fail(`unable to use volume ${tmpl} - content type needs to be 'vztmpl'`);
    if (!auth.has(req.id, `/storage/${pv.storage}`, "Datastore.Allocate")) auth.checkAny(req.id, `/storage/${pv.storage}`, ["Datastore.AllocateSpace", "Datastore.Audit"]);
    tmplFile = core.storage.filePath(node, pv);
  }

  // ---- target storages and values ----
  for (const k of Object.keys(set)) {
    if (k !== "rootfs" && !/^mp\d+$/.test(k)) continue;
    const vol = parseKey(k, set[k], core.version).volume ?? "";
    const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):/i.exec(vol);
    if (!m) continue;
    const def = core.storage.def(m[1]);
    if (!def) throw fail(`storage '${m[1]}' does not exist`);
    if (!def.content.includes("rootdir")) throw new ApiError(400, "Parameter verification failed.", { storage: `storage '${m[1]}' does not support container directories` });
    auth.check(req.id, `/storage/${m[1]}`, ["Datastore.AllocateSpace"]);
  }
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(set)) values[k] = normaliseValue(core, k, v, vmid);
  if (p["ssh-public-keys"]) {
    for (const line of String(p["ssh-public-keys"]).split("\n")) {
      if (line.trim() && !line.trim().startsWith("#") && !SSH_KEY_RE.test(line.trim())) throw fail("SSH public key validation error");
    }
  }

  // A real node spends this long between its early vmid check and create_and_lock_config
  // (pvedaemon hand-off, storage activation, checks): parallel creates of one nextid answer
  // collide in that window as they do on PVE (issue 19), the later ones with the lock's text.
  await new Promise((r) => setTimeout(r, CREATE_CHECKS_MS));
  const taken = core.store.state.cts[String(vmid)];
  if (taken) throw fail(`unable to create CT ${vmid} - CT ${vmid} already exists on node '${taken.node}'`);

  // create_and_lock_config: the CT exists from here on with only `lock: create`.
  const lockConf = emptyConf();
  lockConf.keys.lock = "create";
  core.store.state.cts[String(vmid)] = { node, conf: printConf(lockConf) };
  core.save();

  return core.tasks.start({
    node, type: "vzcreate", id: String(vmid), who: req.id,
    worker: async (ctx) => {
      const allocated: string[] = [];
      try {
        await ctx.work();
        if (!fs.existsSync(tmplFile)) throw new Error(`can't find file '${tmpl}'`);
        for (const k of Object.keys(values)) {
          if (k === "rootfs" || /^mp\d+$/.test(k)) {
            values[k] = allocateIfNew(core, node, vmid, k, values[k], storage, allocated);
          }
        }
        // format_disk: mkfs.ext4 on every new raw image (subvolumes need none).
        for (const v of allocated) if (core.storage.volumeFormat(v) === "raw") for (const l of mkfsLines(core.storage.readVolume(node, v)?.size ?? 0)) ctx.log(l);
        const conf = emptyConf();
        const oci = core.version === "9.1" && (await isOciArchive(tmplFile));
        let ostype: string | undefined = values.ostype;
        if (oci) {
          ctx.log("Detected OCI archive");
          const img = await readOciImage(tmplFile);
          const ep = img.entrypoint ?? [];
          // The image's values replace what the request set; only exactly `/sbin/init` is init.
          if (ep.length && ep[0] !== "/sbin/init") {
            values.entrypoint = shellJoin(ep);
            values.cmode = "console";
            for (const k of Object.keys(values).filter((x) => /^net\d+$/.test(x))) {
              const net = parseKey(k, values[k], core.version);
              if (net["host-managed"] === undefined) {
                net["host-managed"] = "1";
                values[k] = printKey(k, net, core.version);
                ctx.log(`Auto-Enabling host-managed network for network device ${k}.`);
              }
            }
          }
          if (img.env.length) values.env = img.env.join("\0");
          if (img.workingDir) conf.lxc.push(["lxc.init.cwd", img.workingDir]);
          conf.lxc.push(["lxc.signal.halt", img.stopSignal ?? "SIGTERM"]);
          if (!ostype) {
            if (img.osReleaseId === undefined) {
              ctx.warn("/etc/os-release file not found and autodetection failed, falling back to 'unmanaged'");
              ostype = "unmanaged";
            } else {
              ostype = ostypeFromId(img.osReleaseId, img.osReleaseIdLike);
              if (!ostype) throw new Error("unable to detect OS distribution");
            }
          }
        } else {
          ctx.log(`extracting archive '${tmpl.startsWith("/") ? tmpl : `/var/lib/vz/template/cache/${tmpl.replace(/^.*\//, "")}`}'`);
          const x = inspectTemplate(tmplFile) ?? { bytes: fs.statSync(tmplFile).size, archError: "open '/bin/sh' failed: No such file or directory" };
          ctx.log(tarTotalsLine(x.bytes, 80));
          // detect_architecture (from /bin/sh's ELF header) only when the request set no arch.
          if (!values.arch) {
            for (const l of archLines(x)) ctx.log(l);
            values.arch = x.arch ?? "amd64";
          }
          // PVE::LXC::Setup->new after the extraction: OS type from the template's files.
          if (!ostype) {
            const det = detectOstypeOfTemplate(tmplFile);
            for (const n of det?.notes ?? []) ctx.log(n);
            if (det?.warning) ctx.warn(det.warning);
            // An unreadable template (e.g. an unknown compression): its file name decides.
            ostype = det?.ostype ?? ostypeFromFilename(tmpl) ?? "unmanaged";
          }
        }
        for (const [k, v] of Object.entries(values)) {
          if (k === "env") setEnv(conf, v);
          else if (k === "description") conf.description = v.endsWith("\n") ? v : `${v}\n`;
          else conf.keys[k] = v;
        }
        if (!values.arch) {
          const a = archFromFilename(tmpl);
          ctx.log(a ? `Detected container architecture: ${a}` : "Falling back to amd64.\nUse `pct set VMID --arch ARCH` to change.");
          conf.keys.arch = a ?? "amd64";
        }
        conf.keys.ostype = ostype;
        conf.keys.hostname ??= `CT${vmid}`;
        conf.keys.memory ??= "512";
        conf.keys.swap ??= "512";
        // Only an unprivileged CT gets the key (`$conf->{unprivileged} = 1 if $unprivileged`);
        // the create default is 1 since PVE 9 (schema text), 0 before (8.4: config without it).
        if (conf.keys.unprivileged === undefined && core.version === "9.1") conf.keys.unprivileged = "1";
        if (conf.keys.unprivileged === "0") delete conf.keys.unprivileged;
        if (p.password && ostype !== "unmanaged" && String(p.password).length < 5) throw new Error("Password is too short.");
        delete conf.keys.lock;
        commitNewCt(core, vmid, conf, p.pool as string | undefined, "create");
      } catch (e) {
        discardNewCt(core, node, vmid, allocated);
        throw new Error(`unable to create CT ${vmid} - ${(e as Error).message}`);
      }
      if (bool(p.start)) {
        const ct = ctOnNode(core, node, vmid);
        startCt(core, ct, req.id);
      }
      // After the (non-HA) start: `ha-manager add ct:<vmid> --state started|stopped`.
      if (bool(p["ha-managed"])) {
        ctx.log("Add as HA resource");
        addHaResource(core, vmid, bool(p.start) ? "started" : "stopped");
      }
    },
  });
}
