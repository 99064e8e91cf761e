/**
 * One focused regression test per difference the recorded PVE 8.4.21 transcript showed
 * against the sandbox (issue 14 item 3). Each asserts the genuine node's answer, in process
 * and fast; the full replay is test/sandbox/conformance.test.ts.
 */
import { expect } from "chai";
import * as zlib from "node:zlib";
import { writeTar } from "../../sandbox/tarball";
import { createCt, fetchTemplate, request, startEnv, type Env } from "./helpers";

/** Upload a `.tar.gz` built from `files` to `local` and return its volid. */
async function uploadTarGz(env: Env, node: string, filename: string, files: Array<{ name: string; data?: string }>): Promise<string> {
  const data = zlib.gzipSync(writeTar(files));
  const b = "----pve84";
  const body = Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="content"\r\n\r\nvztmpl\r\n--${b}\r\nContent-Disposition: form-data; name="filename"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    data,
    Buffer.from(`\r\n--${b}--\r\n`),
  ]);
  const r = await env.api("POST", `/nodes/${node}/storage/local/upload`, { body, headers: { "Content-Type": `multipart/form-data; boundary=${b}` } });
  expect(r.status, r.text).to.equal(200);
  expect((await env.wait(r.json.data)).exitstatus).to.equal("OK");
  return `local:vztmpl/${filename}`;
}

/** A user with a privilege-separated token holding `role` on `/`; returns `{token}` auth. */
async function tokenWith(env: Env, userid: string, role: string, privsep: 0 | 1 = 1): Promise<{ token: string }> {
  await env.sb.admin.createUser(userid);
  const t = await env.sb.admin.createToken(userid, "ci", { privsep });
  await env.sb.admin.setAcl({ path: "/", roles: [role], users: [userid], tokens: [`${userid}!ci`] });
  return { token: t.apiToken };
}

async function rootTicket(env: Env): Promise<{ ticket: string; csrf: string }> {
  const login = await request(env.sb, "POST", "/access/ticket", { auth: null, form: { username: "root@pam", password: env.sb.password } });
  return { ticket: login.json.data.ticket, csrf: login.json.data.CSRFPreventionToken };
}

const TPL = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.gz";

describe("sandbox: differences recorded from PVE 8.4.21 (issue 14)", function () {
  this.timeout(30000);
  let env: Env;
  before(async () => {
    env = await startEnv({ pveVersion: "8.4" });
    await fetchTemplate(env);
  });
  after(async () => env.sb.stop());

  describe("root-only gates refuse every API token", function () {
    const create = (auth: object, vmid: number, extra: Record<string, string | number>) =>
      request(env.sb, "POST", "/nodes/pve1/lxc", { auth, form: { vmid, ostemplate: TPL, rootfs: "local-lvm:1", ...extra } });

    it("a bind mount: even root@pam's own token without privilege separation; a root@pam ticket passes", async () => {
      const msg = "Permission check failed (mount point type bind is only allowed for root@pam)\n";
      const viaRootToken = await create({ token: env.sb.apiToken }, 120, { mp0: "/srv/data,mp=/mnt" });
      expect(env.sb.apiToken).to.match(/^root@pam!/);
      expect([viaRootToken.status, viaRootToken.json.message]).to.deep.equal([403, msg]);
      const admin = await tokenWith(env, "gate@pve", "Administrator");
      const viaAdmin = await create(admin, 120, { mp0: "/srv/data,mp=/mnt" });
      expect([viaAdmin.status, viaAdmin.json.message]).to.deep.equal([403, msg]);
      expect((await env.api("GET", "/nodes/pve1/lxc/120/config")).status, "nothing created").to.equal(500);
      const viaTicket = await create(await rootTicket(env), 120, { mp0: "/srv/data,mp=/mnt" });
      expect(viaTicket.status, viaTicket.text).to.equal(200);
      expect((await env.wait(viaTicket.json.data)).exitstatus).to.equal("OK");
      expect((await env.api("GET", "/nodes/pve1/lxc/120/config")).json.data.mp0).to.equal("/srv/data,mp=/mnt");
    });

    it("device mounts, passthrough, hookscripts and feature flags with PVE's texts", async () => {
      const refuse = async (extra: Record<string, string | number>, text: string) => {
        const r = await create({ token: env.sb.apiToken }, 121, extra);
        expect([r.status, r.json?.message], JSON.stringify(extra)).to.deep.equal([403, `Permission check failed (${text} is only allowed for root@pam)\n`]);
      };
      await refuse({ mp0: "/dev/sdb1,mp=/mnt" }, "mount point type device");
      await refuse({ dev0: "/dev/null" }, "configuring device passthrough");
      await refuse({ hookscript: "local:snippets/hook.sh" }, "changing the hookscript");
      await refuse({ unprivileged: 1, features: "keyctl=1" }, "changing feature flags (except nesting)");
      // 8.4 creates privileged CTs unless asked: any feature is then root-only.
      await refuse({ features: "nesting=1" }, "changing feature flags for privileged container");
      // nesting alone on an unprivileged CT needs only VM.Allocate.
      const ok = await create({ token: env.sb.apiToken }, 121, { unprivileged: 1, features: "nesting=1" });
      expect(ok.status, ok.text).to.equal(200);
      await env.wait(ok.json.data);
      // The same gates on PUT config.
      const put = await env.api("PUT", "/nodes/pve1/lxc/121/config", { form: { mp1: "/srv,mp=/srv" } });
      expect([put.status, put.json.message]).to.deep.equal([403, "Permission check failed (mount point type bind is only allowed for root@pam)\n"]);
      const revert = await env.api("PUT", "/nodes/pve1/lxc/121/config", { form: { revert: "hookscript" } });
      expect([revert.status, revert.json.message], "a revert is checked like a delete").to.deep.equal([403, "Permission check failed (changing the hookscript is only allowed for root@pam)\n"]);
      const keep = await env.api("PUT", "/nodes/pve1/lxc/121/config", { form: { features: "nesting=1" } });
      expect(keep.status, "an unchanged flag is no change").to.equal(200);
    });
  });

  describe("permissions before existence", function () {
    it("a CT the caller may not see is a 403 naming /vms/<id>, VM.Audit, even when it does not exist", async () => {
      await env.sb.admin.createUser("nobody@pve");
      const t = await env.sb.admin.createToken("nobody@pve", "ci", { privsep: 1 });
      for (const path of ["/nodes/pve1/lxc/909/config", "/nodes/pve1/lxc/909/status/current", "/nodes/pve1/lxc/909/interfaces"]) {
        const r = await request(env.sb, "GET", path, { auth: { token: t.apiToken } });
        expect([r.status, r.json.message], path).to.deep.equal([403, "Permission check failed (/vms/909, VM.Audit)\n"]);
      }
      // Before parameter verification, too: a bad value still gets the 403.
      const bad = await request(env.sb, "PUT", "/nodes/pve1/lxc/909/config", { auth: { token: t.apiToken }, form: { cores: "many" } });
      expect([bad.status, bad.json.message]).to.deep.equal([403, "Permission check failed (/vms/909, VM.Config.Disk|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.Options)\n"]);
      // Create names no path: VM.Allocate may come from /vms/<id> or from the pool.
      const create = await request(env.sb, "POST", "/nodes/pve1/lxc", { auth: { token: t.apiToken }, form: { vmid: 905, ostemplate: TPL, rootfs: "local-lvm:1" } });
      expect([create.status, create.json.message]).to.deep.equal([403, "Permission check failed\n"]);
      // The root@pam token passes the declared checks (it has root's privileges).
      expect((await env.api("GET", "/nodes/pve1/lxc/909/config")).json.message).to.equal("Configuration file 'nodes/pve1/lxc/909.conf' does not exist\n");
    });
  });

  describe("users and tokens", function () {
    it("token create answers what PVE stores; DELETE token and user; the tokens of a deleted user are 401", async () => {
      expect((await env.api("POST", "/access/users", { form: { userid: "probe@pve", comment: "probe" } })).status).to.equal(200);
      const a = await env.api("POST", "/access/users/probe@pve/token/ta", { form: { privsep: 1 } });
      expect(a.json.data.info).to.deep.equal({ privsep: "1" });
      const b = await env.api("POST", "/access/users/probe@pve/token/tb", { form: {} });
      expect(b.json.data.info).to.deep.equal({ privsep: 1 });
      const c = await env.api("POST", "/access/users/probe@pve/token/tc", { form: { expire: 0, comment: "ci" } });
      expect(c.json.data.info).to.deep.equal({ privsep: 1, expire: "0", comment: "ci" });
      const dup = await env.api("POST", "/access/users/probe@pve/token/ta");
      expect([dup.status, dup.json.errors]).to.deep.equal([400, { tokenid: "Token already exists." }]);
      const tokenA = `${a.json.data["full-tokenid"]}=${a.json.data.value}`;
      const tokenB = `${b.json.data["full-tokenid"]}=${b.json.data.value}`;
      expect((await request(env.sb, "GET", "/version", { auth: { token: tokenA } })).status).to.equal(200);

      const delA = await env.api("DELETE", "/access/users/probe@pve/token/ta");
      expect([delA.status, delA.json]).to.deep.equal([200, { data: null }]);
      const gone = await request(env.sb, "GET", "/version", { auth: { token: tokenA } });
      expect([gone.status, gone.reason]).to.deep.equal([401, "Authentication failed!"]);
      const again = await env.api("DELETE", "/access/users/probe@pve/token/ta");
      expect([again.status, again.json.message]).to.deep.equal([500, "no such token 'ta' for user 'probe@pve'\n"]);

      await env.api("PUT", "/access/acl", { form: { path: "/vms", roles: "PVEAuditor", users: "probe@pve", tokens: "probe@pve!tb" } });
      const delUser = await env.api("DELETE", "/access/users/probe@pve");
      expect([delUser.status, delUser.json]).to.deep.equal([200, { data: null }]);
      const orphan = await request(env.sb, "GET", "/version", { auth: { token: tokenB } });
      expect([orphan.status, orphan.reason, orphan.text]).to.deep.equal([401, "Authentication failed!", ""]);
      const acls = (await env.api("GET", "/access/acl")).json.data;
      expect(acls.filter((x: any) => x.ugid.startsWith("probe@pve")), "the user's and its tokens' ACLs go too").to.deep.equal([]);
      const wrong = await request(env.sb, "GET", "/version", { auth: { token: "root@pam!sandbox=00000000-0000-0000-0000-000000000000" } });
      expect([wrong.status, wrong.reason]).to.deep.equal([401, "Authentication failed!"]);
    });
  });

  describe("CT answers", function () {
    before(async () => {
      await createCt(env, 130, { unprivileged: 1, net0: "name=eth0,bridge=vmbr0,ip=10.0.0.5/24" });
    });

    it("a failed hotplug saves nothing: 400 with `errors.{key}` (injected through the admin HTTP API)", async () => {
      await env.task("POST", "/nodes/pve1/lxc/130/status/start");
      const before = (await env.api("GET", "/nodes/pve1/lxc/130/config")).json.data;
      const inject = await request(env.sb, "POST", "/_sandbox/hotplug-failures", { raw: true, auth: null, headers: { "X-Sandbox-Admin": env.sb.adminSecret }, json: { vmid: 130, key: "net1", message: "veth busy" } });
      expect(inject.status, inject.text).to.equal(200);
      const r = await env.api("PUT", "/nodes/pve1/lxc/130/config", { form: { net1: "name=eth1,bridge=vmbr0,ip=10.0.1.5/24", memory: 384, hostname: "renamed" } });
      expect([r.status, r.reason, r.json.message]).to.deep.equal([400, "Parameter verification failed.", "Parameter verification failed.\n"]);
      expect(r.json.errors).to.deep.equal({ net1: "unable to hotplug net1: veth busy\n" });
      const after = (await env.api("GET", "/nodes/pve1/lxc/130/config")).json.data;
      expect(after).to.deep.equal(before);
      expect((await env.api("GET", "/nodes/pve1/lxc/130/pending")).json.data.filter((i: any) => "pending" in i || "delete" in i)).to.deep.equal([]);
      await env.task("POST", "/nodes/pve1/lxc/130/status/stop");
    });

    it("resize of a mount point the CT does not have: 500 `format error` with the missing keys", async () => {
      const r = await env.api("PUT", "/nodes/pve1/lxc/130/resize", { form: { disk: "mp7", size: "+1G" } });
      expect([r.status, r.reason]).to.deep.equal([500, "format error"]);
      expect(r.json).to.deep.equal({
        data: null, message: "format error\n",
        errors: { mp: "property is missing and it is not optional", volume: "property is missing and it is not optional" },
      });
    });

    it("interfaces of a stopped CT is `{data: null}`; 8.4 status has no pressure fields, 9.1 keeps them", async () => {
      const ifs = await env.api("GET", "/nodes/pve1/lxc/130/interfaces");
      expect([ifs.status, ifs.json]).to.deep.equal([200, { data: null }]);
      await env.task("POST", "/nodes/pve1/lxc/130/status/start");
      const st = (await env.api("GET", "/nodes/pve1/lxc/130/status/current")).json.data;
      expect(st.status).to.equal("running");
      expect(Object.keys(st).filter((k) => k.startsWith("pressure"))).to.deep.equal([]);
      const list = (await env.api("GET", "/nodes/pve1/lxc")).json.data.find((x: any) => x.vmid === 130);
      expect(Object.keys(list).filter((k) => k.startsWith("pressure"))).to.deep.equal([]);
      await env.task("POST", "/nodes/pve1/lxc/130/status/stop");
      const v91 = await startEnv();
      try {
        await fetchTemplate(v91);
        await createCt(v91, 100);
        await v91.task("POST", "/nodes/pve1/lxc/100/status/start");
        expect((await v91.api("GET", "/nodes/pve1/lxc/100/status/current")).json.data).to.include.keys("pressurecpusome", "pressurememoryfull");
      } finally {
        await v91.sb.stop();
      }
    });

    it("snapshot list descriptions end in a newline, as PVE stores them", async () => {
      expect((await env.task("POST", "/nodes/pve1/lxc/130/snapshot", { snapname: "s1", description: "probe snapshot" })).exitstatus).to.equal("OK");
      await env.task("POST", "/nodes/pve1/lxc/130/snapshot", { snapname: "s2" });
      const list = (await env.api("GET", "/nodes/pve1/lxc/130/snapshot")).json.data;
      expect(list.find((s: any) => s.name === "s1").description).to.equal("probe snapshot\n");
      expect(list.find((s: any) => s.name === "s2").description).to.equal("");
      expect(list.find((s: any) => s.name === "current").description).to.equal("You are here!");
    });
  });

  describe("storage and validation texts", function () {
    it("deleting a template file that is already gone: task OK with PVE's log line", async () => {
      const volid = await uploadTarGz(env, "pve1", "gone_1.0_amd64.tar.gz", [{ name: "etc/debian_version", data: "12\n" }]);
      const path = `/nodes/pve1/storage/local/content/${volid}`;
      const first = await env.api("DELETE", path);
      expect((await env.wait(first.json.data)).exitstatus).to.equal("OK");
      expect(await env.log(first.json.data)).to.deep.equal([`Removed volume '${volid}'`, "TASK OK"]);
      const second = await env.api("DELETE", path);
      expect((await env.wait(second.json.data)).exitstatus).to.equal("OK");
      expect(await env.log(second.json.data)).to.deep.equal([
        "disk image '/var/lib/vz/template/cache/gone_1.0_amd64.tar.gz' does not exist",
        `Removed volume '${volid}'`,
        "TASK OK",
      ]);
    });

    it("a bad ip in net[n] is described with PVE's lower-case `ipv4`", async () => {
      const r = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 140, ostemplate: TPL, net0: "name=eth0,bridge=vmbr0,ip=10.30.0.999/24" } });
      expect(r.json.errors).to.deep.equal({ net0: "invalid format - format error\nnet0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n" });
      const r6 = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 140, ostemplate: TPL, net0: "name=eth0,bridge=vmbr0,ip6=fe80::zz/64" } });
      expect(r6.json.errors.net0).to.include("value does not look like a valid ipv6 network configuration");
    });
  });

  describe("OS type from the template's files (Setup.pm), unprivileged only when asked", function () {
    it("/etc/debian_version → debian, task OK without a warning; no `unprivileged` in CT, template or clone", async () => {
      const volid = await uploadTarGz(env, "pve1", "busybox-probe_1.0_amd64.tar.gz", [
        { name: "./etc/" }, { name: "./etc/debian_version", data: "12.7\n" }, { name: "./bin/" },
      ]);
      const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 150, ostemplate: volid, rootfs: "local-lvm:1" });
      expect(st.exitstatus).to.equal("OK");
      const log = await env.log(st.upid);
      expect(log.filter((l) => /WARN|os-release|unmanaged/.test(l))).to.deep.equal([]);
      const cfg = (await env.api("GET", "/nodes/pve1/lxc/150/config")).json.data;
      expect(cfg.ostype).to.equal("debian");
      expect(cfg).to.not.have.property("unprivileged");
      expect((await env.api("POST", "/nodes/pve1/lxc/150/template")).status).to.equal(200);
      await new Promise((r) => setTimeout(r, 50));
      expect((await env.api("GET", "/nodes/pve1/lxc/150/config")).json.data).to.not.have.property("unprivileged");
      expect((await env.task("POST", "/nodes/pve1/lxc/150/clone", { newid: 151, full: 1 })).exitstatus).to.equal("OK");
      expect((await env.api("GET", "/nodes/pve1/lxc/151/config")).json.data).to.not.have.property("unprivileged");
    });

    it("an unknown os-release ID falls back to the marker files; an os-release without any is an error", async () => {
      const rocky = await uploadTarGz(env, "pve1", "rocky-9_1.0_amd64.tar.gz", [
        { name: "etc/os-release", data: 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n' },
        { name: "etc/redhat-release", data: "Rocky Linux release 9\n" },
      ]);
      const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 152, ostemplate: rocky, rootfs: "local-lvm:1" });
      expect(st.exitstatus).to.equal("OK");
      expect(await env.log(st.upid)).to.include("unknown ID 'rocky' in /etc/os-release file, trying fallback detection");
      expect((await env.api("GET", "/nodes/pve1/lxc/152/config")).json.data.ostype).to.equal("centos");
      const odd = await uploadTarGz(env, "pve1", "odd-os_1.0_amd64.tar.gz", [{ name: "etc/os-release", data: "ID=oddos\n" }]);
      const bad = await env.task("POST", "/nodes/pve1/lxc", { vmid: 153, ostemplate: odd, rootfs: "local-lvm:1" });
      expect(bad.exitstatus).to.equal("unable to create CT 153 - unable to detect OS distribution");
    });

    it("9.1 creates unprivileged CTs by default", async () => {
      const v91 = await startEnv();
      try {
        await fetchTemplate(v91);
        await createCt(v91, 100);
        expect((await v91.api("GET", "/nodes/pve1/lxc/100/config")).json.data.unprivileged).to.equal(1);
      } finally {
        await v91.sb.stop();
      }
    });
  });
});
