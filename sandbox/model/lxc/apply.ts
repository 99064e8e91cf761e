/**
 * Config changes as `update_pct_config` / `vmconfig_hotplug_pending` /
 * `vmconfig_apply_pending` do them (BEHAVIOR.md §1.4): everything goes to the pending
 * section first; a stopped CT applies it at once, a running CT hotplugs the live-capable
 * keys and leaves the rest pending until start/reboot. Also the per-key permission checks
 * of §2.4 and the value checks shared with create (§4.2): bridges, MTU, hwaddr.
 */
import * as crypto from "node:crypto";
import type { Core } from "../../core";
import type { Identity } from "../../auth";
import { fail, paramError, permError } from "../../http/errors";
import { splitList } from "../../../provider/proxmox/formats";
import { canonicalValue, isVolumeKey, isUnusedKey, parseKey, printKey, setEnv, type CtConf } from "./config";
import type { LoadedCt } from "./status";

/** Bridges on every sandbox node (for bridge/MTU validation). */
export const BRIDGES: Record<string, { mtu: number }> = { vmbr0: { mtu: 1500 }, vmbr1: { mtu: 1500 } };

/** Datacenter `mac_prefix` default `BC:24:11` + random, unicast, locally administered (§4.1). */
export function randomHwaddr(): string {
  const b = crypto.randomBytes(3);
  return ["BC", "24", "11", ...[...b].map((x) => x.toString(16).toUpperCase().padStart(2, "0"))].join(":");
}

const CONFIG_ONLY = new Set(["description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock"]);
const CGROUP_KEYS = new Set(["cpulimit", "cpuunits", "memory", "swap"]);
const LIVE_DELETE = new Set([...CONFIG_ONLY, "swap", "cpulimit", "cpuunits"]);
const REQUIRED = new Set(["memory", "rootfs", "ostype"]);

/** Normalise one value as PVE stores it; nets get hwaddr + type=veth; bridge/MTU checked. */
export function normaliseValue(core: Core, key: string, value: string, vmid: number, current?: CtConf): string {
  if (/^net\d+$/.test(key)) {
    const net = parseKey(key, value, core.version);
    if (!net.hwaddr) {
      // keep the MAC of an existing interface with the same key (PVE parses the old one)
      const old = current?.keys[key] ? parseKey(key, current.keys[key], core.version).hwaddr : undefined;
      net.hwaddr = old ?? randomHwaddr();
    }
    net.type = "veth";
    if (net.bridge) {
      const br = BRIDGES[net.bridge];
      if (!br) throw fail(`bridge '${net.bridge}' does not exist`);
      if (net.mtu && Number(net.mtu) > br.mtu) throw fail(`${key}: MTU size '${net.mtu}' is bigger than bridge MTU '${br.mtu}'`);
    }
    if (net["host-managed"] === "1" && net.ip6 === "auto" && net.link_down !== "1") {
      throw fail(`${key}: SLAAC is not supported for host-managed network configuration.`);
    }
    return printKey(key, net, core.version);
  }
  if (key === "env" || key === "description") return value;
  return canonicalValue(key, value, core.version);
}

/**
 * `check_ct_modify_config_perm` (`ctr:src/PVE/LXC.pm`, §2.4) for a list of keys; a key
 * without a value in `values` is a deletion. Only `root@pam` itself passes unchecked — an API
 * token authenticates as its token ID, so the root-only gates refuse every token, also
 * `root@pam!x` without privilege separation (recorded from PVE 8.4.21). Privileged or not is
 * the CT's `unprivileged` (`conf`), on create the request's (8.4 default 0, 9.1 default 1).
 */
export function checkKeyPerms(core: Core, id: Identity, vmid: number, keys: string[], values: Record<string, string>, conf?: CtConf): void {
  const auth = core.auth;
  if (auth.isRoot(id)) return;
  const vmPath = `/vms/${vmid}`;
  const rootOnly = (what: string): never => {
    throw permError(`${what} is only allowed for root@pam`);
  };
  const unprivileged = conf ? conf.keys.unprivileged === "1" : values.unprivileged !== undefined ? values.unprivileged === "1" : core.version === "9.1";
  for (const k of keys) {
    const v = values[k];
    if (["cores", "cpuunits", "cpulimit"].includes(k)) auth.check(id, vmPath, ["VM.Config.CPU"]);
    else if (k === "memory" || k === "swap") auth.check(id, vmPath, ["VM.Config.Memory"]);
    else if (/^net\d+$/.test(k)) {
      auth.check(id, vmPath, ["VM.Config.Network"]);
      for (const raw of [conf?.keys[k], v]) {
        const net = raw ? parseKey(k, raw, core.version) : undefined;
        if (net?.bridge) auth.check(id, `/sdn/zones/localnetwork/${net.bridge}${net.tag ? `/${net.tag}` : ""}`, ["SDN.Use"]);
      }
    } else if (["hostname", "nameserver", "searchdomain"].includes(k)) auth.check(id, vmPath, ["VM.Config.Network"]);
    else if (k === "rootfs" || /^mp\d+$/.test(k)) {
      auth.check(id, vmPath, ["VM.Config.Disk"]);
      if (v === undefined) continue;
      const vol = parseKey(k, v, core.version).volume ?? "";
      // `classify_mountpoint`: an absolute path is a device under /dev/, else a bind mount.
      if (vol.startsWith("/")) rootOnly(`mount point type ${vol.startsWith("/dev/") ? "device" : "bind"}`);
      const nd = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(\d+(?:\.\d+)?)$/i.exec(vol);
      if (nd) auth.check(id, `/storage/${nd[1]}`, ["Datastore.AllocateSpace"]);
    } else if (/^dev\d+$/.test(k)) rootOnly("configuring device passthrough");
    else if (k === "hookscript") rootOnly("changing the hookscript");
    else if (k === "features") checkFeaturePerms(core, id, vmPath, unprivileged, conf?.keys.features, v);
    else auth.check(id, vmPath, ["VM.Config.Options"]);
  }
}

/** The `features` branch: nesting alone needs VM.Allocate, any other change root@pam. */
function checkFeaturePerms(core: Core, id: Identity, vmPath: string, unprivileged: boolean, oldRaw: string | undefined, newRaw: string | undefined): void {
  if (!unprivileged) throw permError("changing feature flags for privileged container is only allowed for root@pam");
  const parse = (raw?: string): Record<string, string> => (raw ? parseKey("features", raw, core.version) : {});
  // Without old features (new CT, or a delete) PVE only counts: `nesting=<true>` alone is
  // nesting, anything else (even `nesting=0`) is "other"; with old ones it diffs per flag.
  const counted = (f: Record<string, string>) => {
    const names = Object.keys(f);
    return names.length === 1 && f.nesting === "1" ? { nesting: true, other: false } : { nesting: false, other: names.length > 0 };
  };
  let r = { nesting: false, other: false };
  if (newRaw === undefined) r = counted(parse(oldRaw));
  else if (!oldRaw) r = counted(parse(newRaw));
  else {
    const [o, n] = [parse(oldRaw), parse(newRaw)];
    for (const f of new Set([...Object.keys(o), ...Object.keys(n)])) {
      if ((o[f] ?? "") !== (n[f] ?? "")) r = f === "nesting" ? { ...r, nesting: true } : { ...r, other: true };
    }
  }
  if (r.other) throw permError("changing feature flags (except nesting) is only allowed for root@pam");
  if (r.nesting) core.auth.check(id, vmPath, ["VM.Allocate"]);
}

/** The delete/revert/set conflict checks of PUT config (§1.4), all 400 keyed by option. */
export function checkDeleteRevert(core: Core, set: string[], del: string[], revert: string[]): void {
  const props = core.schema.method("/nodes/{node}/lxc/{vmid}/config", "PUT")?.parameters?.properties ?? {};
  const known = (k: string) => !!core.schema.param("/nodes/{node}/lxc/{vmid}/config", "PUT", k) || isUnusedKey(k) || k in props;
  const errors: Record<string, string> = {};
  for (const k of del) {
    if (!known(k)) errors.delete = `unknown option '${k}'`;
    else if (set.includes(k)) errors.delete = `you can't use '-${k}' and -delete ${k}' at the same time`;
    else if (revert.includes(k)) errors.delete = `you can't use '-delete ${k}' and '-revert ${k}' at the same time`;
  }
  for (const k of revert) {
    if (!known(k)) errors.revert = `unknown option '${k}'`;
    else if (set.includes(k)) errors.revert = `you can't use '-${k}' and '-revert ${k}' at the same time`;
  }
  if (Object.keys(errors).length) throw paramError(errors);
}

function nextUnusedKey(conf: CtConf): string {
  for (let i = 0; ; i++) if (!conf.keys[`unused${i}`] && !conf.pending[`unused${i}`]) return `unused${i}`;
}

/** Volume id of a rootfs/mp value. */
export function volOf(core: Core, key: string, value: string): string | undefined {
  const d = parseKey(key.startsWith("unused") ? "unused0" : key, value, core.version);
  return d.volume;
}

function pendingDeletes(conf: CtConf): string[] {
  return conf.pending.delete ? splitList(conf.pending.delete) : [];
}

function setPendingDeletes(conf: CtConf, list: string[]): void {
  if (list.length) conf.pending.delete = [...new Set(list)].join(",");
  else delete conf.pending.delete;
}

/** Apply one pending set or delete to the main section. */
function applyOne(core: Core, ct: LoadedCt, key: string, del: boolean): void {
  const conf = ct.conf;
  const old = conf.keys[key];
  if (key === "description") {
    // kept as `#` comment lines, not as a key (§4.1)
    const v = del ? "" : conf.pending[key];
    conf.description = v === "" ? undefined : v.endsWith("\n") ? v : `${v}\n`;
    return;
  }
  if (del) {
    if (key === "env") setEnv(conf, undefined);
    else if (isUnusedKey(key) && old) {
      const vol = volOf(core, key, old);
      if (vol) core.storage.freeVolume(ct.rec.node, vol);
      delete conf.keys[key];
    } else if (/^mp\d+$/.test(key) && old) {
      const vol = volOf(core, key, old);
      delete conf.keys[key];
      if (vol && !vol.startsWith("/")) conf.keys[nextUnusedKey(conf)] = vol;
    } else delete conf.keys[key];
    return;
  }
  const value = conf.pending[key];
  if (key === "env") {
    setEnv(conf, value);
    return;
  }
  if (isVolumeKey(key) && old) {
    const ov = volOf(core, key, old);
    const nv = volOf(core, key, value);
    if (ov && nv && ov !== nv && !ov.startsWith("/")) conf.keys[nextUnusedKey(conf)] = ov;
  }
  conf.keys[key] = value;
}

/** Apply everything pending (start, reboot, stopped CT). */
export function applyAllPending(core: Core, ct: LoadedCt): void {
  const conf = ct.conf;
  for (const k of pendingDeletes(conf)) applyOne(core, ct, k.replace(/^!/, ""), true);
  for (const k of Object.keys(conf.pending)) if (k !== "delete") applyOne(core, ct, k, false);
  conf.pending = {};
}

/** Hotplug what a running CT can take live; the rest stays pending (§1.4 step 3–5). */
export function hotplugPending(core: Core, ct: LoadedCt): void {
  const conf = ct.conf;
  // Injected hotplug failures (admin failHotplug): checked before anything is applied, so
  // the request fails with 400 `unable to hotplug <key>: …` and nothing is written (§1.4).
  const liveKeys = [
    ...pendingDeletes(conf).map((r) => r.replace(/^!/, "")).filter((k) => LIVE_DELETE.has(k) || isUnusedKey(k) || /^net\d+$/.test(k)),
    ...Object.keys(conf.pending).filter((k) => k !== "delete" && isLive(conf, k)),
  ];
  const errors: Record<string, string> = {};
  for (const k of liveKeys) {
    const msg = takeHotplugFailure(core, ct.vmid, k);
    // PVE appends the `die` text, which ends in a newline.
    if (msg !== undefined) errors[k] = `unable to hotplug ${k}: ${msg.endsWith("\n") ? msg : `${msg}\n`}`;
  }
  if (Object.keys(errors).length) throw paramError(errors);
  const keep: string[] = [];
  for (const raw of pendingDeletes(conf)) {
    const k = raw.replace(/^!/, "");
    if (LIVE_DELETE.has(k) || isUnusedKey(k) || /^net\d+$/.test(k)) applyOne(core, ct, k, true);
    else keep.push(raw);
  }
  setPendingDeletes(conf, keep);
  for (const k of Object.keys(conf.pending)) {
    if (k === "delete") continue;
    if (isLive(conf, k)) {
      applyOne(core, ct, k, false);
      delete conf.pending[k];
    }
  }
}

function isLive(conf: CtConf, k: string): boolean {
  return CONFIG_ONLY.has(k) || CGROUP_KEYS.has(k) || /^net\d+$/.test(k) || ((/^mp\d+$/.test(k) || /^dev\d+$/.test(k)) && conf.keys[k] === undefined);
}

function takeHotplugFailure(core: Core, vmid: number, key: string): string | undefined {
  const i = core.hotplugFailures.findIndex((f) => f.key === key && (f.vmid === undefined || f.vmid === vmid));
  if (i < 0) return undefined;
  const f = core.hotplugFailures[i];
  f.times -= 1;
  if (f.times <= 0) core.hotplugFailures.splice(i, 1);
  return f.message;
}

/** Allocate `STORAGE:SIZE_GiB` disk syntax; returns the new value (or the original). */
export function allocateIfNew(core: Core, node: string, vmid: number, key: string, value: string, defaultStorage: string, allocated: string[]): string {
  const data = parseKey(key, value, core.version);
  const volKey = "volume";
  let vol = data[volKey] ?? "";
  if (/^\d+(\.\d+)?$/.test(vol)) vol = `${defaultStorage}:${vol}`;
  const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(\d+(?:\.\d+)?)$/i.exec(vol);
  if (!m) return value;
  const sid = m[1];
  const def = core.storage.def(sid);
  if (!def) throw fail(`storage '${sid}' does not exist`);
  if (!def.content.includes("rootdir")) throw paramError({ storage: `storage '${sid}' does not support container directories` });
  // Rounded to whole MiB (§4.2); `STORAGE:0` on a path-based storage = subvol without limit.
  const mib = Math.round(Number(m[2]) * 1024);
  const size = mib * 1024 * 1024;
  if (size === 0 && def.type === "lvmthin") throw fail(`unable to allocate a volume of size 0 on storage '${sid}'`);
  const volid = core.storage.allocVolume(node, sid, vmid, size);
  allocated.push(volid);
  data[volKey] = volid;
  if (size > 0) data.size = String(size);
  return printKey(key, data, core.version);
}

export interface UpdateInput {
  set: Record<string, string>;
  del: string[];
  revert: string[];
}

/**
 * PUT config on a loaded CT (after permission and conflict checks). Mutates ct.conf; the
 * caller saves. Throws PVE's texts; allocates new mp disks.
 */
export function updateConfig(core: Core, ct: LoadedCt, input: UpdateInput): void {
  const conf = ct.conf;
  const vmid = ct.vmid;
  const protectedCt = conf.keys.protection === "1";
  for (const k of input.del) {
    if (REQUIRED.has(k)) throw fail(`unable to delete required option '${k}'`);
    if (k === "unprivileged") throw fail("unable to delete read-only option: 'unprivileged'");
    if (protectedCt && (isVolumeKey(k) || isUnusedKey(k))) throw fail(`can't remove CT ${vmid} drive '${k}' - protection mode enabled`);
  }
  for (const k of Object.keys(input.set)) {
    if (k === "unprivileged") throw fail("unable to modify read-only option: 'unprivileged'");
    if (protectedCt && (isVolumeKey(k) || isUnusedKey(k))) throw fail(`can't update CT ${vmid} drive '${k}' - protection mode enabled`);
  }
  // Normalise first so a bad value writes nothing.
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.set)) values[k] = normaliseValue(core, k, v, vmid, conf);
  const allocated: string[] = [];
  try {
    for (const k of Object.keys(values)) if (/^mp\d+$/.test(k)) values[k] = allocateIfNew(core, ct.rec.node, vmid, k, values[k], "local", allocated);
  } catch (e) {
    for (const v of allocated) core.storage.freeVolume(ct.rec.node, v);
    throw e;
  }
  for (const k of input.revert) {
    delete conf.pending[k];
    setPendingDeletes(conf, pendingDeletes(conf).filter((d) => d.replace(/^!/, "") !== k));
  }
  const dels = pendingDeletes(conf);
  for (const k of input.del) {
    const isSet = conf.keys[k] !== undefined || conf.pending[k] !== undefined || (k === "env" && conf.lxc.length > 0) || (k === "description" && conf.description !== undefined);
    if (!isSet) continue; // PVE only warns: cannot delete 'x' - not set in current configuration!
    delete conf.pending[k];
    // A value that only exists pending is simply dropped; applied ones get a delete mark.
    const applied = conf.keys[k] !== undefined || (k === "env" && conf.lxc.length > 0) || (k === "description" && conf.description !== undefined);
    if (applied) dels.push(k);
  }
  setPendingDeletes(conf, dels);
  for (const [k, v] of Object.entries(values)) {
    conf.pending[k] = v;
    setPendingDeletes(conf, pendingDeletes(conf).filter((d) => d.replace(/^!/, "") !== k));
  }
  if (ct.rec.running) {
    try {
      hotplugPending(core, ct);
    } catch (e) {
      for (const v of allocated) core.storage.freeVolume(ct.rec.node, v);
      throw e;
    }
  } else applyAllPending(core, ct);
}

/** The merged view GET config returns by default (pending applied, deletions removed). */
export function mergedKeys(conf: CtConf): { keys: Record<string, string>; env?: string } {
  const keys = { ...conf.keys };
  for (const k of pendingDeletes(conf)) delete keys[k.replace(/^!/, "")];
  for (const [k, v] of Object.entries(conf.pending)) if (k !== "delete" && k !== "env") keys[k] = v;
  return { keys, env: conf.pending.env };
}
