/**
 * Resource pools, as much as CT membership needs (both 9.1 and 8.4 schemas have
 * `PUT /pools` with `vms`/`delete` besides the older `/pools/{poolid}` paths).
 */
import type { ApiRequest, Core } from "../core";
import { bool, route } from "../core";
import { fail } from "../http/errors";
import { splitList } from "../../provider/proxmox/formats";
import { ctStatus } from "./lxc/status";
import type { PoolRecord } from "../state";

function members(core: Core, poolid: string) {
  const pool = core.store.state.pools[poolid];
  const out: Array<Record<string, unknown>> = [];
  for (const vmid of pool.vms) {
    const rec = core.store.state.cts[String(vmid)];
    if (!rec) continue;
    const s = ctStatus(core, vmid, rec);
    out.push({ id: `lxc/${vmid}`, vmid, node: rec.node, type: "lxc", status: s.status, name: s.name, template: s.template ?? 0, maxmem: s.maxmem, maxdisk: s.maxdisk, uptime: s.uptime });
  }
  for (const sid of pool.storage) for (const node of core.nodes) out.push({ id: `storage/${node}/${sid}`, storage: sid, node, type: "storage" });
  return out;
}

function mustPool(core: Core, poolid: string) {
  const pool = core.store.state.pools[poolid];
  if (!pool) throw fail(`pool '${poolid}' does not exist`);
  return pool;
}

/**
 * `update_pool` (`acc:src/PVE/API2/Pool.pm`) runs under `lock_user_config(…, "update pools
 * failed")`, so every `die` inside reads `update pools failed: <text>`. Adding a member that
 * is already in the pool, or removing one that is not, is an error, not a no-op.
 */
function update(core: Core, req: ApiRequest) {
  const p = req.params;
  const poolid = String(p.poolid);
  core.auth.check(req.id, `/pool/${poolid}`, ["Pool.Allocate"]);
  const pool = mustPool(core, poolid);
  const die = (msg: string) => fail(`update pools failed: ${msg}`);
  // user.cfg is written once at the end: a failing member leaves the pools as they were.
  const saved = structuredClone(core.store.state.pools);
  try {
    applyMembers(core, req, poolid, pool, die);
  } catch (e) {
    core.store.state.pools = saved;
    throw e;
  }
  core.save();
  return null;
}

function applyMembers(core: Core, req: ApiRequest, poolid: string, pool: PoolRecord, die: (msg: string) => Error) {
  const p = req.params;
  if (p.comment !== undefined) pool.comment = p.comment;
  const del = bool(p.delete);
  for (const v of p.vms ? splitList(String(p.vms)).map(Number) : []) {
    core.auth.check(req.id, `/vms/${v}`, ["VM.Allocate"]);
    if (del) {
      if (!pool.vms.includes(v)) throw die(`VM ${v} is not a pool member`);
      pool.vms = pool.vms.filter((x) => x !== v);
      continue;
    }
    if (pool.vms.includes(v)) throw die(`VM ${v} is already a pool member`);
    if (!core.store.state.cts[String(v)]) throw die(`no such VM '${v}'`);
    const other = Object.entries(core.store.state.pools).find(([id, pl]) => id !== poolid && pl.vms.includes(v));
    if (other) {
      if (!bool(p["allow-move"])) throw die(`VM ${v} belongs already to pool '${other[0]}' and allow-move is not set`);
      // Moving takes the guest out of the other pool: Pool.Allocate there too.
      core.auth.check(req.id, `/pool/${other[0]}`, ["Pool.Allocate"]);
      other[1].vms = other[1].vms.filter((x) => x !== v);
    }
    pool.vms.push(v);
  }
  for (const s of p.storage ? splitList(String(p.storage)) : []) {
    core.storage.mustDef(s);
    if (del) {
      if (!pool.storage.includes(s)) throw die(`Storage '${s}' is not a pool member`);
      pool.storage = pool.storage.filter((x) => x !== s);
    } else {
      if (pool.storage.includes(s)) throw die(`Storage '${s}' is already a pool member`);
      pool.storage.push(s);
    }
  }
}

function remove(core: Core, req: ApiRequest) {
  const poolid = String(req.params.poolid);
  core.auth.check(req.id, `/pool/${poolid}`, ["Pool.Allocate"]);
  const pool = mustPool(core, poolid);
  if (pool.vms.length || pool.storage.length) throw fail(`pool '${poolid}' is not empty`);
  delete core.store.state.pools[poolid];
  core.auth.removeAclsOn(`/pool/${poolid}`);
  core.save();
  return null;
}

export function registerPools(core: Core): void {
  route(core, "GET", "/pools", (req) => {
    const out = [];
    for (const [poolid, pool] of Object.entries(core.store.state.pools)) {
      if (req.params.poolid && req.params.poolid !== poolid) continue;
      if (!core.auth.has(req.id, `/pool/${poolid}`, "Pool.Audit")) continue;
      const item: Record<string, unknown> = { poolid };
      if (pool.comment) item.comment = pool.comment;
      if (req.params.poolid) item.members = members(core, poolid);
      out.push(item);
    }
    return out;
  });
  route(core, "POST", "/pools", (req) => {
    const poolid = String(req.params.poolid);
    core.auth.check(req.id, `/pool/${poolid}`, ["Pool.Allocate"]);
    if (core.store.state.pools[poolid]) throw fail(`create pool failed: pool '${poolid}' already exists`);
    core.store.state.pools[poolid] = { comment: req.params.comment, vms: [], storage: [] };
    core.save();
    return null;
  });
  route(core, "GET", "/pools/{poolid}", (req) => {
    const poolid = String(req.params.poolid);
    core.auth.check(req.id, `/pool/${poolid}`, ["Pool.Audit"]);
    const pool = mustPool(core, poolid);
    return { ...(pool.comment ? { comment: pool.comment } : {}), members: members(core, poolid) };
  });
  route(core, "PUT", "/pools", (req) => update(core, req));
  route(core, "PUT", "/pools/{poolid}", (req) => update(core, req));
  route(core, "DELETE", "/pools", (req) => remove(core, req));
  route(core, "DELETE", "/pools/{poolid}", (req) => remove(core, req));
}
