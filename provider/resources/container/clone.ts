/**
 * Creating a container as a clone of another CT or CT template (`clone` input;
 * `POST /nodes/{node}/lxc/{vmid}/clone`, task `vzclone` — BEHAVIOR.md 4.9). The clone gets
 * the source's config (new MAC addresses); the handler then applies the declared inputs on
 * top with the planner.
 *
 * PVE takes the source's `disk` lock for the whole clone, so two clones of one source at a
 * time fail with `CT is locked (disk)`. Clones of one source started by this process are
 * queued (one at a time per source); against clones started elsewhere, the POST waits out
 * the lock (the transport's lock wait, stretched to `timeouts.create`).
 */
import type { PveClient } from "../../proxmox/client";
import { PveApiError, PveTaskFailedError, PveTaskTimeoutError } from "../../proxmox/errors";
import type { VmidSource } from "../../proxmox/vmids";
import type { OperationContext } from "../operation";
import type { ContainerArgs } from "./args";
import type { CloneArgs } from "./origin";

/** What the clone needs to know about its source. */
export interface CloneSource {
  node: string;
  template: boolean;
  running: boolean;
}

/** The source's node, template flag and power state, from /cluster/resources. */
export async function findCloneSource(client: PveClient, c: CloneArgs): Promise<CloneSource> {
  const guest = await client.cluster.findGuest(c.source);
  if (!guest) throw new Error(`clone.source: there is no container ${c.source} in the cluster; check the vmid (or the source resource)`);
  if (guest.type !== "lxc") throw new Error(`clone.source: ${c.source} is a QEMU VM, not a container; only containers can be cloned into a Container`);
  if (c.node && guest.node !== c.node) {
    throw new Error(`clone.node: CT ${c.source} is on node '${guest.node}', not '${c.node}'; fix clone.node or leave it unset (the source is then found wherever it is)`);
  }
  return { node: guest.node as string, template: !!guest.template, running: guest.status === "running" };
}

/** Full or linked: as declared; a storage means a copy; else PVE's default (linked only for a template). */
export function cloneIsFull(c: CloneArgs, source: Pick<CloneSource, "template">): boolean {
  return c.full ?? (c.storage !== undefined ? true : !source.template);
}

/** Refuse up front what PVE would refuse, with the fix (nothing is created yet). */
export function checkCloneSource(c: CloneArgs, source: CloneSource, sourceUnprivileged: boolean | undefined, a: ContainerArgs): void {
  const full = cloneIsFull(c, source);
  if (!full && !source.template) {
    throw new Error(`clone.full: false asks for a linked clone, but CT ${c.source} is not a template; Proxmox links clones only to a CT template: convert the source (isTemplate: true) or set full: true`);
  }
  if (full && source.running && !c.snapshot) {
    throw new Error(`clone: CT ${c.source} is running, and Proxmox copies a running container only from a snapshot; set clone.snapshot (e.g. a Snapshot resource's name) or stop the source (started: false)`);
  }
  if (a.unprivileged !== undefined && sourceUnprivileged !== undefined && a.unprivileged !== sourceUnprivileged) {
    throw new Error(
      `unprivileged: CT ${c.source} is ${sourceUnprivileged ? "unprivileged" : "privileged"} and a clone keeps that; ` +
        `set unprivileged: ${sourceUnprivileged} or leave it unset (it cannot change without a new container from a template)`,
    );
  }
}

/** One clone at a time per source in this process: PVE locks the source for each clone. */
const queues = new Map<string, Promise<unknown>>();

export function queuePerSource<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = queues.get(key) ?? Promise.resolve();
  const run = before.then(fn, fn);
  const tail = run.catch(() => undefined);
  queues.set(key, tail);
  void tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key);
  });
  return run;
}

const ALREADY_EXISTS = /already exists/;

/**
 * Clone `a.clone.source` into a new CT on `a.node` and wait for the task. Without a fixed
 * vmid, a new id comes from the per-run allocator; one taken meanwhile by a create elsewhere
 * (`CT n already exists`) costs another round, never a second CT.
 */
export async function cloneContainer(
  client: PveClient,
  a: ContainerArgs,
  vmids: VmidSource,
  waitMs: number,
  ctx: OperationContext,
): Promise<{ vmid: number; node: string }> {
  const c = a.clone!;
  const source = await findCloneSource(client, c);
  const unprivileged = a.unprivileged === undefined ? undefined : (await client.lxc.getConfig(source.node, c.source, { current: true })).unprivileged;
  checkCloneSource(c, source, unprivileged === undefined ? undefined : !!unprivileged, a);
  const full = cloneIsFull(c, source);
  return queuePerSource(`${source.node}/${c.source}`, async () => {
    for (let attempt = 1; ; attempt++) {
      const newid = a.vmid ?? (await vmids.next());
      const params = {
        newid,
        full,
        snapname: c.snapshot,
        storage: full ? c.storage : undefined,
        pool: c.pool ?? a.pool,
        hostname: a.hostname,
        description: a.description,
        target: a.node !== source.node ? a.node : undefined,
      };
      ctx.log.info({ source: c.source, sourceNode: source.node, newid, full, snapshot: c.snapshot }, full ? "cloning container (full copy)" : "cloning container (linked clone)");
      try {
        const upid = await client.lxc.clone(source.node, c.source, params, { logger: ctx.log, lockWaitMs: waitMs, wait: { timeoutMs: waitMs } });
        ctx.bind({ vmid: newid });
        await client.tasks.wait(upid, { timeoutMs: waitMs, logger: ctx.log });
        return { vmid: newid, node: a.node };
      } catch (e) {
        // The task goes on after timeouts.create, and its UPID names the SOURCE: say which CT it makes.
        if (e instanceof PveTaskTimeoutError) (e as { cloneVmid?: number }).cloneVmid = newid;
        const taken = (e instanceof PveApiError && ALREADY_EXISTS.test(e.pveMessage)) || (e instanceof PveTaskFailedError && /CT \d+ already exists|config file already exists/.test(e.exitstatus));
        if (a.vmid === undefined && taken && attempt < 30) {
          vmids.taken(newid);
          ctx.log.debug({ newid, attempt }, "vmid taken by a concurrent create; cloning again with another");
          continue;
        }
        throw e;
      }
    }
  });
}

/** The new CT of a clone whose task outlived the timeout (the task's UPID names the source). */
export function cloneVmidOf(e: unknown): number | undefined {
  return (e as { cloneVmid?: number } | undefined)?.cloneVmid;
}
