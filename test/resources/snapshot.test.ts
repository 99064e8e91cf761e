/**
 * The Snapshot handler against the sandbox, in process: create with a description that
 * changes in place, refresh, declarative rollback that restores the CT config, a
 * migration that does not replace the snapshot, a snapshot deleted behind our back, the
 * refusal on storage that cannot snapshot, name validation — with zero schema violations.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import handler, { snapshotRefusal, volumesOf } from "../../provider/resources/snapshot/handler";
import { providerClient } from "../../provider/resources/operation";
import { createChecked, startProviderSandbox } from "../support/provider";

describe("Snapshot handler (in process, against the sandbox)", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  let template: string;

  before(async () => {
    ({ sb, template } = await startProviderSandbox("alpine"));
  });
  after(async () => {
    await sb?.stop();
  });

  async function container(rootStorage: string, extra: Record<string, string | number> = {}): Promise<number> {
    const { vmid } = await providerClient().lxc.createContainer({
      node: "pve1",
      config: { ostemplate: template, rootfs: `${rootStorage}:1`, hostname: "snap-ct", memory: 512, ...extra },
    });
    return vmid;
  }
  const up = (inputs: Record<string, unknown>) => createChecked(handler, inputs);
  async function change(olds: { id: string; outs: Record<string, any> }, inputs: Record<string, unknown>) {
    const checked = await handler.check!({}, inputs);
    expect(checked.failures ?? []).to.deep.equal([]);
    const diff = await handler.diff!(olds.id, olds.outs, checked.inputs);
    const outs = diff.changes ? ((await handler.update!(olds.id, olds.outs, checked.inputs)).outs as Record<string, any>) : olds.outs;
    return { diff, outs };
  }
  const snapshots = async (node: string, vmid: number) => (await providerClient().lxc.listSnapshots(node, vmid)).filter((s) => s.name !== "current");

  it("creates with a description, changes it in place, refreshes without drift, deletes", async () => {
    const vmid = await container("local-lvm");
    const base = { node: "pve1", vmid, name: "before-upgrade", description: "known good", resourceName: "snap" };
    const s = await up(base);
    expect(s.id).to.equal(`${vmid}/before-upgrade`);
    expect(s.outs).to.include({ node: "pve1", vmid, name: "before-upgrade", description: "known good" });
    expect(s.outs.snaptime).to.be.a("number").and.greaterThan(0);
    expect((await snapshots("pve1", vmid)).map((x) => x.name)).to.deep.equal(["before-upgrade"]);

    const read = await handler.read!(s.id, s.outs);
    expect(read.props).to.deep.equal(s.outs);
    const checked = await handler.check!({}, base);
    expect((await handler.diff!(s.id, read.props!, checked.inputs)).changes).to.equal(false);

    const step = await change({ id: s.id, outs: read.props! }, { ...base, description: "known good, v2" });
    expect(step.diff).to.include({ changes: true });
    expect(step.diff.replaces).to.deep.equal([]);
    expect(step.outs.description).to.equal("known good, v2");
    // PVE lists the stored description newline-terminated (recorded from 8.4; was without it).
    expect((await providerClient().lxc.listSnapshots("pve1", vmid)).find((x) => x.name === "before-upgrade")?.description).to.equal("known good, v2\n");
    // Same snapshot time: changed in place, not taken again.
    expect(step.outs.snaptime).to.equal(s.outs.snaptime);

    // A name change replaces; old and new can coexist, so the new one is taken first.
    const renamed = await handler.diff!(s.id, step.outs, (await handler.check!({}, { ...base, name: "other" })).inputs);
    expect(renamed.replaces).to.deep.equal(["name"]);
    expect(renamed.deleteBeforeReplace).to.equal(false);

    await handler.delete!(s.id, step.outs);
    expect(await snapshots("pve1", vmid)).to.deep.equal([]);
    await handler.delete!(s.id, step.outs); // already gone: fine
  });

  it("rolls back when rollbackTrigger changes: the config is restored and the CT started if asked", async () => {
    const client = providerClient();
    const vmid = await container("local-zfs");
    await client.lxc.startAndWait("pve1", vmid);
    const base = { node: "pve1", vmid, name: "baseline", rollbackTrigger: 1, startAfterRollback: true };
    const s = await up(base);

    // Drift after the snapshot.
    await client.lxc.updateConfig("pve1", vmid, { set: { memory: 2048, hostname: "changed" } });
    expect(Number((await client.lxc.getConfig("pve1", vmid, { current: true })).memory)).to.equal(2048);

    // Same trigger: nothing to do.
    expect((await handler.diff!(s.id, s.outs, (await handler.check!({}, base)).inputs)).changes).to.equal(false);

    const step = await change(s, { ...base, rollbackTrigger: 2 });
    expect(step.diff.replaces).to.deep.equal([]);
    const cfg = await client.lxc.getConfig("pve1", vmid, { current: true });
    expect(Number(cfg.memory)).to.equal(512);
    expect(cfg.hostname).to.equal("snap-ct");
    expect((await client.lxc.status("pve1", vmid)).status).to.equal("running");
    expect(step.outs.rollbackTrigger).to.equal(2);

    // Without startAfterRollback the CT stays stopped (PVE's hard stop).
    await client.lxc.updateConfig("pve1", vmid, { set: { memory: 1024 } });
    const step2 = await change({ id: s.id, outs: step.outs }, { ...base, rollbackTrigger: "three", startAfterRollback: false });
    expect(Number((await client.lxc.getConfig("pve1", vmid, { current: true })).memory)).to.equal(512);
    expect((await client.lxc.status("pve1", vmid)).status).to.equal("stopped");

    // Removing the trigger records it, without rolling back.
    await client.lxc.updateConfig("pve1", vmid, { set: { memory: 768 } });
    const { rollbackTrigger: _t, ...noTrigger } = { ...base, startAfterRollback: false };
    await change({ id: s.id, outs: step2.outs }, noTrigger);
    expect(Number((await client.lxc.getConfig("pve1", vmid, { current: true })).memory)).to.equal(768);
    await handler.delete!(s.id, step2.outs);
  });

  it("follows a migrated CT instead of replacing the snapshot; notices a snapshot deleted behind its back", async () => {
    const client = providerClient();
    const vmid = await container("local-lvm");
    const base = { node: "pve1", vmid, name: "pre-move" };
    const s = await up(base);
    await client.lxc.migrateAndWait("pve1", vmid, { target: "pve2" });

    // Refresh finds it on pve2; the program now says pve2: an update, not a replace.
    const read = await handler.read!(s.id, s.outs);
    expect(read.props!.node).to.equal("pve2");
    const moved = await change({ id: s.id, outs: s.outs }, { ...base, node: "pve2", description: "moved" });
    expect(moved.diff.replaces).to.deep.equal([]);
    expect(moved.outs).to.include({ node: "pve2", description: "moved" });
    // Even with the stale node in the program, operations find the CT by vmid.
    const stale = await change({ id: s.id, outs: moved.outs }, { ...base, node: "pve1", description: "stale node" });
    expect(stale.diff.replaces).to.deep.equal([]);
    expect((await client.lxc.listSnapshots("pve2", vmid)).find((x) => x.name === "pre-move")?.description).to.equal("stale node\n"); // as PVE lists it

    await client.lxc.deleteSnapshotAndWait("pve2", vmid, "pre-move");
    const gone = await handler.read!(s.id, moved.outs);
    expect(gone.id).to.equal("");
    // Updating a vanished snapshot says what to do.
    const e = await handler.update!(s.id, moved.outs, (await handler.check!({}, { ...base, description: "x" })).inputs).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(e?.message).to.include("no longer exists; run `pulumi refresh`");
  });

  it("on storage that cannot snapshot, names the volumes, their storage types and the fix", async () => {
    const vmid = await container("shared-nfs", { mp0: "local-lvm:1,mp=/data" });
    const e = await up({ node: "pve1", vmid, name: "nope" }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(e, "snapshot on nfs must be refused").to.be.instanceOf(Error);
    const msg = e!.message;
    expect(msg).to.include(`Cannot snapshot CT ${vmid} as 'nope'`);
    expect(msg).to.include("zfspool, lvmthin, rbd, btrfs");
    expect(msg).to.match(/rootfs: shared-nfs:\S+ on storage 'shared-nfs' \(type nfs\) — cannot snapshot/);
    expect(msg).to.match(/mp0: local-lvm:\S+ on storage 'local-lvm' \(type lvmthin\) — can snapshot/);
    expect(msg).to.include("Move rootfs to a storage of type").and.include("'local-lvm'").and.include("'local-zfs'");
    expect(await snapshots("pve1", vmid)).to.deep.equal([]);

    // Bind mounts are named as such (pure function: the sandbox API cannot add one for a token).
    const vols = volumesOf({ rootfs: "local-zfs:subvol-1-disk-0,size=1G", mp1: "/srv/data,mp=/data" }, { "local-zfs": "zfspool" });
    const text = snapshotRefusal(1, "x", "pve1", vols, []);
    expect(text).to.include("mp1: bind/device mount of host path '/srv/data' — blocks snapshots");
    expect(text).to.include("rootfs: local-zfs:subvol-1-disk-0 on storage 'local-zfs' (type zfspool) — can snapshot");
    expect(text).to.include("To fix: remove the bind/device mount point mp1.");
  });

  it("validates names and vmid before sending anything, and a missing CT reads clearly", async () => {
    for (const [name, text] of [
      ["current", "reserved"],
      ["1abc", "must start with a letter"],
      ["a", "at least 2 characters"],
      ["x".repeat(41), "at most 40"],
      ["has space", "only letters"],
    ]) {
      const r = await handler.check!({}, { node: "pve1", vmid: 100, name });
      expect(r.failures?.[0]?.property, name).to.equal("name");
      expect(r.failures?.[0]?.reason, name).to.include(text);
    }
    const e = await up({ node: "pve1", vmid: 999999, name: "snap" }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(e?.message).to.include("no container 999999 exists in the cluster");
    // Known snapshot name on the CT already: clear message instead of PVE's task error.
    const vmid = await container("local-lvm");
    await providerClient().lxc.createSnapshotAndWait("pve1", vmid, { snapname: "taken" });
    const e2 = await up({ node: "pve1", vmid, name: "taken" }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(e2?.message).to.include(`CT ${vmid} already has a snapshot 'taken'`);
  });

  it("sent no request the PVE schema rejects", async () => {
    expect((await sb.admin.counters()).violationCount).to.equal(0);
  });
});

describe("Template and Snapshot SDK classes (Pulumi mocks)", function () {
  this.timeout(30_000);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  const registered: Array<{ type: string; name: string; inputs: Record<string, any> }> = [];

  before(async () => {
    await pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          registered.push({ type: args.type, name: args.name, inputs: args.inputs });
          const outs: Record<string, unknown> = { ...args.inputs };
          if (args.type.endsWith(":Container")) Object.assign(outs, { vmid: 4242, node: "pve2" });
          if (args.type.endsWith(":Template")) Object.assign(outs, { volid: "local:vztmpl/x.tar.gz", size: 1, format: "tgz" });
          // Ids as the providers make them: a Container's is its vmid, a Template's its volid.
          const id = args.type.endsWith(":Container") ? "4242" : args.type.endsWith(":Template") ? "local:vztmpl/x.tar.gz" : `${args.name}-id`;
          return { id, state: outs };
        },
        call: (args) => args.inputs,
      },
      "project",
      "stack",
      false,
    );
  });

  const resolved = <T>(o: import("@pulumi/pulumi").Output<T>) => new Promise<T>((r) => o.apply((v) => r(v)));

  it("Snapshot takes node and vmid from a Container; Template and Snapshot pass their resource name", async () => {
    // Loaded after setMocks, as a Pulumi program would be.
    const sdk = await import("../../sdk");
    const tmpl = new sdk.Template("tmpl", { node: "pve1", appliance: "debian-12-standard" });
    const ct = new sdk.Container("ct", { node: "pve1", template: tmpl, rootfs: { storage: "local-lvm", size: "1G" } });
    const snap = new sdk.Snapshot("snap", { container: ct, name: "before", description: "d" });
    expect(await resolved(snap.vmid)).to.equal(4242);
    expect(await resolved(snap.node)).to.equal("pve2");
    expect(await resolved(tmpl.volid)).to.equal("local:vztmpl/x.tar.gz");
    const s = registered.find((r) => r.name === "snap")!;
    expect(s.type).to.equal("pulumi-nodejs:dynamic/proxmox:Snapshot");
    expect(s.inputs).to.include({ vmid: 4242, node: "pve2", name: "before", description: "d", resourceName: "snap" });
    const t = registered.find((r) => r.name === "tmpl")!;
    expect(t.type).to.equal("pulumi-nodejs:dynamic/proxmox:Template");
    expect(t.inputs).to.include({ node: "pve1", appliance: "debian-12-standard", resourceName: "tmpl" });
    expect(registered.find((r) => r.name === "ct")!.inputs.template).to.equal("local:vztmpl/x.tar.gz");

    expect(() => new sdk.Snapshot("bad", { container: ct, vmid: 1, name: "x1" })).to.throw("give either container or node + vmid, not both");
    expect(() => new sdk.Snapshot("bad2", { node: "pve1", name: "x1" })).to.throw("give container (a Container resource) or both node and vmid");
  });
});
