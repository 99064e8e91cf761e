/**
 * Sandbox fidelity beyond the recorded transcript: behaviour read from the PVE sources
 * (docs/sandbox.md "Behaviour beyond the recording" names the file each follows).
 * HA-managed CTs, rollback start=1 and the start's config lock, OCI create overrides,
 * `interfaces` address selection, pool membership errors, quota on every mount point and
 * `.tar` templates on 8.4.
 */
import { expect } from "chai";
import { parseUpid } from "../../provider/proxmox/upid";
import { createCt, fetchTemplate, ociArchive, startEnv, uploadTemplate, type Env } from "./helpers";

/** Poll `probe` until it returns a truthy value (or fail after `ms`). */
async function until<T>(what: string, probe: () => Promise<T>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const status = async (env: Env, vmid: number, node = "pve1") => (await env.api("GET", `/nodes/${node}/lxc/${vmid}/status/current`)).json.data;

describe("sandbox: PVE behaviour beyond the recording", function () {
  this.timeout(30000);

  describe("HA-managed CTs (Status.pm, LXC.pm migrate_vm/destroy_vm, pve-ha-manager)", function () {
    let env: Env;
    before(async () => {
      // Long enough that "still stopped right after the hastart ended" holds on a loaded machine.
      env = await startEnv({ nodes: ["pve1", "pve2"], haDelayMs: 800 });
      await fetchTemplate(env);
    });
    after(async () => env.sb.stop());

    it("create ha-managed=1 adds the HA resource; status/current and /cluster/resources report it", async () => {
      const st = await createCt(env, 500, { "ha-managed": 1 });
      expect(await env.log(st.upid)).to.include("Add as HA resource");
      expect((await status(env, 500)).ha).to.deep.equal({ managed: 1, state: "stopped" });
      const res = (await env.api("GET", "/cluster/resources?type=vm")).json.data.find((r: any) => r.vmid === 500);
      expect(res.hastate).to.equal("stopped");
    });

    it("start answers a hastart task that ends before the CT runs; the manager starts it later", async () => {
      const r = await env.api("POST", "/nodes/pve1/lxc/500/status/start");
      expect(r.status).to.equal(200);
      expect(parseUpid(r.json.data)).to.include({ type: "hastart", id: "500", user: "root@pam!sandbox" });
      const st = await env.wait(r.json.data);
      expect(st.exitstatus).to.equal("OK");
      expect(await env.log(r.json.data)).to.deep.equal(["Requesting HA start for CT 500", "TASK OK"]);
      // The request is only queued: the CT is still stopped when the task has ended.
      expect((await status(env, 500)).status).to.equal("stopped");
      await until("HA start", async () => (await status(env, 500)).status === "running");
      expect((await status(env, 500)).ha).to.deep.equal({ managed: 1, state: "started" });
      // The LRM's own start is an ordinary vzstart worker run as root@pam.
      const tasks = (await env.api("GET", "/nodes/pve1/tasks?vmid=500&typefilter=vzstart")).json.data;
      expect(tasks.map((t: any) => t.user)).to.include("root@pam");
    });

    it("stop/shutdown answer hastop; overrule-shutdown is refused for HA resources", async () => {
      const over = await env.api("POST", "/nodes/pve1/lxc/500/status/stop", { form: { "overrule-shutdown": 1 } });
      expect(over.status).to.equal(400);
      expect(over.json.errors).to.deep.equal({ "overrule-shutdown": "Not applicable for HA resources." });
      const r = await env.api("POST", "/nodes/pve1/lxc/500/status/shutdown");
      expect(parseUpid(r.json.data).type).to.equal("hastop");
      await env.wait(r.json.data);
      expect(await env.log(r.json.data)).to.deep.equal(["Requesting HA stop for CT 500", "TASK OK"]);
      expect((await status(env, 500)).status).to.equal("running");
      await until("HA stop", async () => (await status(env, 500)).status === "stopped");
      expect((await status(env, 500)).ha.state).to.equal("stopped");
      const stop = await env.api("POST", "/nodes/pve1/lxc/500/status/stop");
      expect(stop.status).to.equal(500);
      expect(stop.json.message).to.equal("CT 500 not running\n");
    });

    it("destroy needs purge=1 for an HA resource, then fails on a running CT without force", async () => {
      await env.wait((await env.api("POST", "/nodes/pve1/lxc/500/status/start")).json.data);
      await until("HA start", async () => (await status(env, 500)).status === "running");
      const plain = await env.api("DELETE", "/nodes/pve1/lxc/500");
      expect(plain.status).to.equal(500);
      expect(plain.json.message).to.equal("unable to remove CT 500 - used in HA resources and purge parameter not set.\n");
      const purge = await env.api("DELETE", "/nodes/pve1/lxc/500?purge=1");
      expect(purge.status).to.equal(500);
      expect(purge.json.message).to.equal("unable to destroy CT 500 - container is running\n");
    });

    it("migrate answers hamigrate; the manager moves the CT afterwards; destroy purge=1 force=1 removes the resource", async () => {
      const r = await env.api("POST", "/nodes/pve1/lxc/500/migrate", { form: { target: "pve2", restart: 1 } });
      expect(r.status).to.equal(200);
      expect(parseUpid(r.json.data)).to.include({ type: "hamigrate", id: "500" });
      await env.wait(r.json.data);
      expect(await env.log(r.json.data)).to.deep.equal(["Requesting HA migration for CT 500 to node pve2", "TASK OK"]);
      expect((await env.api("GET", "/nodes/pve1/lxc/500/config")).status).to.equal(200);
      await until("HA migration", async () => (await env.api("GET", "/nodes/pve2/lxc/500/status/current")).json.data?.status === "running");
      expect((await status(env, 500, "pve2")).ha).to.deep.equal({ managed: 1, state: "started" });
      const del = await env.wait((await env.api("DELETE", "/nodes/pve2/lxc/500?purge=1&force=1")).json.data);
      expect(del.exitstatus).to.equal("OK");
      const log = await env.log(del.upid);
      expect(log).to.include.members(["purging CT 500 from related configurations..", "NOTE: removed CT 500 from HA resource configuration."]);
    });

    it("a CT that is not HA-managed still starts synchronously in a vzstart task", async () => {
      await createCt(env, 501);
      const st = await env.task("POST", "/nodes/pve1/lxc/501/status/start");
      expect(st.type).to.equal("vzstart");
      expect((await status(env, 501)).status).to.equal("running");
      expect((await status(env, 501)).ha).to.deep.equal({ managed: 0 });
    });
  });

  describe("rollback start=1, quota, interfaces, pools (9.1)", function () {
    let env: Env;
    before(async () => {
      env = await startEnv({ lockTimeoutMs: 300 });
      await fetchTemplate(env);
    });
    after(async () => env.sb.stop());

    it("rollback start=1 ends before its vzstart, which holds the config lock: a snapshot delete times out on it", async () => {
      await createCt(env, 510);
      expect((await env.task("POST", "/nodes/pve1/lxc/510/snapshot", { snapname: "s1" })).exitstatus).to.equal("OK");
      await env.sb.admin.setTaskDuration({ vzstart: 2000 });
      try {
        const rb = await env.task("POST", "/nodes/pve1/lxc/510/snapshot/s1/rollback", { start: 1 });
        expect(rb.exitstatus).to.equal("OK");
        const active = await until("the vzstart", async () => {
          const list = (await env.api("GET", "/nodes/pve1/tasks?source=active&vmid=510")).json.data;
          return list.find((t: any) => t.type === "vzstart" && t.status === "RUNNING");
        });
        expect((await status(env, 510)).status).to.equal("stopped");
        const del = await env.task("DELETE", "/nodes/pve1/lxc/510/snapshot/s1");
        expect(del.exitstatus).to.equal("can't lock file '/run/lock/lxc/pve-config-510.lock' - got timeout");
        expect(await env.log(del.upid)).to.include("trying to acquire lock...");
        const started = await env.wait(active.upid);
        expect(started.exitstatus).to.equal("OK");
        expect((await status(env, 510)).status).to.equal("running");
        const snaps = (await env.api("GET", "/nodes/pve1/lxc/510/snapshot")).json.data.map((s: any) => s.name);
        expect(snaps).to.include("s1");
      } finally {
        await env.sb.admin.setTaskDuration({ vzstart: 5 });
      }
    });

    it("start refuses quota=1 on any mount point of an unprivileged CT, not only rootfs", async () => {
      await createCt(env, 520, { mp0: "local-lvm:1,mp=/data,quota=1" });
      const st = await env.task("POST", "/nodes/pve1/lxc/520/status/start");
      expect(st.exitstatus).to.equal("Quotas are not supported by unprivileged containers.");
    });

    it("interfaces: inet/inet6 hold the last address of each family (link-local after global); ip-addresses has all", async () => {
      await createCt(env, 530, { net0: "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,ip6=fd00::5/64" });
      await env.task("POST", "/nodes/pve1/lxc/530/status/start");
      const list = (await env.api("GET", "/nodes/pve1/lxc/530/interfaces")).json.data;
      const eth0 = list.find((i: any) => i.name === "eth0");
      const addrs = eth0["ip-addresses"].map((a: any) => `${a["ip-address"]}/${a.prefix}`);
      expect(addrs.slice(0, 2)).to.deep.equal(["10.0.0.5/24", "fd00::5/64"]);
      expect(addrs[2]).to.match(/^fe80::[0-9a-f:]+\/64$/);
      expect(eth0.inet).to.equal("10.0.0.5/24");
      expect(eth0.inet6).to.equal(addrs[2]);
      const lo = list.find((i: any) => i.name === "lo");
      expect(lo).to.include({ inet: "127.0.0.1/8", inet6: "::1/128" });
    });

    it("pools: adding a member twice or removing a non-member fails with PVE's text and changes nothing", async () => {
      await createCt(env, 531);
      expect((await env.api("POST", "/pools", { form: { poolid: "p1" } })).status).to.equal(200);
      expect((await env.api("PUT", "/pools", { form: { poolid: "p1", vms: "530" } })).status).to.equal(200);
      const again = await env.api("PUT", "/pools", { form: { poolid: "p1", vms: "530" } });
      expect(again.status).to.equal(500);
      expect(again.json.message).to.equal("update pools failed: VM 530 is already a pool member\n");
      const notMember = await env.api("PUT", "/pools", { form: { poolid: "p1", vms: "531", delete: 1 } });
      expect(notMember.json.message).to.equal("update pools failed: VM 531 is not a pool member\n");
      // 531 would be added, 530 fails: user.cfg is written once, so 531 is not added either.
      const mixed = await env.api("PUT", "/pools", { form: { poolid: "p1", vms: "531,530" } });
      expect(mixed.status).to.equal(500);
      const members = (await env.api("GET", "/pools?poolid=p1")).json.data[0].members.map((m: any) => m.vmid);
      expect(members).to.deep.equal([530]);
      expect((await env.api("PUT", "/pools", { form: { poolid: "p1", storage: "local" } })).status).to.equal(200);
      const st2 = await env.api("PUT", "/pools", { form: { poolid: "p1", storage: "local" } });
      expect(st2.json.message).to.equal("update pools failed: Storage 'local' is already a pool member\n");
      const st3 = await env.api("PUT", "/pools", { form: { poolid: "p1", storage: "local-lvm", delete: 1 } });
      expect(st3.json.message).to.equal("update pools failed: Storage 'local-lvm' is not a pool member\n");
    });

    it("pools: Pool.Allocate is checked on /pool/{pool}, and on the old pool when moving", async () => {
      await env.sb.admin.createUser("ops@pve");
      const tok = await env.sb.admin.createToken("ops@pve", "ci", { privsep: 0 });
      await env.sb.admin.setAcl({ path: "/vms", roles: ["PVEVMAdmin"], users: ["ops@pve"] });
      const asOps = (method: string, path: string, form: Record<string, string | number>) => env.api(method, path, { auth: { token: tok.apiToken }, form });
      const denied = await asOps("PUT", "/pools", { poolid: "p1", vms: "531" });
      expect(denied.status).to.equal(403);
      expect(denied.json.message).to.contain("/pool/p1");
      expect((await env.api("POST", "/pools", { form: { poolid: "p2" } })).status).to.equal(200);
      await env.sb.admin.setAcl({ path: "/pool/p2", roles: ["PVEPoolAdmin"], users: ["ops@pve"] });
      const move = await asOps("PUT", "/pools", { poolid: "p2", vms: "530", "allow-move": 1 });
      expect(move.status).to.equal(403);
      expect(move.json.message).to.contain("/pool/p1");
      expect((await asOps("PUT", "/pools", { poolid: "p2", vms: "531" })).status).to.equal(200);
    });
  });

  describe("OCI archives on create (9.1: Create.pm restore_oci_archive)", function () {
    let env: Env;
    before(async () => {
      env = await startEnv();
    });
    after(async () => env.sb.stop());

    it("the image's entrypoint, env and cmode replace the request's; lxc.signal.halt is always written", async () => {
      await uploadTemplate(env, "app_2.0.tar", await ociArchive({ config: { Entrypoint: ["/bin/app"], Env: ["X=1"] } }));
      const st = await env.task("POST", "/nodes/pve1/lxc", {
        vmid: 600, ostemplate: "local:vztmpl/app_2.0.tar", rootfs: "local-lvm:1", entrypoint: "/bin/other", env: "Y=2", cmode: "tty",
      });
      expect(st.exitstatus).to.equal("WARNINGS: 1");
      const cfg = (await env.api("GET", "/nodes/pve1/lxc/600/config")).json.data;
      expect(cfg).to.include({ entrypoint: "/bin/app", env: "X=1", cmode: "console" });
      expect(cfg.lxc).to.deep.equal([["lxc.signal.halt", "SIGTERM"]]);
      await uploadTemplate(env, "sig_1.0.tar", await ociArchive({ config: { Entrypoint: ["/bin/app"], StopSignal: "SIGINT" } }));
      await env.task("POST", "/nodes/pve1/lxc", { vmid: 601, ostemplate: "local:vztmpl/sig_1.0.tar", rootfs: "local-lvm:1" });
      expect((await env.api("GET", "/nodes/pve1/lxc/601/config")).json.data.lxc).to.deep.equal([["lxc.signal.halt", "SIGINT"]]);
    });

    it("only an exact /sbin/init entrypoint counts as init", async () => {
      await uploadTemplate(env, "init_1.0.tar", await ociArchive({ config: { Entrypoint: ["/sbin/init"] } }));
      await env.task("POST", "/nodes/pve1/lxc", { vmid: 602, ostemplate: "local:vztmpl/init_1.0.tar", rootfs: "local-lvm:1" });
      const init = (await env.api("GET", "/nodes/pve1/lxc/602/config")).json.data;
      expect(init.entrypoint).to.equal(undefined);
      expect(init.cmode).to.equal(undefined);
      await uploadTemplate(env, "initsh_1.0.tar", await ociArchive({ config: { Entrypoint: ["/sbin/init.sh"] } }));
      await env.task("POST", "/nodes/pve1/lxc", { vmid: 603, ostemplate: "local:vztmpl/initsh_1.0.tar", rootfs: "local-lvm:1" });
      expect((await env.api("GET", "/nodes/pve1/lxc/603/config")).json.data).to.include({ entrypoint: "/sbin/init.sh", cmode: "console" });
    });

    it("`.tar` detection is case-sensitive: an upper-case .TAR is extracted as a plain rootfs tarball", async () => {
      await uploadTemplate(env, "upper_1.0.TAR", await ociArchive({ config: { Entrypoint: ["/bin/app"] } }));
      const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 604, ostemplate: "local:vztmpl/upper_1.0.TAR", rootfs: "local-lvm:1" });
      const log = await env.log(st.upid);
      expect(log).to.not.include("Detected OCI archive");
      expect(log.some((l) => l.startsWith("extracting archive"))).to.equal(true);
      expect((await env.api("GET", "/nodes/pve1/lxc/604/config")).json.data.entrypoint).to.equal(undefined);
    });
  });

  describe("8.4: uncompressed .tar templates", function () {
    it("create refuses a `.tar` ostemplate before forking (pve-storage < 9.0.15 parse_volname)", async () => {
      const env84 = await startEnv({ pveVersion: "8.4" });
      try {
        const r = await env84.api("POST", "/nodes/pve1/lxc", { form: { vmid: 700, ostemplate: "local:vztmpl/app_1.0.tar", rootfs: "local-lvm:1" } });
        expect(r.status).to.equal(500);
        expect(r.json.message).to.equal("unable to parse directory volume name 'vztmpl/app_1.0.tar'\n");
        expect((await env84.api("GET", "/nodes/pve1/lxc/700/config")).status).to.equal(500);
      } finally {
        await env84.sb.stop();
      }
    });
  });
});
