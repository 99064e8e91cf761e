/**
 * LXC endpoints (BEHAVIOR.md 4, 5). Every call that starts a worker returns its UPID and
 * has an `...AndWait` variant returning the TaskResult.
 *
 * Non-idempotent POSTs pass a `verifyEffect` that looks for the worker task this client
 * started (same type, same id, our principal, since the call began — by the server's
 * clock), so a create/start/snapshot whose answer was lost is found instead of repeated.
 */
import { z } from "zod";
import type { PveClient, RequestOptions } from "./client";
import type { Logger } from "../logging";
import { zBool, zInt, zNum, zStr } from "./coerce";
import type { Params, ParamValue } from "./encode";
import { LOCK_RES, PveApiError, PveConfigChangedError, PveTaskFailedError } from "./errors";
import type { TaskResult, WaitOptions } from "./tasks";
import { lxcKeyFormat } from "./schema";
import { parsePropertyString, printPropertyString } from "./propertyString";
import { sleep } from "./retry";
import { parseUpid } from "./upid";
import type { VmidSource } from "./vmids";

const enc = encodeURIComponent;

/** GET …/config: the keys we read are typed; everything else passes through as PVE sent it. */
export const LxcConfigSchema = z
  .object({
    digest: z.string().optional(),
    hostname: zStr.optional(),
    description: z.string().optional(),
    ostype: z.string().optional(),
    arch: z.string().optional(),
    memory: zNum.optional(),
    swap: zNum.optional(),
    cores: zNum.optional(),
    cpulimit: zNum.optional(),
    cpuunits: zNum.optional(),
    rootfs: z.string().optional(),
    unprivileged: zBool.optional(),
    onboot: zBool.optional(),
    protection: zBool.optional(),
    template: zBool.optional(),
    lock: z.string().optional(),
    tags: z.string().optional(),
    features: z.string().optional(),
    nameserver: z.string().optional(),
    searchdomain: z.string().optional(),
    startup: z.string().optional(),
    timezone: z.string().optional(),
    entrypoint: z.string().optional(),
    env: z.string().optional(),
    lxc: z.array(z.array(z.string())).optional(),
  })
  .passthrough();
export type LxcConfig = z.output<typeof LxcConfigSchema> & Record<string, unknown>;

export const LxcStatusSchema = z
  .object({
    vmid: zInt,
    status: z.string(),
    name: zStr.optional(),
    lock: z.string().optional(),
    template: zBool.optional(),
    tags: z.string().optional(),
    maxmem: zNum.optional(),
    maxswap: zNum.optional(),
    maxdisk: zNum.optional(),
    mem: zNum.optional(),
    disk: zNum.optional(),
    cpu: zNum.optional(),
    cpus: zNum.optional(),
    uptime: zNum.optional(),
    pid: zInt.optional(),
  })
  .passthrough();
export type LxcStatus = z.output<typeof LxcStatusSchema>;

export const PendingItemSchema = z
  .object({ key: z.string(), value: z.unknown().optional(), pending: z.unknown().optional(), delete: zInt.optional() })
  .passthrough();
export type PendingItem = z.output<typeof PendingItemSchema>;

export const SnapshotSchema = z
  .object({
    name: z.string(),
    snaptime: zInt.optional(),
    description: z.string().optional(),
    parent: z.string().optional(),
    snapstate: z.string().optional(),
    running: zBool.optional(),
    digest: z.string().optional(),
  })
  .passthrough();
export type Snapshot = z.output<typeof SnapshotSchema>;

/** One entry of `ip-addresses`: every address of the interface, in the kernel's order. */
export const InterfaceAddressSchema = z
  .object({ "ip-address": z.string().optional(), "ip-address-type": z.string().optional(), prefix: zInt.optional() })
  .passthrough();
export type LxcInterfaceAddress = z.output<typeof InterfaceAddressSchema>;

/**
 * GET …/interfaces entry. Read `ip-addresses`: `inet`/`inet6` hold only the LAST address of
 * each family (PVE overwrites them per address, link-local comes last), so they miss
 * global IPv6 addresses on a real host.
 */
export const InterfaceSchema = z
  .object({
    name: z.string(),
    hwaddr: z.string().optional(),
    inet: z.string().optional(),
    inet6: z.string().optional(),
    "ip-addresses": z.array(InterfaceAddressSchema).optional(),
  })
  .passthrough();
export type LxcInterface = z.output<typeof InterfaceSchema>;

export const MigratePreconditionSchema = z
  .object({
    running: zBool.optional(),
    "allowed-nodes": z.array(z.string()).optional(),
    "not-allowed-nodes": z.record(z.unknown()).optional(),
  })
  .passthrough();

const UpidSchema = z.string();
const UpidOrNull = z.string().nullable();

/** Config values for create/update: scalars, or objects printed as property strings. */
export type LxcConfigInput = Record<string, ParamValue>;

export interface CallOpts {
  logger?: Logger;
}

/** Worker-start failures are retried within the operation's timeout (the task wait's), when given. */
function retryBudget(opts: CallOpts): number | undefined {
  return (opts as WaitCallOpts).wait?.timeoutMs;
}
export interface WaitCallOpts extends CallOpts {
  wait?: Omit<WaitOptions, "logger">;
}

export interface CreateContainerOptions {
  node: string;
  /** Omit to allocate one (nextid, retried on collisions). */
  vmid?: number;
  /** Create parameters (ostemplate, rootfs, net0, ...); objects become property strings. */
  config: LxcConfigInput;
  /** Wait for the vzcreate task (default true). */
  wait?: boolean;
  waitOptions?: Omit<WaitOptions, "logger">;
  logger?: Logger;
  /** How many VMIDs to try when allocating (default 30). */
  maxAttempts?: number;
  /** Where allocated VMIDs come from (vmids.ts, one per run); default: nextid per attempt. */
  vmids?: VmidSource;
}

export interface CreateContainerResult {
  vmid: number;
  upid: string;
  /** Set when waited for. */
  task?: TaskResult;
}

export interface UpdateConfigOptions extends CallOpts {
  /** Keys to set (objects become property strings). */
  set?: LxcConfigInput;
  /** Keys to delete. */
  delete?: string[];
  /** Pending changes to revert. */
  revert?: string[];
  /** Digest of the config this change is based on (optimistic concurrency, BEHAVIOR.md 1.4). */
  digest?: string;
}

const ALREADY_EXISTS = /already exists/;
/** Tasks that only hand a request to the HA manager (`mgr:PVE/API2/…` `ha*` workers). */
const HA_TASK = /^ha(start|stop|migrate|shutdown)$/;

export class LxcApi {
  constructor(private readonly client: PveClient) {}

  private base(node: string, vmid: number): string {
    return `/nodes/${enc(node)}/lxc/${vmid}`;
  }

  /**
   * verifyEffect for a POST that starts a task of `type` with id `id`: the task if this
   * client started one since `sinceSec`, else false (safe to send again).
   */
  private taskEffect(node: string, type: string, id: string | number, sinceSec: number, logger?: Logger): () => Promise<string | false> {
    return async () => (await this.client.tasks.findRecent(node, { type, id, sinceSec }, logger)) ?? false;
  }

  /** Server time (s) a little before now: the lower bound for tasks this call starts. */
  private since(): number {
    return Math.floor(this.client.serverNow() / 1000) - 2;
  }

  private startTask(path: string, params: Params | undefined, node: string, type: string, id: string | number, opts: CallOpts & Pick<RequestOptions, "lockWaitMs"> = {}) {
    return this.client.post(path, params, {
      schema: UpidSchema,
      logger: opts.logger,
      lockWaitMs: opts.lockWaitMs,
      retryBudgetMs: retryBudget(opts),
      verifyEffect: this.taskEffect(node, type, id, this.since(), opts.logger),
    });
  }

  private async andWait(upid: string | null, opts: WaitCallOpts): Promise<TaskResult | null> {
    if (!upid) return null;
    return this.client.tasks.wait(upid, { ...(opts.wait ?? {}), logger: opts.logger });
  }

  /**
   * Start a worker and wait for it. Many lock checks happen inside the worker (start,
   * snapshot, rollback — BEHAVIOR.md 4.5, 5), so a task that failed on `CT is locked` or a
   * flock timeout did nothing and is started again, within the client's `lockWaitMs`.
   */
  private async runTask(start: () => Promise<string | null>, opts: WaitCallOpts): Promise<TaskResult | null> {
    const deadline = Date.now() + this.client.retryPolicy.lockWaitMs;
    let delay = 250;
    for (;;) {
      const upid = await start();
      try {
        return await this.andWait(upid, opts);
      } catch (e) {
        if (e instanceof PveTaskFailedError && LOCK_RES.some((r) => r.test(e.exitstatus)) && Date.now() + delay < deadline) {
          (opts.logger ?? this.client.log).debug({ upid, exitstatus: e.exitstatus, delayMs: delay }, "task failed on a lock; starting it again");
          await sleep(delay);
          delay = Math.min(3000, delay * 1.5);
          continue;
        }
        throw e;
      }
    }
  }

  // ---- list / create / delete ------------------------------------------------------

  list(node: string, opts: CallOpts = {}): Promise<LxcStatus[]> {
    return this.client.get(`/nodes/${enc(node)}/lxc`, undefined, { schema: z.array(LxcStatusSchema), logger: opts.logger });
  }

  /** POST /nodes/{node}/lxc → vzcreate UPID. */
  create(node: string, vmid: number, config: LxcConfigInput, opts: CallOpts = {}): Promise<string> {
    const findTask = this.taskEffect(node, "vzcreate", vmid, this.since(), opts.logger);
    return this.client.post(`/nodes/${enc(node)}/lxc`, { ...config, vmid }, {
      schema: UpidSchema,
      logger: opts.logger,
      retryBudgetMs: retryBudget(opts),
      // The task search reaches 2 s back (the server clock is known to 1 s), so it can find
      // an earlier create of the same vmid whose CT was destroyed since (vmid reused by
      // nextid right after a delete). That task is not ours if the CT is gone: send the
      // create again rather than report a CT that does not exist (found by test/resilience:
      // a 502 on create right after another CT with that vmid was deleted).
      verifyEffect: async () => {
        const upid = await findTask();
        if (!upid) return false;
        return (await this.client.cluster.findGuest(vmid)) ? upid : false;
      },
    });
  }

  /**
   * Create a CT. Without `vmid`, allocates one: GET /cluster/nextid, create, and on an
   * `already exists` race (synchronous, or inside the task when two workers passed the
   * check together — BEHAVIOR.md 4.2) tries again with a fresh, increasingly spread
   * candidate. Nothing is reserved by nextid (8.2), so parallel creates do collide; each
   * collision costs one round trip, never a duplicate CT.
   */
  async createContainer(o: CreateContainerOptions): Promise<CreateContainerResult> {
    const auto = o.vmid === undefined;
    const max = auto ? (o.maxAttempts ?? 30) : 1;
    const log = o.logger ?? this.client.log;
    let lastErr: unknown;
    for (let attempt = 1; attempt <= max; attempt++) {
      const vmid = o.vmid ?? (o.vmids ? await o.vmids.next() : await this.pickVmid(attempt));
      let upid: string;
      try {
        upid = await this.create(o.node, vmid, o.config, { logger: o.logger, wait: o.waitOptions } as WaitCallOpts);
      } catch (e) {
        if (auto && e instanceof PveApiError && ALREADY_EXISTS.test(e.pveMessage)) {
          lastErr = e;
          o.vmids?.taken(vmid);
          log.debug({ vmid, attempt }, "vmid taken by a concurrent create; trying another");
          await sleep(Math.random() * 20 * attempt);
          continue;
        }
        throw e;
      }
      if (o.wait === false) return { vmid, upid };
      try {
        const task = await this.client.tasks.wait(upid, { ...(o.waitOptions ?? {}), logger: o.logger });
        return { vmid, upid, task };
      } catch (e) {
        if (auto && e instanceof PveTaskFailedError && ALREADY_EXISTS.test(e.exitstatus) && /^unable to create CT \d+ - CT \d+ already exists/.test(e.exitstatus)) {
          lastErr = e;
          o.vmids?.taken(vmid);
          log.debug({ vmid, attempt }, "vmid taken inside the create task; trying another");
          continue;
        }
        throw e;
      }
    }
    throw new PveApiError(
      { status: 0, method: "POST", endpoint: "/nodes/{node}/lxc", path: `/nodes/${o.node}/lxc`, pveMessage: String((lastErr as Error)?.message ?? "") },
      `Could not allocate a free VMID on ${o.node} after ${max} attempts (concurrent creates kept taking the candidates). Retry, or set vmid explicitly.`,
    );
  }

  /** nextid; on later attempts a random candidate above it, checked with nextid?vmid=. */
  private async pickVmid(attempt: number): Promise<number> {
    const next = await this.client.cluster.nextId();
    if (attempt === 1) return next;
    const spread = Math.min(64, attempt * 4);
    for (let i = 0; i < 3; i++) {
      const candidate = next + Math.floor(Math.random() * spread);
      if (candidate === next || (await this.client.cluster.isVmidFree(candidate))) return candidate;
    }
    return next;
  }

  async createAndWait(node: string, vmid: number, config: LxcConfigInput, opts: WaitCallOpts = {}): Promise<TaskResult> {
    return (await this.runTask(() => this.create(node, vmid, config, opts), opts))!;
  }

  /**
   * DELETE /nodes/{node}/lxc/{vmid} → vzdestroy UPID. If an earlier attempt's answer was
   * lost and the CT is gone now, resolves to null (done).
   */
  destroy(node: string, vmid: number, params: { purge?: boolean; force?: boolean; "destroy-unreferenced-disks"?: boolean } = {}, opts: CallOpts = {}): Promise<string | null> {
    return this.client.delete(this.base(node, vmid), params, {
      schema: UpidOrNull,
      logger: opts.logger,
      retryBudgetMs: retryBudget(opts),
      // After a worker-start failure: done if the CT is gone already.
      verifyEffect: async () => !(await this.client.cluster.findGuest(vmid)),
    });
  }

  async destroyAndWait(node: string, vmid: number, params: Parameters<LxcApi["destroy"]>[2] = {}, opts: WaitCallOpts = {}): Promise<TaskResult | null> {
    return this.runTask(() => this.destroy(node, vmid, params, opts), opts);
  }

  // ---- config ------------------------------------------------------------------------

  /** GET …/config (pending merged in unless `current`, BEHAVIOR.md 1.4). */
  getConfig(node: string, vmid: number, q: { current?: boolean; snapshot?: string } = {}, opts: CallOpts = {}): Promise<LxcConfig> {
    return this.client.get(`${this.base(node, vmid)}/config`, { current: q.current, snapshot: q.snapshot }, { schema: LxcConfigSchema, logger: opts.logger }) as Promise<LxcConfig>;
  }

  /**
   * PUT …/config (synchronous, returns nothing). With `digest` a lost answer is resolved by
   * reading the config back: our values present → done; digest unchanged → sent again;
   * otherwise PveConfigChangedError (someone else changed it).
   */
  async updateConfig(node: string, vmid: number, u: UpdateConfigOptions): Promise<void> {
    const params: Params = { ...(u.set ?? {}) };
    if (u.delete?.length) params.delete = u.delete;
    if (u.revert?.length) params.revert = u.revert;
    if (u.digest) params.digest = u.digest;
    const path = `${this.base(node, vmid)}/config`;
    if (!u.digest) {
      await this.client.put(path, params, { logger: u.logger });
      return;
    }
    await this.client.put(path, params, {
      logger: u.logger,
      idempotent: false,
      verifyEffect: async () => {
        const cfg = await this.getConfig(node, vmid, {}, { logger: u.logger });
        if (configMatches(cfg, u)) return true;
        if (cfg.digest === u.digest) return false;
        throw new PveConfigChangedError({ status: 500, method: "PUT", endpoint: "/nodes/{node}/lxc/{vmid}/config", path, pveMessage: "digest changed while the request was in flight" });
      },
    });
  }

  /** GET …/pending */
  pending(node: string, vmid: number, opts: CallOpts = {}): Promise<PendingItem[]> {
    return this.client.get(`${this.base(node, vmid)}/pending`, undefined, { schema: z.array(PendingItemSchema), logger: opts.logger });
  }

  // ---- status ------------------------------------------------------------------------

  status(node: string, vmid: number, opts: CallOpts = {}): Promise<LxcStatus> {
    return this.client.get(`${this.base(node, vmid)}/status/current`, undefined, { schema: LxcStatusSchema, logger: opts.logger });
  }

  start(node: string, vmid: number, params: { skiplock?: boolean; debug?: boolean } = {}, opts: CallOpts = {}): Promise<string> {
    return this.startTask(`${this.base(node, vmid)}/status/start`, params, node, "vzstart", vmid, opts);
  }
  stop(node: string, vmid: number, params: { skiplock?: boolean; "overrule-shutdown"?: boolean } = {}, opts: CallOpts = {}): Promise<string> {
    return this.startTask(`${this.base(node, vmid)}/status/stop`, params, node, "vzstop", vmid, opts);
  }
  shutdown(node: string, vmid: number, params: { timeout?: number; forceStop?: boolean } = {}, opts: CallOpts = {}): Promise<string> {
    return this.startTask(`${this.base(node, vmid)}/status/shutdown`, params, node, "vzshutdown", vmid, opts);
  }
  reboot(node: string, vmid: number, params: { timeout?: number } = {}, opts: CallOpts = {}): Promise<string> {
    return this.startTask(`${this.base(node, vmid)}/status/reboot`, params, node, "vzreboot", vmid, opts);
  }
  /** Start and wait until it runs (also for an HA-managed CT, whose `hastart` task only queues the request). */
  async startAndWait(node: string, vmid: number, params: Parameters<LxcApi["start"]>[2] = {}, opts: WaitCallOpts = {}) {
    return this.settleHa((await this.runTask(() => this.start(node, vmid, params, opts), opts))!, node, vmid, { status: "running" }, opts);
  }
  async stopAndWait(node: string, vmid: number, params: Parameters<LxcApi["stop"]>[2] = {}, opts: WaitCallOpts = {}) {
    return this.settleHa((await this.runTask(() => this.stop(node, vmid, params, opts), opts))!, node, vmid, { status: "stopped" }, opts);
  }
  async shutdownAndWait(node: string, vmid: number, params: Parameters<LxcApi["shutdown"]>[2] = {}, opts: WaitCallOpts = {}) {
    return this.settleHa((await this.runTask(() => this.shutdown(node, vmid, params, opts), opts))!, node, vmid, { status: "stopped" }, opts);
  }
  async rebootAndWait(node: string, vmid: number, params: Parameters<LxcApi["reboot"]>[2] = {}, opts: WaitCallOpts = {}) {
    return (await this.runTask(() => this.reboot(node, vmid, params, opts), opts))!;
  }

  /**
   * For an HA-managed CT, PVE answers start/stop/shutdown/migrate with an `hastart`/`hastop`/
   * `hamigrate` task that ends as soon as the request is queued with the HA manager; the CT
   * changes later (seconds to minutes). Wait for the real state — status, and node for a
   * migration — within the same timeout; other tasks pass through untouched.
   */
  private async settleHa(task: TaskResult, node: string, vmid: number, want: { status?: "running" | "stopped"; node?: string }, opts: WaitCallOpts): Promise<TaskResult> {
    const type = parseUpid(task.upid).type;
    if (!HA_TASK.test(type)) return task;
    const log = opts.logger ?? this.client.log;
    const timeoutMs = opts.wait?.timeoutMs ?? 10 * 60_000;
    const deadline = Date.now() + timeoutMs;
    log.info({ vmid, task: type, want }, "HA-managed container: waiting for the HA manager to carry out the request");
    for (let delay = 250; ; delay = Math.min(delay * 2, 3000)) {
      const at = want.node ? ((await this.client.cluster.findGuest(vmid))?.node ?? node) : node;
      const current = at === (want.node ?? node) && want.status ? await this.status(at, vmid, opts) : undefined;
      const status = current?.status;
      if (at === (want.node ?? node) && (!want.status || status === want.status)) return task;
      if ((current?.ha as { state?: string } | undefined)?.state === "error") {
        throw new PveApiError(
          { status: 0, method: "POST", endpoint: "/nodes/{node}/lxc/{vmid}/status", path: this.base(node, vmid) },
          `CT ${vmid} is HA-managed and the HA manager put it into the 'error' state while carrying out ${type}. Check \`ha-manager status\` and the node's log, then clear it (ha-manager set ct:${vmid} --state disabled).`,
        );
      }
      if (Date.now() >= deadline) {
        throw new PveApiError(
          { status: 0, method: "POST", endpoint: "/nodes/{node}/lxc/{vmid}/status", path: this.base(node, vmid) },
          `CT ${vmid} is HA-managed: its ${type} request was queued, but after ${Math.round(timeoutMs / 1000)} s it is ${want.node ? `on ${at}` : ""}${want.node && want.status ? ", " : ""}${want.status ? status ?? "in an unknown state" : ""} ` +
            `instead of ${[want.node ? `on ${want.node}` : "", want.status ?? ""].filter(Boolean).join(", ")}. Check \`ha-manager status\` on the cluster, or raise the resource's timeouts.`,
        );
      }
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
    }
  }

  // ---- disks, migrate, clone, template ------------------------------------------------

  /** PUT …/resize → resize UPID. Not idempotent (`+1G`), so verified like a POST. */
  resize(node: string, vmid: number, params: { disk: string; size: string; digest?: string }, opts: CallOpts = {}): Promise<string> {
    return this.client.put(`${this.base(node, vmid)}/resize`, params, {
      schema: UpidSchema,
      logger: opts.logger,
      retryBudgetMs: retryBudget(opts),
      idempotent: false,
      verifyEffect: this.taskEffect(node, "resize", vmid, this.since(), opts.logger),
    });
  }
  async resizeAndWait(node: string, vmid: number, params: Parameters<LxcApi["resize"]>[2], opts: WaitCallOpts = {}) {
    return (await this.runTask(() => this.resize(node, vmid, params, opts), opts))!;
  }

  /** POST …/move_volume → move_volume UPID (BEHAVIOR.md 4.7). */
  moveVolume(
    node: string,
    vmid: number,
    params: { volume: string; storage?: string; "target-vmid"?: number; "target-volume"?: string; delete?: boolean; digest?: string; "target-digest"?: string; bwlimit?: number },
    opts: CallOpts = {},
  ): Promise<string> {
    // The task id is the vmid, or `100-mp0>101-mp1` when moving to another CT.
    const id = params["target-vmid"] !== undefined ? `${vmid}-${params.volume}>${params["target-vmid"]}-${params["target-volume"] ?? params.volume}` : vmid;
    return this.startTask(`${this.base(node, vmid)}/move_volume`, params, node, "move_volume", id, opts);
  }
  async moveVolumeAndWait(node: string, vmid: number, params: Parameters<LxcApi["moveVolume"]>[2], opts: WaitCallOpts = {}) {
    return (await this.runTask(() => this.moveVolume(node, vmid, params, opts), opts))!;
  }

  /** GET …/migrate?target= — can it move there (BEHAVIOR.md 4.8)? */
  migratePrecondition(node: string, vmid: number, target?: string, opts: CallOpts = {}) {
    return this.client.get(`${this.base(node, vmid)}/migrate`, { target }, { schema: MigratePreconditionSchema, logger: opts.logger });
  }

  migrate(node: string, vmid: number, params: { target: string; restart?: boolean; online?: boolean; timeout?: number; "target-storage"?: string; bwlimit?: number }, opts: CallOpts = {}): Promise<string> {
    return this.startTask(`${this.base(node, vmid)}/migrate`, params, node, "vzmigrate", vmid, opts);
  }
  /** Migrate and wait until the CT is on the target (an HA-managed CT's `hamigrate` task ends when queued). */
  async migrateAndWait(node: string, vmid: number, params: Parameters<LxcApi["migrate"]>[2], opts: WaitCallOpts = {}) {
    const task = (await this.runTask(() => this.migrate(node, vmid, params, opts), opts))!;
    return this.settleHa(task, node, vmid, { node: params.target, status: params.restart ? "running" : undefined }, opts);
  }

  /** POST …/clone → vzclone UPID (task id = the SOURCE vmid, BEHAVIOR.md 3.2). */
  clone(
    node: string,
    vmid: number,
    params: { newid: number; full?: boolean; hostname?: string; description?: string; pool?: string; snapname?: string; storage?: string; target?: string; bwlimit?: number },
    opts: CallOpts = {},
  ): Promise<string> {
    return this.startTask(`${this.base(node, vmid)}/clone`, params, node, "vzclone", vmid, opts);
  }
  async cloneAndWait(node: string, vmid: number, params: Parameters<LxcApi["clone"]>[2], opts: WaitCallOpts = {}) {
    return (await this.runTask(() => this.clone(node, vmid, params, opts), opts))!;
  }

  /**
   * POST …/template. Returns null but forks a `vztemplate` worker (BEHAVIOR.md 3.2);
   * the AndWait variant finds that task and waits, then checks `template: 1`.
   */
  async template(node: string, vmid: number, opts: CallOpts = {}): Promise<void> {
    const since = this.since();
    await this.client.post(`${this.base(node, vmid)}/template`, undefined, {
      logger: opts.logger,
      verifyEffect: async () => {
        const cfg = await this.getConfig(node, vmid, {}, opts);
        if (cfg.template) return true;
        return (await this.client.tasks.findRecent(node, { type: "vztemplate", id: vmid, sinceSec: since }, opts.logger)) ?? false;
      },
    });
  }

  async templateAndWait(node: string, vmid: number, opts: WaitCallOpts = {}): Promise<TaskResult | null> {
    const since = this.since();
    await this.template(node, vmid, opts);
    const deadline = Date.now() + (opts.wait?.timeoutMs ?? 10 * 60_000);
    let delay = 50;
    for (;;) {
      const upid = await this.client.tasks.findRecent(node, { type: "vztemplate", id: vmid, sinceSec: since }, opts.logger);
      if (upid) return this.andWait(upid, opts);
      const cfg = await this.getConfig(node, vmid, {}, opts);
      if (cfg.template) return null;
      if (Date.now() > deadline) {
        throw new PveApiError(
          { status: 0, method: "POST", endpoint: "/nodes/{node}/lxc/{vmid}/template", path: `${this.base(node, vmid)}/template` },
          `CT ${vmid} did not become a template in time and no vztemplate task was found. Check the node's task list.`,
        );
      }
      await sleep(delay);
      delay = Math.min(2000, delay * 1.5);
    }
  }

  // ---- snapshots -----------------------------------------------------------------------

  /** GET …/snapshot (includes the `current` pseudo-entry, last). */
  listSnapshots(node: string, vmid: number, opts: CallOpts = {}): Promise<Snapshot[]> {
    return this.client.get(`${this.base(node, vmid)}/snapshot`, undefined, { schema: z.array(SnapshotSchema), logger: opts.logger });
  }

  createSnapshot(node: string, vmid: number, params: { snapname: string; description?: string }, opts: CallOpts = {}): Promise<string> {
    return this.startTask(`${this.base(node, vmid)}/snapshot`, params, node, "vzsnapshot", vmid, opts);
  }
  async createSnapshotAndWait(node: string, vmid: number, params: Parameters<LxcApi["createSnapshot"]>[2], opts: WaitCallOpts = {}) {
    return (await this.runTask(() => this.createSnapshot(node, vmid, params, opts), opts))!;
  }

  /** DELETE …/snapshot/{name} → vzdelsnapshot UPID (null if already gone after a lost answer). */
  deleteSnapshot(node: string, vmid: number, snapname: string, params: { force?: boolean } = {}, opts: CallOpts = {}): Promise<string | null> {
    return this.client.delete(`${this.base(node, vmid)}/snapshot/${enc(snapname)}`, params, {
      schema: UpidOrNull,
      logger: opts.logger,
      retryBudgetMs: retryBudget(opts),
      // After a worker-start failure: done if the snapshot is gone already.
      verifyEffect: async () => !(await this.listSnapshots(node, vmid, opts)).some((s) => s.name === snapname),
    });
  }
  async deleteSnapshotAndWait(node: string, vmid: number, snapname: string, params: { force?: boolean } = {}, opts: WaitCallOpts = {}) {
    return this.runTask(() => this.deleteSnapshot(node, vmid, snapname, params, opts), opts);
  }

  rollback(node: string, vmid: number, snapname: string, params: { start?: boolean } = {}, opts: CallOpts = {}): Promise<string> {
    return this.startTask(`${this.base(node, vmid)}/snapshot/${enc(snapname)}/rollback`, params, node, "vzrollback", vmid, opts);
  }
  async rollbackAndWait(node: string, vmid: number, snapname: string, params: { start?: boolean } = {}, opts: WaitCallOpts = {}) {
    return (await this.runTask(() => this.rollback(node, vmid, snapname, params, opts), opts))!;
  }

  getSnapshotConfig(node: string, vmid: number, snapname: string, opts: CallOpts = {}): Promise<LxcConfig> {
    return this.client.get(`${this.base(node, vmid)}/snapshot/${enc(snapname)}/config`, undefined, { schema: LxcConfigSchema, logger: opts.logger }) as Promise<LxcConfig>;
  }

  /** PUT …/snapshot/{name}/config — only `description` can change. */
  async updateSnapshotConfig(node: string, vmid: number, snapname: string, params: { description?: string }, opts: CallOpts = {}): Promise<void> {
    await this.client.put(`${this.base(node, vmid)}/snapshot/${enc(snapname)}/config`, params, { logger: opts.logger });
  }

  // ---- misc ----------------------------------------------------------------------------

  /** The CT's interfaces; `[]` for a stopped CT (PVE 8.4 answers `{"data": null}` then). */
  async interfaces(node: string, vmid: number, opts: CallOpts = {}): Promise<LxcInterface[]> {
    const list = await this.client.get(`${this.base(node, vmid)}/interfaces`, undefined, { schema: z.array(InterfaceSchema).nullable(), logger: opts.logger });
    return list ?? [];
  }

  /** GET …/feature?feature=snapshot|clone|copy → hasFeature. */
  async hasFeature(node: string, vmid: number, feature: "snapshot" | "clone" | "copy", snapname?: string, opts: CallOpts = {}): Promise<boolean> {
    const r = await this.client.get(`${this.base(node, vmid)}/feature`, { feature, snapname }, {
      schema: z.object({ hasFeature: zBool }).passthrough(),
      logger: opts.logger,
    });
    return r.hasFeature;
  }
}

/** Does `cfg` show the change `u` (set keys equal, deleted keys gone)? Property strings compared key by key. */
export function configMatches(cfg: Record<string, unknown>, u: UpdateConfigOptions): boolean {
  for (const [k, want] of Object.entries(u.set ?? {})) {
    if (want === undefined || want === null) continue;
    const have = cfg[k];
    if (have === undefined || have === null) return false;
    if (!valueMatches(k, have, want)) return false;
  }
  for (const k of u.delete ?? []) if (cfg[k] !== undefined) return false;
  return true;
}

function valueMatches(key: string, have: unknown, want: ParamValue): boolean {
  const fmt = lxcKeyFormat(key);
  const wantText =
    typeof want === "boolean" ? (want ? "1" : "0") : typeof want === "object" && !Array.isArray(want) && fmt ? printPropertyString(want as Record<string, string>, fmt) : Array.isArray(want) ? want.join(",") : String(want);
  const haveText = typeof have === "boolean" ? (have ? "1" : "0") : String(have);
  if (haveText.replace(/\n$/, "") === wantText.replace(/\n$/, "")) return true;
  if (typeof have === "number" || /^[+-]?\d+(\.\d+)?$/.test(haveText)) return Number(haveText) === Number(wantText);
  if (!fmt) return false;
  try {
    const h = parsePropertyString(haveText, fmt);
    const w = parsePropertyString(wantText, fmt);
    // Keys we asked for must match; PVE may add some (hwaddr, type=veth — BEHAVIOR.md 4.1).
    return Object.entries(w).every(([wk, wv]) => h[wk] === wv);
  } catch {
    return false;
  }
}
