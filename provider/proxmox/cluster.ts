/**
 * Cluster-wide reads (BEHAVIOR.md 8): version, nodes, resources, nextid, pools.
 */
import { z } from "zod";
import type { PveClient } from "./client";
import { zBool, zInt, zNum, zStr } from "./coerce";
import { PveParameterError } from "./errors";

export const NodeSchema = z
  .object({
    node: z.string(),
    status: z.string(),
    ssl_fingerprint: z.string().optional(),
    maxcpu: zNum.optional(),
    maxmem: zNum.optional(),
    uptime: zNum.optional(),
  })
  .passthrough();
export type NodeInfo = z.output<typeof NodeSchema>;

export const ClusterResourceSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    node: z.string().optional(),
    vmid: zInt.optional(),
    status: z.string().optional(),
    name: zStr.optional(),
    template: zBool.optional(),
    lock: z.string().optional(),
    tags: z.string().optional(),
    pool: z.string().optional(),
    storage: z.string().optional(),
    maxdisk: zNum.optional(),
    maxmem: zNum.optional(),
  })
  .passthrough();
export type ClusterResource = z.output<typeof ClusterResourceSchema>;

export const PoolSchema = z
  .object({
    poolid: z.string(),
    comment: z.string().optional(),
    members: z
      .array(z.object({ id: z.string(), type: z.string(), vmid: zInt.optional(), node: z.string().optional(), storage: z.string().optional() }).passthrough())
      .optional(),
  })
  .passthrough();
export type Pool = z.output<typeof PoolSchema>;

/** GET /cluster/resources in flight and queued, per connection (settings object) and type. */
const resourcesShared = new WeakMap<object, Map<string, { inFlight?: Promise<ClusterResource[]>; queued?: Promise<ClusterResource[]> }>>();

export class ClusterApi {
  constructor(private readonly client: PveClient) {}

  version() {
    return this.client.version();
  }

  nodes(): Promise<NodeInfo[]> {
    return this.client.get("/nodes", undefined, { schema: z.array(NodeSchema) });
  }

  /**
   * GET /cluster/resources, shared by concurrent callers on one connection: every Container
   * delete of a `pulumi destroy` locates its CT twice, and each answer lists every guest, so
   * N parallel deletes made 2N requests of N entries each (bench/pulumi-up). A caller never
   * gets an answer to a request sent before it asked: while one is in flight, the callers
   * that arrive share the one sent right after it.
   */
  resources(type?: "vm" | "storage" | "node" | "sdn" | "pool"): Promise<ClusterResource[]> {
    let perType = resourcesShared.get(this.client.settings);
    if (!perType) resourcesShared.set(this.client.settings, (perType = new Map()));
    const key = type ?? "";
    const st = perType.get(key) ?? { inFlight: undefined, queued: undefined };
    perType.set(key, st);
    const send = () => {
      const p: Promise<ClusterResource[]> = this.client.get("/cluster/resources", { type }, { schema: z.array(ClusterResourceSchema) }).finally(() => {
        if (st.inFlight === p) st.inFlight = undefined;
      });
      st.inFlight = p;
      return p;
    };
    if (!st.inFlight) return send();
    st.queued ??= st.inFlight
      .catch(() => undefined)
      .then(() => {
        st.queued = undefined;
        return send();
      });
    return st.queued;
  }

  /** LXC guests cluster-wide (`type=vm` filtered to lxc, BEHAVIOR.md 8.1). */
  async containers(): Promise<ClusterResource[]> {
    return (await this.resources("vm")).filter((r) => r.type === "lxc");
  }

  /** Which node a guest lives on, or undefined. */
  async findGuest(vmid: number): Promise<ClusterResource | undefined> {
    return (await this.resources("vm")).find((r) => r.vmid === vmid);
  }

  /** The next free VMID (a JSON string in PVE, BEHAVIOR.md 8.2). Nothing is reserved. */
  nextId(): Promise<number> {
    return this.client.get("/cluster/nextid", undefined, { schema: zInt });
  }

  /** True if `vmid` is free cluster-wide (400 `VM n already exists` otherwise). */
  async isVmidFree(vmid: number): Promise<boolean> {
    try {
      await this.client.get("/cluster/nextid", { vmid }, { schema: zInt });
      return true;
    } catch (e) {
      if (e instanceof PveParameterError && /already exists/.test(e.errors?.vmid ?? "")) return false;
      throw e;
    }
  }

  /** The cluster's name (GET /cluster/status), or "" for a node outside a cluster. */
  async clusterName(): Promise<string> {
    const entries = await this.client.get("/cluster/status", undefined, {
      schema: z.array(z.object({ type: z.string(), name: zStr.optional() }).passthrough()),
    });
    return entries.find((e) => e.type === "cluster")?.name ?? "";
  }

  pools(): Promise<Pool[]> {
    return this.client.get("/pools", undefined, { schema: z.array(PoolSchema) });
  }

  /** One pool with its members (GET /pools?poolid=, the 9.x form; undefined if absent). */
  async pool(poolid: string): Promise<Pool | undefined> {
    const list = await this.client.get("/pools", { poolid }, { schema: z.array(PoolSchema) });
    return list.find((p) => p.poolid === poolid);
  }

  /** Add or remove CTs from a pool (PUT /pools/{poolid}, `vms` list, `delete=1` removes). */
  async updatePoolMembers(poolid: string, change: { vms?: number[]; storage?: string[]; remove?: boolean }): Promise<void> {
    await this.client.put("/pools", { poolid, vms: change.vms, storage: change.storage, delete: change.remove });
  }
}
