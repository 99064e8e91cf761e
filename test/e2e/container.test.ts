/**
 * The Container resource through the real Pulumi CLI against the sandbox: what a user sees
 * in `pulumi preview` and gets from `pulumi up` — in-place changes without replacement,
 * growth, mount points, migration on node change, refresh without drift, protection, and
 * a destroy that leaves nothing behind. Not one request may violate the PVE schema.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import type { PveClient } from "../../provider/proxmox/client";
import { describeChanges, findResource, hasNoChanges, opFor, type PulumiStack } from "../support/pulumi";
import { noDrift, startCliStack, stopCliStack } from "../support/e2e";

interface Knobs {
  node?: string;
  memory?: number;
  cores?: number;
  hostname?: string;
  rootfsSize?: string;
  mp?: string | null;
  protection?: boolean;
}

function program(template: string, k: Knobs = {}): string {
  const mp = k.mp ? `mountPoints: [{ slot: 0, storage: "local-lvm", size: ${JSON.stringify(k.mp)}, path: "/data", backup: true }],` : "";
  return `
import { Container } from "pulumi-proxmox-lxc";
const web = new Container("web", {
  node: ${JSON.stringify(k.node ?? "pve1")},
  template: ${JSON.stringify(template)},
  hostname: ${JSON.stringify(k.hostname ?? "web-1")},
  description: "managed by pulumi",
  tags: ["Web", "prod"],
  cpu: { cores: ${k.cores ?? 1} },
  memory: { dedicated: ${k.memory ?? 512}, swap: 256 },
  features: { nesting: true },
  rootfs: { storage: "local-lvm", size: ${JSON.stringify(k.rootfsSize ?? "4G")} },
  ${mp}
  networks: [{ name: "eth0", bridge: "vmbr0", ip: "10.10.0.5/24", gw: "10.10.0.1" }, { name: "eth1", bridge: "vmbr1", ip: "dhcp" }],
  dns: { servers: ["10.10.0.1"], searchDomains: ["example.test"] },
  startup: { order: 2 },
  startOnBoot: true,
  password: "e2e-root-password",
  protection: ${k.protection ?? false},
});
export const vmid = web.vmid;
export const node = web.node;
export const ipv4 = web.ipv4;
export const volids = web.volids;
`;
}

describe("e2e: Container through the real Pulumi CLI", function () {
  this.timeout(15 * 60 * 1000);
  let sb: SandboxHandle;
  let stack: PulumiStack;
  let client: PveClient;
  let template: string;

  before(async function () {
    this.timeout(45 * 60 * 1000);
    ({ sb, client, stack, template } = await startCliStack("debian", program));
  });
  after(() => stopCliStack({ sb, stack }));

  let vmid: number;
  /** Change the program and `up`; with `preview`, first assert what `pulumi preview` announces. */
  const step = async (k: Knobs, expectOp: string, opts: { preview?: boolean } = {}) => {
    stack.writeProgram(program(template, k));
    if (opts.preview !== false) {
      const preview = await stack.preview();
      expect(opFor(preview, "web"), describeChanges(preview)).to.equal(expectOp);
    }
    const up = await stack.up();
    expect(opFor(up, "web"), describeChanges(up)).to.equal(expectOp);
    const outs = await stack.outputs();
    expect(outs.vmid, "vmid is kept").to.equal(vmid);
    return outs;
  };

  it("creates a richly configured container", async () => {
    const up = await stack.up();
    expect(opFor(up, "web")).to.equal("create");
    const outs = await stack.outputs();
    vmid = outs.vmid as number;
    expect(outs.ipv4).to.deep.include({ eth0: ["10.10.0.5/24"] });
    expect((outs.ipv4 as Record<string, string[]>).eth1, "dhcp lease").to.have.length(1);
    const cfg = await client.lxc.getConfig("pve1", vmid, { current: true });
    expect(cfg.tags).to.equal("prod;web");
    expect(cfg.features).to.equal("nesting=1");
  });

  it("previews no changes right after up, and refresh finds no drift", async () => {
    expect(hasNoChanges(await stack.preview()), "preview after up").to.equal(true);
    const refresh = await stack.refresh();
    expect(noDrift(refresh), describeChanges(refresh)).to.equal(true);
    expect(hasNoChanges(await stack.preview()), "preview after refresh").to.equal(true);
  });

  it("changes memory and cores in place", async () => {
    await step({ memory: 1024, cores: 2 }, "update");
    const cfg = await client.lxc.getConfig("pve1", vmid, { current: true });
    expect([Number(cfg.memory), Number(cfg.cores)]).to.deep.equal([1024, 2]);
  });

  it("renames a running container", async () => {
    await step({ memory: 1024, cores: 2, hostname: "web-2" }, "update", { preview: false });
    expect((await client.lxc.getConfig("pve1", vmid, { current: true })).hostname).to.equal("web-2");
    expect((await client.lxc.status("pve1", vmid)).status).to.equal("running");
  });

  it("grows the rootfs, adds, grows and removes a mount point, keeping the vmid", async () => {
    const base = { memory: 1024, cores: 2, hostname: "web-2" };
    await step({ ...base, rootfsSize: "6G" }, "update");
    expect((await client.lxc.getConfig("pve1", vmid, { current: true })).rootfs).to.match(/size=6G/);
    const outs = await step({ ...base, rootfsSize: "6G", mp: "1G" }, "update", { preview: false });
    const mpVol = (outs.volids as Record<string, string>).mp0;
    await sb.admin.writeVolumeMarker(mpVol, "data written by the app");
    await step({ ...base, rootfsSize: "6G", mp: "3G" }, "update");
    expect(String((await client.lxc.getConfig("pve1", vmid, { current: true })).mp0)).to.match(/size=3G/);
    expect(await sb.admin.readVolumeMarker(mpVol), "mount point data survives the resize").to.equal("data written by the app");
    await step({ ...base, rootfsSize: "6G" }, "update", { preview: false });
    expect((await client.lxc.getConfig("pve1", vmid, { current: true })).mp0).to.equal(undefined);
  });

  it("refuses to shrink with an explanation in the preview", async () => {
    stack.writeProgram(program(template, { memory: 1024, cores: 2, hostname: "web-2", rootfsSize: "2G" }));
    const res = await stack.run(["preview", "--non-interactive"], { allowFailure: true });
    expect(res.code).to.not.equal(0);
    expect(res.stdout + res.stderr).to.match(/cannot shrink from 6G to 2G/);
  });

  it("migrates on a node change (preview says update, vmid kept)", async () => {
    const outs = await step({ memory: 1024, cores: 2, hostname: "web-2", rootfsSize: "6G", node: "pve2" }, "update");
    expect(outs.node).to.equal("pve2");
    expect((await client.cluster.findGuest(vmid))?.node).to.equal("pve2");
    const refresh = await stack.refresh();
    expect(noDrift(refresh), describeChanges(refresh)).to.equal(true);
  });

  it("honours protection on destroy, then destroys everything when it is lifted", async () => {
    const k = { memory: 1024, cores: 2, hostname: "web-2", rootfsSize: "6G", node: "pve2" };
    await step({ ...k, protection: true }, "update", { preview: false });
    const res = await stack.run(["destroy", "--yes", "--non-interactive"], { allowFailure: true });
    expect(res.code).to.not.equal(0);
    expect(res.stdout + res.stderr).to.match(/has protection enabled/);
    expect(await client.cluster.findGuest(vmid)).to.not.equal(undefined);
    await step({ ...k, protection: false }, "update", { preview: false });
    await stack.run(["destroy", "--yes", "--non-interactive"]);
    expect(await client.cluster.containers()).to.deep.equal([]);
    for (const node of ["pve1", "pve2"]) {
      for (const s of ["local-lvm", "local-zfs"]) expect(await client.storage.content(node, s), `${node}/${s} volumes`).to.deep.equal([]);
    }
    const state = await stack.exportState();
    expect(findResource(state, "web")).to.equal(undefined);
    expect(JSON.stringify(state)).to.not.include("e2e-root-password");
    expect((await sb.admin.counters()).violationCount, "schema violations").to.equal(0);
  });
});
