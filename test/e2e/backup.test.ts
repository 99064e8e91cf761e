/**
 * The Backup resource through the real Pulumi CLI against the sandbox: a backup of a
 * Container made on `up`, notes and protection changed in place (the preview says update),
 * no phantom diff after `up` or refresh, a container change that leaves the backup alone, a
 * new trigger value that replaces it, a refresh after the backup was deleted outside, and a
 * destroy that leaves no backup behind. Not one request may violate the PVE schema.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import type { PveClient } from "../../provider/proxmox/client";
import { changedResources, describeChanges, findResource, hasNoChanges, opFor, type PulumiStack } from "../support/pulumi";
import { noDrift, startCliStack, stopCliStack } from "../support/e2e";

interface Knobs {
  memory?: number;
  notes?: string;
  protected?: boolean;
  trigger?: number;
}

function program(template: string, k: Knobs = {}): string {
  return `
import { Backup, Container } from "pulumi-proxmox-lxc";
const ct = new Container("ct", {
  node: "pve1",
  template: ${JSON.stringify(template)},
  hostname: "db-1",
  memory: { dedicated: ${k.memory ?? 512} },
  rootfs: { storage: "local-lvm", size: "2G" },
  started: true,
});
const bk = new Backup("bk", {
  container: ct,
  storage: "local",
  notesTemplate: ${JSON.stringify(k.notes ?? "{{guestname}} before upgrade")},
  ${k.protected !== undefined ? `protected: ${k.protected},` : ""}
  ${k.trigger !== undefined ? `trigger: ${k.trigger},` : ""}
});
export const vmid = ct.vmid;
export const volume = bk.volume;
export const size = bk.size;
export const ctime = bk.ctime;
export const notes = bk.notes;
export const isProtected = bk.protected;
`;
}

describe("e2e: Backup through the real Pulumi CLI", function () {
  this.timeout(15 * 60 * 1000);
  let sb: SandboxHandle;
  let stack: PulumiStack;
  let client: PveClient;
  let template: string;

  before(async function () {
    this.timeout(45 * 60 * 1000);
    ({ sb, client, stack, template } = await startCliStack("alpine", program));
  });
  after(() => stopCliStack({ sb, stack }));

  let vmid: number;
  let volume: string;
  const backups = async () => (await client.storage.content("pve1", "local", { content: "backup" })).map((i) => i.volid);
  /** Change the program, assert what `pulumi preview` announces for the backup, then `up`. */
  const step = async (k: Knobs, expectOp: string) => {
    stack.writeProgram(program(template, k));
    const preview = await stack.preview();
    expect(opFor(preview, "bk") ?? "same", describeChanges(preview)).to.equal(expectOp);
    const up = await stack.up();
    expect(opFor(up, "bk") ?? "same", describeChanges(up)).to.equal(expectOp);
    return stack.outputs();
  };

  it("makes a backup of the container", async () => {
    const up = await stack.up();
    expect(opFor(up, "bk")).to.equal("create");
    const outs = await stack.outputs();
    vmid = outs.vmid as number;
    volume = outs.volume as string;
    expect(volume).to.match(new RegExp(`^local:backup/vzdump-lxc-${vmid}-\\d{4}_\\d{2}_\\d{2}-\\d{2}_\\d{2}_\\d{2}\\.tar\\.zst$`));
    expect(outs.size).to.be.greaterThan(0);
    expect(outs.ctime).to.be.greaterThan(0);
    expect(outs).to.include({ notes: "db-1 before upgrade", isProtected: false });
    expect(await backups()).to.deep.equal([volume]);
  });

  it("previews no changes right after up, and refresh finds no drift", async () => {
    expect(hasNoChanges(await stack.preview()), "preview after up").to.equal(true);
    const refresh = await stack.refresh();
    expect(noDrift(refresh), describeChanges(refresh)).to.equal(true);
    expect(hasNoChanges(await stack.preview()), "preview after refresh").to.equal(true);
  });

  it("changes notes and protection in place", async () => {
    let outs = await step({ notes: "{{vmid}}: kept for the audit" }, "update");
    expect(outs).to.include({ volume, notes: `${vmid}: kept for the audit` });
    outs = await step({ notes: "{{vmid}}: kept for the audit", protected: true }, "update");
    expect(outs).to.include({ volume, isProtected: true });
    expect((await client.storage.volumeInfo("pve1", volume)).protected).to.equal(true);
    expect(hasNoChanges(await stack.preview()), "preview after the update").to.equal(true);
  });

  it("leaves the backup alone when the container changes in place", async () => {
    stack.writeProgram(program(template, { notes: "{{vmid}}: kept for the audit", protected: true, memory: 1024 }));
    const preview = await stack.preview();
    expect(changedResources(preview), describeChanges(preview)).to.deep.equal(["ct"]);
    const up = await stack.up();
    expect(changedResources(up), describeChanges(up)).to.deep.equal(["ct"]);
    expect((await stack.outputs()).volume).to.equal(volume);
  });

  it("makes a fresh backup when the trigger changes (replace), deleting the old one", async () => {
    const outs = await step({ notes: "{{vmid}}: kept for the audit", protected: true, memory: 1024, trigger: 1 }, "replace");
    expect(outs.volume).to.not.equal(volume);
    expect(outs).to.include({ isProtected: true, notes: `${vmid}: kept for the audit` });
    // The old backup was protected by this resource: it cleared the flag and deleted it.
    expect(await backups()).to.deep.equal([outs.volume]);
    volume = outs.volume as string;
  });

  it("refresh forgets a backup deleted outside; the next up makes a new one", async () => {
    await client.storage.updateVolumeAttributes("pve1", volume, { protected: false });
    await client.storage.deleteVolumeAndWait("pve1", volume);
    const refresh = await stack.refresh();
    expect(noDrift(refresh), "refresh reports the deletion").to.equal(false);
    const up = await stack.up();
    expect(opFor(up, "bk")).to.equal("create");
    volume = (await stack.outputs()).volume as string;
    expect(await backups()).to.deep.equal([volume]);
    expect(hasNoChanges(await stack.preview()), "preview after re-creating").to.equal(true);
  });

  it("destroys the backup (clearing its own protection) and the container, leaving nothing", async () => {
    await stack.run(["destroy", "--yes", "--non-interactive"]);
    expect(await backups()).to.deep.equal([]);
    expect(await client.cluster.containers()).to.deep.equal([]);
    const state = await stack.exportState();
    expect(findResource(state, "bk")).to.equal(undefined);
    expect(JSON.stringify(state)).to.not.include(sb.apiToken);
    expect((await sb.admin.counters()).violationCount, "schema violations").to.equal(0);
  });
});
