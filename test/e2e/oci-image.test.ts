/**
 * OciImage through the real Pulumi CLI: one image pulled by the (sandboxed) PVE server from
 * a loopback registry, one converted on the client from an OCI layout; each feeds an app
 * container that gets the image's entrypoint and env.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import type { PveClient } from "../../provider/proxmox/client";
import { describeChanges, opFor, PulumiStack, changedResources } from "../support/pulumi";
import { sandboxConfig, startCliSandbox } from "../support/e2e";
import { writeOciLayout, tmpDir } from "../oci/support";
import { startAnonymousRegistry, skopeoCopy, type AnonymousRegistry } from "../support/fixtures";
import { runnableImage } from "../oci/images";

describe("e2e: OciImage in server and client mode feeding Containers (real CLI)", function () {
  this.timeout(10 * 60 * 1000);
  let sb: SandboxHandle;
  let stack: PulumiStack;
  let client: PveClient;
  let registry: AnonymousRegistry;
  let host: string;
  let layout: string;

  before(async function () {
    this.timeout(45 * 60 * 1000);
    layout = tmpDir("e2e-oci-layout-");
    await writeOciLayout(layout, { v1: runnableImage() });
    registry = await startAnonymousRegistry();
    host = registry.host;
    skopeoCopy(`oci:${layout}:v1`, `docker://${host}/demo/app:1.0`);

    ({ sb, client } = await startCliSandbox({ nodes: ["pve1"] }));
    stack = await PulumiStack.create({
      programSource: `
import { Container, OciImage } from "pulumi-proxmox-lxc";
const served = new OciImage("served", { node: "pve1", source: ${JSON.stringify(`${host}/demo/app:1.0`)} });
const converted = new OciImage("converted", { node: "pve1", source: ${JSON.stringify(`oci:${layout}:v1`)}, mode: "client", fileName: "converted-app.tar" });
const common = { node: "pve1", rootfs: { storage: "local-lvm", size: "1G" }, networks: [{ name: "eth0", bridge: "vmbr0", ip: "dhcp" }] };
const a = new Container("app-served", { ...common, template: served });
const b = new Container("app-converted", { ...common, template: converted, env: { FOO: "overridden" } });
export const servedMode = served.resolvedMode;
export const servedVolid = served.volid;
export const convertedVolid = converted.volid;
export const vmids = [a.vmid, b.vmid];
`,
      config: sandboxConfig(sb),
    });
  });
  after(async () => {
    if (stack) await stack.remove();
    if (sb) await sb.stop();
    registry?.stop();
  });

  it("creates both templates and app containers with the image's entrypoint and env", async () => {
    const up = await stack.up();
    for (const n of ["served", "converted", "app-served", "app-converted"]) expect(opFor(up, n), describeChanges(up)).to.equal("create");
    const outs = await stack.outputs();
    expect(outs.servedMode).to.equal("server");
    expect(outs.servedVolid).to.equal("local:vztmpl/app_1.0.tar");
    expect(outs.convertedVolid).to.equal("local:vztmpl/converted-app.tar");
    const [va, vb] = outs.vmids as number[];
    const ca = await client.lxc.getConfig("pve1", va, { current: true });
    const cb = await client.lxc.getConfig("pve1", vb, { current: true });
    for (const c of [ca, cb]) expect(c.entrypoint).to.equal(`/bin/sh -c 'read g < greeting; echo "$g user=$HOME cwd=$PWD foo=$FOO"'`);
    expect(String(ca.env)).to.equal("FOO=bar");
    expect(String(cb.env), "explicit env wins over the image's").to.equal("FOO=overridden");
    expect(changedResources(await stack.preview())).to.deep.equal([]);
  });

  it("destroys containers and templates", async () => {
    await stack.run(["destroy", "--yes", "--non-interactive"]);
    expect(await client.cluster.containers()).to.deep.equal([]);
    expect(await client.storage.content("pve1", "local", { content: "vztmpl" })).to.deep.equal([]);
    expect((await sb.admin.counters()).violationCount).to.equal(0);
  });
});
