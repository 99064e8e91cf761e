/**
 * The Container handler against the sandbox, in process (fast; the same handler runs under
 * the real Pulumi CLI in test/e2e). Asserts what users rely on: in-place changes, disk
 * growth without replacement, migration on node change, refresh without drift, protection,
 * adoption, and that not one request violated the PVE schema.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import handler from "../../provider/resources/container/handler";
import { providerClient } from "../../provider/resources/operation";
import { createChecked, startProviderSandbox } from "../support/provider";

describe("Container handler (in process, against the sandbox)", function () {
  this.timeout(120_000);
  let sb: SandboxHandle;
  let template: string;

  before(async () => {
    ({ sb, template } = await startProviderSandbox("debian"));
  });
  after(async () => {
    await sb?.stop();
  });

  const base = () => ({
    node: "pve1",
    template,
    hostname: "web-1",
    tags: ["Web", "prod"],
    cpu: { cores: 1 },
    memory: { dedicated: 512, swap: 0 },
    rootfs: { storage: "local-lvm", size: "4G" },
    networks: [{ name: "eth0", bridge: "vmbr0", ip: "10.0.0.5/24", gw: "10.0.0.1" }],
    resourceName: "web",
  });

  const up = (inputs: Record<string, unknown>) => createChecked(handler, inputs);

  async function change(inputs: Record<string, unknown>, olds: { id: string; outs: Record<string, any> }) {
    const checked = await handler.check!({}, inputs);
    expect(checked.failures ?? []).to.deep.equal([]);
    const d = await handler.diff!(olds.id, olds.outs, checked.inputs);
    const outs = d.changes ? ((await handler.update!(olds.id, olds.outs, checked.inputs)).outs as Record<string, any>) : olds.outs;
    return { diff: d, result: { outs } };
  }

  it("creates, refreshes without drift, changes in place, grows and migrates", async () => {
    const created = await up(base());
    const id = created.id;
    const outs = created.outs as Record<string, any>;
    expect(outs.vmid).to.be.a("number");
    expect(outs.status).to.equal("running");
    expect(outs.tags).to.deep.equal(["prod", "web"]);
    expect(outs.hwaddrs.net0).to.match(/^BC:24:11:/);
    expect(outs.ipv4.eth0).to.deep.equal(["10.0.0.5/24"]);

    // Refresh right after create: same outputs, and the program's inputs diff to nothing.
    const read = await handler.read!(id, outs);
    expect(read.id).to.equal(id);
    const checked = await handler.check!({}, base());
    expect((await handler.diff!(id, read.props!, checked.inputs)).changes).to.equal(false);

    // Memory and cores change in place on the running CT.
    const bigger = { ...base(), cpu: { cores: 2 }, memory: { dedicated: 1024, swap: 0 } };
    let step = await change(bigger, { id, outs: read.props! });
    expect(step.diff.replaces ?? []).to.deep.equal([]);
    const client = providerClient();
    let cfg = await client.lxc.getConfig("pve1", Number(id), { current: true });
    expect(Number(cfg.memory)).to.equal(1024);
    expect(Number(cfg.cores)).to.equal(2);

    // Write data into the rootfs, grow it, and add a mount point: vmid and data kept.
    const rootVol = (step.result.outs as any).volids.rootfs;
    await sb.admin.writeVolumeMarker(rootVol, "precious");
    const grown = { ...bigger, rootfs: { storage: "local-lvm", size: "6G" }, mountPoints: [{ slot: 0, storage: "local-lvm", size: "1G", path: "/data" }] };
    step = await change(grown, { id, outs: step.result.outs });
    expect(step.diff.replaces ?? []).to.deep.equal([]);
    cfg = await client.lxc.getConfig("pve1", Number(id), { current: true });
    expect(cfg.rootfs).to.match(/size=6G/);
    expect(String(cfg.mp0)).to.match(/mp=\/data/);
    expect(await sb.admin.readVolumeMarker(rootVol)).to.equal("precious");

    // Grow the mount point, then refuse to shrink it with an explanation.
    const mpGrown = { ...grown, mountPoints: [{ slot: 0, storage: "local-lvm", size: "2G", path: "/data" }] };
    step = await change(mpGrown, { id, outs: step.result.outs });
    cfg = await client.lxc.getConfig("pve1", Number(id), { current: true });
    expect(String(cfg.mp0)).to.match(/size=2G/);
    const shrink = { ...mpGrown, mountPoints: [{ slot: 0, storage: "local-lvm", size: "1G", path: "/data" }] };
    const c2 = await handler.check!({}, shrink);
    await handler.diff!(id, step.result.outs as any, c2.inputs).then(
      () => expect.fail("shrinking must be refused"),
      (e: Error) => expect(e.message).to.match(/cannot shrink from 2G to 1G/),
    );

    // Node change: migrate, same vmid, data still there.
    const moved = { ...mpGrown, node: "pve2" };
    step = await change(moved, { id, outs: step.result.outs });
    expect(step.diff.replaces ?? []).to.deep.equal([]);
    expect((step.result.outs as any).node).to.equal("pve2");
    expect((step.result.outs as any).vmid).to.equal(Number(id));
    expect((step.result.outs as any).status).to.equal("running");
    const where = await client.cluster.findGuest(Number(id));
    expect(where?.node).to.equal("pve2");

    // Remove the mount point, then destroy.
    step = await change({ ...moved, mountPoints: [] }, { id, outs: step.result.outs });
    cfg = await client.lxc.getConfig("pve2", Number(id), { current: true });
    expect(cfg.mp0).to.equal(undefined);
    await handler.delete!(id, step.result.outs as any);
    expect(await client.cluster.findGuest(Number(id))).to.equal(undefined);
    expect((await sb.admin.counters()).violationCount).to.equal(0);
  });

  it("refuses to destroy a protected container with a clear message", async () => {
    const created = await up({ ...base(), protection: true, started: false });
    await handler.delete!(created.id, created.outs).then(
      () => expect.fail("protected CT was destroyed"),
      (e: Error) => expect(e.message).to.match(/has protection enabled.*Set protection: false/),
    );
    const checked = await handler.check!({}, { ...base(), protection: false, started: false });
    const res = await handler.update!(created.id, created.outs, checked.inputs);
    await handler.delete!(created.id, res.outs);
  });

  it("adopts an existing container and converges it", async () => {
    const client = providerClient();
    const { vmid } = await client.lxc.createContainer({ node: "pve1", config: { ostemplate: template, rootfs: "local-lvm:2", hostname: "legacy", memory: 256 } });
    const adopted = await up({ ...base(), vmid, adopt: true, hostname: "legacy-2", rootfs: { storage: "local-lvm", size: "2G" }, started: false, networks: [] });
    expect(adopted.id).to.equal(String(vmid));
    const cfg = await client.lxc.getConfig("pve1", vmid, { current: true });
    expect(cfg.hostname).to.equal("legacy-2");
    await handler.delete!(adopted.id, adopted.outs);
  });

  it("allocates distinct vmids for 20 parallel creates", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => up({ ...base(), hostname: `p${i}`, started: false, networks: [], resourceName: `p${i}` })),
    );
    const ids = results.map((r) => r.id);
    expect(new Set(ids).size).to.equal(20);
    await Promise.all(results.map((r) => handler.delete!(r.id, r.outs)));
    expect((await sb.admin.counters()).violationCount).to.equal(0);
  });

  it("safetySnapshot rolls back a failing update and removes the snapshot", async () => {
    const client = providerClient();
    const created = await up({ ...base(), safetySnapshot: true, networks: [] });
    const vmid = Number(created.id);
    // features change on a running CT stays pending → reboot; make the reboot fail.
    await sb.admin.failTask({ type: "vzreboot", vmid, exitstatus: "startup for container '" + vmid + "' failed" });
    const checked = await handler.check!({}, { ...base(), safetySnapshot: true, networks: [], features: { nesting: true } });
    await handler.update!(created.id, created.outs, checked.inputs).then(
      () => expect.fail("the update should have failed"),
      (e: Error) => expect(e.message).to.match(/rolled back to its state before this update/),
    );
    const cfg = await client.lxc.getConfig("pve1", vmid, { current: true });
    expect(cfg.features).to.equal(undefined);
    expect((await client.lxc.listSnapshots("pve1", vmid)).map((x) => x.name)).to.deep.equal(["current"]);
    // Without the injected failure the same update goes through and leaves no snapshot behind.
    const res = await handler.update!(created.id, created.outs, checked.inputs);
    expect(String((await client.lxc.getConfig("pve1", vmid, { current: true })).features)).to.equal("nesting=1");
    expect((await client.lxc.listSnapshots("pve1", vmid)).map((x) => x.name)).to.deep.equal(["current"]);
    await handler.delete!(created.id, res.outs);
  });
});
