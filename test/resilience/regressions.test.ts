/**
 * Regression tests for the library bugs the resilience suite found, each pinned down
 * deterministically (the fault matrix hits them too, but as one row among many).
 */
import { expect } from "chai";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { PveClient } from "../../provider/proxmox/client";

describe("resilience: regressions", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  let client: PveClient;
  let template: string;

  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 5, authFailureDelayMs: 0 });
    client = PveClient.connect({ endpoint: sb.endpoint, apiToken: sb.apiToken, tlsFingerprint: sb.tlsFingerprint, logLevel: "silent" });
    const apl = (await client.storage.aplinfo("pve1")).find((a) => a.template.startsWith("alpine"))!;
    await client.storage.aplDownloadAndWait("pve1", "shared-nfs", apl.template);
    template = `shared-nfs:vztmpl/${apl.template}`;
  });
  after(async () => {
    client?.close();
    await sb?.stop();
  });

  it("a create whose answer is lost right after the same vmid was deleted creates the CT (an earlier task is not taken for ours)", async () => {
    const first = await client.lxc.createContainer({ node: "pve1", config: { ostemplate: template, rootfs: "local-lvm:1", hostname: "first" } });
    await client.lxc.destroyAndWait("pve1", first.vmid, { purge: true });
    // nextid hands out the same vmid again, within the 2 s the task search reaches back.
    await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/lxc", action: "status", status: 502, message: "Bad Gateway" });
    const second = await client.lxc.createContainer({ node: "pve1", config: { ostemplate: template, rootfs: "local-lvm:1", hostname: "second" } });
    expect(second.vmid).to.equal(first.vmid);
    expect(second.upid, "a new task, not the first create's").to.not.equal(first.upid);
    const cfg = await client.lxc.getConfig("pve1", second.vmid);
    expect(cfg.hostname).to.equal("second");
    await client.lxc.destroyAndWait("pve1", second.vmid, { purge: true });
  });

  it("a fresh login right after the sandbox expired every ticket is accepted (as PVE does)", async () => {
    const c = PveClient.connect({ endpoint: sb.endpoint, username: sb.username, password: sb.password, tlsFingerprint: sb.tlsFingerprint, logLevel: "silent" });
    await c.cluster.nodes();
    await sb.admin.resetCounters();
    await sb.admin.expireTickets();
    await c.cluster.nodes(); // 401 → one re-login → retried, no waiting for the next second
    expect((await sb.admin.counters()).requests["POST /access/ticket"]).to.equal(1);
    c.close();
  });
});
