import { expect } from "chai";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import handler from "../../provider/resources/container/handler";
import { providerClient } from "../../provider/resources/operation";
import { useSandboxProvider } from "../support/provider";
import { declarationFor } from "../../provider/cli/commands/import";

describe("pve-lxc import", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  before(async () => {
    sb = await startSandbox({ port: 0, taskDurationMs: 5, authFailureDelayMs: 0 });
    useSandboxProvider(sb);
  });
  after(() => sb?.stop());

  it("prints a declaration that adopts the CT without any change", async () => {
    const client = providerClient();
    const apl = (await client.storage.aplinfo("pve1"))[0];
    await client.storage.aplDownloadAndWait("pve1", "local", apl.template);
    const { vmid } = await client.lxc.createContainer({
      node: "pve1",
      config: { ostemplate: `local:vztmpl/${apl.template}`, rootfs: "local-lvm:2", hostname: "legacy", memory: 256, tags: "b;a", net0: "name=eth0,bridge=vmbr0,ip=dhcp", features: "nesting=1" },
    });
    const ts = await declarationFor(client, "pve1", vmid, "legacy");
    expect(ts).to.include(`new Container("legacy", {`);
    expect(ts).to.include("adopt: true");
    const literal = ts.slice(ts.indexOf("{", ts.indexOf("new Container")), ts.lastIndexOf("}") + 1);
    const args = new Function(`return ${literal};`)() as Record<string, unknown>;
    expect(args).to.include({ node: "pve1", vmid, hostname: "legacy" });

    const checked = await handler.check!({}, args);
    expect(checked.failures ?? []).to.deep.equal([]);
    const before = await sb.admin.rawConfig(vmid);
    const created = await handler.create(checked.inputs);
    expect(created.id).to.equal(String(vmid));
    // Adoption changed nothing on the CT...
    expect(await sb.admin.rawConfig(vmid)).to.equal(before);
    // ...and the program diffs clean against what it adopted.
    expect((await handler.diff!(created.id, created.outs, checked.inputs)).changes).to.equal(false);
  });
});
