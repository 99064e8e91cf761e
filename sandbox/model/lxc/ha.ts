/**
 * HA-managed CTs, as pve-container and pve-ha-manager treat them:
 *
 * - start/stop/shutdown/migrate of an HA-managed CT only *ask* the HA stack to act
 *   (`ctr:src/PVE/API2/LXC/Status.pm` `vm_start`/`vm_stop`/`vm_shutdown`, `ctr:src/PVE/API2/LXC.pm`
 *   `migrate_vm`): the API forks a `hastart`/`hastop`/`hamigrate` task that runs
 *   `ha-manager set|crm-command|migrate …` and ends as soon as the request is queued.
 * - The CT's state changes later, when the CRM/LRM picks the request up. The LRM then calls
 *   the same API itself (rpcenv type `ha`), which forks the ordinary `vzstart`/`vzstop`/
 *   `vzshutdown`/`vzmigrate` worker as root@pam (`pve-ha-manager:src/PVE/HA/Resources/PVECT.pm`).
 *   Here the "manager" acts after a configurable delay (`haDelayMs`, admin `setHaDelay`).
 * - status/current reports `ha: {managed, state, group?}` (`pve-ha-manager:src/PVE/HA/Config.pm`
 *   `get_service_status`): `state` is the manager's service state, not the requested one.
 *
 * A CT becomes HA-managed through create `ha-managed=1` (`ha-manager add ct:<vmid> --state
 * started|stopped`) or the admin op `haManage`.
 */
import type { ApiRequest, Core } from "../../core";
import type { Identity } from "../../auth";
import type { HaResource } from "../../state";

export type HaAction = "start" | "stop" | "shutdown" | "migrate";

/** What the LRM runs as: root@pam, like every HA-started worker on a real node. */
const LRM: Identity = { userid: "root@pam", authid: "root@pam", via: "ticket" };

interface HaSim {
  delayMs: number;
  timers: Set<NodeJS.Timeout>;
}

const sims = new WeakMap<Core, HaSim>();

function sim(core: Core): HaSim {
  let s = sims.get(core);
  if (!s) {
    s = { delayMs: 2000, timers: new Set() };
    sims.set(core, s);
  }
  return s;
}

/** How long the simulated HA manager waits before acting on a queued request. */
export function setHaDelay(core: Core, ms: number): void {
  sim(core).delayMs = ms;
}

/** Cancel requests the manager has not acted on yet (sandbox stop). */
export function stopHa(core: Core): void {
  const s = sim(core);
  for (const t of s.timers) clearTimeout(t);
  s.timers.clear();
}

function resources(core: Core): Record<string, HaResource> {
  return (core.store.state.ha ??= {});
}

/** The resources.cfg entry of a CT, if any (`service_is_configured`). */
export function haResource(core: Core, vmid: number): HaResource | undefined {
  return resources(core)[`ct:${vmid}`];
}

/** `vm_is_ha_managed`: configured and not `ignored` (ignored ones behave as unmanaged). */
export function isHaManaged(core: Core, vmid: number): boolean {
  const r = haResource(core, vmid);
  return !!r && r.state !== "ignored";
}

/** status/current `ha` (`get_service_status`). */
export function haStatus(core: Core, vmid: number): Record<string, unknown> {
  const r = haResource(core, vmid);
  if (!r || r.state === "ignored") return { managed: 0 };
  return { managed: 1, state: r.status, ...(r.group ? { group: r.group } : {}) };
}

/** `ha-manager add ct:<vmid> --state <state>`; the manager starts a stopped CT requested `started`. */
export function addHaResource(core: Core, vmid: number, state: HaResource["state"]): void {
  const running = !!core.store.state.cts[String(vmid)]?.running;
  // create start=1 adds the resource while its own vzstart is still running: nothing to do.
  const starting = [...core.tasks.running.values()].some((t) => t.type === "vzstart" && t.id === String(vmid));
  resources(core)[`ct:${vmid}`] = { state, status: running || (starting && state === "started") ? "started" : "stopped" };
  core.save();
  if (state === "started" && !running && !starting) schedule(core, vmid, "start", {});
}

export function removeHaResource(core: Core, vmid: number): void {
  delete resources(core)[`ct:${vmid}`];
  core.save();
}

const TASK_TYPE: Record<HaAction, string> = { start: "hastart", stop: "hastop", shutdown: "hastop", migrate: "hamigrate" };

/**
 * The API's answer for an HA-managed CT: a `hastart`/`hastop`/`hamigrate` task that only
 * queues the request (its log is the one line pve-container prints) and ends at once.
 */
export function haRequest(core: Core, req: ApiRequest, action: HaAction): string {
  const vmid = Number(req.params.vmid);
  const node = String(req.params.node);
  const params: Record<string, string> = {};
  if (action === "shutdown") params.timeout = String(req.params.timeout ?? 60);
  if (action === "migrate") params.target = String(req.params.target);
  const line = action === "start" ? `Requesting HA start for CT ${vmid}`
    : action === "migrate" ? `Requesting HA migration for CT ${vmid} to node ${params.target}`
    : `Requesting HA stop for CT ${vmid}`;
  return core.tasks.start({
    node, type: TASK_TYPE[action], id: String(vmid), who: req.id,
    worker: async (ctx) => {
      ctx.log(line);
      const r = haResource(core, vmid);
      if (r && action !== "migrate") {
        r.state = action === "start" ? "started" : "stopped";
        core.save();
      }
      schedule(core, vmid, action, params);
    },
  });
}

/** The manager picks the request up after the delay and calls the API as the LRM. */
function schedule(core: Core, vmid: number, action: HaAction, params: Record<string, string>): void {
  const s = sim(core);
  const t = setTimeout(() => {
    s.timers.delete(t);
    void act(core, vmid, action, params).catch((e) => core.log.warn({ vmid, action, err: String((e as Error).message ?? e) }, "HA manager request failed"));
  }, s.delayMs);
  t.unref();
  s.timers.add(t);
}

async function act(core: Core, vmid: number, action: HaAction, params: Record<string, string>): Promise<void> {
  const rec = core.store.state.cts[String(vmid)];
  const r = haResource(core, vmid);
  if (!rec || !r) return;
  const node = rec.node;
  const running = !!rec.running;
  let path: string;
  if (action === "start") {
    if (running) return void setStatus(core, vmid, "started");
    path = "status/start";
    setStatus(core, vmid, "started");
  } else if (action === "migrate") {
    path = "migrate";
    if (running) params = { ...params, restart: "1" };
    setStatus(core, vmid, "migrate");
  } else {
    if (!running) return void setStatus(core, vmid, "stopped");
    // A CRM `stop` with timeout 0 is a hard stop; otherwise a shutdown that forces after it.
    path = action === "stop" ? "status/stop" : "status/shutdown";
    if (action === "shutdown") params = { ...params, forceStop: "1" };
    setStatus(core, vmid, "request_stop");
  }
  const template = `/nodes/{node}/lxc/{vmid}/${path}`;
  const handler = core.routes.get(`POST ${template}`);
  if (!handler) return;
  const upid = (await handler({
    core, method: "POST", template, path: `/nodes/${node}/lxc/${vmid}/${path}`,
    params: { node, vmid: String(vmid), ...params }, id: LRM, haAgent: true,
  })) as string;
  await core.tasks.waitFor(upid, 24 * 3600 * 1000);
  // A start the LRM could not carry out leaves the service in `error` (after max_restart).
  const up = !!core.store.state.cts[String(vmid)]?.running;
  setStatus(core, vmid, up ? "started" : action === "start" ? "error" : "stopped");
}

function setStatus(core: Core, vmid: number, status: string): void {
  const r = haResource(core, vmid);
  if (!r) return;
  r.status = status;
  core.save();
}
