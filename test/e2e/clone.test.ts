/**
 * Clone, template conversion and restore through the real Pulumi CLI against the sandbox:
 * a CT converted in place into a template (the preview says update), three linked clones of
 * it from one `up` (queued on the source's lock), an in-place memory change of one clone,
 * a Backup of a clone restored as a new CT, the preview of isTemplate true → false as a
 * replacement, no phantom diff after any `up`, a refresh without drift, and a destroy that
 * leaves no container, volume or backup. Not one request may violate the PVE schema.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import type { PveClient } from "../../provider/proxmox/client";
import { describeChanges, hasNoChanges, opFor, type PulumiStack } from "../support/pulumi";
import { noDrift, startCliStack, stopCliStack } from "../support/e2e";

interface Knobs {
  isTemplate?: boolean;
  clones?: boolean;
  web1Memory?: number;
  restore?: boolean;
}

function program(template: string, k: Knobs = {}): string {
  const clones = !k.clones
    ? ""
    : [0, 1, 2]
        .map(
          (i) => `
const web${i} = new Container("web-${i}", {
  node: "pve1",
  clone: { source: golden },
  hostname: "web-${i}",
  tags: ["web"],
  memory: { dedicated: ${i === 1 ? (k.web1Memory ?? 256) : 256}, swap: 0 },
  rootfs: { storage: "local-zfs", size: "${i === 2 ? "3G" : "2G"}" },
});
export const web${i}Vmid = web${i}.vmid;
export const web${i}Rootfs = web${i}.volids.apply((v) => v.rootfs);`,
        )
        .join("\n");
  const restore = !k.restore
    ? ""
    : `
const backup = new Backup("web-0-backup", { container: web0, storage: "local" });
const restored = new Container("restored", {
  node: "pve1",
  restore: { backup, unique: true },
  hostname: "restored",
  memory: { dedicated: 384, swap: 0 },
  rootfs: { storage: "local-lvm", size: "3G" },
});
export const backupVolume = backup.volume;
export const restoredVmid = restored.vmid;`;
  return `
import { Backup, Container } from "pulumi-proxmox-lxc";
const golden = new Container("golden", {
  node: "pve1",
  template: ${JSON.stringify(template)},
  hostname: "golden",
  memory: { dedicated: 512, swap: 0 },
  rootfs: { storage: "local-zfs", size: "2G" },
  networks: [{ name: "eth0", bridge: "vmbr0", ip: "dhcp" }],
  started: false,
  isTemplate: ${k.isTemplate ?? false},
});
export const goldenVmid = golden.vmid;
export const goldenIsTemplate = golden.isTemplate;
${clones}
${restore}
`;
}

describe("e2e: clone, template conversion and restore through the real Pulumi CLI", function () {
  this.timeout(15 * 60 * 1000);
  let sb: SandboxHandle;
  let stack: PulumiStack;
  let client: PveClient;
  let template: string;

  before(async function () {
    this.timeout(45 * 60 * 1000);
    ({ sb, client, stack, template } = await startCliStack("debian", program, "local"));
  });
  after(() => stopCliStack({ sb, stack }, { noViolations: true }));

  /** Write the program, check what the preview announces for each named resource, `up`, check the same ops. */
  async function step(k: Knobs, expected: Record<string, string>): Promise<Record<string, unknown>> {
    stack.writeProgram(program(template, k));
    const preview = await stack.preview();
    for (const [r, op] of Object.entries(expected)) expect(opFor(preview, r), `preview of ${r}: ${describeChanges(preview)}`).to.equal(op);
    const up = await stack.up();
    for (const [r, op] of Object.entries(expected)) expect(opFor(up, r), `up of ${r}: ${describeChanges(up)}`).to.equal(op);
    const after = await stack.preview();
    expect(hasNoChanges(after), `preview right after up: ${describeChanges(after)}`).to.equal(true);
    return stack.outputs();
  }

  let goldenVmid: number;
  let outs: Record<string, unknown>;

  it("creates a CT and converts it into a template in place (the preview says update)", async () => {
    outs = await step({}, { golden: "create" });
    goldenVmid = outs.goldenVmid as number;
    // A linked clone of a Container not declared a template: refused by check() in the preview.
    stack.writeProgram(program(template) + `\nnew Container("linked", { node: "pve1", clone: { source: golden, full: false } });\n`);
    const refused = await stack.run(["preview", "--non-interactive"], { allowFailure: true });
    expect(refused.code, "preview fails").to.not.equal(0);
    expect(refused.stdout + refused.stderr).to.match(/clone\.full: false asks for a linked clone, but the source CT \d+ is not a template/);
    outs = await step({ isTemplate: true }, { golden: "update" });
    expect(outs.goldenVmid, "same CT").to.equal(goldenVmid);
    expect(outs.goldenIsTemplate).to.equal(true);
    const cfg = await client.lxc.getConfig("pve1", goldenVmid, { current: true });
    expect(cfg.template).to.equal(true);
    expect(String(cfg.rootfs)).to.match(new RegExp(`^local-zfs:basevol-${goldenVmid}-disk-`));
  });

  it("makes three linked clones in one up, each with its declared inputs applied", async () => {
    outs = await step({ isTemplate: true, clones: true }, { "web-0": "create", "web-1": "create", "web-2": "create" });
    for (const i of [0, 1, 2]) {
      const vmid = outs[`web${i}Vmid`] as number;
      const cfg = await client.lxc.getConfig("pve1", vmid, { current: true });
      expect(cfg.hostname).to.equal(`web-${i}`);
      expect(cfg.tags).to.equal("web");
      expect(Number(cfg.memory)).to.equal(256);
      expect(outs[`web${i}Rootfs`], "a linked clone of the template's base volume").to.match(new RegExp(`^local-zfs:basevol-${goldenVmid}-disk-\\d+/subvol-${vmid}-disk-`));
      expect(String(cfg.rootfs)).to.include(i === 2 ? "size=3G" : "size=2G");
      expect((await client.lxc.status("pve1", vmid)).status).to.equal("running");
    }
  });

  it("refreshes without drift", async () => {
    const refresh = await stack.refresh();
    expect(noDrift(refresh), describeChanges(refresh)).to.equal(true);
    expect(hasNoChanges(await stack.preview()), "preview after refresh").to.equal(true);
  });

  it("changes one clone's memory in place", async () => {
    const web1 = outs.web1Vmid as number;
    outs = await step({ isTemplate: true, clones: true, web1Memory: 512 }, { "web-1": "update" });
    expect(outs.web1Vmid, "vmid kept").to.equal(web1);
    expect(Number((await client.lxc.getConfig("pve1", web1, { current: true })).memory)).to.equal(512);
  });

  it("backs up a clone and restores the backup as a new CT with its declared inputs", async () => {
    outs = await step({ isTemplate: true, clones: true, web1Memory: 512, restore: true }, { "web-0-backup": "create", restored: "create" });
    const vmid = outs.restoredVmid as number;
    expect(outs.backupVolume).to.match(new RegExp(`^local:backup/vzdump-lxc-${outs.web0Vmid}-`));
    const cfg = await client.lxc.getConfig("pve1", vmid, { current: true });
    expect(cfg.hostname).to.equal("restored");
    expect(Number(cfg.memory)).to.equal(384);
    expect(cfg.tags, "from the backup's config").to.equal("web");
    expect(String(cfg.rootfs)).to.match(/^local-lvm:vm-\d+-disk-\d+,size=3G/);
    const refresh = await stack.refresh();
    expect(noDrift(refresh), describeChanges(refresh)).to.equal(true);
  });

  it("previews isTemplate true → false as a replacement", async () => {
    stack.writeProgram(program(template, { isTemplate: false, clones: true, web1Memory: 512, restore: true }));
    const preview = await stack.preview();
    expect(opFor(preview, "golden"), describeChanges(preview)).to.equal("replace");
    expect(opFor(preview, "web-0"), "a linked clone goes with its template").to.equal("replace");
    const text = await stack.run(["preview", "--diff", "--non-interactive"]);
    expect(text.stdout + text.stderr, "the preview says why").to.match(/isTemplate true → false replaces the container: Proxmox cannot turn a CT template back into a container/);
    stack.writeProgram(program(template, { isTemplate: true, clones: true, web1Memory: 512, restore: true }));
    expect(hasNoChanges(await stack.preview())).to.equal(true);
  });

  it("destroys everything: no container, volume or backup left", async () => {
    await stack.destroy();
    expect(await client.cluster.containers()).to.deep.equal([]);
    for (const node of ["pve1", "pve2"]) {
      for (const s of ["local-lvm", "local-zfs"]) expect(await client.storage.content(node, s), `${node}/${s} volumes`).to.deep.equal([]);
    }
    expect(await client.storage.content("pve1", "local", { content: "backup" }), "backups").to.deep.equal([]);
  });
});
