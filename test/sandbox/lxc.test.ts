/**
 * Sandbox conformance: CT create/config/pending/power/delete, tasks, locks
 * (BEHAVIOR.md §1.4, §3, §4).
 */
import { expect } from "chai";
import { isUpid, parseUpid } from "../../provider/proxmox/upid";
import { createCt, fetchTemplate, startEnv, DEBIAN, type Env } from "./helpers";

describe("sandbox: LXC lifecycle (§4)", function () {
  let env: Env;
  before(async () => {
    env = await startEnv({ nodes: ["pve1", "pve2"], lockTimeoutMs: 200 });
    await fetchTemplate(env);
  });
  after(async () => env.sb.stop());

  it("create: UPID, defaults, allocation names, hwaddr, canonical config", async () => {
    const r = await env.api("POST", "/nodes/pve1/lxc", {
      form: { vmid: 100, ostemplate: `local:vztmpl/${DEBIAN}`, rootfs: "local-lvm:8", net0: "name=eth0,bridge=vmbr0,ip=dhcp", mp0: "local-zfs:0.5,mp=/data,backup=1" },
    });
    expect(r.status).to.equal(200);
    const upid = r.json.data;
    expect(isUpid(upid)).to.equal(true);
    const u = parseUpid(upid);
    expect(u).to.include({ node: "pve1", type: "vzcreate", id: "100", user: "root@pam!sandbox" });
    expect(upid).to.match(/^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzcreate:100:root@pam!sandbox:$/);
    const st = await env.wait(upid);
    expect(st).to.include({ status: "stopped", exitstatus: "OK", user: "root@pam", tokenid: "sandbox", type: "vzcreate" });
    const cfg = (await env.api("GET", "/nodes/pve1/lxc/100/config")).json.data;
    expect(cfg.hostname).to.equal("CT100");
    // integers and booleans are JSON numbers (check_type), §1.3
    expect(cfg.memory).to.equal(512);
    expect(cfg.swap).to.equal(512);
    expect(cfg.unprivileged).to.equal(1);
    expect(cfg.arch).to.equal("amd64");
    expect(cfg.ostype).to.equal("debian");
    expect(cfg.rootfs).to.equal("local-lvm:vm-100-disk-0,size=8G");
    expect(cfg.mp0).to.equal("local-zfs:subvol-100-disk-0,mp=/data,backup=1,size=512M");
    expect(cfg.net0).to.match(/^name=eth0,bridge=vmbr0,hwaddr=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2},ip=dhcp,type=veth$/);
    expect(cfg.digest).to.match(/^[0-9a-f]{40}$/);
    const raw = await env.sb.admin.rawConfig(100);
    expect(raw!.split("\n")[0]).to.equal("arch: amd64");
    const nfs = await createCt(env, 101, { rootfs: "shared-nfs:1" });
    expect(nfs.exitstatus).to.equal("OK");
    expect((await env.api("GET", "/nodes/pve1/lxc/101/config")).json.data.rootfs).to.equal("shared-nfs:101/vm-101-disk-0.raw,size=1G");
    await createCt(env, 104, { rootfs: "shared-nfs:0" });
    expect((await env.api("GET", "/nodes/pve1/lxc/104/config")).json.data.rootfs).to.equal("shared-nfs:104/subvol-104-disk-0.subvol");
    await env.task("DELETE", "/nodes/pve1/lxc/104");
  });

  it("create: synchronous errors with PVE's texts, in-task template error", async () => {
    const dup = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 100, ostemplate: `local:vztmpl/${DEBIAN}` } });
    expect(dup.status).to.equal(500);
    expect(dup.reason).to.equal("CT 100 already exists on node 'pve1'");
    const dir = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 150, ostemplate: `local:vztmpl/${DEBIAN}`, rootfs: "local:4" } });
    expect(dir.status).to.equal(400);
    expect(dir.json.errors).to.deep.equal({ storage: "storage 'local' does not support container directories" });
    const iso = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 150, ostemplate: "local:iso/x.iso", rootfs: "local-lvm:1" } });
    expect(iso.json.message).to.equal("unable to use volume local:iso/x.iso - content type needs to be 'vztmpl'\n");
    const nost = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 150, ostemplate: `local:vztmpl/${DEBIAN}`, rootfs: "nope:1" } });
    expect(nost.json.message).to.equal("storage 'nope' does not exist\n");
    const mtu = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 150, ostemplate: `local:vztmpl/${DEBIAN}`, rootfs: "local-lvm:1", net0: "name=eth0,bridge=vmbr0,mtu=9000" } });
    expect(mtu.status).to.equal(500);
    const missing = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 150, ostemplate: "local:vztmpl/nope-1_amd64.tar.gz", rootfs: "local-lvm:1" } });
    expect(missing.status).to.equal(200);
    const st = await env.wait(missing.json.data);
    expect(st.exitstatus).to.equal("unable to create CT 150 - can't find file 'local:vztmpl/nope-1_amd64.tar.gz'");
    const gone = await env.api("GET", "/nodes/pve1/lxc/150/config");
    expect(gone.json.message).to.equal("Configuration file 'nodes/pve1/lxc/150.conf' does not exist\n");
    const lvm = (await env.api("GET", "/nodes/pve1/storage/local-lvm/content?vmid=150")).json.data;
    expect(lvm).to.deep.equal([]);
    const next = await env.api("GET", "/cluster/nextid?vmid=100");
    expect(next.status).to.equal(400);
    expect(next.json.errors).to.deep.equal({ vmid: "VM 100 already exists" });
  });

  it("start=1 forks a separate vzstart task; status/current and list", async () => {
    await createCt(env, 102, { start: 1, hostname: "web" });
    for (let i = 0; i < 100; i++) {
      const s = (await env.api("GET", "/nodes/pve1/lxc/102/status/current")).json.data;
      if (s.status === "running") break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const s = (await env.api("GET", "/nodes/pve1/lxc/102/status/current")).json.data;
    expect(s).to.include({ vmid: 102, type: "lxc", status: "running", name: "web", maxmem: 512 * 1024 * 1024, maxswap: 512 * 1024 * 1024 });
    expect(s.ha).to.deep.equal({ managed: 0 });
    expect(s.pid).to.be.a("number");
    const tasks = (await env.api("GET", "/nodes/pve1/tasks?vmid=102")).json;
    expect(tasks.data.map((t: any) => t.type)).to.include.members(["vzcreate", "vzstart"]);
    expect(tasks.total).to.equal(tasks.data.length);
    const list = (await env.api("GET", "/nodes/pve1/lxc")).json.data;
    expect(list.find((c: any) => c.vmid === 102).status).to.equal("running");
    expect(list.find((c: any) => c.vmid === 102).ha).to.equal(undefined);
    const again = await env.api("POST", "/nodes/pve1/lxc/102/status/start");
    expect(again.status).to.equal(500);
    expect(again.reason).to.equal("CT 102 already running");
  });

  it("task log paging and task list filters (§3.4)", async () => {
    const r = await env.api("GET", "/nodes/pve1/tasks?typefilter=vzcreate&statusfilter=ok&limit=1");
    expect(r.json.data).to.have.length(1);
    expect(r.json.total).to.be.greaterThan(1);
    const upid = r.json.data[0].upid;
    const all = (await env.api("GET", `/nodes/pve1/tasks/${encodeURIComponent(upid)}/log?limit=0`)).json;
    expect(all.total).to.equal(all.data.length);
    expect(all.data[0].n).to.equal(1);
    expect(all.data[all.data.length - 1].t).to.equal("TASK OK");
    const page = (await env.api("GET", `/nodes/pve1/tasks/${encodeURIComponent(upid)}/log?start=1&limit=1`)).json;
    expect(page.data).to.deep.equal([{ n: 2, t: all.data[1].t }]);
    const bad = await env.api("GET", "/nodes/pve1/tasks/UPID:nope/status");
    expect(bad.json.errors).to.deep.equal({ upid: "unable to parse worker upid" });
    const unknown = await env.api("GET", `/nodes/pve1/tasks/${encodeURIComponent("UPID:pve1:00000001:00000001:00000001:vzstart:999:root@pam:")}/status`);
    expect(unknown.json.errors).to.deep.equal({ upid: "no such task" });
    await env.sb.admin.failTask({ type: "vzstop", vmid: 102, exitstatus: "injected failure" });
    const failed = await env.task("POST", "/nodes/pve1/lxc/102/status/stop");
    expect(failed.exitstatus).to.equal("injected failure");
    const log = await env.log(failed.upid);
    expect(log[log.length - 1]).to.equal("TASK ERROR: injected failure");
    const errs = (await env.api("GET", "/nodes/pve1/tasks?errors=1")).json.data;
    expect(errs.map((t: any) => t.upid)).to.include(failed.upid);
  });

  it("task log download=1, stopping a running task, slow tasks per type", async () => {
    const done = (await env.api("GET", "/nodes/pve1/tasks?typefilter=vzcreate&statusfilter=ok&limit=1")).json.data[0].upid;
    const dl = await env.api("GET", `/nodes/pve1/tasks/${encodeURIComponent(done)}/log?download=1`);
    expect(dl.headers["content-type"]).to.equal("text/plain");
    expect(dl.text.endsWith("TASK OK\n")).to.equal(true);
    await env.sb.admin.setTaskDuration({ vzstart: 5000 });
    try {
      const r = await env.api("POST", "/nodes/pve1/lxc/100/status/start");
      const upid = r.json.data;
      const active = (await env.api("GET", "/nodes/pve1/tasks?source=active")).json.data;
      expect(active.find((t: any) => t.upid === upid)).to.include({ status: "RUNNING" });
      expect((await env.api("GET", `/nodes/pve1/tasks/${encodeURIComponent(upid)}/status`)).json.data.status).to.equal("running");
      expect((await env.api("DELETE", `/nodes/pve1/tasks/${encodeURIComponent(upid)}`)).status).to.equal(200);
      const st = await env.wait(upid);
      expect(st.exitstatus).to.equal("received interrupt");
      expect((await env.api("GET", "/nodes/pve1/lxc/100/status/current")).json.data.status).to.equal("stopped");
    } finally {
      await env.sb.admin.setTaskDuration(5);
    }
  });

  it("pending vs hotplug on a running CT (§1.4)", async () => {
    const before = (await env.api("GET", "/nodes/pve1/lxc/102/config")).json.data;
    const put = await env.api("PUT", "/nodes/pve1/lxc/102/config", {
      form: { memory: 1024, hostname: "web2", nameserver: "1.1.1.1", features: "nesting=1", net1: "name=eth1,bridge=vmbr1,ip=10.0.0.5/24", digest: before.digest },
    });
    expect(put.status).to.equal(200);
    expect(put.json.data).to.equal(null);
    const cur = (await env.api("GET", "/nodes/pve1/lxc/102/config?current=1")).json.data;
    expect(cur.memory).to.equal(1024);
    expect(cur.hostname).to.equal("web2");
    expect(cur.net1).to.match(/^name=eth1,bridge=vmbr1,hwaddr=BC:24:11:/);
    expect(cur.nameserver).to.equal(undefined);
    expect(cur.features).to.equal(undefined);
    const merged = (await env.api("GET", "/nodes/pve1/lxc/102/config")).json.data;
    expect(merged.nameserver).to.equal("1.1.1.1");
    expect(merged.features).to.equal("nesting=1");
    const pending = (await env.api("GET", "/nodes/pve1/lxc/102/pending")).json.data;
    expect(pending.find((i: any) => i.key === "features")).to.deep.equal({ key: "features", pending: "nesting=1" });
    expect(pending.find((i: any) => i.key === "memory")).to.deep.equal({ key: "memory", value: 1024 });
    expect(pending.find((i: any) => i.key === "digest")).to.have.property("value");
    const del = await env.api("PUT", "/nodes/pve1/lxc/102/config", { form: { delete: "swap,nameserver" } });
    expect(del.status).to.equal(200);
    const p2 = (await env.api("GET", "/nodes/pve1/lxc/102/pending")).json.data;
    expect(p2.find((i: any) => i.key === "swap")).to.equal(undefined); // swap deletes live
    const raw = await env.sb.admin.rawConfig(102);
    expect(raw).to.match(/\n\[pve:pending\]\nfeatures: nesting=1\n/);
    await env.sb.admin.failHotplug({ vmid: 102, key: "net1", message: "bridge 'vmbr1' busy" });
    const digestBefore = (await env.api("GET", "/nodes/pve1/lxc/102/config")).json.data.digest;
    const hp = await env.api("PUT", "/nodes/pve1/lxc/102/config", { form: { net1: "name=eth1,bridge=vmbr1,ip=10.0.0.6/24", cores: 3 } });
    expect(hp.status).to.equal(400);
    // PVE appends the die text, newline included (`$add_hotplug_error`); was without it before.
    expect(hp.json.errors).to.deep.equal({ net1: "unable to hotplug net1: bridge 'vmbr1' busy\n" });
    expect((await env.api("GET", "/nodes/pve1/lxc/102/config")).json.data.digest, "nothing written").to.equal(digestBefore);
    const stale = await env.api("PUT", "/nodes/pve1/lxc/102/config", { form: { cores: 2, digest: before.digest } });
    expect(stale.status).to.equal(500);
    expect(stale.json.message).to.equal("detected modified configuration - file changed by other user? Try again.\n");
    const env1 = await env.api("PUT", "/nodes/pve1/lxc/102/config", { form: { env: "A=1\u0000B=two words", entrypoint: "/bin/app --x" } });
    expect(env1.status, env1.text).to.equal(200);
    expect((await env.api("GET", "/nodes/pve1/lxc/102/config?current=1")).json.data.env).to.equal(undefined);
    expect((await env.api("GET", "/nodes/pve1/lxc/102/config")).json.data.env).to.equal("A=1\u0000B=two words");
    const reboot = await env.task("POST", "/nodes/pve1/lxc/102/status/reboot");
    expect(reboot.exitstatus).to.equal("OK");
    const after = (await env.api("GET", "/nodes/pve1/lxc/102/config?current=1")).json.data;
    expect(after.features).to.equal("nesting=1");
    expect(after.env).to.equal("A=1\u0000B=two words");
    expect(after.entrypoint).to.equal("/bin/app --x");
    expect(await env.sb.admin.rawConfig(102)).to.include("lxc.environment.runtime: A=1\nlxc.environment.runtime: B=two words\n");
    expect((await env.api("GET", "/nodes/pve1/lxc/102/pending")).json.data.some((i: any) => i.pending !== undefined)).to.equal(false);
  });

  it("PUT config rules: no options, unknown/conflicting delete, required and read-only keys", async () => {
    const none = await env.api("PUT", "/nodes/pve1/lxc/100/config", { form: {} });
    expect(none.json.message).to.equal("no options specified\n");
    const unk = await env.api("PUT", "/nodes/pve1/lxc/100/config", { form: { delete: "bogus" } });
    expect(unk.json.errors).to.deep.equal({ delete: "unknown option 'bogus'" });
    const conflict = await env.api("PUT", "/nodes/pve1/lxc/100/config", { form: { cores: 2, delete: "cores" } });
    expect(conflict.json.errors).to.deep.equal({ delete: "you can't use '-cores' and -delete cores' at the same time" });
    const req = await env.api("PUT", "/nodes/pve1/lxc/100/config", { form: { delete: "memory" } });
    expect(req.json.message).to.equal("unable to delete required option 'memory'\n");
    const ro = await env.api("PUT", "/nodes/pve1/lxc/100/config", { form: { unprivileged: 0 } });
    expect(ro.json.message).to.equal("unable to modify read-only option: 'unprivileged'\n");
    const multi = await env.api("PUT", "/nodes/pve1/lxc/100/config", { form: { delete: ["cores", "cpulimit"], description: "line1\nline2" } });
    expect(multi.status).to.equal(200);
    const cfg = (await env.api("GET", "/nodes/pve1/lxc/100/config")).json.data;
    expect(cfg.description).to.equal("line1\nline2\n");
    expect((await env.sb.admin.rawConfig(100))!.startsWith("#line1\n#line2\narch: amd64\n")).to.equal(true);
  });

  it("power errors, delete rules, locks (§4.5, §4.11, §4.12)", async () => {
    const stop = await env.api("POST", "/nodes/pve1/lxc/100/status/stop");
    expect(stop.json.message).to.equal("CT 100 not running\n");
    const reboot = await env.api("POST", "/nodes/pve1/lxc/100/status/reboot");
    expect(reboot.json.message).to.equal("VM 100 not running\n");
    const running = await env.api("DELETE", "/nodes/pve1/lxc/102");
    expect(running.json.message).to.equal("unable to destroy CT 102 - container is running\n");
    await env.api("PUT", "/nodes/pve1/lxc/101/config", { form: { protection: 1 } });
    const prot = await env.api("DELETE", "/nodes/pve1/lxc/101");
    expect(prot.json.message).to.equal("can't remove CT 101 - protection mode enabled\n");
    const protDisk = await env.api("PUT", "/nodes/pve1/lxc/101/config", { form: { delete: "rootfs" } });
    expect(protDisk.status).to.equal(500);
    await env.api("PUT", "/nodes/pve1/lxc/101/config", { form: { delete: "protection" } });
    await env.sb.admin.holdLock(101, "snapshot", 30);
    const locked = await env.api("PUT", "/nodes/pve1/lxc/101/config", { form: { cores: 1 } });
    expect(locked.json.message).to.equal("CT is locked (snapshot)\n");
    expect((await env.api("GET", "/nodes/pve1/lxc/101/status/current")).json.data.lock).to.equal("snapshot");
    await env.sb.admin.holdLock(101, "snapshot", 0.01);
    await new Promise((r) => setTimeout(r, 30));
    await env.sb.admin.holdLock(101, "flock", 1);
    const timeout = await env.api("PUT", "/nodes/pve1/lxc/101/config", { form: { cores: 1 } });
    expect(timeout.json.message).to.equal("can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout\n");
    const del = await env.task("DELETE", "/nodes/pve1/lxc/102?force=1&purge=1");
    expect(del.exitstatus).to.equal("OK");
    expect((await env.log(del.upid))[0]).to.equal("forced to stop CT 102 before destroying!");
    expect((await env.api("GET", "/nodes/pve1/storage/local-lvm/content?vmid=102")).json.data).to.deep.equal([]);
    expect((await env.api("GET", "/nodes/pve1/lxc/102/config")).status).to.equal(500);
  });

  it("interfaces of a running CT: lo, static and deterministic DHCP addresses", async () => {
    await createCt(env, 103, { net0: "name=eth0,bridge=vmbr0,ip=dhcp,ip6=auto", net1: "name=eth1,bridge=vmbr1,ip=192.168.5.9/24" });
    // Recorded from PVE 8.4.21: a stopped CT answers 200 `{"data": null}` (was a 500 here).
    const stopped = await env.api("GET", "/nodes/pve1/lxc/103/interfaces");
    expect(stopped.status).to.equal(200);
    expect(stopped.json).to.deep.equal({ data: null });
    await env.task("POST", "/nodes/pve1/lxc/103/status/start");
    const ifs = (await env.api("GET", "/nodes/pve1/lxc/103/interfaces")).json.data;
    expect(ifs.map((i: any) => i.name)).to.deep.equal(["lo", "eth0", "eth1"]);
    expect(ifs[1].inet).to.equal("10.100.0.103/16");
    // PVE's get_interfaces keeps the LAST address of each family in kernel order, so `inet6` is
    // the link-local one and the SLAAC address is only in ip-addresses (was: inet6 = SLAAC here).
    expect(ifs[1].inet6).to.match(/^fe80::/);
    expect(ifs[1]["ip-addresses"].map((a: any) => a["ip-address"])).to.satisfy((l: string[]) => l.some((x) => x.startsWith("fd00:10::")));
    expect(ifs[2].inet).to.equal("192.168.5.9/24");
    const again = (await env.api("GET", "/nodes/pve1/lxc/103/interfaces")).json.data;
    expect(again).to.deep.equal(ifs);
  });
});
