import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import { PveClient, PveNotFoundError } from "../../provider/proxmox";
import { sandbox, tokenClient, ensureTemplate, ctConfig, TEMPLATE } from "./support/sandbox";

/**
 * Every endpoint wrapper once against the sandbox: typed results parse, workers are waited
 * for, and the sandbox (which validates with PVE's schema) sees no invalid request.
 */
describe("endpoint wrappers against the sandbox", function () {
  let sb: SandboxHandle;
  let c: PveClient;
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
    expect((await sb.admin.counters()).violations).to.deep.equal([]);
  });

  it("cluster: nodes, resources, nextid, pools", async () => {
    const nodes = await c.cluster.nodes();
    expect(nodes.map((n) => n.node)).to.deep.equal(["pve1", "pve2"]);
    const { vmid } = await c.createContainer({ node: "pve1", config: ctConfig({ hostname: "res" }) });
    const guest = await c.cluster.findGuest(vmid);
    expect(guest).to.include({ type: "lxc", node: "pve1", vmid });
    expect((await c.cluster.containers()).every((r) => r.type === "lxc")).to.equal(true);
    expect(await c.cluster.nextId()).to.be.a("number").above(vmid);
    await c.post("/pools", { poolid: "team-a" });
    await c.cluster.updatePoolMembers("team-a", { vms: [vmid] });
    expect((await c.cluster.pool("team-a"))?.members?.map((m) => m.vmid)).to.deep.equal([vmid]);
    await c.cluster.updatePoolMembers("team-a", { vms: [vmid], remove: true });
    expect((await c.cluster.pool("team-a"))?.members ?? []).to.deep.equal([]);
    expect(await c.cluster.pool("nope")).to.equal(undefined);
  });

  it("lxc: config, pending, power, interfaces, feature, resize, move, snapshots", async function () {
    this.timeout(30_000);
    const { vmid } = await c.createContainer({ node: "pve1", config: ctConfig({ hostname: "life", net0: { name: "eth0", bridge: "vmbr0", ip: "dhcp" } }) });
    expect((await c.lxc.list("pve1")).some((x) => x.vmid === vmid)).to.equal(true);
    await c.lxc.startAndWait("pve1", vmid);
    await c.lxc.updateConfig("pve1", vmid, { set: { ostype: "debian" } }); // stays pending on a running CT
    expect((await c.lxc.pending("pve1", vmid)).find((p) => p.key === "ostype")?.pending).to.equal("debian");
    expect((await c.lxc.getConfig("pve1", vmid, { current: true })).ostype).to.equal("alpine");
    const ifs = await c.lxc.interfaces("pve1", vmid);
    expect(ifs.map((i) => i.name)).to.include("eth0");
    await c.lxc.rebootAndWait("pve1", vmid);
    expect((await c.lxc.getConfig("pve1", vmid, { current: true })).ostype).to.equal("debian");
    await c.lxc.shutdownAndWait("pve1", vmid, { timeout: 5 });
    expect((await c.lxc.status("pve1", vmid)).status).to.equal("stopped");
    expect(await c.lxc.hasFeature("pve1", vmid, "snapshot")).to.equal(true);

    await c.lxc.resizeAndWait("pve1", vmid, { disk: "rootfs", size: "+1G" });
    expect((await c.lxc.getConfig("pve1", vmid)).rootfs).to.match(/size=2G/);
    await c.lxc.moveVolumeAndWait("pve1", vmid, { volume: "rootfs", storage: "local-zfs", delete: true });
    expect((await c.lxc.getConfig("pve1", vmid)).rootfs).to.match(/^local-zfs:/);

    await c.lxc.createSnapshotAndWait("pve1", vmid, { snapname: "before", description: "first" });
    await c.lxc.updateSnapshotConfig("pve1", vmid, "before", { description: "renamed" });
    expect((await c.lxc.getSnapshotConfig("pve1", vmid, "before")).description).to.match(/renamed/);
    await c.lxc.updateConfig("pve1", vmid, { set: { memory: 999 } });
    await c.lxc.rollbackAndWait("pve1", vmid, "before");
    expect((await c.lxc.getConfig("pve1", vmid)).memory).to.equal(256);
    const snaps = await c.lxc.listSnapshots("pve1", vmid);
    expect(snaps.map((s) => s.name)).to.deep.equal(["before", "current"]);
    await c.lxc.deleteSnapshotAndWait("pve1", vmid, "before");
    expect((await c.lxc.listSnapshots("pve1", vmid)).map((s) => s.name)).to.deep.equal(["current"]);
  });

  it("lxc: migrate (precondition + task), clone, template, destroy", async function () {
    this.timeout(30_000);
    const { vmid } = await c.createContainer({ node: "pve1", config: ctConfig({ hostname: "mover", rootfs: "local-zfs:1" }) });
    const pre = await c.lxc.migratePrecondition("pve1", vmid, "pve2");
    expect(pre["allowed-nodes"]).to.include("pve2");
    await c.lxc.migrateAndWait("pve1", vmid, { target: "pve2" });
    expect((await c.cluster.findGuest(vmid))?.node).to.equal("pve2");
    await rejectsWith(c.lxc.getConfig("pve1", vmid), PveNotFoundError);

    const newid = await c.cluster.nextId();
    await c.lxc.cloneAndWait("pve2", vmid, { newid, hostname: "copy", full: true });
    expect((await c.lxc.getConfig("pve2", newid)).hostname).to.equal("copy");
    await c.lxc.templateAndWait("pve2", newid);
    expect((await c.lxc.getConfig("pve2", newid)).template).to.equal(true);
    await c.lxc.destroyAndWait("pve2", newid, { purge: true });
    await rejectsWith(c.lxc.getConfig("pve2", newid), PveNotFoundError);
  });

  it("storage: list, status, content, aplinfo, download-url, delete", async () => {
    const list = await c.storage.list("pve1", { content: "vztmpl" });
    expect(list.map((s) => s.storage)).to.include("local");
    const st = await c.storage.status("pve1", "local");
    expect(st.total).to.be.a("number").above(0);
    expect(st.active).to.equal(true);
    const apl = await c.storage.aplinfo("pve1");
    const rec = apl.find((a) => a.template === TEMPLATE)!;
    expect(rec.location).to.match(/^https:/);
    const t = await c.storage.downloadUrlAndWait("pve1", "local", {
      url: rec.location!,
      content: "vztmpl",
      filename: "copy-of-alpine.tar.gz",
      "verify-certificates": false,
    });
    expect(t.exitstatus).to.equal("OK");
    const item = await c.storage.findVolume("pve1", "local:vztmpl/copy-of-alpine.tar.gz");
    expect(item?.format).to.equal("tgz");
    await c.storage.deleteVolumeAndWait("pve1", "local:vztmpl/copy-of-alpine.tar.gz");
    expect(await c.storage.findVolume("pve1", "local:vztmpl/copy-of-alpine.tar.gz")).to.equal(undefined);
  });
});

async function rejectsWith(p: Promise<unknown>, cls: new (...a: any[]) => Error): Promise<void> {
  const r = await p.then(() => undefined, (e) => e);
  expect(r).to.be.instanceOf(cls);
}
