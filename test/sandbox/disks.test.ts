/**
 * Sandbox conformance: resize, move_volume, migrate, snapshots, clone, template
 * (BEHAVIOR.md §4.6–4.10, §5). Volume markers prove the data travels with the volume.
 */
import { expect } from "chai";
import { createCt, fetchTemplate, startEnv, type Env } from "./helpers";

describe("sandbox: disks, migration, snapshots, clones", function () {
  let env: Env;
  const cfg = async (vmid: number, node = "pve1") => (await env.api("GET", `/nodes/${node}/lxc/${vmid}/config`)).json.data;
  before(async () => {
    env = await startEnv({ nodes: ["pve1", "pve2"] });
    await fetchTemplate(env);
  });
  after(async () => env.sb.stop());

  it("resize: grow only, relative and absolute, bytes for bare numbers (§4.6)", async () => {
    await createCt(env, 200, { rootfs: "local-lvm:1" });
    await env.sb.admin.writeVolumeMarker("local-lvm:vm-200-disk-0", "data-200");
    const shrink = await env.api("PUT", "/nodes/pve1/lxc/200/resize", { form: { disk: "rootfs", size: "512M" } });
    expect(shrink.status).to.equal(500);
    expect(shrink.json.message).to.equal("unable to shrink disk size\n");
    const same = await env.api("PUT", "/nodes/pve1/lxc/200/resize", { form: { disk: "rootfs", size: "1G" } });
    expect(same.json.message).to.equal("disk is already at specified size\n");
    const bytes = await env.api("PUT", "/nodes/pve1/lxc/200/resize", { form: { disk: "rootfs", size: "1000" } });
    expect(bytes.json.message).to.equal("unable to shrink disk size\n");
    const grow = await env.task("PUT", "/nodes/pve1/lxc/200/resize", { disk: "rootfs", size: "+1G" });
    expect(grow.type).to.equal("resize");
    expect(grow.exitstatus).to.equal("OK");
    expect((await cfg(200)).rootfs).to.equal("local-lvm:vm-200-disk-0,size=2G");
    expect(await env.sb.admin.readVolumeMarker("local-lvm:vm-200-disk-0")).to.equal("data-200");
    const nodisk = await env.api("PUT", "/nodes/pve1/lxc/200/resize", { form: { disk: "mp3", size: "+1G" } });
    expect(nodisk.status).to.equal(500);
  });

  it("move_volume to another storage: old volume becomes unused0, delete=1 frees it (§4.7)", async () => {
    const both = await env.api("POST", "/nodes/pve1/lxc/200/move_volume", { form: { volume: "rootfs", storage: "local-zfs", "target-vmid": 201 } });
    expect(both.json.message).to.equal("either set storage or target-vmid, but not both\n");
    const neither = await env.api("POST", "/nodes/pve1/lxc/200/move_volume", { form: { volume: "rootfs" } });
    const msg = "both 'storage' and 'target-vmid' missing, either needs to be set";
    expect(neither.json.errors).to.deep.equal({ storage: msg, "target-vmid": msg });
    const mv = await env.task("POST", "/nodes/pve1/lxc/200/move_volume", { volume: "rootfs", storage: "local-zfs" });
    expect(mv.exitstatus).to.equal("OK");
    const c = await cfg(200);
    expect(c.rootfs).to.equal("local-zfs:subvol-200-disk-0,size=2G");
    expect(c.unused0).to.equal("local-lvm:vm-200-disk-0");
    expect(c.lock).to.equal(undefined);
    expect(await env.sb.admin.readVolumeMarker("local-zfs:subvol-200-disk-0")).to.equal("data-200");
    const back = await env.task("POST", "/nodes/pve1/lxc/200/move_volume", { volume: "rootfs", storage: "local-lvm", delete: 1 });
    expect(back.exitstatus).to.equal("OK");
    const c2 = await cfg(200);
    expect(c2.rootfs).to.equal("local-lvm:vm-200-disk-1,size=2G");
    expect(await env.sb.admin.readVolumeMarker("local-zfs:subvol-200-disk-0")).to.equal(undefined);
    const unused = await env.api("POST", "/nodes/pve1/lxc/200/move_volume", { form: { volume: "unused0", storage: "local-zfs" } });
    expect(unused.json.message).to.equal("cannot move volume 'unused0', only configured volumes can be moved to another storage\n");
    await env.task("POST", "/nodes/pve1/lxc/200/status/start");
    const run = await env.api("POST", "/nodes/pve1/lxc/200/move_volume", { form: { volume: "rootfs", storage: "local-zfs" } });
    expect(run.json.message).to.equal("cannot move volumes of a running container\n");
  });

  it("migrate: local target, running without restart, restart mode copies local volumes (§4.8)", async () => {
    const local = await env.api("POST", "/nodes/pve1/lxc/200/migrate", { form: { target: "pve1" } });
    expect(local.status).to.equal(400);
    expect(local.json.errors).to.deep.equal({ target: "target is local node." });
    const nonode = await env.api("POST", "/nodes/pve1/lxc/200/migrate", { form: { target: "pve9" } });
    expect(nonode.json.message).to.equal("no such cluster node 'pve9'\n");
    const running = await env.api("POST", "/nodes/pve1/lxc/200/migrate", { form: { target: "pve2" } });
    expect(running.json.message).to.equal("can't migrate running container without --online or --restart\n");
    const online = await env.task("POST", "/nodes/pve1/lxc/200/migrate", { target: "pve2", online: 1 });
    expect(online.exitstatus).to.equal("lxc live migration is currently not implemented");
    const before = await cfg(200);
    const mig = await env.task("POST", "/nodes/pve1/lxc/200/migrate", { target: "pve2", restart: 1, "target-storage": "local-zfs" });
    expect(mig.type).to.equal("vzmigrate");
    expect(mig.exitstatus).to.equal("OK");
    expect((await env.api("GET", "/nodes/pve1/lxc/200/config")).json.message).to.equal("Configuration file 'nodes/pve1/lxc/200.conf' does not exist\n");
    const after = await cfg(200, "pve2");
    expect(after.rootfs).to.equal("local-zfs:subvol-200-disk-0,size=2G");
    expect(after.digest).to.not.equal(before.digest);
    expect(await env.sb.admin.readVolumeMarker("local-zfs:subvol-200-disk-0")).to.equal("data-200");
    expect((await env.api("GET", "/nodes/pve2/lxc/200/status/current")).json.data.status).to.equal("running");
    expect((await env.api("GET", "/nodes/pve1/storage/local-lvm/content?vmid=200")).json.data).to.deep.equal([]);
    const res = (await env.api("GET", "/cluster/resources?type=vm")).json.data.find((r: any) => r.vmid === 200);
    expect(res).to.include({ id: "lxc/200", node: "pve2", type: "lxc", status: "running" });
    // shared storage: nothing is copied
    await createCt(env, 202, { rootfs: "shared-nfs:1" });
    await env.sb.admin.writeVolumeMarker("shared-nfs:202/vm-202-disk-0.raw", "shared-data");
    expect((await env.task("POST", "/nodes/pve1/lxc/202/migrate", { target: "pve2" })).exitstatus).to.equal("OK");
    expect((await cfg(202, "pve2")).rootfs).to.equal("shared-nfs:202/vm-202-disk-0.raw,size=1G");
    expect(await env.sb.admin.readVolumeMarker("shared-nfs:202/vm-202-disk-0.raw")).to.equal("shared-data");
  });

  it("snapshots: create, list, rollback restores config and data, hard-stops (§5)", async () => {
    await createCt(env, 210, { rootfs: "local-lvm:1", memory: 256 });
    await env.sb.admin.writeVolumeMarker("local-lvm:vm-210-disk-0", "v1");
    const reserved = await env.api("POST", "/nodes/pve1/lxc/210/snapshot", { form: { snapname: "current" } });
    expect(reserved.json.message).to.equal("unable to use snapshot name 'current' (reserved name)\n");
    const invalid = await env.api("POST", "/nodes/pve1/lxc/210/snapshot", { form: { snapname: "1bad" } });
    expect(invalid.status).to.equal(400);
    expect(invalid.json.errors).to.deep.equal({ snapname: "invalid format - invalid configuration ID '1bad'\n" });
    const snap = await env.task("POST", "/nodes/pve1/lxc/210/snapshot", { snapname: "s1", description: "first" });
    expect(snap.type).to.equal("vzsnapshot");
    expect(snap.exitstatus).to.equal("OK");
    const dup = await env.task("POST", "/nodes/pve1/lxc/210/snapshot", { snapname: "s1" });
    expect(dup.exitstatus).to.equal("snapshot name 's1' already used");
    const list = (await env.api("GET", "/nodes/pve1/lxc/210/snapshot")).json.data;
    expect(list[list.length - 1]).to.include({ name: "current", description: "You are here!", parent: "s1", running: 0 });
    // Recorded from PVE 8.4.21: the list gives the description as stored, newline-terminated.
    expect(list[0]).to.include({ name: "s1", description: "first\n" });
    expect(list[0].snaptime).to.be.a("number");
    const sc = (await env.api("GET", "/nodes/pve1/lxc/210/snapshot/s1/config")).json.data;
    expect(String(sc.memory)).to.equal("256");
    expect((await env.api("GET", "/nodes/pve1/lxc/210/config?snapshot=s1")).json.data.memory).to.equal(sc.memory);
    const both = await env.api("GET", "/nodes/pve1/lxc/210/config?snapshot=s1&current=1");
    expect(both.json.errors).to.deep.equal({ snapshot: "cannot use 'snapshot' parameter with 'current'", current: "cannot use 'snapshot' parameter with 'current'" });
    expect((await env.api("GET", "/nodes/pve1/lxc/210/feature?feature=snapshot")).json.data).to.deep.equal({ hasFeature: 1 });
    await env.api("PUT", "/nodes/pve1/lxc/210/config", { form: { memory: 1024 } });
    await env.sb.admin.writeVolumeMarker("local-lvm:vm-210-disk-0", "v2");
    await env.task("POST", "/nodes/pve1/lxc/210/status/start");
    const rb = await env.task("POST", "/nodes/pve1/lxc/210/snapshot/s1/rollback");
    expect(rb.exitstatus).to.equal("OK");
    const after = await cfg(210);
    expect(String(after.memory)).to.equal("256");
    expect(after.parent).to.equal("s1");
    expect(await env.sb.admin.readVolumeMarker("local-lvm:vm-210-disk-0")).to.equal("v1");
    expect((await env.api("GET", "/nodes/pve1/lxc/210/status/current")).json.data.status).to.equal("stopped");
    const raw = (await env.sb.admin.rawConfig(210))!;
    expect(raw).to.match(/\n\[s1\]\n#first\n/);
    const del = await env.task("DELETE", "/nodes/pve1/lxc/210/snapshot/s1");
    expect(del.type).to.equal("vzdelsnapshot");
    expect(del.exitstatus).to.equal("OK");
    expect((await cfg(210)).parent).to.equal(undefined);
    const gone = await env.task("DELETE", "/nodes/pve1/lxc/210/snapshot/s1");
    expect(gone.exitstatus).to.equal("snapshot 's1' does not exist");
  });

  it("snapshots on dir/nfs storage fail in the task (§5)", async () => {
    await createCt(env, 211, { rootfs: "shared-nfs:1" });
    expect((await env.api("GET", "/nodes/pve1/lxc/211/feature?feature=snapshot")).json.data).to.deep.equal({ hasFeature: 0 });
    const st = await env.task("POST", "/nodes/pve1/lxc/211/snapshot", { snapname: "s1" });
    expect(st.exitstatus).to.equal("snapshot feature is not available");
    expect((await cfg(211)).lock).to.equal(undefined);
  });

  it("clone: full, linked from a template, and the synchronous rules (§4.9, §4.10)", async () => {
    await createCt(env, 220, { rootfs: "local-lvm:1", net0: "name=eth0,bridge=vmbr0,ip=dhcp" });
    await env.sb.admin.writeVolumeMarker("local-lvm:vm-220-disk-0", "golden");
    const taken = await env.api("POST", "/nodes/pve1/lxc/220/clone", { form: { newid: 210 } });
    expect(taken.json.message).to.equal("CT 210 already exists on node 'pve1'\n");
    const linkedStorage = await env.api("POST", "/nodes/pve1/lxc/220/clone", { form: { newid: 221, full: 0, storage: "local-zfs" } });
    expect(linkedStorage.json.message).to.equal("parameter 'storage' not allowed for linked clones\n");
    const full = await env.task("POST", "/nodes/pve1/lxc/220/clone", { newid: 221, hostname: "copy", storage: "local-zfs" });
    expect(full).to.include({ type: "vzclone", id: "220", exitstatus: "OK" });
    const src = await cfg(220);
    const c = await cfg(221);
    expect(c.hostname).to.equal("copy");
    expect(c.rootfs).to.equal("local-zfs:subvol-221-disk-0,size=1G");
    expect(c.net0).to.not.equal(src.net0);
    expect(src.lock).to.equal(undefined);
    expect(await env.sb.admin.readVolumeMarker("local-zfs:subvol-221-disk-0")).to.equal("golden");
    await env.task("POST", "/nodes/pve1/lxc/221/status/start");
    const runningFull = await env.api("POST", "/nodes/pve1/lxc/221/clone", { form: { newid: 222 } });
    expect(runningFull.json.message).to.equal("Cannot do full clones on a running container without snapshots\n");
    const tmpl = await env.api("POST", "/nodes/pve1/lxc/220/template");
    expect(tmpl.status).to.equal(200);
    expect(tmpl.json.data).to.equal(null);
    for (let i = 0; i < 100 && String((await cfg(220)).template) !== "1"; i++) await new Promise((r) => setTimeout(r, 10));
    const t = await cfg(220);
    expect(String(t.template)).to.equal("1");
    expect(t.rootfs).to.equal("local-lvm:base-220-disk-0,size=1G");
    const again = await env.api("POST", "/nodes/pve1/lxc/220/template");
    expect(again.json.message).to.equal("you can't convert a template to a template\n");
    const startTmpl = await env.task("POST", "/nodes/pve1/lxc/220/status/start");
    expect(startTmpl.exitstatus).to.equal("you can't start a CT if it's a template");
    const linked = await env.task("POST", "/nodes/pve1/lxc/220/clone", { newid: 223 });
    expect(linked.exitstatus).to.equal("OK");
    // LvmThinPlugin clone_image returns the new LV's plain name (a thin snapshot of the base)
    expect((await cfg(223)).rootfs).to.equal("local-lvm:vm-223-disk-0,size=1G");
    expect(await env.sb.admin.readVolumeMarker("local-lvm:vm-223-disk-0")).to.equal("golden");
    await createCt(env, 224, { rootfs: "shared-nfs:1" });
    await env.api("POST", "/nodes/pve1/lxc/224/template");
    for (let i = 0; i < 100 && String((await cfg(224)).template) !== "1"; i++) await new Promise((r) => setTimeout(r, 10));
    const nolink = await env.api("POST", "/nodes/pve1/lxc/224/clone", { form: { newid: 225 } });
    expect(nolink.json.message).to.equal("Linked clone feature for 'shared-nfs:224/base-224-disk-0.raw' is not available\n");
  });

  it("pools: membership through create, PUT /pools and cluster resources", async () => {
    expect((await env.api("POST", "/pools", { form: { poolid: "web" } })).status).to.equal(200);
    const dup = await env.api("POST", "/pools", { form: { poolid: "web" } });
    expect(dup.json.message).to.equal("create pool failed: pool 'web' already exists\n");
    const nopool = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 230, ostemplate: "local:vztmpl/x.tar.gz", pool: "nope" } });
    expect(nopool.status).to.equal(403);
    expect(nopool.json.message).to.equal("Permission check failed (pool 'nope' does not exist)\n");
    await createCt(env, 230, { pool: "web" });
    await env.api("PUT", "/pools", { form: { poolid: "web", vms: "211" } });
    const members = (await env.api("GET", "/pools/web")).json.data.members.map((m: any) => m.vmid).sort();
    expect(members).to.deep.equal([211, 230]);
    const res = (await env.api("GET", "/cluster/resources?type=vm")).json.data.find((r: any) => r.vmid === 230);
    expect(res.pool).to.equal("web");
    const notEmpty = await env.api("DELETE", "/pools/web");
    expect(notEmpty.json.message).to.equal("pool 'web' is not empty\n");
    await env.task("DELETE", "/nodes/pve1/lxc/230");
    await env.api("PUT", "/pools", { form: { poolid: "web", vms: "211", delete: 1 } });
    expect((await env.api("DELETE", "/pools/web")).status).to.equal(200);
  });
});
