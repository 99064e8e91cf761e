/**
 * Sandbox: vzdump backups, backup volumes (content listing, notes, protected), restore,
 * clone and template conversion as PVE does them (docs/sandbox.md "What it simulates").
 */
import { expect } from "chai";
import { parseUpid } from "../../provider/proxmox/upid";
import { createCt, fetchTemplate, request, startEnv, DEBIAN, type Env } from "./helpers";
import { generateNotes } from "../../sandbox/model/lxc/backup";

const BACKUP_VOLID = /^local:backup\/vzdump-lxc-(\d+)-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.tar(\.zst|\.gz|\.lzo)?$/;

describe("sandbox: backup, restore, clone, template (issue 16)", function () {
  this.timeout(20000);
  let env: Env;
  before(async () => {
    env = await startEnv({ nodes: ["pve1", "pve2"], lockTimeoutMs: 200 });
    await fetchTemplate(env);
    await createCt(env, 100, { hostname: "web", rootfs: "local-lvm:1", mp0: "local-lvm:0.5,mp=/data,backup=1", mp1: "local-lvm:0.25,mp=/scratch", net0: "name=eth0,bridge=vmbr0,ip=dhcp" });
  });
  after(async () => env.sb.stop());

  /** Run vzdump, return the task status, its log and the new backup volid (if any). */
  async function vzdump(form: Record<string, string | number>, node = "pve1"): Promise<{ st: any; log: string[]; volid?: string }> {
    const r = await env.api("POST", `/nodes/${node}/vzdump`, { form });
    expect(r.status, r.text).to.equal(200);
    const st = await env.wait(r.json.data);
    const log = await env.log(r.json.data);
    const line = log.find((l) => l.startsWith("INFO: creating vzdump archive"));
    const file = line ? /'[^']*\/dump\/([^']+)'/.exec(line)?.[1] : undefined;
    return { st, log, volid: file ? `${form.storage ?? "local"}:backup/${file}` : undefined };
  }

  async function backups(vmid?: number): Promise<any[]> {
    const r = await env.api("GET", `/nodes/pve1/storage/local/content?content=backup${vmid ? `&vmid=${vmid}` : ""}`);
    expect(r.status, r.text).to.equal(200);
    return r.json.data;
  }

  describe("vzdump", () => {
    it("backs up a stopped CT in stop mode: task vzdump, PVE's volume name, lock released, listed as backup", async () => {
      const r = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 100, storage: "local", compress: "zstd", mode: "snapshot", "notes-template": "{{guestname}} on {{node}} ({{vmid}}) in {{cluster}}" } });
      expect(parseUpid(r.json.data)).to.include({ type: "vzdump", id: "100" });
      const st = await env.wait(r.json.data);
      expect(st.exitstatus).to.equal("OK");
      const log = await env.log(r.json.data);
      expect(log[0]).to.match(/^INFO: starting new backup job: vzdump 100 /);
      expect(log).to.include("INFO: status = stopped");
      expect(log).to.include("INFO: backup mode: stop"); // a stopped CT is always backed up in stop mode
      expect(log).to.include("INFO: including mount point rootfs ('/') in backup");
      expect(log).to.include("INFO: including mount point mp0 ('/data') in backup");
      expect(log).to.include("INFO: excluding volume mount point mp1 ('/scratch') from backup (disabled)");
      expect(log).to.include("INFO: adding notes to backup");
      expect(log[log.length - 2]).to.equal("INFO: Backup job finished successfully");
      const list = await backups(100);
      expect(list).to.have.length(1);
      const b = list[0];
      expect(b.volid).to.match(BACKUP_VOLID);
      expect(b).to.include({ content: "backup", format: "tar.zst", subtype: "lxc", vmid: 100, notes: "web on pve1 (100) in sandbox" });
      expect(b.protected).to.equal(undefined);
      expect(b.size).to.be.greaterThan(0);
      // ctime is the time in the name (archive_info), not the file's
      const m = /(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})/.exec(b.volid)!;
      expect(b.ctime).to.equal(new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]).getTime() / 1000);
      const cfg = (await env.api("GET", "/nodes/pve1/lxc/100/config")).json.data;
      expect(cfg.lock).to.equal(undefined);
      // other vmids filter it out; the listing without a filter has it
      expect(await backups(101)).to.have.length(0);
      expect((await backups()).map((x) => x.volid)).to.include(b.volid);
    });

    it("holds `lock: backup` while it runs and refuses a locked CT", async () => {
      await env.sb.admin.setTaskDuration({ vzdump: 300 });
      try {
        const r = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 100, storage: "local" } });
        await new Promise((res) => setTimeout(res, 100));
        expect((await env.api("GET", "/nodes/pve1/lxc/100/config")).json.data.lock).to.equal("backup");
        const start = await env.api("POST", "/nodes/pve1/lxc/100/status/start");
        expect((await env.wait(start.json.data)).exitstatus).to.equal("CT is locked (backup)");
        expect((await env.wait(r.json.data)).exitstatus).to.equal("OK");
      } finally {
        await env.sb.admin.setTaskDuration({ vzdump: 5 });
      }
      await env.sb.admin.holdLock(100, "snapshot", 1);
      const { st, log } = await vzdump({ vmid: 100, storage: "local" });
      expect(st.exitstatus).to.equal("job errors");
      expect(log).to.include("ERROR: Backup of VM 100 failed - CT is locked (snapshot)");
      expect(log).to.include("INFO: Backup job finished with errors");
      await new Promise((res) => setTimeout(res, 1100));
    });

    it("snapshot mode on a running CT; falls back to suspend when a volume cannot snapshot; stop mode restarts", async () => {
      await createCt(env, 110, { rootfs: "local-lvm:1" });
      await env.task("POST", "/nodes/pve1/lxc/110/status/start");
      // while it runs, the temporary `vzdump` snapshot is listed; afterwards it is gone
      await env.sb.admin.setTaskDuration({ vzdump: 300 });
      const pending = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 110, storage: "local", mode: "snapshot" } });
      await new Promise((res) => setTimeout(res, 100));
      const during = (await env.api("GET", "/nodes/pve1/lxc/110/snapshot")).json.data.map((x: any) => x.name);
      await env.sb.admin.setTaskDuration({ vzdump: 5 });
      expect((await env.wait(pending.json.data)).exitstatus).to.equal("OK");
      expect(during).to.deep.equal(["vzdump", "current"]);
      expect((await env.api("GET", "/nodes/pve1/lxc/110/snapshot")).json.data.map((x: any) => x.name)).to.deep.equal(["current"]);
      let r = await vzdump({ vmid: 110, storage: "local", mode: "snapshot" });
      expect(r.st.exitstatus).to.equal("OK");
      expect(r.log).to.include.members(["INFO: status = running", "INFO: backup mode: snapshot", "INFO: create storage snapshot 'vzdump'"]);
      expect(r.volid).to.match(/\.tar$/); // compress defaults to 0
      // an nfs volume has no snapshots: PVE logs the mode failure and uses suspend
      await createCt(env, 111, { rootfs: "shared-nfs:1" });
      await env.task("POST", "/nodes/pve1/lxc/111/status/start");
      r = await vzdump({ vmid: 111, storage: "local", mode: "snapshot", compress: "gzip" });
      expect(r.st.exitstatus).to.equal("OK");
      expect(r.log).to.include.members(["INFO: mode failure - some volumes do not support snapshots", "INFO: trying 'suspend' mode instead", "INFO: backup mode: suspend"]);
      expect(r.volid).to.match(/\.tar\.gz$/);
      r = await vzdump({ vmid: 111, storage: "local", mode: "stop", compress: "lzo" });
      expect(r.log).to.include.members(["INFO: backup mode: stop", "INFO: stopping virtual guest", "INFO: restarting vm"]);
      expect(r.volid).to.match(/\.tar\.lzo$/);
      expect((await env.api("GET", "/nodes/pve1/lxc/111/status/current")).json.data.status).to.equal("running");
      await env.task("POST", "/nodes/pve1/lxc/110/status/stop");
      await env.task("POST", "/nodes/pve1/lxc/111/status/stop");
    });

    it("synchronous errors and in-task errors with PVE's texts", async () => {
      const nov = await env.api("POST", "/nodes/pve1/vzdump", { form: { storage: "local" } });
      expect(nov.status).to.equal(400);
      expect(nov.json.errors).to.deep.equal({ vmid: "property is missing" });
      // notes-template needs storage (the schema's requires, checked before vzdump's own checks).
      const nostorage = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 100, "notes-template": "a" } });
      expect(nostorage.json.errors).to.deep.equal({ storage: "missing property - 'notes-template' requires this property" });
      const lf = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 100, storage: "local", "notes-template": "a\nb" } });
      expect(lf.json.errors).to.deep.equal({ "notes-template": "contains a line feed" });
      const conflict = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 100, all: 1 } });
      expect(conflict.json.errors).to.deep.equal({ all: "option conflicts with option 'vmid'" });
      // a CT on another node: nothing to do here, plain OK and no task
      await fetchTemplate(env, DEBIAN, "pve2");
      await createCt(env, 200, { rootfs: "local-lvm:1" }, "pve2");
      const remote = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 200 } });
      expect(remote.json.data).to.equal("OK");
      // unknown guest: visibly fails in the task
      const unknown = await vzdump({ vmid: 999, storage: "local" });
      expect(unknown.st.exitstatus).to.equal("job errors");
      expect(unknown.log).to.include("ERROR: Backup of VM 999 failed - unable to find VM '999'");
      // a storage without backup content
      const wrong = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 100, storage: "local-lvm" } });
      expect((await env.wait(wrong.json.data)).exitstatus).to.equal("could not get storage information for 'local-lvm': can't use storage 'local-lvm' for backups - wrong content type");
      // bad notes template: the backup succeeds, the notes are skipped with a warning line
      const bad = await vzdump({ vmid: 100, storage: "local", "notes-template": "{{nope}}" });
      expect(bad.st.exitstatus).to.equal("OK");
      expect(bad.log).to.include("WARN: unable to add notes - unexpected variable name 'nope'");
      await env.task("DELETE", `/nodes/pve1/storage/local/content/${encodeURIComponent(bad.volid!)}`);
    });

    it("notes-template escapes and variables as $generate_notes expands them", () => {
      const vars = { cluster: "c", guestname: "g", node: "n", vmid: "7" };
      expect(generateNotes("{{guestname}}\\n{{vmid}} \\\\ {{node}}/{{cluster}}", vars)).to.equal("g\n7 \\ n/c");
      expect(() => generateNotes("a\\tb", vars)).to.throw("unexpected escape character 't'");
      expect(() => generateNotes("{{hostname}}", vars)).to.throw("unexpected variable name 'hostname'");
    });

    it("permissions: VM.Backup on the guest (task error), Datastore.AllocateSpace on the storage (403)", async () => {
      await env.sb.admin.createUser("bak@pve");
      const tok = await env.sb.admin.createToken("bak@pve", "ci", { privsep: 0 });
      await env.sb.admin.setAcl({ path: "/storage/local", roles: ["PVEDatastoreUser"], users: ["bak@pve"] });
      const asUser = (form: Record<string, string | number>) => request(env.sb, "POST", "/nodes/pve1/vzdump", { auth: { token: tok.apiToken }, form });
      const r = await asUser({ vmid: 100, storage: "local" });
      expect(r.status, r.text).to.equal(200);
      expect((await env.wait(r.json.data)).exitstatus).to.equal("Permission check failed (/vms/100, VM.Backup)");
      const denied = await asUser({ vmid: 100, storage: "shared-nfs" });
      expect(denied.status).to.equal(403);
      const rootOnly = await asUser({ vmid: 100, storage: "local", ionice: 3 });
      expect(rootOnly.json.errors).to.deep.equal({ ionice: "Only root may set this option." });
      await env.sb.admin.setAcl({ path: "/vms/100", roles: ["PVEVMUser"], users: ["bak@pve"] });
      const ok = await asUser({ vmid: 100, storage: "local" });
      expect((await env.wait(ok.json.data)).exitstatus).to.equal("OK");
    });

    it("two jobs on one node queue on the global vzdump lock", async () => {
      await env.sb.admin.setTaskDuration({ vzdump: 150 });
      try {
        const a = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 100, storage: "local" } });
        const b = await env.api("POST", "/nodes/pve1/vzdump", { form: { vmid: 110, storage: "local" } });
        expect((await env.wait(a.json.data)).exitstatus).to.equal("OK");
        expect((await env.wait(b.json.data)).exitstatus).to.equal("OK");
        const log = await env.log(b.json.data);
        expect(log.slice(0, 3)).to.deep.equal(["INFO: trying to get global lock - waiting...", "INFO: got global lock", log[2]]);
        expect(log[2]).to.match(/^INFO: starting new backup job/);
      } finally {
        await env.sb.admin.setTaskDuration({ vzdump: 5 });
      }
    });
  });

  describe("backup volumes", () => {
    it("notes and protected via PUT/GET …/content/{volume}; a protected backup cannot be deleted", async () => {
      const { volid } = await vzdump({ vmid: 100, storage: "local", protected: 1 });
      const path = `/nodes/pve1/storage/local/content/${encodeURIComponent(volid!)}`;
      let got = (await env.api("GET", path)).json.data;
      expect(got).to.include({ protected: 1, notes: "", format: "raw" });
      expect(got.path).to.equal(`/var/lib/vz/dump/${volid!.replace(/^local:backup\//, "")}`);
      expect((await env.api("PUT", path, { form: { notes: "before upgrade\nsecond line" } })).status).to.equal(200);
      got = (await env.api("GET", path)).json.data;
      expect(got.notes).to.equal("before upgrade\nsecond line");
      expect((await backups(100)).find((b) => b.volid === volid)).to.include({ notes: "before upgrade", protected: 1 });
      const del = await env.api("DELETE", path);
      const st = await env.wait(del.json.data);
      expect(st.exitstatus).to.equal(`cannot remove protected volume '${volid!.replace(/^local:/, "")}' on 'local'`);
      expect(parseUpid(del.json.data)).to.include({ type: "imgdel", id: "100@local" });
      await env.api("PUT", path, { form: { protected: 0 } });
      expect((await env.api("GET", path)).json.data.protected).to.equal(0);
      expect((await env.task("DELETE", path)).exitstatus).to.equal("OK");
      expect((await backups(100)).map((b) => b.volid)).to.not.include(volid);
      const tmplNotes = await env.api("PUT", `/nodes/pve1/storage/local/content/${encodeURIComponent("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.gz")}`, { form: { notes: "x" } });
      expect(tmplNotes.status).to.equal(500);
      expect(tmplNotes.reason).to.equal("only backups can have notes");
    });
  });

  describe("restore (POST /nodes/{node}/lxc restore=1)", () => {
    let volid: string;
    before(async () => {
      await env.api("PUT", "/nodes/pve1/lxc/100/config", { form: { memory: 1024, tags: "web", description: "the web CT" } });
      await env.sb.admin.writeVolumeMarker("local-lvm:vm-100-disk-0", "rootfs-data-v1");
      volid = (await vzdump({ vmid: 100, storage: "local", compress: "zstd" })).volid!;
    });

    it("recreates config and volumes (sizes, data) from the backup; task vzrestore", async () => {
      const r = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 300, ostemplate: volid, restore: 1, storage: "local-zfs" } });
      expect(r.status, r.text).to.equal(200);
      expect(parseUpid(r.json.data)).to.include({ type: "vzrestore", id: "300" });
      const st = await env.wait(r.json.data);
      expect(st.exitstatus).to.equal("OK");
      const log = await env.log(r.json.data);
      expect(log).to.include.members([`recovering backed-up configuration from '${volid}'`, `restoring '${volid}' now..`, "merging backed-up and given configuration.."]);
      const src = (await env.api("GET", "/nodes/pve1/lxc/100/config")).json.data;
      const cfg = (await env.api("GET", "/nodes/pve1/lxc/300/config")).json.data;
      expect(cfg).to.include({ hostname: "web", memory: 1024, tags: "web", ostype: "debian", arch: "amd64", description: "the web CT\n", net0: src.net0 });
      // every mount point of the backup, at its size, on the requested storage
      expect(cfg.rootfs).to.equal("local-zfs:subvol-300-disk-0,size=1G");
      expect(cfg.mp0).to.equal("local-zfs:subvol-300-disk-1,mp=/data,backup=1,size=512M");
      expect(cfg.mp1).to.equal("local-zfs:subvol-300-disk-2,mp=/scratch,size=256M");
      expect(await env.sb.admin.readVolumeMarker("local-zfs:subvol-300-disk-0")).to.equal("rootfs-data-v1");
      expect(cfg.lock).to.equal(undefined);
    });

    it("GET /nodes/{node}/vzdump/extractconfig returns the backed-up pct.conf (no lock, no snapshots)", async () => {
      const r = await env.api("GET", `/nodes/pve1/vzdump/extractconfig?volume=${encodeURIComponent(volid)}`);
      expect(r.status, r.text).to.equal(200);
      const text: string = r.json.data;
      expect(text.split("\n")).to.include.members(["#the web CT", "hostname: web", "memory: 1024", "rootfs: local-lvm:vm-100-disk-0,size=1G"]);
      expect(text).to.not.match(/^lock:/m);
      expect(text).to.not.match(/^\[/m);
    });

    it("declared parameters override the backup's config; unique=1 regenerates MACs", async () => {
      const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 301, ostemplate: volid, restore: 1, storage: "local-lvm", memory: 2048, hostname: "web-copy", unique: 1 });
      expect(st.exitstatus).to.equal("OK");
      const src = (await env.api("GET", "/nodes/pve1/lxc/100/config")).json.data;
      const cfg = (await env.api("GET", "/nodes/pve1/lxc/301/config")).json.data;
      expect(cfg).to.include({ memory: 2048, hostname: "web-copy", tags: "web" });
      const mac = (n: string) => /hwaddr=([0-9A-F:]+)/.exec(n)![1];
      expect(mac(cfg.net0)).to.not.equal(mac(src.net0));
      expect(cfg.net0.replace(mac(cfg.net0), "X")).to.equal(src.net0.replace(mac(src.net0), "X"));
    });

    it("an explicit rootfs replaces the backed-up layout; data still restored", async () => {
      const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 302, ostemplate: volid, restore: 1, rootfs: "local-lvm:2" });
      expect(st.exitstatus).to.equal("OK");
      const cfg = (await env.api("GET", "/nodes/pve1/lxc/302/config")).json.data;
      expect(cfg.rootfs).to.equal("local-lvm:vm-302-disk-0,size=2G");
      expect(cfg.mp0).to.equal(undefined);
      expect(await env.sb.admin.readVolumeMarker("local-lvm:vm-302-disk-0")).to.equal("rootfs-data-v1");
    });

    it("existing vmid: refused without force; force overwrites a stopped CT and frees its old volumes", async () => {
      const dup = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 302, ostemplate: volid, restore: 1, storage: "local-lvm" } });
      expect(dup.status).to.equal(500);
      expect(dup.reason).to.equal("CT 302 already exists on node 'pve1'");
      const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 302, ostemplate: volid, restore: 1, storage: "local-lvm", force: 1 });
      expect(st.exitstatus).to.equal("OK");
      const cfg = (await env.api("GET", "/nodes/pve1/lxc/302/config")).json.data;
      // the new volumes are allocated while the old one still exists, then the old one goes
      expect(cfg.rootfs).to.equal("local-lvm:vm-302-disk-1,size=1G");
      const vols = (await env.api("GET", "/nodes/pve1/storage/local-lvm/content?vmid=302")).json.data.map((v: any) => v.volid);
      expect(vols).to.not.include("local-lvm:vm-302-disk-0");
      await env.task("POST", "/nodes/pve1/lxc/302/status/start");
      const running = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 302, ostemplate: volid, restore: 1, storage: "local-lvm", force: 1 } });
      expect(running.reason).to.equal("can't overwrite running container");
      await env.task("POST", "/nodes/pve1/lxc/302/status/stop");
    });

    it("default storage is local (no rootdir → 400, as PVE); a missing archive fails in the task", async () => {
      const r = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid: 303, ostemplate: volid, restore: 1 } });
      expect(r.status).to.equal(400);
      expect(r.json.errors).to.deep.equal({ storage: "storage 'local' does not support container directories" });
      const gone = "local:backup/vzdump-lxc-100-2020_01_01-00_00_00.tar.zst";
      const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 303, ostemplate: gone, restore: 1, storage: "local-lvm" });
      expect(st.exitstatus).to.equal(`unable to restore CT 303 - can't find file '${gone}'`);
      expect((await env.api("GET", "/nodes/pve1/lxc/303/config")).status).to.equal(500);
    });

    it("a template's backup restores as a template (base volumes)", async () => {
      await createCt(env, 120, { rootfs: "local-lvm:1" });
      await env.api("POST", "/nodes/pve1/lxc/120/template");
      for (let i = 0; i < 100 && (await env.api("GET", "/nodes/pve1/lxc/120/config")).json.data.template !== 1; i++) await new Promise((res) => setTimeout(res, 20));
      const b = await vzdump({ vmid: 120, storage: "local" });
      expect(b.st.exitstatus).to.equal("OK");
      const st = await env.task("POST", "/nodes/pve1/lxc", { vmid: 320, ostemplate: b.volid!, restore: 1, storage: "local-lvm" });
      expect(st.exitstatus).to.equal("OK");
      const cfg = (await env.api("GET", "/nodes/pve1/lxc/320/config")).json.data;
      expect(cfg.template).to.equal(1);
      expect(cfg.rootfs).to.equal("local-lvm:base-320-disk-0,size=1G");
    });
  });

  describe("clone and template conversion", () => {
    async function waitTemplate(vmid: number): Promise<any> {
      for (let i = 0; i < 200; i++) {
        const cfg = (await env.api("GET", `/nodes/pve1/lxc/${vmid}/config`)).json.data;
        if (cfg.template === 1) return cfg;
        await new Promise((res) => setTimeout(res, 10));
      }
      throw new Error(`CT ${vmid} never became a template`);
    }

    it("template: refused while running; base- volume names; a template cannot start", async () => {
      await createCt(env, 130, { rootfs: "local-lvm:1", mp0: "local-zfs:0.5,mp=/data" });
      await env.task("POST", "/nodes/pve1/lxc/130/status/start");
      const running = await env.api("POST", "/nodes/pve1/lxc/130/template");
      expect(running.status).to.equal(500);
      expect(running.reason).to.equal("you can't convert a CT to template if the CT is running");
      await env.task("POST", "/nodes/pve1/lxc/130/status/stop");
      const r = await env.api("POST", "/nodes/pve1/lxc/130/template");
      expect(r.json.data).to.equal(null); // no UPID: the vztemplate worker runs in the background
      const cfg = await waitTemplate(130);
      expect(cfg.rootfs).to.equal("local-lvm:base-130-disk-0,size=1G");
      expect(cfg.mp0).to.equal("local-zfs:basevol-130-disk-0,mp=/data,size=512M");
      const start = await env.api("POST", "/nodes/pve1/lxc/130/status/start");
      expect((await env.wait(start.json.data)).exitstatus).to.equal("you can't start a CT if it's a template");
      const again = await env.api("POST", "/nodes/pve1/lxc/130/template");
      expect(again.reason).to.equal("you can't convert a template to a template");
    });

    it("template on a path storage: raw images become base-, directory subvolumes keep their name", async () => {
      await createCt(env, 150, { rootfs: "shared-nfs:1", mp0: "shared-nfs:0,mp=/data" });
      await env.api("POST", "/nodes/pve1/lxc/150/template");
      const cfg = await waitTemplate(150);
      expect(cfg.rootfs).to.equal("shared-nfs:150/base-150-disk-0.raw,size=1G");
      expect(cfg.mp0).to.equal("shared-nfs:150/subvol-150-disk-1.subvol,mp=/data");
    });

    it("linked clones only from a template (or a snapshot), with PVE's text", async () => {
      await createCt(env, 131, { rootfs: "local-lvm:1" });
      const plain = await env.api("POST", "/nodes/pve1/lxc/131/clone", { form: { newid: 132, full: 0 } });
      expect(plain.status).to.equal(500);
      expect(plain.reason).to.equal("Linked clone feature for 'local-lvm:vm-131-disk-0' is not available");
      // from the template: linked by default, the source is not touched
      const st = await env.task("POST", "/nodes/pve1/lxc/130/clone", { newid: 133, hostname: "linked" });
      expect(st.exitstatus).to.equal("OK");
      const cfg = (await env.api("GET", "/nodes/pve1/lxc/133/config")).json.data;
      expect(cfg.rootfs).to.equal("local-lvm:vm-133-disk-0,size=1G"); // LvmThinPlugin clone_image: a plain LV name
      expect(cfg).to.include({ hostname: "linked" });
      expect(cfg.template).to.equal(undefined);
      expect((await env.api("GET", "/nodes/pve1/lxc/130/config")).json.data.lock).to.equal(undefined);
    });

    it("a zfs template with linked clones cannot be destroyed (base volume in use); lvmthin allows it", async () => {
      await createCt(env, 140, { rootfs: "local-zfs:1" });
      await env.api("POST", "/nodes/pve1/lxc/140/template");
      await waitTemplate(140);
      expect((await env.task("POST", "/nodes/pve1/lxc/140/clone", { newid: 141 })).exitstatus).to.equal("OK");
      expect((await env.api("GET", "/nodes/pve1/lxc/141/config")).json.data.rootfs).to.equal("local-zfs:basevol-140-disk-0/subvol-141-disk-0,size=1G");
      const st = await env.task("DELETE", "/nodes/pve1/lxc/140");
      expect(st.exitstatus).to.equal("base volume 'basevol-140-disk-0' is still in use by linked clones");
      expect((await env.api("GET", "/nodes/pve1/lxc/140/config")).json.data).to.include({ template: 1, rootfs: "local-zfs:basevol-140-disk-0,size=1G" });
      expect((await env.task("DELETE", "/nodes/pve1/lxc/141")).exitstatus).to.equal("OK");
      expect((await env.task("DELETE", "/nodes/pve1/lxc/140")).exitstatus).to.equal("OK");
      // lvmthin: the clone is an independent thin snapshot; the template can go first
      await createCt(env, 142, { rootfs: "local-lvm:1" });
      await env.api("POST", "/nodes/pve1/lxc/142/template");
      await waitTemplate(142);
      expect((await env.task("POST", "/nodes/pve1/lxc/142/clone", { newid: 143 })).exitstatus).to.equal("OK");
      expect((await env.task("DELETE", "/nodes/pve1/lxc/142")).exitstatus).to.equal("OK");
      expect((await env.api("GET", "/nodes/pve1/lxc/143/config")).json.data.rootfs).to.equal("local-lvm:vm-143-disk-0,size=1G");
    });

    it("full clone of a running CT needs a snapshot; from a snapshot it works", async () => {
      await env.task("POST", "/nodes/pve1/lxc/131/status/start");
      const r = await env.api("POST", "/nodes/pve1/lxc/131/clone", { form: { newid: 134 } });
      expect(r.status).to.equal(500);
      expect(r.reason).to.equal("Cannot do full clones on a running container without snapshots");
      expect((await env.task("POST", "/nodes/pve1/lxc/131/snapshot", { snapname: "s1" })).exitstatus).to.equal("OK");
      expect((await env.task("POST", "/nodes/pve1/lxc/131/clone", { newid: 134, snapname: "s1" })).exitstatus).to.equal("OK");
      await env.task("POST", "/nodes/pve1/lxc/131/status/stop");
    });

    it("two concurrent clones of one source: the second fails at once with `CT is locked (disk)` (PVE does not queue)", async () => {
      await env.sb.admin.setTaskDuration({ vzclone: 300 });
      try {
        const first = await env.api("POST", "/nodes/pve1/lxc/130/clone", { form: { newid: 135 } });
        expect(first.status).to.equal(200);
        expect(parseUpid(first.json.data)).to.include({ type: "vzclone", id: "130" });
        expect((await env.api("GET", "/nodes/pve1/lxc/130/config")).json.data.lock).to.equal("disk");
        expect((await env.api("GET", "/nodes/pve1/lxc/135/config")).json.data.lock).to.equal("create");
        const second = await env.api("POST", "/nodes/pve1/lxc/130/clone", { form: { newid: 136 } });
        expect(second.status).to.equal(500);
        expect(second.reason).to.equal("CT is locked (disk)");
        expect((await env.api("GET", "/nodes/pve1/lxc/136/config")).status).to.equal(500);
        expect((await env.wait(first.json.data)).exitstatus).to.equal("OK");
        // once the first is done the source is free again: a retry succeeds
        expect((await env.task("POST", "/nodes/pve1/lxc/130/clone", { newid: 136 })).exitstatus).to.equal("OK");
      } finally {
        await env.sb.admin.setTaskDuration({ vzclone: 5 });
      }
    });
  });
});
