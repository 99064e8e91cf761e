/**
 * VMID allocation (issues 17/19): parallel creates without a vmid collide when each asks
 * /cluster/nextid (nothing is reserved); with one allocator per run each container gets
 * its own ID and exactly one create.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import type { PveClient } from "../../provider/proxmox";
import { VmidAllocator, vmidAllocator } from "../../provider/proxmox/vmids";
import { sandbox, tokenClient, ensureTemplate, ctConfig } from "./support/sandbox";

describe("VMID allocation for parallel creates", function () {
  this.timeout(120_000);
  let sb: SandboxHandle;
  let c: PveClient;
  const N = 20;
  const creates = async () => (await sb.admin.counters()).requests["POST /nodes/{node}/lxc"] ?? 0;

  before(async () => {
    sb = await sandbox();
    c = tokenClient(sb);
    await ensureTemplate(c);
  });
  after(async () => {
    c.close();
    await sb.stop();
  });
  afterEach(async () => {
    await Promise.all((await c.cluster.containers()).map((g) => c.lxc.destroyAndWait(String(g.node), Number(g.vmid), { purge: true })));
  });

  const createN = (vmids?: VmidAllocator) =>
    Promise.all(Array.from({ length: N }, (_, i) => c.createContainer({ node: "pve1", config: ctConfig({ hostname: `p${i}` }), vmids })));

  it("without an allocator, the sandbox's nextid/create race makes parallel creates collide", async () => {
    await sb.admin.resetCounters();
    const made = await createN();
    expect(new Set(made.map((m) => m.vmid)).size).to.equal(N);
    const n = await creates();
    console.log(`      nextid per create: ${n} POST …/lxc for ${N} containers (${(n / N).toFixed(2)} per container)`);
    expect(n, "collisions happen (each costs a create)").to.be.greaterThan(N);
  });

  it("with one allocator: exactly one create per container, one nextid for the run, IDs in use skipped", async () => {
    // A guest in the middle of the range, created outside the allocator.
    await c.createContainer({ node: "pve1", vmid: 103, config: ctConfig({ hostname: "outside" }) });
    await sb.admin.resetCounters();
    const alloc = new VmidAllocator(c.cluster);
    const made = await createN(alloc);
    const ids = made.map((m) => m.vmid);
    expect(new Set(ids).size).to.equal(N);
    expect(ids).to.not.include(103);
    expect(await creates(), "one POST …/lxc per container").to.equal(N);
    expect((await sb.admin.counters()).requests["GET /cluster/nextid"], "seeded once").to.equal(1);
  });

  it("a create from outside the run that takes the next ID costs one more create, never a wrong CT", async () => {
    const alloc = new VmidAllocator(c.cluster);
    const first = await alloc.next();
    // Someone else takes the following ID after the allocator was seeded.
    await c.createContainer({ node: "pve1", vmid: first + 1, config: ctConfig({ hostname: "outside" }) });
    await sb.admin.resetCounters();
    const made = await c.createContainer({ node: "pve1", config: ctConfig({ hostname: "ours" }), vmids: alloc });
    expect(made.vmid).to.equal(first + 2);
    expect(await creates(), "the collision and the create").to.equal(2);
    expect((await c.lxc.getConfig("pve1", first + 1)).hostname).to.equal("outside");
  });

  it("one allocator per connection, shared by the client's logger views", () => {
    expect(vmidAllocator(c)).to.equal(vmidAllocator(c.withLogger(c.log.child({ x: 1 }))));
    const other = tokenClient(sb);
    expect(vmidAllocator(other)).to.not.equal(vmidAllocator(c));
    other.close();
  });
});
