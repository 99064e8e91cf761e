import { expect } from "chai";
import {
  errorFromResponse,
  parsePermissionMessage,
  PveApiError,
  PveAuthenticationError,
  PveConfigChangedError,
  PveLockedError,
  PveNotFoundError,
  PveParameterError,
  PvePermissionError,
  PveTaskFailedError,
} from "../../provider/proxmox/errors";
import { encodeParams } from "../../provider/proxmox/encode";
import { configMatches, LxcConfigSchema } from "../../provider/proxmox/lxc";
import { zNum, zInt, zBool, parseResponse, PveResponseShapeError } from "../../provider/proxmox/coerce";
import { loadSchema } from "../../provider/proxmox/schema";
import { registerSecret } from "../../provider/logging";

const at = { method: "POST", endpoint: "/nodes/{node}/lxc/{vmid}/status/start", path: "/nodes/pve1/lxc/100/status/start" };

describe("PVE error classification and messages (unit)", () => {
  it("parses permission messages, including `any` checks joined with |", () => {
    expect(parsePermissionMessage("Permission check failed (/vms/100, VM.PowerMgmt)\n")).to.deep.equal({ path: "/vms/100", privileges: ["VM.PowerMgmt"] });
    expect(parsePermissionMessage("Permission check failed (/storage/local, Datastore.Audit|Datastore.AllocateSpace)")).to.deep.equal({
      path: "/storage/local",
      privileges: ["Datastore.Audit", "Datastore.AllocateSpace"],
    });
    expect(parsePermissionMessage("Permission check failed (pool 'x' does not exist)").detail).to.equal("pool 'x' does not exist");
  });

  it("403 says which privilege on which path the token needs, and privsep", () => {
    const e = errorFromResponse({ ...at, status: 403, pveMessage: "Permission check failed (/vms/100, VM.PowerMgmt)\n" }, { kind: "token", id: "ci@pve!deploy" });
    expect(e).to.be.instanceOf(PvePermissionError);
    expect(e.message).to.include("the token ci@pve!deploy needs VM.PowerMgmt on /vms/100").and.include("add an ACL with a role containing it").and.include("privilege separation");
    expect((e as PvePermissionError).aclPath).to.equal("/vms/100");
  });

  it("maps messages to classes (BEHAVIOR.md 1.4, 4.3, 4.12, 3.3)", () => {
    const cls = (status: number, pveMessage: string, errors?: Record<string, string>) => errorFromResponse({ ...at, status, pveMessage, errors });
    expect(cls(500, "Configuration file 'nodes/pve1/lxc/100.conf' does not exist\n")).to.be.instanceOf(PveNotFoundError);
    expect(cls(500, "storage 'x' does not exist\n")).to.be.instanceOf(PveNotFoundError);
    expect(cls(400, "Parameter verification failed.\n", { upid: "no such task" })).to.be.instanceOf(PveNotFoundError);
    expect(cls(400, "Parameter verification failed.\n", { vmid: "VM 100 already exists" })).to.be.instanceOf(PveParameterError);
    const locked = cls(500, "CT is locked (snapshot)\n") as PveLockedError;
    expect(locked).to.be.instanceOf(PveLockedError);
    expect(locked.lock).to.equal("snapshot");
    expect(locked.message).to.include("pct unlock");
    expect(cls(500, "can't lock file '/run/lock/lxc/pve-config-100.lock' - got timeout\n")).to.be.instanceOf(PveLockedError);
    expect(cls(500, "detected modified configuration - file changed by other user? Try again.\n")).to.be.instanceOf(PveConfigChangedError);
    expect(cls(401, "")).to.be.instanceOf(PveAuthenticationError);
    const generic = cls(500, "CT 100 already running\n");
    expect(generic.constructor).to.equal(PveApiError);
    expect(generic.message).to.include("CT 100 already running");
  });

  it("never puts a registered secret or a credential shape into a message", () => {
    registerSecret("s3cr3t-ticket-value");
    const e = errorFromResponse({ ...at, status: 500, pveMessage: "boom s3cr3t-ticket-value PVEAPIToken=root@pam!x=abcd-efgh" });
    expect(e.message).not.to.include("s3cr3t-ticket-value").and.not.to.include("abcd-efgh");
    const t = new PveTaskFailedError("UPID:pve1:00000001:00000001:00000001:vzstart:100:root@pam:", "startup for container '100' failed", ["line s3cr3t-ticket-value"], {
      method: "GET",
      endpoint: "/nodes/{node}/tasks/{upid}/status",
      path: "/nodes/pve1/tasks/x/status",
    });
    expect(t.message).to.include("vzstart 100 on pve1").and.include("startup for container '100' failed").and.not.to.include("s3cr3t");
  });
});

describe("parameter encoding (BEHAVIOR.md 1.3)", () => {
  const props = loadSchema("9.1").find("PUT", "/nodes/pve1/lxc/100/config")!.info.parameters!.properties!;
  it("booleans as 0/1, delete lists joined, property strings via the codec", () => {
    expect(
      encodeParams(
        { onboot: true, protection: false, delete: ["mp0", "swap"], memory: 512, net0: { name: "eth0", bridge: "vmbr0", firewall: true, ip: "dhcp" }, skip: undefined },
        props,
      ),
    ).to.deep.equal({ onboot: "1", protection: "0", delete: "mp0,swap", memory: "512", net0: "name=eth0,bridge=vmbr0,firewall=1,ip=dhcp" });
  });
});

describe("configMatches (verifying a PUT whose answer was lost)", () => {
  it("compares values we set, tolerating keys PVE adds to property strings", () => {
    const cfg = { memory: 1024, net0: "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth", onboot: 1, cpulimit: "2" };
    expect(configMatches(cfg, { set: { memory: 1024, onboot: true, cpulimit: 2, net0: { name: "eth0", bridge: "vmbr0", ip: "dhcp" } } })).to.equal(true);
    expect(configMatches(cfg, { set: { memory: 2048 } })).to.equal(false);
    expect(configMatches(cfg, { delete: ["onboot"] })).to.equal(false);
    expect(configMatches(cfg, { delete: ["swap"] })).to.equal(true);
  });
});

describe("response coercion (BEHAVIOR.md 1.3)", () => {
  it("accepts numbers as numeric strings and 0/1 booleans", () => {
    expect(zInt.parse("100")).to.equal(100);
    expect(zNum.parse("2.5")).to.equal(2.5);
    expect(zNum.parse("1.5e+11")).to.equal(1.5e11);
    expect(zBool.parse(0)).to.equal(false);
    expect(zBool.parse("1")).to.equal(true);
    const cfg = LxcConfigSchema.parse({ cpulimit: "2", memory: 512, onboot: 1, unprivileged: "1", digest: "ab", net0: "name=eth0" });
    expect(cfg).to.deep.include({ cpulimit: 2, memory: 512, onboot: true, unprivileged: true, net0: "name=eth0" });
  });
  it("a shape mismatch names the endpoint and field", () => {
    expect(() => parseResponse(LxcConfigSchema, { memory: "lots" }, "GET /nodes/{node}/lxc/{vmid}/config")).to.throw(PveResponseShapeError, /GET \/nodes\/\{node\}\/lxc\/\{vmid\}\/config: memory/);
  });
});
