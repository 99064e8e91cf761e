/**
 * Requests a genuine Proxmox VE refuses or treats differently (issue 15, items 7, 9, 11, 12,
 * 15, 16, 17), through the Container handler in process against the sandbox. Where the
 * sandbox does not (yet) play PVE's part, the test scripts it at the API-client seam and
 * says so.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import handler from "../../provider/resources/container/handler";
import { providerClient, resetProviderClient } from "../../provider/resources/operation";
import { configure } from "../../provider/resources/registry";
import { LxcApi } from "../../provider/proxmox/lxc";
import { useSandboxProvider, applianceTemplate } from "../support/provider";
import { ociArchive } from "../sandbox/helpers";
import { shellJoin as shellJoinForTest } from "../../provider/proxmox/shellQuote";

type Outs = Record<string, any>;

/** Replace a method of LxcApi for one test; returns the restore function. */
function patch<K extends keyof LxcApi>(name: K, make: (orig: LxcApi[K]) => LxcApi[K]): () => void {
  const proto = LxcApi.prototype as any;
  const orig = proto[name];
  proto[name] = make(orig);
  return () => (proto[name] = orig);
}

describe("Container against what a real PVE does (issue 15)", function () {
  this.timeout(120_000);
  let sb: SandboxHandle;
  let template: string;
  let restore: Array<() => void> = [];

  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1", "pve2"], taskDurationMs: 5, authFailureDelayMs: 0 });
    useSandboxProvider(sb);
    template = await applianceTemplate("debian");
  });
  afterEach(() => {
    restore.forEach((r) => r());
    restore = [];
    useSandboxProvider(sb);
  });
  after(async () => sb?.stop());

  const base = (extra: Record<string, unknown> = {}) => ({
    node: "pve1",
    template,
    hostname: "rp",
    memory: { dedicated: 256, swap: 0 },
    rootfs: { storage: "local-lvm", size: "1G" },
    resourceName: "rp",
    ...extra,
  });

  async function up(inputs: Record<string, unknown>): Promise<{ id: string; outs: Outs }> {
    const checked = await handler.check!({}, inputs);
    expect(checked.failures ?? []).to.deep.equal([]);
    const r = await handler.create(checked.inputs);
    return { id: r.id, outs: r.outs as Outs };
  }
  async function change(olds: { id: string; outs: Outs }, inputs: Record<string, unknown>): Promise<Outs> {
    const checked = await handler.check!(olds.outs, inputs);
    expect(checked.failures ?? []).to.deep.equal([]);
    return (await handler.update!(olds.id, olds.outs, checked.inputs)).outs as Outs;
  }
  const reasons = async (olds: Record<string, unknown>, news: Record<string, unknown>) =>
    ((await handler.check!(olds, news)).failures ?? []).map((f) => f.reason).join("\n");

  describe("item 7: an API token is never root@pam", () => {
    it("check refuses root-only settings for a root@pam!… token and says to use root@pam ticket login", async () => {
      // The sandbox's token is root@pam!sandbox: PVE sees the token, not root@pam.
      for (const extra of [
        { features: { keyctl: false } },
        { features: { nesting: true, fuse: true } },
        { mountPoints: [{ slot: 0, hostPath: "/srv", path: "/srv" }] },
        { devices: [{ path: "/dev/net/tun" }] },
        { hookscript: "local:snippets/hook.sh" },
        { unprivileged: false, features: { nesting: true } },
      ]) {
        const text = await reasons({}, base(extra));
        expect(text, JSON.stringify(extra)).to.match(/API token root@pam!sandbox, and PVE never treats a token as root@pam\. Set proxmox:username to root@pam with proxmox:password/);
      }
      expect(await reasons({}, base({ features: { keyctl: false } }))).to.match(/keyctl: false counts too/);
      expect(await reasons({}, base({ features: { nesting: true } }))).to.equal("");
    });

    it("only changes count, as PVE checks only the keys a request sends", async () => {
      const olds = { ...base({ mountPoints: [{ slot: 0, hostPath: "/srv", path: "/srv" }], features: { nesting: true, keyctl: true } }), vmid: 100, status: "running", volids: {}, hwaddrs: {} };
      expect(await reasons(olds, base({ hostname: "other", mountPoints: [{ slot: 0, hostPath: "/srv", path: "/srv" }], features: { nesting: true, keyctl: true } }))).to.equal("");
      // Toggling nesting while keyctl stays: allowed (PVE compares printed values per key).
      expect(await reasons(olds, base({ mountPoints: [{ slot: 0, hostPath: "/srv", path: "/srv" }], features: { nesting: false, keyctl: true } }))).to.equal("");
      expect(await reasons(olds, base({ mountPoints: [{ slot: 0, hostPath: "/srv", path: "/srv" }], features: { nesting: true, keyctl: false } }))).to.match(/features:/);
      expect(await reasons(olds, base({ features: { nesting: true, keyctl: true } }))).to.match(/removing the bind mount in slot 0/);
    });

    it("update refuses them before sending, also when check did not see them", async () => {
      const ct = await up(base({ started: false }));
      await sb.admin.resetCounters();
      await handler.update!(ct.id, ct.outs, base({ started: false, features: { keyctl: false } })).then(
        () => expect.fail("updated"),
        (e: Error) => expect(e.message).to.match(/features: everything except nesting can only be set by root@pam.*API token root@pam!sandbox/),
      );
      expect((await sb.admin.counters()).requests["PUT /nodes/{node}/lxc/{vmid}/config"] ?? 0).to.equal(0);
      await handler.delete!(ct.id, ct.outs);
    });

    it("ticket login as root@pam may set them", async () => {
      configure({ get: (k) => ({ "proxmox:endpoint": sb.endpoint, "proxmox:username": sb.username, "proxmox:password": sb.password, "proxmox:tlsFingerprint": sb.tlsFingerprint, "proxmox:logLevel": "silent" })[k] });
      resetProviderClient();
      expect(await reasons({}, base({ features: { keyctl: false }, mountPoints: [{ slot: 0, hostPath: "/srv", path: "/srv" }] }))).to.equal("");
    });
  });

  it("item 7 premise: the sandbox, like PVE, answers 403 to a root@pam!… token for keyctl=0", async () => {
    const err = await providerClient()
      .lxc.createContainer({ node: "pve1", config: { ostemplate: template, rootfs: "local-lvm:1", features: "keyctl=0" } })
      .then(() => undefined, (e: Error) => e);
    expect(err?.message).to.match(/changing feature flags \(except nesting\) is only allowed for root@pam/);
  });

  it("item 8: an HA-managed CT is stopped, started, migrated and destroyed only once the HA manager has acted", async () => {
    const client = providerClient();
    const inputs = base({ networks: [] });
    const ct = await up(inputs);
    const vmid = Number(ct.id);
    await sb.admin.haManage(vmid, "started");
    await sb.admin.setHaDelay(400);
    let outs = await change(ct, { ...inputs, started: false });
    expect(outs.status).to.equal("stopped");
    expect((await client.lxc.status("pve1", vmid)).status).to.equal("stopped");
    outs = await change({ id: ct.id, outs }, { ...inputs, started: true });
    expect((await client.lxc.status("pve1", vmid)).status).to.equal("running");
    outs = await change({ id: ct.id, outs }, { ...inputs, node: "pve2" });
    expect((await client.cluster.findGuest(vmid))?.node).to.equal("pve2");
    expect(outs.status).to.equal("running");
    await handler.delete!(ct.id, outs);
    expect(await client.cluster.findGuest(vmid)).to.equal(undefined);
  });

  it("item 9 (sandbox as PVE): an OCI create's image values are replaced by the declared ones before the first start", async () => {
    const client = providerClient();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rp-oci-"));
    const file = path.join(dir, "rpapp_1.0.tar");
    fs.writeFileSync(file, await ociArchive({ config: { Entrypoint: ["/bin/app"], Cmd: ["--image-default"], Env: ["IMAGE=1"] } }));
    const { volid } = await client.storage.upload({ node: "pve1", storage: "local", content: "vztmpl", filePath: file });
    fs.rmSync(dir, { recursive: true, force: true });
    const entrypoint = shellJoinForTest(["/bin/app", "--config=/etc/x", "it's"]);
    const ct = await up(base({ template: volid, entrypoint, env: { MODE: "prod" }, console: { mode: "tty" }, networks: [] }));
    const cfg = await client.lxc.getConfig("pve1", Number(ct.id), { current: true });
    expect(cfg).to.include({ entrypoint: "/bin/app '--config=/etc/x' 'it'\\''s'", env: "MODE=prod", cmode: "tty" });
    expect((await client.lxc.pending("pve1", Number(ct.id))).filter((p) => p.pending !== undefined || p.delete !== undefined)).to.deep.equal([]);
    expect(ct.outs.status).to.equal("running");
    await handler.delete!(ct.id, ct.outs);
  });

  describe("item 17: refused before the server fails", () => {
    it("a backup volid as template is refused in check", async () => {
      expect(await reasons({}, base({ template: "local:backup/vzdump-lxc-100-2024_01_01-00_00_00.tar.zst" }))).to.match(/template: 'local:backup\/vzdump-lxc-100-[^']+' is a backup archive, not a CT template; to create a container from a backup use restore: \{ backup: "local:backup\//);
    });

    it("a bridge the node does not have is reported before the CT is created, with one network read per node and VNets only when needed", async () => {
      const client = providerClient();
      await sb.admin.resetCounters();
      resetProviderClient();
      const before = (await client.cluster.containers()).length;
      const checked = await handler.check!({}, base({ networks: [{ name: "eth0", bridge: "vmbr9", ip: "dhcp" }] }));
      await handler.create(checked.inputs).then(
        () => expect.fail("created with a missing bridge"),
        (e: Error) => expect(e.message).to.match(/networks \(eth0\): bridge 'vmbr9' does not exist on node pve1\. Bridges there: vmbr0, vmbr1\..*not created/),
      );
      expect((await client.cluster.containers()).length).to.equal(before);
      const ok = await up(base({ started: false, networks: [{ name: "eth0", bridge: "vmbr1", ip: "dhcp" }] }));
      expect((await sb.admin.counters()).requests["GET /nodes/{node}/network"]).to.equal(1);
      // The cluster's SDN VNets are asked only for a name the node's list lacks (vmbr9 above).
      expect((await sb.admin.counters()).requests["GET /cluster/sdn/vnets"]).to.equal(1);
      await handler.delete!(ok.id, ok.outs);
      await sb.admin.resetCounters();
      resetProviderClient();
      const again = await up(base({ started: false, networks: [{ name: "eth0", bridge: "vmbr0", ip: "dhcp" }] }));
      expect((await sb.admin.counters()).requests["GET /cluster/sdn/vnets"] ?? 0).to.equal(0);
      await handler.delete!(again.id, again.outs);
    });
  });

  it("item 9: entrypoint, env and console mode PVE took from the image are set back before the first start", async () => {
    // Scripted PVE part: an OCI create overwrites these three keys from the image.
    restore.push(
      patch("createContainer", (orig) => async function (this: LxcApi, o) {
        const r = await orig.call(this, o);
        await this.updateConfig(o.node, r.vmid, { set: { entrypoint: "/usr/bin/image-default", env: "IMAGE=1", cmode: "console" } });
        return r;
      }),
    );
    const atStart: Outs[] = [];
    restore.push(
      patch("start", (orig) => async function (this: LxcApi, node, vmid, params, opts) {
        atStart.push(await this.getConfig(node, vmid, { current: true }));
        return orig.call(this, node, vmid, params, opts);
      }),
    );
    const entrypoint = "/app/server '--config=/etc/x' a!b 'it'\\''s'";
    const ct = await up(base({ entrypoint, env: { MODE: "prod" }, console: { mode: "tty" } }));
    expect(atStart).to.have.length(1);
    expect(atStart[0].entrypoint).to.equal(entrypoint);
    expect(atStart[0].env).to.equal("MODE=prod");
    expect(atStart[0].cmode).to.equal("tty");
    expect(ct.outs.entrypoint).to.equal(entrypoint);
    expect(ct.outs.env).to.deep.equal({ MODE: "prod" });
    await handler.delete!(ct.id, ct.outs);
  });

  describe("item 11: migration with a storage change", () => {
    it("moves only the requested volume, not every local one", async () => {
      const client = providerClient();
      const inputs = base({ started: false, mountPoints: [{ slot: 0, storage: "local-lvm", size: "1G", path: "/data" }] });
      const ct = await up(inputs);
      const outs = await change(ct, { ...inputs, node: "pve2", mountPoints: [{ slot: 0, storage: "local-zfs", size: "1G", path: "/data" }] });
      const cfg = await client.lxc.getConfig("pve2", Number(ct.id), { current: true });
      expect(String(cfg.rootfs)).to.match(/^local-lvm:/);
      expect(String(cfg.mp0)).to.match(/^local-zfs:/);
      await handler.delete!(ct.id, outs);
    });

    it("moves a volume on shared storage after the migration instead of dropping the move", async () => {
      const client = providerClient();
      const inputs = base({ started: false, rootfs: { storage: "shared-nfs", size: "1G" } });
      const ct = await up(inputs);
      const outs = await change(ct, { ...inputs, node: "pve2", rootfs: { storage: "local-lvm", size: "1G" } });
      const cfg = await client.lxc.getConfig("pve2", Number(ct.id), { current: true });
      expect(String(cfg.rootfs)).to.match(/^local-lvm:/);
      expect(outs.rootfs.storage).to.equal("local-lvm");
      await handler.delete!(ct.id, outs);
    });
  });

  it("item 12: the safety rollback does not start inside the rollback, starts itself, then deletes the snapshot past a lock", async () => {
    const client = providerClient();
    const inputs = base({ safetySnapshot: true });
    const ct = await up(inputs);
    const vmid = Number(ct.id);
    const calls: string[] = [];
    restore.push(
      patch("rollback", (orig) => async function (this: LxcApi, node, id, snap, params, opts) {
        calls.push(`rollback start=${params?.start ?? "-"}`);
        return orig.call(this, node, id, snap, params, opts);
      }),
      patch("startAndWait", (orig) => async function (this: LxcApi, node, id, params, opts) {
        calls.push("start");
        const r = await orig.call(this, node, id, params, opts);
        // Something else (a backup) holds the CT briefly right after the start.
        if (calls.includes("rollback start=-")) await sb.admin.holdLock(id, "backup", 1);
        return r;
      }),
    );
    await sb.admin.failTask({ type: "vzreboot", vmid, exitstatus: `startup for container '${vmid}' failed` });
    const checked = await handler.check!(ct.outs, { ...inputs, features: { nesting: true } });
    const err = await handler.update!(ct.id, ct.outs, checked.inputs).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/rolled back to its state before this update/);
    expect(err?.message).not.to.match(/failed: .*Rolling back|also failed/);
    expect(calls).to.deep.equal(["rollback start=-", "start"]);
    expect((await client.lxc.status("pve1", vmid)).status).to.equal("running");
    expect((await client.lxc.listSnapshots("pve1", vmid)).map((x) => x.name)).to.deep.equal(["current"]);
    await handler.delete!(ct.id, ct.outs);
  });

  it("item 15: a pool change reads membership first (no 'not a pool member' after an out-of-band change)", async () => {
    const client = providerClient();
    for (const poolid of ["rp-a", "rp-b"]) await client.post("/pools", { poolid });
    const ct = await up(base({ started: false, pool: "rp-a" }));
    const vmid = Number(ct.id);
    await client.cluster.updatePoolMembers("rp-a", { vms: [vmid], remove: true }); // someone else removed it
    let outs = await change(ct, base({ started: false, pool: "rp-b" }));
    expect((await client.cluster.findGuest(vmid))?.pool).to.equal("rp-b");
    // Declared pool already in place although the state says otherwise: nothing to send twice.
    outs = await change({ id: ct.id, outs: { ...outs, pool: undefined } }, base({ started: false, pool: "rp-b" }));
    expect((await client.cluster.findGuest(vmid))?.pool).to.equal("rp-b");
    outs = await change({ id: ct.id, outs }, base({ started: false }));
    expect((await client.cluster.findGuest(vmid))?.pool).to.equal(undefined);
    await handler.delete!(ct.id, outs);
  });
});

describe("item 16: inputs an older PVE release does not accept (sandbox as PVE 8.4)", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1"], pveVersion: "8.4", taskDurationMs: 5, authFailureDelayMs: 0 });
    useSandboxProvider(sb);
  });
  after(async () => sb?.stop());

  const inputs = (extra: Record<string, unknown>) => ({ node: "pve1", template: "local:vztmpl/alpine.tar.zst", rootfs: { storage: "local-lvm", size: "1G" }, resourceName: "old", ...extra });

  it("check refuses an uncompressed .tar template and the 9.1 keys, naming the server's version", async () => {
    const r = await handler.check!({}, inputs({ template: "local:vztmpl/app.tar", entrypoint: "/app", env: { A: "1" }, networks: [{ name: "eth0", bridge: "vmbr0", hostManaged: true }] }));
    const text = (r.failures ?? []).map((f) => f.reason).join("\n");
    expect(text).to.match(/template: an uncompressed \.tar template needs Proxmox VE 9\.1 or newer; the server runs 8\.4/);
    expect(text).to.match(/entrypoint: entrypoint .* needs Proxmox VE 9\.1/);
    expect(text).to.match(/env: env .* needs Proxmox VE 9\.1/);
    expect(text).to.match(/networks\[0\]\.hostManaged: hostManaged .* needs Proxmox VE 9\.1/);
    expect((await handler.check!({}, inputs({}))).failures ?? []).to.deep.equal([]);
  });

  it("create refuses them too, before anything is sent", async () => {
    await sb.admin.resetCounters();
    await handler.create(inputs({ template: "local:vztmpl/app.tar", unprivileged: true, started: true, pendingChanges: "reboot" })).then(
      () => expect.fail("created"),
      (e: Error) => expect(e.message).to.match(/template: an uncompressed \.tar template needs Proxmox VE 9\.1/),
    );
    expect((await sb.admin.counters()).requests["POST /nodes/{node}/lxc"] ?? 0).to.equal(0);
  });
});

describe("item 12 against PVE's start lock (sandbox: vzstart holds the config lock)", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  before(async () => {
    // A start that outlasts the config-lock wait, as a slow CT start on a real node (95 s vs 10 s).
    sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 5, authFailureDelayMs: 0, lockTimeoutMs: 300 });
    await sb.admin.setTaskDuration({ vzstart: 1500 });
    useSandboxProvider(sb);
  });
  after(async () => sb?.stop());

  it("the safety snapshot is deleted after a rollback of a running CT, without waiting on the start's lock", async () => {
    const template = await applianceTemplate("alpine", "local");
    const inputs = { node: "pve1", template, rootfs: { storage: "local-lvm", size: "1G" }, memory: { dedicated: 256, swap: 0 }, safetySnapshot: true, resourceName: "lock" };
    const created = await handler.create((await handler.check!({}, inputs)).inputs);
    const vmid = Number(created.id);
    // No waiting out locks in the client, so a delete sent while the start holds the lock fails as on PVE.
    const client = providerClient();
    client.retryPolicy.lockWaitMs = 0;
    await sb.admin.failTask({ type: "vzreboot", vmid, exitstatus: `startup for container '${vmid}' failed` });
    const next = { ...inputs, features: { nesting: true } };
    const err = await handler.update!(created.id, created.outs, (await handler.check!(created.outs, next)).inputs).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/rolled back to its state before this update/);
    expect(err?.message).not.to.match(/also failed|Deleting the safety snapshot/);
    expect((await client.lxc.listSnapshots("pve1", vmid)).map((x) => x.name)).to.deep.equal(["current"]);
    expect((await client.lxc.status("pve1", vmid)).status).to.equal("running");
  });
});
