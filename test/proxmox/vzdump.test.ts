/**
 * The vzdump client area against the sandbox: a backup sent to the CT's node makes a
 * `vzdump` task whose log names the archive, `locate` finds the volume with and without an
 * explicit storage, a backup sent to another node (PVE answers `OK` and does nothing) is an
 * error, and volume attributes round-trip — with no request violating the PVE schema.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import { PveClient, VzdumpApi } from "../../provider/proxmox";
import { parseUpid } from "../../provider/proxmox/upid";
import { sandbox, tokenClient, ensureTemplate, ctConfig } from "./support/sandbox";

describe("vzdump client area against the sandbox", function () {
  this.timeout(30_000);
  let sb: SandboxHandle;
  let c: PveClient;
  let vz: VzdumpApi;
  let vmid: number;
  before(async () => {
    sb = await sandbox();
    c = tokenClient(sb);
    vz = new VzdumpApi(c);
    await ensureTemplate(c);
    ({ vmid } = await c.createContainer({ node: "pve1", config: ctConfig({ hostname: "bk" }) }));
  });
  after(async () => {
    c.close();
    await sb.stop();
  });
  afterEach(async () => {
    expect((await sb.admin.counters()).violations).to.deep.equal([]);
  });

  it("backs up on the CT's node and finds the volume from the task log", async () => {
    const { upid, task } = await vz.run("pve1", { vmid, compress: "zstd", storage: "local", "notes-template": "{{guestname}}" });
    expect(parseUpid(upid)).to.include({ type: "vzdump", id: String(vmid), node: "pve1" });
    expect(task.exitstatus).to.equal("OK");
    const target = await vz.archiveOf(upid);
    expect(target?.name).to.match(new RegExp(`^vzdump-lxc-${vmid}-\\d{4}_\\d{2}_\\d{2}-\\d{2}_\\d{2}_\\d{2}\\.tar\\.zst$`));
    const found = await vz.locate("pve1", upid, vmid, "local");
    expect(found?.volid).to.equal(`local:backup/${target!.name}`);
    // Without a storage: found among the node's backup storages by the same name.
    expect((await vz.locate("pve1", upid, vmid, undefined))?.volid).to.equal(found!.volid);
    expect(await vz.backupStorages("pve1")).to.deep.equal(["local"]);

    await c.storage.updateVolumeAttributes("pve1", found!.volid, { notes: "two\nlines", protected: true });
    expect(await c.storage.volumeInfo("pve1", found!.volid)).to.include({ notes: "two\nlines", protected: true });
    // A listing shows the first line of the notes only; volumeInfo has them all.
    expect((await vz.find("pve1", found!.volid, vmid))?.notes).to.equal("two");
    await c.storage.updateVolumeAttributes("pve1", found!.volid, { protected: false });
    await c.storage.deleteVolumeAndWait("pve1", found!.volid);
    expect(await vz.find("pve1", found!.volid, vmid)).to.equal(undefined);
  });

  it("refuses PVE's silent `OK` from a node the CT is not on", async () => {
    let err: Error | undefined;
    await vz.start("pve2", { vmid }).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/answered 'OK' and backed up nothing: CT \d+ is not on 'pve2'/);
  });

  it("reads the cluster name for {{cluster}}", async () => {
    expect(await c.cluster.clusterName()).to.equal("sandbox"); // the `cluster` entry, not a node
  });
});
