/**
 * Cluster-wide and node endpoints: /version, /nodes, /cluster/resources, /cluster/nextid,
 * /access/ticket, tasks (BEHAVIOR.md §2.1, §3, §8). Read-only ones are synchronous.
 */
import * as os from "node:os";
import { parseUpid } from "../../provider/proxmox/upid";
import { route, bool, int, RawReply, type Core, type ApiRequest } from "../core";
import { ApiError, fail, paramError } from "../http/errors";
import { ctStatus, ctOnNode } from "./lxc/status";
import { BRIDGES } from "./lxc/apply";
import { haStatus } from "./lxc/ha";
import { storagePath, type StorageDef } from "./storage/storages";

export function checkNode(core: Core, node: string): void {
  if (!core.nodes.includes(node)) {
    throw fail(`hostname lookup '${node}' failed - failed to get address info for: ${node}: Name or service not known`);
  }
}

export function registerCluster(core: Core): void {
  route(core, "GET", "/version", () => ({
    version: core.fullVersion,
    release: core.version,
    repoid: core.version === "9.1" ? "f4d3f125a3b1c0de" : "2606ac85",
  }));

  route(core, "POST", "/access/ticket", (req) => login(core, req));

  route(core, "GET", "/nodes", (req) =>
    core.nodes.map((node) => {
      const base: Record<string, unknown> = { node, status: "online", id: `node/${node}`, type: "node", level: "", ssl_fingerprint: core.fingerprint };
      if (!core.auth.has(req.id, `/nodes/${node}`, "Sys.Audit")) return base;
      return { ...base, uptime: Math.floor(process.uptime()) + 3600, cpu: 0.02, maxcpu: os.cpus().length, mem: 2 * 1024 ** 3, maxmem: 16 * 1024 ** 3, disk: 4 * 1024 ** 3, maxdisk: 64 * 1024 ** 3 };
    }),
  );

  route(core, "GET", "/nodes/{node}", (req) => {
    checkNode(core, req.params.node);
    return ["aplinfo", "lxc", "status", "storage", "tasks", "version"].map((name) => ({ name }));
  });

  // The node's bridges (BRIDGES) as GET /nodes/{node}/network lists them; no SDN VNets.
  route(core, "GET", "/nodes/{node}/network", (req) => {
    checkNode(core, req.params.node);
    const type = typeof req.params.type === "string" ? req.params.type : undefined;
    if (type && !["bridge", "any_bridge", "any_local_bridge", "include_sdn"].includes(type)) return [];
    return Object.entries(BRIDGES).map(([iface, b]) => ({ iface, type: "bridge", active: 1, autostart: 1, families: ["inet"], method: "manual", mtu: String(b.mtu), priority: 1 }));
  });
  route(core, "GET", "/cluster/sdn/vnets", () => []);

  route(core, "GET", "/nodes/{node}/status", (req) => {
    checkNode(core, req.params.node);
    core.auth.check(req.id, `/nodes/${req.params.node}`, ["Sys.Audit"]);
    const cpus = os.cpus().length;
    return {
      uptime: Math.floor(process.uptime()) + 3600, loadavg: ["0.10", "0.08", "0.05"], cpu: 0.02, wait: 0,
      cpuinfo: { cpus, cores: cpus, sockets: 1, model: "sandbox vCPU", mhz: "2400.000", hvm: "1", flags: "" },
      memory: { total: 16 * 1024 ** 3, used: 2 * 1024 ** 3, free: 14 * 1024 ** 3 },
      swap: { total: 0, used: 0, free: 0 }, rootfs: { total: 64 * 1024 ** 3, used: 4 * 1024 ** 3, free: 60 * 1024 ** 3, avail: 60 * 1024 ** 3 },
      ksm: { shared: 0 }, kversion: "Linux 6.14.11-4-pve #1 SMP PREEMPT_DYNAMIC", pveversion: `pve-manager/${core.fullVersion}/sandbox`,
      "boot-info": { mode: "efi", secureboot: 0 }, "current-kernel": { sysname: "Linux", release: "6.14.11-4-pve", version: "#1 SMP", machine: "x86_64" },
    };
  });

  route(core, "GET", "/cluster/status", () => [
    { type: "cluster", id: "cluster", name: "sandbox", nodes: core.nodes.length, quorate: 1, version: 1 },
    ...core.nodes.map((node, i) => ({ type: "node", id: `node/${node}`, name: node, nodeid: i + 1, ip: "127.0.0.1", online: 1, local: i === 0 ? 1 : 0, level: "" })),
  ]);

  // Cluster storage configuration (datacenter storage.cfg), for clients that read types/sharing.
  const storageCfg = (s: StorageDef) => ({
    storage: s.storage, type: s.type, content: s.content.join(","), shared: s.shared, digest: "0".repeat(40),
    ...(s.type === "dir" || s.type === "btrfs" ? { path: storagePath(s) } : s.type === "nfs" ? { path: storagePath(s), server: "127.0.0.1", export: `/export/${s.storage}` } : s.type === "zfspool" ? { pool: "rpool/data", sparse: 1 } : { vgname: "pve", thinpool: "data" }),
  });
  route(core, "GET", "/storage", (req) =>
    core.storage.defs.filter((s) => !req.params.type || s.type === req.params.type)
      .filter((s) => core.auth.has(req.id, `/storage/${s.storage}`, "Datastore.Audit") || core.auth.has(req.id, `/storage/${s.storage}`, "Datastore.AllocateSpace"))
      .map(storageCfg),
  );
  route(core, "GET", "/storage/{storage}", (req) => {
    const s = core.storage.defs.find((x) => x.storage === req.params.storage);
    if (!s) throw fail(`storage '${req.params.storage}' does not exist`);
    core.auth.check(req.id, `/storage/${s.storage}`, ["Datastore.Allocate"]);
    return storageCfg(s);
  });

  route(core, "GET", "/cluster/nextid", (req) => {
    const taken = (v: number) => core.store.state.cts[String(v)] !== undefined;
    if (req.params.vmid !== undefined) {
      const v = Number(req.params.vmid);
      if (taken(v)) throw paramError({ vmid: `VM ${v} already exists` });
      return String(v);
    }
    for (let v = 100; v < 1_000_000; v++) if (!taken(v)) return String(v); // a JSON string (§8.2)
    throw fail("unable to get any free VMID in range [100, 1000000]");
  });

  route(core, "GET", "/cluster/resources", (req) => {
    const type = req.params.type as string | undefined;
    const out: Record<string, unknown>[] = [];
    if (!type || type === "vm") {
      for (const [vmid, rec] of Object.entries(core.store.state.cts)) {
        if (!core.auth.has(req.id, `/vms/${vmid}`, "VM.Audit")) continue;
        const s = ctStatus(core, Number(vmid), rec);
        const item: Record<string, unknown> = {
          id: `lxc/${vmid}`, vmid: Number(vmid), node: rec.node, type: "lxc", status: s.status, name: s.name, uptime: s.uptime,
          template: s.template ?? 0, maxcpu: s.cpus, cpu: s.cpu, maxmem: s.maxmem, mem: s.mem, memhost: 0, maxdisk: s.maxdisk, disk: s.disk,
          netin: s.netin, netout: s.netout, diskread: s.diskread, diskwrite: s.diskwrite,
        };
        if (s.lock) item.lock = s.lock;
        if (s.tags) item.tags = s.tags;
        const pool = Object.entries(core.store.state.pools).find(([, p]) => p.vms.includes(Number(vmid)));
        if (pool) item.pool = pool[0];
        const ha = haStatus(core, Number(vmid));
        if (ha.managed) item.hastate = ha.state;
        out.push(item);
      }
    }
    if (!type || type === "node") {
      for (const node of core.nodes) out.push({ id: `node/${node}`, node, type: "node", status: "online", level: "", maxcpu: os.cpus().length, maxmem: 16 * 1024 ** 3 });
    }
    if (!type || type === "storage") {
      for (const node of core.nodes) {
        for (const { storage: s } of core.storage.defs) {
          if (!core.auth.has(req.id, `/storage/${s}`, "Datastore.Audit")) continue;
          const st = core.storage.status(node, s);
          out.push({ id: `storage/${node}/${s}`, storage: s, node, type: "storage", status: "available", plugintype: st.type, content: st.content, shared: st.shared, disk: st.used, maxdisk: st.total });
        }
      }
    }
    if (!type || type === "pool") {
      for (const poolid of Object.keys(core.store.state.pools)) {
        if (core.auth.has(req.id, `/pool/${poolid}`, "Pool.Audit")) out.push({ id: `/pool/${poolid}`, pool: poolid, type: "pool" });
      }
    }
    return out;
  });

  // ---- tasks (§3.3, §3.4) ----
  const taskOf = (req: ApiRequest) => {
    checkNode(core, req.params.node);
    try {
      parseUpid(req.params.upid);
    } catch {
      throw paramError({ upid: "unable to parse worker upid" });
    }
    const t = core.tasks.find(req.params.upid);
    if (!t) throw paramError({ upid: "no such task" });
    const info = (t.running ?? t.finished)!;
    // owner or Sys.Audit on the node (§2.4)
    const owner = info.user === req.id.authid || (!req.id.tokenid && info.user.startsWith(`${req.id.userid}!`)) || info.user === req.id.userid;
    if (!owner) core.auth.check(req.id, `/nodes/${req.params.node}`, ["Sys.Audit"]);
    return t;
  };

  const splitUser = (user: string) => {
    const i = user.indexOf("!");
    return i < 0 ? { user } : { user: user.slice(0, i), tokenid: user.slice(i + 1) };
  };

  route(core, "GET", "/nodes/{node}/tasks/{upid}/status", (req) => {
    const t = taskOf(req);
    const i = (t.running ?? t.finished)!;
    const out: Record<string, unknown> = {
      upid: i.upid, node: i.node, pid: i.pid, pstart: i.pstart, starttime: i.starttime, type: i.type, id: i.id, ...splitUser(i.user),
      status: t.running ? "running" : "stopped",
    };
    if (t.finished) out.exitstatus = t.finished.status;
    return out;
  });

  route(core, "GET", "/nodes/{node}/tasks/{upid}/log", (req) => {
    const t = taskOf(req);
    const lines = (t.running ?? t.finished)!.log;
    if (bool(req.params.download)) {
      if (req.params.start !== undefined || req.params.limit !== undefined) {
        throw paramError({ download: "Parameter 'download' not compatible with 'start' or 'limit'" });
      }
      if (t.running) throw fail("Task is still active.");
      return new RawReply(lines.map((l) => `${l}\n`).join(""), "text/plain");
    }
    const start = int(req.params.start) ?? 0;
    const limit = int(req.params.limit) ?? 50;
    req.total = lines.length;
    if (!lines.length) return [{ n: 1, t: "no content" }];
    const slice = limit === 0 ? lines.slice(start) : lines.slice(start, start + limit);
    return slice.map((t, i) => ({ n: start + i + 1, t }));
  });

  route(core, "DELETE", "/nodes/{node}/tasks/{upid}", (req) => {
    const t = taskOf(req);
    const info = (t.running ?? t.finished)!;
    const owner = info.user === req.id.authid || info.user === req.id.userid;
    if (!owner) core.auth.check(req.id, `/nodes/${req.params.node}`, ["Sys.Modify"]);
    if (t.running) core.tasks.abort(info.upid);
    return null;
  });

  route(core, "GET", "/nodes/{node}/tasks", (req) => {
    checkNode(core, req.params.node);
    const p = req.params;
    const source = p.source ?? "archive";
    const seeAll = core.auth.has(req.id, `/nodes/${p.node}`, "Sys.Audit");
    const visible = (user: string) => seeAll || user === req.id.authid || (!req.id.tokenid && user.startsWith(`${req.id.userid}!`));
    type Item = Record<string, unknown> & { starttime: number; user: string; status?: string; type: string; id: string; endtime?: number };
    let items: Item[] = [];
    if (source === "active" || source === "all") {
      for (const t of core.tasks.running.values()) {
        if (t.node !== p.node) continue;
        items.push({ upid: t.upid, node: t.node, pid: t.pid, pstart: t.pstart, starttime: t.starttime, type: t.type, id: t.id, user: t.user, status: "RUNNING" });
      }
    }
    if (source === "archive" || source === "all") {
      for (const t of core.store.state.tasks) {
        if (t.node !== p.node) continue;
        items.push({ upid: t.upid, node: t.node, pid: t.pid, pstart: t.pstart, starttime: t.starttime, type: t.type, id: t.id, user: t.user, endtime: t.endtime, status: t.status });
      }
    }
    items = items.filter((t) => visible(t.user));
    if (p.vmid) items = items.filter((t) => t.id === String(p.vmid));
    if (p.typefilter) items = items.filter((t) => t.type === p.typefilter);
    if (p.userfilter) items = items.filter((t) => t.user.includes(p.userfilter));
    if (bool(p.errors)) items = items.filter((t) => t.status !== "OK" && t.status !== "RUNNING" && !/^WARNINGS: \d+$/.test(t.status ?? ""));
    if (p.statusfilter) {
      const want = String(p.statusfilter).split(/[,;\s]+/);
      const cls = (s?: string) => (s === "RUNNING" ? "running" : s === "OK" ? "ok" : /^WARNINGS/.test(s ?? "") ? "warning" : "error");
      items = items.filter((t) => want.includes(cls(t.status)));
    }
    if (p.since) items = items.filter((t) => t.starttime >= Number(p.since));
    if (p.until) items = items.filter((t) => t.starttime <= Number(p.until));
    // newest first; the archive index order breaks ties within one second
    const order = new Map(items.map((t, i) => [t, i]));
    items.sort((a, b) => (b.endtime ?? Infinity) - (a.endtime ?? Infinity) || b.starttime - a.starttime || order.get(b)! - order.get(a)!);
    req.total = items.length;
    const start = int(p.start) ?? 0;
    const limit = int(p.limit) ?? 50;
    return items.slice(start, start + limit).map((t) => {
      const su = splitUser(t.user);
      return { ...t, ...su };
    });
  });

  route(core, "GET", "/nodes/{node}/lxc/{vmid}/status", (req) => {
    ctOnNode(core, req.params.node, Number(req.params.vmid));
    return [{ subdir: "current" }, { subdir: "start" }, { subdir: "stop" }, { subdir: "shutdown" }, { subdir: "reboot" }];
  });
}

function login(core: Core, req: ApiRequest): unknown {
  const p = req.params;
  let username = String(p.username);
  if (p.realm && !username.includes("@")) username = `${username}@${p.realm}`;
  const auth = core.auth;
  let ok = false;
  const pw = String(p.password ?? "");
  if (pw.startsWith("PVE:")) {
    // Renewal with the current ticket as the password (§2.1).
    const tUser = auth.verifyTicket(pw);
    ok = tUser !== undefined && (tUser === username || tUser === "root@pam");
  } else {
    ok = auth.checkPassword(username, pw);
  }
  if (!ok) throw new ApiError(401, "authentication failure");
  const id = { userid: username, authid: username, via: "ticket" as const };
  return { username, ticket: auth.mintTicket(username), CSRFPreventionToken: auth.csrfToken(username), cap: auth.caps(id) };
}
