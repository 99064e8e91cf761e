/**
 * No data lost, in process, with faults on the way: a mount point grown while the resize
 * answer is lost keeps what was written into it; a node change migrates (never replaces)
 * and the volumes keep their content; protection stops a destroy with a clear message and
 * the CT, its state and its data stay. Content markers in the sandbox's volumes are the
 * evidence.
 */
import { expect } from "chai";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { Engine, checkReality, useSandbox, volidOf, type Res } from "./world";
import { dispatch } from "../../provider/resources/registry";
import type { PveClient } from "../../provider/proxmox/client";

describe("resilience: no data lost", function () {
  this.timeout(120_000);
  let sb: SandboxHandle;
  let client: PveClient;
  let template: string;

  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1", "pve2"], taskDurationMs: 5, authFailureDelayMs: 0 });
    client = useSandbox(sb, "token");
    const apl = (await client.storage.aplinfo("pve1")).find((a) => a.template.startsWith("alpine"))!;
    await client.storage.aplDownloadAndWait("pve1", "shared-nfs", apl.template);
    template = `shared-nfs:vztmpl/${apl.template}`;
  });
  after(async () => sb?.stop());

  const ct = (k: { node?: string; mp?: string; protection?: boolean }): Res => ({
    kind: "Container",
    name: "db",
    inputs: {
      node: k.node ?? "pve1",
      template,
      hostname: "db-1",
      rootfs: { storage: "local-lvm", size: "1G" },
      mountPoints: [{ slot: 0, storage: "local-lvm", size: k.mp ?? "1G", path: "/var/lib/db", backup: true }],
      protection: k.protection ?? false,
    },
  });

  it("keeps the data through a mount point resize with a lost answer, a migration and a refused destroy", async () => {
    const engine = new Engine();
    expect((await engine.up([ct({})])).ok).to.equal(true);
    const vmid = Number(engine.get("db")!.id);
    const markers = [
      { ct: "db", disk: "rootfs", text: "the OS" },
      { ct: "db", disk: "mp0", text: "the database files" },
    ];
    for (const m of markers) await sb.admin.writeVolumeMarker(volidOf(engine, m.ct, m.disk), m.text);
    const real = async () => (await checkReality(client, sb, engine, { nodes: ["pve1", "pve2"], markers })).problems;

    // Grow the mount point; the resize's answer is lost after PVE acted.
    await sb.admin.addFault({ method: "PUT", path: "/nodes/{node}/lxc/{vmid}/resize", action: "reset-after" });
    const grown = await engine.up([ct({ mp: "3G" })]);
    expect(grown.ok, grown.errors.join("; ")).to.equal(true);
    expect(String((await client.lxc.getConfig("pve1", vmid)).mp0)).to.match(/size=3G/);
    expect(await real()).to.deep.equal([]);

    // Node change: an update (never a replacement), same vmid, same data.
    const checked = await dispatch("Container", "check", [{}, { ...(ct({ node: "pve2", mp: "3G" }).inputs as object), resourceName: "db" }]);
    const d = await dispatch("Container", "diff", [String(vmid), engine.get("db")!.outs, checked.inputs]);
    expect(d.replaces ?? []).to.deep.equal([]);
    const moved = await engine.up([ct({ node: "pve2", mp: "3G" })]);
    expect(moved.ok, moved.errors.join("; ")).to.equal(true);
    expect(moved.ops.db).to.equal("update");
    expect(Number(engine.get("db")!.id)).to.equal(vmid);
    expect((await client.cluster.findGuest(vmid))?.node).to.equal("pve2");
    expect(await real()).to.deep.equal([]);

    // Protection: the destroy is refused, clearly; CT, state and data stay.
    expect((await engine.up([ct({ node: "pve2", mp: "3G", protection: true })])).ok).to.equal(true);
    const refused = await engine.up([]);
    expect(refused.ok).to.equal(false);
    expect(refused.errors.join("; ")).to.match(/has protection enabled, so it was not destroyed.*Set protection: false/);
    expect(engine.get("db"), "still in state").to.not.equal(undefined);
    expect(await real()).to.deep.equal([]);

    // Lifting it lets the destroy through, and nothing is left behind.
    expect((await engine.up([ct({ node: "pve2", mp: "3G", protection: false })])).ok).to.equal(true);
    expect((await engine.up([])).ok).to.equal(true);
    expect(await client.cluster.containers()).to.deep.equal([]);
    expect((await checkReality(client, sb, engine, { nodes: ["pve1", "pve2"] })).problems).to.deep.equal([]);
    expect((await sb.admin.counters()).violationCount).to.equal(0);
  });
});
