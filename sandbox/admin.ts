/**
 * Test-control surface (outside `/api2/json`): fault injection, task failures, lock holds,
 * ticket expiry, task durations, counters, volume markers, users/tokens/ACLs, metrics.
 * `adminOps(core)` is the one implementation; the in-process `SandboxAdmin` and the HTTP
 * endpoints under `/_sandbox/` (for tests in other processes, e.g. the Pulumi CLI's
 * provider) both call it. HTTP callers authenticate with the root API token or with
 * `X-Sandbox-Admin: <adminSecret>` from the connection file.
 */
import type * as http from "node:http";
import * as crypto from "node:crypto";
import type { Core, Violation } from "./core";
import { NO_WORKER_TASK_STATUS, type FaultSpec, type GhostTask } from "./faults";
import { formatUpid } from "../provider/proxmox/upid";
import type { TaskFailure } from "./tasks";
import { ApiError } from "./http/errors";
import { parseConf, printConf } from "./model/lxc/config";
import { setDhcp, type DhcpRule } from "./model/lxc/dhcp";
import { addHaResource, setHaDelay } from "./model/lxc/ha";

export interface SandboxCounters {
  requests: Record<string, number>;
  violations: Violation[];
  violationCount: number;
}

export interface AclSpec {
  path: string;
  roles: string[];
  users?: string[];
  tokens?: string[];
  propagate?: 0 | 1;
  delete?: boolean;
}

export interface SandboxAdmin {
  addFault(spec: FaultSpec): Promise<void>;
  clearFaults(): Promise<void>;
  failTask(spec: TaskFailure): Promise<void>;
  holdLock(vmid: number, lock: string, seconds: number): Promise<void>;
  /** The next PUT config that hotplugs `key` on a running CT fails with 400 `unable to hotplug <key>: <message>`. */
  failHotplug(spec: { vmid?: number; key: string; message: string; times?: number }): Promise<void>;
  expireTickets(): Promise<void>;
  /** DHCP/SLAAC answers for GET …/interfaces: `{answers: false}` = never, `delayMs` = late (model/lxc/dhcp.ts). */
  setDhcp(rule: DhcpRule & { reset?: boolean }): Promise<void>;
  setTaskDuration(ms: number | Record<string, number>): Promise<void>;
  counters(): Promise<SandboxCounters>;
  resetCounters(): Promise<void>;
  writeVolumeMarker(volid: string, text: string): Promise<void>;
  readVolumeMarker(volid: string): Promise<string | undefined>;
  createUser(userid: string, opts?: { password?: string; enable?: 0 | 1; expire?: number; comment?: string }): Promise<void>;
  createToken(userid: string, tokenid: string, opts?: { privsep?: 0 | 1; expire?: number; comment?: string }): Promise<{ fullTokenid: string; value: string; apiToken: string }>;
  setAcl(spec: AclSpec): Promise<void>;
  /** The raw config file text of a CT (for assertions on the on-disk format). */
  rawConfig(vmid: number): Promise<string | undefined>;
  prometheus(): Promise<string>;
  /** Make a CT an HA resource (`ha-manager add ct:<vmid> --state …`), as create `ha-managed=1` does. */
  haManage(vmid: number, state?: "started" | "stopped"): Promise<void>;
  /** How long the simulated HA manager waits before acting on a queued request. */
  setHaDelay(ms: number): Promise<void>;
}

/** The in-process implementation (also serves the HTTP endpoints). */
export function adminOps(core: Core): SandboxAdmin {
  const findVolumeNode = (volid: string): string | undefined => core.nodes.find((n) => core.storage.volumeExists(n, volid));
  core.faults.onNoWorker ??= (ghost) => listNeverRunTask(core, ghost);
  return {
    async addFault(spec) {
      core.faults.add(spec);
    },
    async clearFaults() {
      core.faults.clear();
      core.tasks.clearFailures();
      core.hotplugFailures.length = 0;
    },
    async failHotplug(spec) {
      if (!spec.key || !spec.message) throw new ApiError(400, "failHotplug needs 'key' and 'message'");
      core.hotplugFailures.push({ vmid: spec.vmid === undefined ? undefined : Number(spec.vmid), key: spec.key, message: spec.message, times: spec.times ?? 1 });
    },
    async failTask(spec) {
      if (!spec.exitstatus) throw new ApiError(400, "failTask needs 'exitstatus'");
      core.tasks.addFailure(spec);
    },
    async holdLock(vmid, lock, seconds) {
      if (lock === "flock") {
        // Hold the config flock itself: waiters time out with PVE's text (§4.12).
        const release = await core.flock.acquire(vmid, 3600);
        setTimeout(release, seconds * 1000).unref();
        return;
      }
      const rec = core.store.state.cts[String(vmid)];
      if (!rec) throw new ApiError(500, `Configuration file 'nodes/${core.nodes[0]}/lxc/${vmid}.conf' does not exist`);
      const conf = parseConf(rec.conf);
      conf.keys.lock = lock;
      rec.conf = printConf(conf);
      core.save();
      const prev = core.heldLocks.get(vmid);
      if (prev) clearTimeout(prev);
      const t = setTimeout(() => {
        core.heldLocks.delete(vmid);
        const r = core.store.state.cts[String(vmid)];
        if (!r) return;
        const c = parseConf(r.conf);
        if (c.keys.lock === lock) {
          delete c.keys.lock;
          r.conf = printConf(c);
          core.save();
        }
      }, seconds * 1000);
      t.unref();
      core.heldLocks.set(vmid, t);
    },
    async expireTickets() {
      core.auth.expireTickets();
    },
    async setDhcp(rule) {
      setDhcp(core, rule);
    },
    async setTaskDuration(ms) {
      core.tasks.setDuration(ms);
    },
    async counters() {
      return { requests: { ...core.counters.requests }, violations: [...core.counters.violations], violationCount: core.counters.violations.length };
    },
    async resetCounters() {
      core.counters.requests = {};
      core.counters.violations = [];
    },
    async writeVolumeMarker(volid, text) {
      const node = findVolumeNode(volid);
      if (!node) throw new ApiError(500, `volume '${volid}' does not exist`);
      const d = core.storage.readVolume(node, volid)!;
      d.marker = text;
      core.storage.writeVolume(node, volid, d);
    },
    async readVolumeMarker(volid) {
      const node = findVolumeNode(volid);
      return node ? core.storage.readVolume(node, volid)?.marker : undefined;
    },
    async createUser(userid, opts) {
      core.auth.createUser(userid, opts);
    },
    async createToken(userid, tokenid, opts) {
      const t = core.auth.createToken(userid, tokenid, opts);
      return { ...t, apiToken: `${t.fullTokenid}=${t.value}` };
    },
    async setAcl(spec) {
      core.auth.setAcl(spec);
    },
    async rawConfig(vmid) {
      return core.store.state.cts[String(vmid)]?.conf;
    },
    async prometheus() {
      return core.metrics.toPrometheus();
    },
    async haManage(vmid, state = "started") {
      if (!core.store.state.cts[String(vmid)]) throw new ApiError(500, `Configuration file 'nodes/${core.nodes[0]}/lxc/${vmid}.conf' does not exist`);
      addHaResource(core, vmid, state);
    },
    async setHaDelay(ms) {
      setHaDelay(core, ms);
    },
  };
}

/** A worker that was registered but killed before it ran: finished, empty log (faults.ts `no-worker`). */
function listNeverRunTask(core: Core, g: GhostTask): void {
  const st = core.store.state;
  const starttime = Math.floor(Date.now() / 1000);
  const pid = st.nextPid++;
  const upid = formatUpid({ node: g.node, pid, pstart: 0x0034c5d6, starttime, type: g.type, id: g.id, user: g.user });
  st.tasks.push({ upid, node: g.node, pid, pstart: 0x0034c5d6, starttime, type: g.type, id: g.id, user: g.user, endtime: starttime, status: NO_WORKER_TASK_STATUS, log: [] });
  core.save();
}

type Reply = { status: number; reason?: string; body?: string; contentType?: string };

function readJsonBody(req: http.IncomingMessage): Promise<any> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const s = Buffer.concat(chunks).toString("utf8");
      try {
        resolve(s ? JSON.parse(s) : {});
      } catch (e) {
        reject(new ApiError(400, `invalid JSON body: ${(e as Error).message}`));
      }
    });
    req.on("error", reject);
  });
}

function isAdmin(core: Core, req: http.IncomingMessage): boolean {
  const secret = String(req.headers["x-sandbox-admin"] ?? "");
  const expected = core.store.state.secrets.adminSecret;
  if (secret && secret.length === expected.length && crypto.timingSafeEqual(Buffer.from(secret), Buffer.from(expected))) return true;
  try {
    const id = core.auth.authenticate(req.headers);
    return id.userid === "root@pam";
  } catch {
    return false;
  }
}

/** Admin HTTP endpoints; every reply is `{"data": ...}` like the API. */
export async function handleAdmin(core: Core, req: http.IncomingMessage, method: string, path: string, url: URL): Promise<Reply> {
  if (!isAdmin(core, req)) {
    req.resume();
    return { status: 401, reason: "No ticket" };
  }
  const ops = adminOps(core);
  const ok = (data: unknown = null): Reply => ({ status: 200, body: JSON.stringify({ data }), contentType: "application/json;charset=UTF-8" });
  const body = method === "POST" || method === "PUT" ? await readJsonBody(req) : (req.resume(), {});
  const q = Object.fromEntries(url.searchParams);
  const key = `${method} ${path}`;
  try {
    switch (key) {
      case "POST /faults": return ok(await ops.addFault(body));
      case "DELETE /faults": return ok(await ops.clearFaults());
      case "GET /faults": return ok(core.faults.pending());
      case "POST /task-failures": return ok(await ops.failTask(body));
      case "POST /hotplug-failures": return ok(await ops.failHotplug(body));
      case "POST /locks": return ok(await ops.holdLock(Number(body.vmid), String(body.lock), Number(body.seconds)));
      case "POST /expire-tickets": return ok(await ops.expireTickets());
      case "PUT /dhcp": return ok(await ops.setDhcp(body));
      case "PUT /task-duration": return ok(await ops.setTaskDuration(body.byType ?? Number(body.ms)));
      case "GET /counters": return ok(await ops.counters());
      case "DELETE /counters": return ok(await ops.resetCounters());
      case "PUT /volume-marker": return ok(await ops.writeVolumeMarker(String(body.volid), String(body.text)));
      case "GET /volume-marker": return ok((await ops.readVolumeMarker(String(q.volid))) ?? null);
      case "POST /users": return ok(await ops.createUser(String(body.userid), body));
      case "POST /tokens": return ok(await ops.createToken(String(body.userid), String(body.tokenid), body));
      case "PUT /acl": return ok(await ops.setAcl(body));
      case "GET /raw-config": return ok((await ops.rawConfig(Number(q.vmid))) ?? null);
      case "POST /ha-resources": return ok(await ops.haManage(Number(body.vmid), body.state));
      case "PUT /ha-delay": return ok(await ops.setHaDelay(Number(body.ms)));
      case "GET /metrics": return { status: 200, body: await ops.prometheus(), contentType: "text/plain; version=0.0.4" };
      default: return { status: 404, reason: "Not Found", body: JSON.stringify({ data: null, message: `no admin endpoint '${key}'\n` }) };
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { status: e instanceof ApiError ? e.status : 500, reason: msg.split("\n")[0], body: JSON.stringify({ data: null, message: msg.endsWith("\n") ? msg : `${msg}\n` }) };
  }
}
