/**
 * VMID allocation inside the provider process (issues 17 and 19). PVE's GET /cluster/nextid
 * reserves nothing (BEHAVIOR.md 8.2): N parallel creates that each ask it get the same
 * answer and all but one collide (`CT N already exists`), each collision costing a create
 * round trip — 2.5 creates per container at --parallel 10 on a real node.
 *
 * One allocator per client connection hands out IDs for the whole run instead: seeded once
 * from /cluster/nextid (the lowest free ID, honouring the cluster's range) and the cluster's
 * guests (/cluster/resources), it never hands out an ID twice and skips every ID it knows
 * to be taken. A collision can then only come from a create outside this process; the
 * caller reports it with `taken()` and asks again.
 *
 * All Container resources of a `pulumi up` share it: the dynamic provider host is one
 * Node process per provider, and it loads our provider module once (require cache), so
 * this module's map is per run (test/resilience/parallel.test.ts counts one nextid).
 */
import type { ClusterApi } from "./cluster";

/** What createContainer needs from an allocator (lxc.ts `CreateContainerOptions.vmids`). */
export interface VmidSource {
  /** An ID no other create of this process got, and not known to be in use. */
  next(): Promise<number>;
  /** `vmid` turned out to be in use (a create outside this process took it). */
  taken(vmid: number): void;
}

export class VmidAllocator implements VmidSource {
  private readonly used = new Set<number>();
  private cursor = 0;
  private seeding?: Promise<void>;

  constructor(private readonly cluster: Pick<ClusterApi, "nextId" | "resources">) {}

  async next(): Promise<number> {
    await this.seed();
    while (this.used.has(this.cursor)) this.cursor++;
    const vmid = this.cursor++;
    this.used.add(vmid);
    return vmid;
  }

  taken(vmid: number): void {
    this.used.add(vmid);
  }

  /** One seed per allocator, shared by concurrent callers; retried if it failed. */
  private seed(): Promise<void> {
    this.seeding ??= this.load().catch((e) => {
      this.seeding = undefined;
      throw e;
    });
    return this.seeding;
  }

  private async load(): Promise<void> {
    const [first, guests] = await Promise.all([this.cluster.nextId(), this.cluster.resources("vm")]);
    for (const g of guests) if (g.vmid !== undefined) this.used.add(g.vmid);
    this.cursor = Math.max(this.cursor, first);
  }
}

/** Keyed by the connection settings object, which a client and all its `withLogger` views share. */
const allocators = new WeakMap<object, VmidAllocator>();

/** The process-wide allocator for this client's connection. */
export function vmidAllocator(client: { settings: object; cluster: ClusterApi }): VmidAllocator {
  let a = allocators.get(client.settings);
  if (!a) {
    a = new VmidAllocator(client.cluster);
    allocators.set(client.settings, a);
  }
  return a;
}
