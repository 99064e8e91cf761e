/**
 * Loading/saving CT configs and the status view (BEHAVIOR.md §4.3, §4.4).
 */
import * as os from "node:os";
import type { Core } from "../../core";
import type { CtRecord } from "../../state";
import { fail } from "../../http/errors";
import { parseConf, printConf, type CtConf } from "./config";
import { parseSize } from "../../../provider/proxmox/formats";
import { ext4StatfsBytes } from "./extract";

export interface LoadedCt {
  vmid: number;
  rec: CtRecord;
  conf: CtConf;
}

/** Every per-CT endpoint fails like `load_config` when the file is absent on that node. */
export function ctOnNode(core: Core, node: string, vmid: number): LoadedCt {
  const rec = core.store.state.cts[String(vmid)];
  if (!rec || rec.node !== node) throw fail(`Configuration file 'nodes/${node}/lxc/${vmid}.conf' does not exist`);
  return { vmid, rec, conf: parseConf(rec.conf) };
}

export function saveCt(core: Core, ct: LoadedCt): void {
  ct.rec.conf = printConf(ct.conf);
  core.save();
}

/** `check_lock`: any `lock:` fails with `CT is locked (<name>)`, except tolerated ones. */
export function checkLock(conf: CtConf, tolerate: string[] = []): void {
  const lock = conf.keys.lock;
  if (lock && !tolerate.includes(lock)) throw fail(`CT is locked (${lock})`);
}

export function rootfsSize(conf: CtConf): number | undefined {
  const m = /(?:^|,)size=([^,]+)/.exec(conf.keys.rootfs ?? "");
  return m ? parseSize(m[1]) : undefined;
}

/**
 * `maxdisk`: the configured rootfs size while stopped; while running, vmstatus reads `df` of
 * the mounted rootfs, so a raw image shows its ext4's usable size (recorded: 1 GiB → 1020702720).
 */
function diskSize(core: Core, conf: CtConf, running: boolean): number {
  const size = rootfsSize(conf) ?? 4 * 1024 ** 3;
  if (!running) return size;
  const vol = /^([^,]+)/.exec(conf.keys.rootfs ?? "")?.[1] ?? "";
  try {
    return core.storage.volumeFormat(vol) === "raw" ? ext4StatfsBytes(size) : size;
  } catch {
    return size;
  }
}

export function ctStatus(core: Core, vmid: number, rec: CtRecord): Record<string, any> {
  const conf = parseConf(rec.conf);
  const k = conf.keys;
  const running = !!rec.running;
  const maxmem = Number(k.memory ?? 512) * 1024 * 1024;
  const maxswap = Number(k.swap ?? 512) * 1024 * 1024;
  const maxdisk = diskSize(core, conf, running);
  const cpus = k.cores ? Number(k.cores) : k.cpulimit && Number(k.cpulimit) > 0 ? Number(k.cpulimit) : os.cpus().length;
  const uptime = running ? Math.floor((Date.now() - rec.running!.since) / 1000) : 0;
  // Deterministic figures derived from the vmid, so repeated reads look like a quiet CT.
  const s: Record<string, any> = {
    vmid, type: "lxc", status: running ? "running" : "stopped", name: (k.hostname ?? `CT${vmid}`).replace(/\s/g, ""),
    cpus, maxmem, maxswap, maxdisk,
    disk: running ? Math.floor(maxdisk * 0.12) : 0,
    mem: running ? Math.floor(maxmem * (0.05 + (vmid % 7) / 100)) : 0,
    swap: 0,
    uptime,
    cpu: running && uptime > 0 ? 0.0012 + (vmid % 5) / 10000 : 0,
    netin: running ? uptime * 1200 : 0,
    netout: running ? uptime * 800 : 0,
    diskread: running ? 4096 * 1024 : 0,
    diskwrite: running ? uptime * 4096 : 0,
  };
  if (k.lock) s.lock = k.lock;
  if (k.tags) s.tags = k.tags;
  if (k.template === "1") s.template = 1;
  if (running) {
    s.pid = rec.running!.pid;
    // PSI figures are a PVE 9 addition; 8.4.21 sends none (recorded status/current, lxc list).
    if (core.version === "9.1") {
      s.pressurecpusome = 0; s.pressurecpufull = 0; s.pressureiosome = 0; s.pressureiofull = 0; s.pressurememorysome = 0; s.pressurememoryfull = 0;
    }
  }
  return s;
}
