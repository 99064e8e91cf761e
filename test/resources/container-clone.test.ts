/**
 * Clone, template conversion and restore on the Container handler, in process against the
 * sandbox: a CT converted in place into a template (true → false replaces), three linked
 * clones of it made in parallel (queued on the source's lock, not failed) with their
 * declared memory/tags/disk size applied on top of the copied config, a full clone from a
 * snapshot, no diff and no drift after each, and the check() rules naming their fields.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import handler from "../../provider/resources/container/handler";
import { providerClient } from "../../provider/resources/operation";
import { startProviderSandbox } from "../support/provider";
import { VzdumpApi } from "../../provider/proxmox/vzdump";

type Outs = Record<string, any>;

describe("Container clone, template conversion and restore (in process, against the sandbox)", function () {
  this.timeout(120_000);
  let sb: SandboxHandle;
  let template: string;

  before(async () => {
    ({ sb, template } = await startProviderSandbox("debian"));
  });
  after(async () => {
    if (sb) expect((await sb.admin.counters()).violationCount, "requests violating the PVE schema").to.equal(0);
    await sb?.stop();
  });

  const golden = () => ({
    node: "pve1",
    template,
    hostname: "golden",
    memory: { dedicated: 512, swap: 0 },
    rootfs: { storage: "local-lvm", size: "2G" },
    networks: [{ name: "eth0", bridge: "vmbr0", ip: "dhcp" }],
    resourceName: "golden",
  });

  async function checked(inputs: Record<string, unknown>) {
    const c = await handler.check!({}, inputs);
    expect(c.failures ?? []).to.deep.equal([]);
    return c.inputs;
  }
  async function up(inputs: Record<string, unknown>): Promise<{ id: string; outs: Outs }> {
    const r = await handler.create(await checked(inputs));
    return { id: r.id, outs: r.outs as Outs };
  }
  /** diff + update when needed; returns the diff and the new outputs. */
  async function change(prev: { id: string; outs: Outs }, inputs: Record<string, unknown>) {
    const news = await checked(inputs);
    const diff = await handler.diff!(prev.id, prev.outs, news);
    const outs = diff.changes && !(diff.replaces ?? []).length ? ((await handler.update!(prev.id, prev.outs, news)).outs as Outs) : prev.outs;
    return { diff, outs };
  }
  async function settled(prev: { id: string; outs: Outs }, inputs: Record<string, unknown>) {
    const news = await checked(inputs);
    expect((await handler.diff!(prev.id, prev.outs, news)).changes, "no diff right after").to.equal(false);
    const read = await handler.read!(prev.id, prev.outs);
    expect((await handler.diff!(prev.id, read.props!, news)).changes, "no drift after refresh").to.equal(false);
  }

  it("converts a CT into a template in place; true → false replaces; started is ignored", async () => {
    const client = providerClient();
    const ct = await up(golden());
    expect(ct.outs.status).to.equal("running");
    const asTemplate = { ...golden(), isTemplate: true };
    const step = await change(ct, asTemplate);
    expect(step.diff.replaces ?? []).to.deep.equal([]);
    expect(step.diff.changes).to.equal(true);
    const cfg = await client.lxc.getConfig("pve1", Number(ct.id), { current: true });
    expect(cfg.template, "template: 1").to.equal(true);
    expect(step.outs.isTemplate).to.equal(true);
    expect(step.outs.status).to.equal("stopped");
    expect(step.outs.volids.rootfs).to.match(/base-\d+-disk-/);
    await settled({ id: ct.id, outs: step.outs }, asTemplate);
    // An explicit started: true is ignored (warned about), not a perpetual diff.
    await settled({ id: ct.id, outs: step.outs }, { ...asTemplate, started: true });
    // Memory still changes in place on a template.
    const more = await change({ id: ct.id, outs: step.outs }, { ...asTemplate, memory: { dedicated: 768, swap: 0 } });
    expect(more.diff.replaces ?? []).to.deep.equal([]);
    expect(Number((await client.lxc.getConfig("pve1", Number(ct.id), { current: true })).memory)).to.equal(768);
    // Back to a plain CT: Proxmox cannot, so it is a replacement.
    const back = await handler.diff!(ct.id, more.outs, await checked({ ...golden(), memory: { dedicated: 768, swap: 0 } }));
    expect(back.replaces).to.deep.equal(["isTemplate"]);
    await handler.delete!(ct.id, more.outs);
    expect(await client.cluster.findGuest(Number(ct.id))).to.equal(undefined);
  });

  it("makes three linked clones of a template in parallel and applies the declared inputs on top", async () => {
    const client = providerClient();
    // On zfs a linked clone's volume names its base (`base…/subvol-…`); lvmthin's would not show it.
    const tpl = await up({ ...golden(), rootfs: { storage: "local-zfs", size: "2G" }, isTemplate: true });
    const tplVmid = Number(tpl.id);
    expect(tpl.outs.status).to.equal("stopped");
    const cloneArgs = (i: number) => ({
      node: "pve1",
      clone: { source: tplVmid, node: "pve1", sourceIsTemplate: true },
      hostname: `web-${i}`,
      tags: ["web", `n${i}`],
      memory: { dedicated: 256 * (i + 1), swap: 0 },
      rootfs: { storage: "local-zfs", size: i === 2 ? "3G" : "2G" },
      resourceName: `web-${i}`,
    });
    const clones = await Promise.all([0, 1, 2].map((i) => up(cloneArgs(i))));
    expect(new Set(clones.map((c) => c.id)).size).to.equal(3);
    for (const [i, c] of clones.entries()) {
      const vmid = Number(c.id);
      const cfg = await client.lxc.getConfig("pve1", vmid, { current: true });
      expect(cfg.hostname).to.equal(`web-${i}`);
      expect(Number(cfg.memory)).to.equal(256 * (i + 1));
      expect(cfg.tags).to.equal(`n${i};web`);
      expect(String(cfg.rootfs), "linked to the template's base volume").to.match(new RegExp(`^local-zfs:basevol-${tplVmid}-disk-\\d+/subvol-${vmid}-disk-`));
      expect(String(cfg.net0), "the copied interface, with a new MAC").to.include("bridge=vmbr0");
      expect(c.outs.hwaddrs.net0).to.not.equal(tpl.outs.hwaddrs.net0);
      expect(c.outs.status).to.equal("running");
      expect(c.outs.rootfs.size).to.equal(i === 2 ? "3G" : "2G");
      expect(c.outs.unprivileged, "the source's, recorded").to.equal(true);
      await settled(c, cloneArgs(i));
    }
    // Memory changes in place; a different source replaces.
    const step = await change(clones[0], { ...cloneArgs(0), memory: { dedicated: 1024, swap: 0 } });
    expect(step.diff.replaces ?? []).to.deep.equal([]);
    expect(Number((await client.lxc.getConfig("pve1", Number(clones[0].id), { current: true })).memory)).to.equal(1024);
    const other = await handler.diff!(clones[1].id, clones[1].outs, await checked({ ...cloneArgs(1), clone: { source: 999, node: "pve1" } }));
    expect(other.replaces).to.deep.equal(["clone"]);
    // clone.node only says where the source is (e.g. after it migrated): no replacement.
    const moved = await handler.diff!(clones[1].id, clones[1].outs, await checked({ ...cloneArgs(1), clone: { source: tplVmid, node: "pve2" } }));
    expect(moved.replaces ?? []).to.deep.equal([]);
    // A later conversion of the source does not touch its clones (the hint never reaches the state).
    expect(JSON.stringify(clones[1].outs)).to.not.include("sourceIsTemplate");
    await Promise.all(clones.map((c, i) => handler.delete!(c.id, i === 0 ? step.outs : c.outs)));
    await handler.delete!(tpl.id, tpl.outs);
  });

  it("waits out the source's lock held by another operation instead of failing", async () => {
    const client = providerClient();
    const tpl = await up({ ...golden(), rootfs: { storage: "local-zfs", size: "2G" }, isTemplate: true, resourceName: "tpl" });
    await sb.admin.holdLock(Number(tpl.id), "disk", 2); // as another clone (elsewhere) would
    const began = Date.now();
    const c = await up({ node: "pve1", clone: { source: Number(tpl.id) }, started: false, resourceName: "late" });
    expect(Date.now() - began, "waited for the lock").to.be.greaterThan(1500);
    expect((await client.lxc.getConfig("pve1", Number(c.id), { current: true })).lock).to.equal(undefined);
    await handler.delete!(c.id, c.outs);
    await handler.delete!(tpl.id, tpl.outs);
  });

  it("a clone task slower than timeouts.create records the NEW container, never the source", async () => {
    const client = providerClient();
    const tpl = await up({ ...golden(), rootfs: { storage: "local-zfs", size: "2G" }, isTemplate: true, resourceName: "slow-src" });
    await sb.admin.setTaskDuration({ vzclone: 2500 });
    let recorded: { id?: string; properties?: Outs } = {};
    try {
      await handler.create(await checked({ node: "pve1", clone: { source: Number(tpl.id) }, started: false, timeouts: { create: 1 }, resourceName: "slow" })).then(
        () => expect.fail("the clone should have outlived its timeout"),
        (e: Error & { id?: string; properties?: Outs }) => (recorded = e),
      );
    } finally {
      await sb.admin.setTaskDuration(5);
    }
    expect(recorded.id, "a new CT is recorded").to.be.a("string");
    expect(recorded.id, "not the source").to.not.equal(tpl.id);
    // The task went on: the recorded CT is the clone, and deleting it leaves the template alone.
    for (let i = 0; i < 100 && (await client.lxc.getConfig("pve1", Number(recorded.id), { current: true }).catch(() => ({ lock: "create" }))).lock; i++) await new Promise((r) => setTimeout(r, 100));
    await handler.delete!(recorded.id!, recorded.properties!);
    expect(await client.cluster.findGuest(Number(tpl.id)), "the source is still there").to.not.equal(undefined);
    await handler.delete!(tpl.id, tpl.outs);
  });

  it("full-clones a stopped CT from a snapshot, and refuses what Proxmox would refuse, naming the field", async () => {
    const client = providerClient();
    const src = await up({ ...golden(), started: false, resourceName: "src" });
    const vmid = Number(src.id);
    await client.lxc.createSnapshotAndWait("pve1", vmid, { snapname: "base" });
    const copy = await up({ node: "pve1", clone: { source: vmid, snapshot: "base", storage: "local-zfs" }, started: false, resourceName: "copy" });
    expect(copy.outs.volids.rootfs).to.match(/^local-zfs:subvol-\d+-disk-/);
    expect(copy.outs.rootfs, "not declared: not in the outputs").to.equal(undefined);
    await settled(copy, { node: "pve1", clone: { source: vmid, snapshot: "base", storage: "local-zfs" }, started: false, resourceName: "copy" });
    await handler.delete!(copy.id, copy.outs);

    // Linked clone of a CT that is not a template: in check when the SDK knows, else before anything is sent.
    const hinted = await handler.check!({}, { node: "pve1", clone: { source: vmid, full: false, sourceIsTemplate: false } });
    expect((hinted.failures ?? []).map((f) => f.reason).join("\n")).to.match(/clone\.full: false asks for a linked clone.*not a template/);
    await handler.create(await checked({ node: "pve1", clone: { source: vmid, full: false }, started: false })).then(
      () => expect.fail("linked clone of a non-template was made"),
      (e: Error) => expect(e.message).to.match(/clone\.full.*not a template/),
    );
    await handler.create(await checked({ node: "pve1", clone: { source: 99999 } })).then(
      () => expect.fail("clone of a missing CT"),
      (e: Error) => expect(e.message).to.match(/clone\.source: there is no container 99999/),
    );
    await handler.create(await checked({ node: "pve1", clone: { source: vmid }, unprivileged: false })).then(
      () => expect.fail("privileged clone of an unprivileged CT"),
      (e: Error) => expect(e.message).to.match(/unprivileged: CT \d+ is unprivileged and a clone keeps that/),
    );
    expect((await client.cluster.containers()).map((c) => c.vmid)).to.deep.equal([vmid]);
    await handler.delete!(src.id, src.outs);
  });

  it("restores a backup as a new CT with the declared inputs applied on top; a bigger rootfs grows it", async () => {
    const client = providerClient();
    const src = await up({ ...golden(), started: false, hostname: "db", tags: ["db"], resourceName: "db" });
    const srcVmid = Number(src.id);
    const vz = new VzdumpApi(client);
    const { upid } = await vz.run("pve1", { vmid: srcVmid, storage: "local", compress: "zstd", mode: "stop" });
    const backup = (await vz.locate("pve1", upid, srcVmid, "local"))!.volid;
    expect(backup).to.match(new RegExp(`^local:backup/vzdump-lxc-${srcVmid}-\\d{4}_\\d\\d_\\d\\d-\\d\\d_\\d\\d_\\d\\d\\.tar\\.zst$`));
    const restoreArgs = {
      node: "pve1",
      restore: { backup, unique: true },
      hostname: "db-restored",
      memory: { dedicated: 1024, swap: 0 },
      rootfs: { storage: "local-zfs", size: "3G" },
      resourceName: "db-restored",
    };
    const restored = await up(restoreArgs);
    const vmid = Number(restored.id);
    expect(vmid).to.not.equal(srcVmid);
    const cfg = await client.lxc.getConfig("pve1", vmid, { current: true });
    expect(cfg.hostname).to.equal("db-restored");
    expect(Number(cfg.memory)).to.equal(1024);
    expect(cfg.tags, "the backup's config is the starting point").to.equal("db");
    expect(String(cfg.rootfs)).to.match(/^local-zfs:subvol-\d+-disk-\d+,size=3G/);
    expect(restored.outs.hwaddrs.net0, "unique: a new MAC").to.not.equal(src.outs.hwaddrs.net0);
    expect(restored.outs.status).to.equal("running");
    await settled(restored, restoreArgs);
    const other = await handler.diff!(restored.id, restored.outs, await checked({ ...restoreArgs, restore: { backup, unique: false } }));
    expect(other.replaces).to.deep.equal(["restore"]);
    await handler.delete!(restored.id, restored.outs);
    await handler.delete!(src.id, src.outs);
    await client.storage.deleteVolumeAndWait("pve1", backup);
  });

  it("check: template, clone and restore are mutually exclusive; a backup as template points at restore", async () => {
    const reasons = async (inputs: Record<string, unknown>) => ((await handler.check!({}, inputs)).failures ?? []).map((f) => f.reason).join("\n");
    const both = await reasons({ node: "pve1", template, clone: { source: 100 } });
    expect(both).to.match(/template: template, clone are mutually exclusive/);
    expect(both).to.match(/clone: template, clone are mutually exclusive/);
    expect(await reasons({ node: "pve1", template: "local:backup/vzdump-lxc-100-2026_01_01-00_00_00.tar.zst", rootfs: { storage: "local-lvm", size: "2G" } })).to.match(
      /template: .* is a backup archive, not a CT template.*restore: \{ backup: "local:backup\/vzdump-lxc-100/,
    );
    expect(await reasons({ node: "pve1", clone: { source: 100 }, password: "secret-1" })).to.match(/password: cannot be set with clone/);
    expect(await reasons({ node: "pve1", clone: { source: 100, full: false, storage: "local-lvm" } })).to.match(/clone\.storage: only applies to a full clone/);
    expect(await reasons({ node: "pve1", restore: { backup: "local:backup/x.tar.zst" } })).to.match(/rootfs: is required with restore/);
    expect(await reasons({ node: "pve1", restore: { backup: "local:backup/x.tar.zst", force: true }, rootfs: { storage: "local-lvm", size: "2G" } })).to.match(/restore\.force: needs vmid/);
    expect(await reasons({ node: "pve1" })).to.match(/template: is required.*clone.*restore/);
  });
});

describe("queuePerSource (clones of one source, one at a time)", () => {
  it("runs jobs of one key one after the other, other keys in parallel, and survives a failure", async () => {
    const { queuePerSource } = await import("../../provider/resources/container/clone");
    const log: string[] = [];
    const job = (key: string, name: string, ms: number, fail = false) =>
      queuePerSource(key, async () => {
        log.push(`start ${name}`);
        await new Promise((r) => setTimeout(r, ms));
        log.push(`end ${name}`);
        if (fail) throw new Error(`${name} failed`);
        return name;
      });
    const results = await Promise.allSettled([job("pve1/100", "a", 30, true), job("pve1/100", "b", 10), job("pve1/200", "x", 5)]);
    expect(results.map((r) => r.status)).to.deep.equal(["rejected", "fulfilled", "fulfilled"]);
    expect(log.indexOf("start b"), "b starts after a ended").to.be.greaterThan(log.indexOf("end a"));
    expect(log.indexOf("start x"), "another source does not wait").to.be.lessThan(log.indexOf("end a"));
  });
});
