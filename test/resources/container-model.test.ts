import { expect } from "chai";
import { containerArgsSchema, rootOnlyReasons } from "../../provider/resources/container/args";
import { parseInputs, InputError } from "../../provider/resources/validation";
import { toPveKeys, fromPveConfig, rootfsString, mountPointString } from "../../provider/resources/container/pveConfig";
import { planChanges, ShrinkError } from "../../provider/resources/container/plan";
import { refreshedArgs } from "../../provider/resources/container/project";
import { loadSchema } from "../../provider/proxmox/schema";
import { validateParams } from "../../provider/proxmox/validate";

const parse = (v: unknown) => parseInputs("Container", containerArgsSchema, v);
const base = { node: "pve1", template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", rootfs: { storage: "local-lvm", size: "8G" } };

describe("Container inputs (check)", () => {
  it("names the field and the fix", () => {
    const err = (() => {
      try {
        parse({ ...base, hostname: "bad_name!", memory: { dedicated: 8 }, networks: [{ name: "eth0", ip: "dhcp", gw: "10.0.0.1" }] });
      } catch (e) {
        return e as InputError;
      }
    })()!;
    expect(err).to.be.instanceOf(InputError);
    const text = err.message;
    expect(text).to.include("hostname: must be a DNS name");
    expect(text).to.include("memory.dedicated: must be at least 16");
    expect(text).to.include("networks[0].gw: needs a static IPv4 address");
  });

  it("refuses duplicate slots and shrinking-unfriendly sizes", () => {
    expect(() => parse({ ...base, mountPoints: [{ slot: 0, storage: "local-lvm", size: "1G", path: "/a" }, { slot: 0, storage: "local-lvm", size: "1G", path: "/b" }] })).to.throw(/mountPoints\[1\]\.slot: slot 0 is used twice/);
    expect(() => parse({ ...base, rootfs: { storage: "local-lvm", size: "100K" } })).to.throw(/rootfs\.size: '100K' is not a whole number of MiB/);
  });

  it("normalises tags like PVE (no perpetual diff on case)", () => {
    expect(parse({ ...base, tags: ["Web", "prod", "web"] }).tags).to.deep.equal(["prod", "web"]);
  });

  it("lists what only root@pam may do", () => {
    const a = parse({ ...base, features: { nesting: true, fuse: true }, mountPoints: [{ slot: 0, hostPath: "/srv", path: "/srv" }] });
    expect(rootOnlyReasons(a).join("\n")).to.match(/hostPath: bind and device mounts can only be set by root@pam[\s\S]*features: everything except nesting/);
  });
});

describe("Container ↔ PVE config mapping", () => {
  const rich = parse({
    ...base,
    hostname: "web-1",
    description: "hello",
    tags: ["b", "a"],
    cpu: { cores: 2, limit: 1.5 },
    memory: { dedicated: 1024, swap: 256 },
    features: { nesting: true },
    networks: [{ name: "eth0", bridge: "vmbr0", ip: "192.168.1.50/24", gw: "192.168.1.1", firewall: true }],
    dns: { servers: ["1.1.1.1", "9.9.9.9"], searchDomains: ["example.com"] },
    startup: { order: 2, up: 10 },
    startOnBoot: true,
    env: { A: "1", B: "two" },
    mountPoints: [{ slot: 0, storage: "local-lvm", size: "4G", path: "/data", backup: true }],
  });

  it("produces schema-valid PVE parameters", () => {
    const params: Record<string, string | number | undefined> = { node: "pve1", vmid: 100, ostemplate: rich.template, ...toPveKeys(rich), rootfs: rootfsString(rich.rootfs!), mp0: mountPointString(rich.mountPoints![0]) };
    const props = loadSchema("9.1").method("/nodes/{node}/lxc", "POST")!.parameters!.properties;
    expect(validateParams(props, params)).to.equal(undefined);
    expect(params.net0).to.equal("name=eth0,bridge=vmbr0,firewall=1,gw=192.168.1.1,ip=192.168.1.50/24,type=veth");
    expect(params.rootfs).to.equal("local-lvm:8");
    expect(params.mp0).to.equal("local-lvm:4,mp=/data,backup=1");
    expect(params.tags).to.equal("a;b");
    expect(params.env).to.equal("A=1\u0000B=two");
  });

  it("reads PVE's config back so a refresh right after create shows no drift", () => {
    const pve = {
      ...toPveKeys(rich),
      description: "hello\n",
      net0: "name=eth0,bridge=vmbr0,firewall=1,gw=192.168.1.1,hwaddr=BC:24:11:3A:5F:09,ip=192.168.1.50/24,type=veth",
      rootfs: "local-lvm:vm-100-disk-0,size=8G",
      mp0: "local-lvm:vm-100-disk-1,mp=/data,backup=1,size=4G",
      unprivileged: 1,
      arch: "amd64",
      ostype: "debian",
      digest: "abc",
    };
    const observed = fromPveConfig(pve);
    expect(observed.hwaddrs.net0).to.equal("BC:24:11:3A:5F:09");
    expect(observed.volids).to.deep.equal({ rootfs: "local-lvm:vm-100-disk-0", mp0: "local-lvm:vm-100-disk-1" });
    const refreshed = refreshedArgs(rich, observed.args, { node: "pve1", running: true });
    const plan = planChanges(rich, refreshed, observed);
    expect(plan.changed).to.deep.equal([]);
    // ...while a value changed out of band is drift.
    const drifted = refreshedArgs(rich, fromPveConfig({ ...pve, cores: "4" }).args, { node: "pve1", running: false });
    expect(planChanges(rich, drifted, observed).changed).to.deep.equal(["cpu", "started"]);
  });
});

describe("Container change planner (diff)", () => {
  const cur = { volids: { rootfs: "local-lvm:vm-100-disk-0", mp0: "local-lvm:vm-100-disk-1" }, hwaddrs: { net0: "BC:24:11:00:00:01" } };
  const a = parse({ ...base, networks: [{ name: "eth0", bridge: "vmbr0", ip: "dhcp" }], mountPoints: [{ slot: 0, storage: "local-lvm", size: "4G", path: "/data" }] });

  it("migrates on a node change instead of replacing (bpg #658)", () => {
    const p = planChanges(a, { ...a, node: "pve2" }, cur);
    expect(p.replaces).to.deep.equal([]);
    expect(p.migrateTo).to.equal("pve2");
  });

  it("grows disks in place and refuses to shrink with an explanation (bpg #2995)", () => {
    const grown = planChanges(a, { ...a, mountPoints: [{ ...a.mountPoints![0], size: "8G" }] }, cur);
    expect(grown.replaces).to.deep.equal([]);
    expect(grown.diskResizes).to.deep.equal([{ disk: "mp0", size: "8G" }]);
    expect(() => planChanges(a, { ...a, rootfs: { storage: "local-lvm", size: "4G" } }, cur)).to.throw(ShrinkError, /cannot shrink from 8G to 4G/);
  });

  it("moves a disk to another storage", () => {
    const p = planChanges(a, { ...a, rootfs: { storage: "local-zfs", size: "8G" } }, cur);
    expect(p.diskMoves).to.deep.equal([{ disk: "rootfs", storage: "local-zfs" }]);
  });

  it("replaces only for vmid, unprivileged and template", () => {
    expect(planChanges(a, { ...a, unprivileged: false }, cur).replaces).to.deep.equal(["unprivileged"]);
    expect(planChanges(a, { ...a, template: "local:vztmpl/other.tar.gz" }, cur).replaces).to.deep.equal(["template"]);
    expect(planChanges(a, { ...a, vmid: 105 }, cur).replaces).to.deep.equal(["vmid"]);
  });

  it("keeps the MAC address when a network changes", () => {
    const p = planChanges(a, { ...a, networks: [{ name: "eth0", bridge: "vmbr1", ip: "dhcp" }] }, cur);
    expect(p.set.net0).to.equal("name=eth0,bridge=vmbr1,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth");
  });

  it("adds and removes mount points by slot and resets required keys instead of deleting", () => {
    const withMem = { ...a, memory: { dedicated: 1024 } };
    const p = planChanges(withMem, { ...a, mountPoints: [{ slot: 1, storage: "local-lvm", size: "2G", path: "/logs" }] }, cur);
    expect(p.set.mp1).to.equal("local-lvm:2,mp=/logs");
    expect(p.delete).to.deep.equal(["mp0"]);
    expect(p.set.memory).to.equal("512");
  });
});
