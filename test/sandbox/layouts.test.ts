/**
 * Storage layouts (`startSandbox({storages})`, `pve-lxc sandbox --storage NAME:TYPE[:CONTENT]`):
 * each plugin type names, formats, lists and snapshots CT volumes as pve-storage's plugin does
 * (PVE/Storage/{Dir,BTRFS,LvmThin,ZFSPool,NFS}Plugin.pm), and a create logs mkfs for raw images.
 */
import { expect } from "chai";
import { parseSandboxArgs } from "../../provider/cli/commands/sandbox";
import { startSandbox } from "../../sandbox";
import { fetchTemplate, request, startEnv, DEBIAN, type Env } from "./helpers";

const LAYOUT = [
  { storage: "local", type: "dir" as const },
  { storage: "tank", type: "btrfs" as const },
  { storage: "thin", type: "lvmthin" as const },
  { storage: "zfs", type: "zfspool" as const },
  { storage: "share", type: "nfs" as const },
];

describe("sandbox: storage layouts (dir, btrfs, lvmthin, zfspool, nfs)", function () {
  this.timeout(60000);
  let env: Env;

  before(async () => {
    env = await startEnv({ storages: LAYOUT });
    await fetchTemplate(env);
  });
  after(async () => env?.sb.stop());

  async function create(vmid: number, rootfs: string): Promise<{ conf: any; log: string[] }> {
    const r = await env.api("POST", "/nodes/pve1/lxc", { form: { vmid, ostemplate: `local:vztmpl/${DEBIAN}`, rootfs } });
    expect(r.status, r.text).to.equal(200);
    const st = await env.wait(r.json.data);
    expect(st.exitstatus, `create ${vmid} on ${rootfs}`).to.equal("OK");
    const conf = (await env.api("GET", `/nodes/pve1/lxc/${vmid}/config`)).json.data;
    return { conf, log: await env.log(r.json.data) };
  }

  it("lists exactly the given storages with each type's default content", async () => {
    const list = (await env.api("GET", "/nodes/pve1/storage")).json.data;
    expect(list.map((s: any) => `${s.storage}:${s.type}:${s.content}:${s.shared}`)).to.deep.equal([
      "local:dir:backup,images,iso,rootdir,snippets,vztmpl:0",
      "tank:btrfs:backup,images,rootdir,vztmpl:0",
      "thin:lvmthin:images,rootdir:0",
      "zfs:zfspool:images,rootdir:0",
      "share:nfs:backup,images,iso,rootdir,snippets,vztmpl:1",
    ]);
    const cfg = (await env.api("GET", "/storage/tank")).json.data;
    expect(cfg).to.include({ type: "btrfs", path: "/var/lib/pve/tank" });
  });

  it("names volumes as each plugin does and logs mkfs only for raw images", async () => {
    const cases: Array<[number, string, string, boolean]> = [
      [801, "local:1", "local:801/vm-801-disk-0.raw,size=1G", true],
      [802, "tank:1", "tank:802/vm-802-disk-0.raw,size=1G", true],
      [803, "thin:1", "thin:vm-803-disk-0,size=1G", true],
      [804, "zfs:1", "zfs:subvol-804-disk-0,size=1G", false],
      [805, "share:1", "share:805/vm-805-disk-0.raw,size=1G", true],
      [806, "tank:0", "tank:806/subvol-806-disk-0.subvol", false],
      [807, "local:0", "local:807/subvol-807-disk-0.subvol", false],
    ];
    for (const [vmid, rootfs, want, mkfs] of cases) {
      const { conf, log } = await create(vmid, rootfs);
      expect(conf.rootfs, rootfs).to.equal(want);
      const mk = log.filter((l) => /^Creating filesystem with /.test(l));
      if (mkfs) {
        // mke2fs's summary for 1 GiB, as the recorded PVE 8.4 create shows it
        expect(mk, rootfs).to.deep.equal(["Creating filesystem with 262144 4k blocks and 65536 inodes"]);
        expect(log, rootfs).to.include("\t32768, 98304, 163840, 229376");
      } else expect(mk, rootfs).to.deep.equal([]);
    }
  });

  it("content listing and content/{volume} report format, size, used and the plugin's path", async () => {
    const attrs = async (storage: string, volid: string) => (await env.api("GET", `/nodes/pve1/storage/${storage}/content/${encodeURIComponent(volid)}`)).json.data;
    const G = 1024 ** 3;
    expect(await attrs("tank", "tank:802/vm-802-disk-0.raw")).to.deep.include({ format: "raw", size: G, path: "/var/lib/pve/tank/images/802/vm-802-disk-0/disk.raw" });
    expect(await attrs("local", "local:801/vm-801-disk-0.raw")).to.deep.include({ format: "raw", size: G, path: "/var/lib/vz/images/801/vm-801-disk-0.raw" });
    expect(await attrs("thin", "thin:vm-803-disk-0")).to.deep.include({ format: "raw", size: G, path: "/dev/pve/vm-803-disk-0" });
    expect(await attrs("zfs", "zfs:subvol-804-disk-0")).to.deep.include({ format: "subvol", size: G, path: "/rpool/data/subvol-804-disk-0" });
    // a directory subvolume has no size limit: file_size_info of a directory is 0/0
    expect(await attrs("tank", "tank:806/subvol-806-disk-0.subvol")).to.deep.include({ format: "subvol", size: 0, used: 0 });
    const listed = (await env.api("GET", "/nodes/pve1/storage/zfs/content")).json.data;
    expect(listed.map((v: any) => [v.volid, v.format, v.size, v.vmid, v.content])).to.deep.equal([["zfs:subvol-804-disk-0", "subvol", G, 804, "rootdir"]]);
  });

  it("btrfs, lvmthin and zfspool snapshot CT volumes; dir and nfs cannot", async () => {
    const can = { 801: false, 802: true, 803: true, 804: true, 805: false };
    for (const [vmid, ok] of Object.entries(can)) {
      const f = (await env.api("GET", `/nodes/pve1/lxc/${vmid}/feature?feature=snapshot`)).json.data;
      expect(f.hasFeature, `CT ${vmid}`).to.equal(ok ? 1 : 0);
      const st = await env.task("POST", `/nodes/pve1/lxc/${vmid}/snapshot`, { snapname: "s1" });
      expect(st.exitstatus, `snapshot of CT ${vmid}`).to.equal(ok ? "OK" : "snapshot feature is not available");
    }
  });

  it("a running CT on a raw image reports the ext4's usable size as maxdisk", async () => {
    const st = await env.task("POST", "/nodes/pve1/lxc/803/status/start");
    expect(st.exitstatus).to.equal("OK");
    const cur = (await env.api("GET", "/nodes/pve1/lxc/803/status/current")).json.data;
    expect(cur.maxdisk).to.equal(1020702720); // recorded from PVE 8.4 for a 1 GiB rootfs
    const zfs = await env.task("POST", "/nodes/pve1/lxc/804/status/start");
    expect(zfs.exitstatus).to.equal("OK");
    expect((await env.api("GET", "/nodes/pve1/lxc/804/status/current")).json.data.maxdisk).to.equal(1024 ** 3);
  });

  it("resize grows a raw image's ext4 (online through the loop device), a subvolume only gets its quota", async () => {
    const raw = await env.api("PUT", "/nodes/pve1/lxc/803/resize", { form: { disk: "rootfs", size: "+1G" } });
    expect((await env.wait(raw.json.data)).exitstatus).to.equal("OK");
    const log = await env.log(raw.json.data);
    expect(log).to.include("old_desc_blocks = 1, new_desc_blocks = 1"); // as the 8.4 recording shows
    expect(log.some((l) => /^The filesystem on \/dev\/loop\d+ is now 524288 \(4k\) blocks long\.$/.test(l)), log.join("\n")).to.equal(true);
    const sub = await env.api("PUT", "/nodes/pve1/lxc/804/resize", { form: { disk: "rootfs", size: "+1G" } });
    expect((await env.wait(sub.json.data)).exitstatus).to.equal("OK");
    expect((await env.log(sub.json.data)).filter((l) => /resize2fs|e2fsck/.test(l))).to.deep.equal([]);
  });
});

describe("sandbox: --storage option", () => {
  it("parses NAME:TYPE[:CONTENT] (repeatable) and refuses bad types, content and duplicates", () => {
    expect(parseSandboxArgs(["--storage", "local:dir", "--storage=tank:btrfs:images,rootdir"]).storages).to.deep.equal([
      { storage: "local", type: "dir" },
      { storage: "tank", type: "btrfs", content: ["images", "rootdir"] },
    ]);
    expect(() => parseSandboxArgs(["--storage", "tank:ext4"])).to.throw(/unknown type 'ext4'/);
    expect(() => parseSandboxArgs(["--storage", "thin:lvmthin:vztmpl"])).to.throw(/content type 'vztmpl' is not supported by type 'lvmthin'/);
    expect(() => parseSandboxArgs(["--storage", "tank"])).to.throw(/NAME:TYPE/);
    expect(() => parseSandboxArgs(["--storage", "aa:dir", "--storage", "aa:nfs"])).to.throw(/given twice/);
  });

  it("without --storage the default set stays", async () => {
    const sb = await startSandbox({ port: 0, authFailureDelayMs: 0, taskDurationMs: 1 });
    try {
      const list = (await request(sb, "GET", "/nodes/pve1/storage", { auth: { token: sb.apiToken } })).json.data;
      expect(list.map((s: any) => `${s.storage}:${s.type}`)).to.deep.equal(["local:dir", "local-lvm:lvmthin", "local-zfs:zfspool", "shared-nfs:nfs"]);
    } finally {
      await sb.stop();
    }
  });
});
