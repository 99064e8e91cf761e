import { expect } from "chai";
import { parsePropertyString, printPropertyString, PropertyStringError } from "../../provider/proxmox/propertyString";
import { lxcKeyFormat, loadSchema } from "../../provider/proxmox/schema";
import { validateParams } from "../../provider/proxmox/validate";
import { formatSize, parseSize } from "../../provider/proxmox/formats";
import { formatUpid, parseUpid } from "../../provider/proxmox/upid";

describe("PVE property-string codec", () => {
  const net = lxcKeyFormat("net0")!;
  const rootfs = lxcKeyFormat("rootfs")!;
  const mp = lxcKeyFormat("mp0")!;

  it("prints canonically: default key, required keys, then alphabetical (BEHAVIOR.md 4.1)", () => {
    expect(printPropertyString({ volume: "local-lvm:vm-100-disk-0", size: 8 * 1024 ** 3 }, rootfs)).to.equal("local-lvm:vm-100-disk-0,size=8G");
    expect(printPropertyString({ size: "32G", backup: true, mp: "/data", volume: "local-lvm:vm-100-disk-1" }, mp)).to.equal(
      "local-lvm:vm-100-disk-1,mp=/data,backup=1,size=32G",
    );
    const line = "name=eth0,bridge=vmbr0,firewall=1,gw=192.168.1.1,hwaddr=BC:24:11:3A:5F:09,ip=192.168.1.50/24,type=veth";
    expect(printPropertyString(parsePropertyString(line, net), net)).to.equal(line);
  });

  it("parses default keys and normalises booleans", () => {
    expect(parsePropertyString("local:8,mp=/x,ro=yes", mp)).to.deep.equal({ volume: "local:8", mp: "/x", ro: "1" });
    expect(parsePropertyString("order=2,up=30", "pve-startup-order")).to.deep.equal({ order: "2", up: "30" });
    expect(parsePropertyString("3", "pve-startup-order")).to.deep.equal({ order: "3" });
  });

  it("rejects unknown keys and duplicate values as PVE does", () => {
    expect(() => parsePropertyString("name=eth0,bogus=1", net)).to.throw(PropertyStringError, "invalid key in comma-separated list property: bogus");
    expect(() => parsePropertyString("a,b", rootfs)).to.throw(PropertyStringError, "duplicate key");
  });

  it("formats sizes in the largest exact unit", () => {
    expect(formatSize(8 * 1024 ** 3)).to.equal("8G");
    expect(formatSize(512 * 1024 ** 2)).to.equal("512M");
    expect(formatSize(1536 * 1024 ** 2)).to.equal("1536M");
    expect(formatSize(1000)).to.equal("1000");
    expect(parseSize("0.5G")).to.equal(512 * 1024 ** 2);
  });
});

describe("PVE parameter validation", () => {
  const create = loadSchema("9.1").find("POST", "/nodes/pve1/lxc")!;
  it("matches concrete paths to templates", () => {
    expect(create.template).to.equal("/nodes/{node}/lxc");
    const c = loadSchema("9.1").find("DELETE", "/nodes/pve1/storage/local/content/local:vztmpl/a.tar.gz")!;
    expect(c.pathParams.volume).to.equal("local:vztmpl/a.tar.gz");
  });
  it("reports PVE's texts", () => {
    const errors = validateParams(create.info.parameters!.properties, {
      node: "pve1",
      vmid: "99",
      ostemplate: "local:vztmpl/x.tar.gz",
      net0: "bridge=vmbr0",
      onboot: "true",
      bogus: "1",
      memory: "8",
    })!;
    expect(errors.vmid).to.equal("invalid format - value does not look like a valid VM ID\n");
    expect(errors.net0).to.equal("invalid format - format error\nnet0.name: property is missing and it is not optional\n");
    expect(errors.onboot).to.equal("type check ('boolean') failed - got 'true'");
    expect(errors.bogus).to.equal("property is not defined in schema and the schema does not allow additional properties");
    expect(errors.memory).to.equal("value must have a minimum value of 16");
  });
  it("a key that requires another is refused without it, on the missing key, as PVE's check_object does", () => {
    const upload = loadSchema("9.1").find("POST", "/nodes/pve1/storage/local/upload")!;
    const base = { node: "pve1", storage: "local", content: "vztmpl", filename: "a.tar.zst" };
    expect(validateParams(upload.info.parameters!.properties, { ...base, checksum: "ab" })).to.deep.equal({
      "checksum-algorithm": "missing property - 'checksum' requires this property",
    });
    expect(validateParams(upload.info.parameters!.properties, { ...base, checksum: "ab", "checksum-algorithm": "sha256" })).to.equal(undefined);
    // `unique` only with `restore` (create).
    expect(validateParams(create.info.parameters!.properties, { node: "pve1", vmid: 100, ostemplate: "local:vztmpl/x.tar.gz", unique: 1 })).to.deep.equal({
      restore: "missing property - 'unique' requires this property",
    });
  });
  it("accepts a valid create", () => {
    expect(
      validateParams(create.info.parameters!.properties, {
        node: "pve1",
        vmid: 100,
        ostemplate: "local:vztmpl/x.tar.gz",
        rootfs: "local-lvm:8",
        net0: "name=eth0,bridge=vmbr0,ip=dhcp",
        mp0: "local-lvm:4,mp=/data,backup=1",
        features: "nesting=1",
        startup: "order=1,up=5",
        tags: "a;b",
        env: "A=1\u0000B=2",
      }),
    ).to.equal(undefined);
  });
});

describe("UPID", () => {
  it("round-trips", () => {
    const s = "UPID:pve1:0001A2B3:0034C5D6:67F0A1B2:vzcreate:100:root@pam:";
    expect(formatUpid(parseUpid(s))).to.equal(s);
  });
});
