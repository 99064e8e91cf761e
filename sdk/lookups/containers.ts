/**
 * getContainers (GET /cluster/resources?type=vm, the LXC ones), getContainer (one CT: where
 * it is, its status and config) and getNextVmid (GET /cluster/nextid).
 */
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { ProxmoxLookupError } from "./errors";
import { compact, runLookup, runLookupOutput, splitList, type Inputs, type LookupDefinition, type LookupOutputOptions } from "./invoke";

const vmid = z.number().int().min(100, "must be a VMID (100 – 999999999)").max(999_999_999, "must be a VMID (100 – 999999999)");

export interface ContainerSummary {
  vmid: number;
  node: string;
  /** The hostname (PVE's `name`). */
  name?: string;
  /** "running", "stopped", … */
  status?: string;
  /** A CT template (cannot be started; clone it). */
  isTemplate: boolean;
  /** As PVE stores them. */
  tags: string[];
  pool?: string;
  /** Set while a backup, migration, snapshot, … holds the CT. */
  lock?: string;
  /** Bytes. */
  maxMemory?: number;
  maxDisk?: number;
}

export interface GetContainersArgs {
  /** Only CTs on this node. */
  node?: string;
  /** Only CTs in this resource pool. */
  pool?: string;
  /** Only CTs that carry every one of these tags (compared case-insensitively). */
  tags?: string[];
}

export interface GetContainersResult {
  /** Sorted by vmid. */
  containers: ContainerSummary[];
}

const containersDefinition: LookupDefinition<GetContainersArgs, GetContainersResult> = {
  name: "getContainers",
  schema: z
    .object({ node: z.string().min(1).optional(), pool: z.string().min(1).optional(), tags: z.array(z.string().min(1, "a tag cannot be empty")).optional() })
    .strict(),
  async fetch(client, args) {
    const wanted = (args.tags ?? []).map((t) => t.toLowerCase());
    const list = (await client.cluster.containers())
      .filter((r) => r.vmid !== undefined && r.node !== undefined)
      .map((r) =>
        compact({
          vmid: r.vmid!,
          node: r.node!,
          name: r.name,
          status: r.status,
          isTemplate: r.template === true,
          tags: splitList(r.tags),
          pool: r.pool,
          lock: r.lock,
          maxMemory: r.maxmem,
          maxDisk: r.maxdisk,
        }),
      )
      .filter((c) => args.node === undefined || c.node === args.node)
      .filter((c) => args.pool === undefined || c.pool === args.pool)
      .filter((c) => wanted.every((t) => c.tags.some((have) => have.toLowerCase() === t)));
    return { containers: list.sort((a, b) => a.vmid - b.vmid) };
  },
};

/** The cluster's containers, filtered. Sends its request when called (in a preview too). */
export function getContainers(args: GetContainersArgs = {}): Promise<GetContainersResult> {
  return runLookup(containersDefinition, args);
}

/** The cluster's containers as an Output; resolved during a preview too unless `opts.preview` is "skip". */
export function getContainersOutput(args: Inputs<GetContainersArgs> = {}, opts?: LookupOutputOptions): pulumi.Output<GetContainersResult> {
  return runLookupOutput(containersDefinition, args, opts);
}

export interface GetContainerArgs {
  vmid: number;
}

export interface GetContainerResult extends ContainerSummary {
  hostname?: string;
  description?: string;
  ostype?: string;
  arch?: string;
  /** MiB. */
  memory?: number;
  swap?: number;
  cores?: number;
  unprivileged: boolean;
  startOnBoot: boolean;
  protection: boolean;
  /** The applied configuration as PVE returns it (`rootfs`, `net0`, `mp0`, `features`, …), without `digest`. */
  config: Record<string, string | number>;
}

const containerDefinition: LookupDefinition<GetContainerArgs, GetContainerResult> = {
  name: "getContainer",
  schema: z.object({ vmid }).strict(),
  async fetch(client, args) {
    const guest = await client.cluster.findGuest(args.vmid);
    if (!guest || guest.node === undefined) throw new ProxmoxLookupError("getContainer", `no guest with vmid ${args.vmid} in the cluster (getContainers lists the containers there are)`);
    if (guest.type !== "lxc") throw new ProxmoxLookupError("getContainer", `vmid ${args.vmid} is a ${guest.type === "qemu" ? "QEMU virtual machine" : guest.type}, not a container`);
    const node = guest.node;
    const [cfg, st] = await Promise.all([client.lxc.getConfig(node, args.vmid, { current: true }), client.lxc.status(node, args.vmid)]);
    const { digest: _digest, ...rest } = cfg as Record<string, unknown>;
    const config = Object.fromEntries(
      Object.entries(rest).filter(([, v]) => typeof v === "string" || typeof v === "number" || typeof v === "boolean").map(([k, v]) => [k, typeof v === "boolean" ? (v ? 1 : 0) : (v as string | number)]),
    );
    return compact({
      vmid: args.vmid,
      node,
      name: st.name ?? guest.name,
      status: st.status,
      isTemplate: cfg.template === true,
      tags: splitList(cfg.tags),
      pool: guest.pool,
      lock: cfg.lock ?? st.lock,
      maxMemory: st.maxmem,
      maxDisk: st.maxdisk,
      hostname: cfg.hostname,
      description: cfg.description,
      ostype: cfg.ostype,
      arch: cfg.arch,
      memory: cfg.memory,
      swap: cfg.swap,
      cores: cfg.cores,
      unprivileged: cfg.unprivileged === true,
      startOnBoot: cfg.onboot === true,
      protection: cfg.protection === true,
      config,
    });
  },
};

/** One container by vmid, wherever it is in the cluster. Sends its requests when called (in a preview too). */
export function getContainer(args: GetContainerArgs): Promise<GetContainerResult> {
  return runLookup(containerDefinition, args);
}

/** One container as an Output; resolved during a preview too unless `opts.preview` is "skip". */
export function getContainerOutput(args: Inputs<GetContainerArgs>, opts?: LookupOutputOptions): pulumi.Output<GetContainerResult> {
  return runLookupOutput(containerDefinition, args, opts);
}

export interface GetNextVmidResult {
  /** The lowest free VMID now. Nothing is reserved: another client may take it first. */
  vmid: number;
}

const nextVmidDefinition: LookupDefinition<Record<string, never>, GetNextVmidResult> = {
  name: "getNextVmid",
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>, z.ZodTypeDef, unknown>,
  async fetch(client) {
    return { vmid: await client.cluster.nextId() };
  },
};

/** The next free VMID. Sends its request when called (in a preview too). */
export function getNextVmid(): Promise<GetNextVmidResult> {
  return runLookup(nextVmidDefinition, {});
}

/** The next free VMID as an Output; resolved during a preview too unless `opts.preview` is "skip". */
export function getNextVmidOutput(opts?: LookupOutputOptions): pulumi.Output<GetNextVmidResult> {
  return runLookupOutput(nextVmidDefinition, {}, opts);
}
