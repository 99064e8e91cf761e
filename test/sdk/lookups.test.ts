/**
 * The lookup functions (sdk/lookups) in process against the sandbox: what each returns,
 * the filters, the preview rule of the Output form (it resolves while previewing unless
 * `preview: "skip"`), argument errors before anything is sent, connection settings from
 * the Pulumi stack config or PROXMOX_VE_* variables, TLS pinning, and no secret in the log
 * or an error. The config reaches the lookups the way it does in a program: through the
 * Pulumi runtime (setAllConfig stands in for the engine).
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { SandboxHandle } from "../../sandbox";
import type { PveClient } from "../../provider/proxmox";
import { PveAuthenticationError, PveSettingsError, PveTlsError } from "../../provider/proxmox";
import { flushLogs } from "../../provider/logging";
import { InputError } from "../../provider/resources/validation";
import { ensureTemplate, OSTEMPLATE, sandbox, tokenClient, ctConfig } from "../proxmox/support/sandbox";
import * as sdk from "../../sdk";
import { newestFirst } from "../../sdk/lookups/storage";

const CONTENT = "GET /nodes/{node}/storage/{storage}/content";

/** Resolve an Output the way a resource input would, or report that it is unknown. */
function settle<T>(o: pulumi.Output<T>): Promise<{ known: boolean; value?: T }> {
  const internal = o as unknown as { isKnown: Promise<boolean>; promise(withUnknowns?: boolean): Promise<T> };
  return Promise.all([internal.isKnown, internal.promise(true)]).then(([known, value]) => ({ known, value: known ? value : undefined }));
}

describe("lookup functions (in process, against the sandbox)", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  let client: PveClient;
  let logFile: string;
  let ct1: number;
  let ct2: number;
  const requests = async (key: string) => (await sb.admin.counters()).requests[key] ?? 0;
  const useConfig = (extra: Record<string, string> = {}) =>
    pulumi.runtime.setAllConfig(
      {
        "proxmox:endpoint": sb.endpoint,
        "proxmox:apiToken": sb.apiToken,
        "proxmox:tlsFingerprint": sb.tlsFingerprint,
        "proxmox:logLevel": "trace",
        "proxmox:logFile": logFile,
        ...extra,
      },
      ["proxmox:apiToken"],
    );

  before(async () => {
    await pulumi.runtime.setMocks({ newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs }), call: (a) => a.inputs }, "lookups", "test", false);
    sb = await sandbox();
    client = tokenClient(sb);
    logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lookups-")), "lookups.log");
    useConfig();
    await ensureTemplate(client);
    await client.post("/pools", { poolid: "team-a" });
    ct1 = (await client.createContainer({ node: "pve1", config: ctConfig({ hostname: "web-1", tags: "Web;prod", pool: "team-a" }) })).vmid;
    ct2 = (await client.createContainer({ node: "pve2", config: { ...ctConfig({ hostname: "db-1", tags: "db" }), ostemplate: await ensureTemplate(client, "pve2") } })).vmid;
  });
  after(async () => {
    pulumi.runtime.setAllConfig({});
    client?.close();
    await sb?.stop();
  });
  afterEach(async () => {
    expect((await sb.admin.counters()).violations).to.deep.equal([]);
  });

  it("getNodes: every node, sorted, with its certificate fingerprint", async () => {
    const { nodes } = await sdk.getNodes();
    expect(nodes.map((n) => n.node)).to.deep.equal(["pve1", "pve2"]);
    expect(nodes[0]).to.include({ status: "online", sslFingerprint: sb.tlsFingerprint });
    expect(nodes[0].maxCpu).to.be.a("number");
  });

  it("getStorages: a node's storages, or only those for one content type", async () => {
    const all = (await sdk.getStorages({ node: "pve1" })).storages;
    expect(all.map((s) => s.storage)).to.include.members(["local", "local-lvm"]);
    const templates = (await sdk.getStorages({ node: "pve1", content: "vztmpl" })).storages;
    expect(templates.length).to.be.above(0).and.below(all.length);
    for (const s of templates) expect(s.content, s.storage).to.include("vztmpl");
    expect(templates.map((s) => s.storage)).to.not.include("local-lvm");
    expect(all.find((s) => s.storage === "local")).to.include({ type: "dir", active: true });
  });

  it("getVolumes: newest first, with file names, filtered by content and file name", async () => {
    const apl = (await client.storage.aplinfo("pve1")).filter((a) => a.template.startsWith("debian")).map((a) => a.template);
    expect(apl.length, "the sandbox index has debian templates").to.be.above(0);
    await new Promise((r) => setTimeout(r, 1100)); // ctime has a resolution of one second
    await client.storage.aplDownloadAndWait("pve1", "local", apl[0]);
    const { volumes } = await sdk.getVolumes({ node: "pve1", storage: "local", content: "vztmpl" });
    expect(volumes.map((v) => v.volid)).to.deep.equal([`local:vztmpl/${apl[0]}`, OSTEMPLATE]);
    expect(volumes[0]).to.include({ fileName: apl[0], content: "vztmpl" });
    expect(volumes[0].size).to.be.a("number");
    expect(volumes[0].ctime!).to.be.at.least(volumes[1].ctime!);
    const debian = await sdk.getVolumes({ node: "pve1", storage: "local", content: "vztmpl", fileNameRegex: "^debian-" });
    expect(debian.volumes.map((v) => v.fileName)).to.deep.equal([apl[0]]);
    const disks = await sdk.getVolumes({ node: "pve1", storage: "local-lvm" });
    expect(disks.volumes.map((v) => v.vmid)).to.include(ct1);
    expect(disks.volumes.find((v) => v.vmid === ct1)!.fileName).to.equal(`vm-${ct1}-disk-0`);
  });

  it("orders volumes by ctime, then by version in the name (same second)", () => {
    const v = (volid: string, ctime?: number) => ({ volid, ctime });
    const sorted = newestFirst([v("l:vztmpl/debian-9-a", 5), v("l:vztmpl/debian-12-a", 5), v("l:vztmpl/alpine", 7), v("l:vztmpl/old")]);
    expect(sorted.map((x) => x.volid)).to.deep.equal(["l:vztmpl/alpine", "l:vztmpl/debian-12-a", "l:vztmpl/debian-9-a", "l:vztmpl/old"]);
  });

  it("getContainers: cluster-wide, filtered by node, pool and tags (any case)", async () => {
    const all = (await sdk.getContainers()).containers;
    expect(all.map((c) => c.vmid)).to.deep.equal([ct1, ct2].sort((a, b) => a - b));
    expect(all.find((c) => c.vmid === ct1)).to.deep.include({ node: "pve1", name: "web-1", pool: "team-a", isTemplate: false });
    expect((await sdk.getContainers({ node: "pve2" })).containers.map((c) => c.vmid)).to.deep.equal([ct2]);
    expect((await sdk.getContainers({ pool: "team-a" })).containers.map((c) => c.vmid)).to.deep.equal([ct1]);
    expect((await sdk.getContainers({ tags: ["WEB", "prod"] })).containers.map((c) => c.vmid)).to.deep.equal([ct1]);
    expect((await sdk.getContainers({ tags: ["web", "db"] })).containers).to.deep.equal([]);
    const viaInputs = sdk.getContainersOutput({ tags: [pulumi.output("prod")], pool: Promise.resolve("team-a") });
    expect((await settle(viaInputs)).value!.containers.map((c) => c.vmid)).to.deep.equal([ct1]);
  });

  it("getContainer: finds the node and reads config and status; a missing vmid is a ProxmoxLookupError", async () => {
    const c = await sdk.getContainer({ vmid: ct2 });
    expect(c).to.deep.include({ vmid: ct2, node: "pve2", hostname: "db-1", status: "stopped", memory: 256, isTemplate: false, tags: ["db"] });
    expect(c.unprivileged).to.equal(Number(c.config.unprivileged) === 1);
    expect(String(c.config.rootfs)).to.match(new RegExp(`vm-${ct2}-disk-0`));
    expect(c.config).to.not.have.property("digest");
    const free = (await sdk.getNextVmid()).vmid;
    const err = await sdk.getContainer({ vmid: free }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(sdk.ProxmoxLookupError);
    expect((err as Error).message).to.match(new RegExp(`getContainer: no guest with vmid ${free}`));
  });

  it("getNextVmid and getAppliances", async () => {
    expect((await sdk.getNextVmid()).vmid).to.equal(await client.cluster.nextId());
    const system = (await sdk.getAppliances({ node: "pve1", section: "system" })).appliances;
    expect(system.length).to.be.above(0);
    expect(system.map((a) => a.template)).to.include("alpine-3.20-default_20240908_amd64.tar.gz");
    expect(system[0].sha512sum).to.match(/^[0-9a-f]{128}$/);
    expect((await sdk.getAppliances({ node: "pve1", section: "no-such-section" })).appliances).to.deep.equal([]);
  });

  it("refuses bad arguments naming the field, before any request", async () => {
    await sb.admin.resetCounters();
    const bad: Array<[() => Promise<unknown>, RegExp]> = [
      [() => sdk.getVolumes({ node: "pve1" } as never), /Invalid getVolumes inputs:\n\s+- storage: is required/],
      [() => sdk.getVolumes({ node: "pve1", storage: "local", fileNameRegex: "(" }), /fileNameRegex: is not a valid regular expression/],
      [() => sdk.getStorages({ node: "pve1", content: "templates" as never }), /content: must be one of 'vztmpl'/],
      [() => sdk.getContainer({ vmid: 7 }), /vmid: must be a VMID/],
      [() => sdk.getContainers({ tag: ["x"] } as never), /unknown field\(s\) 'tag'/],
    ];
    for (const [call, message] of bad) {
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(err, String(message)).to.be.instanceOf(InputError);
      expect((err as Error).message).to.match(message);
    }
    expect((await sb.admin.counters()).requests).to.deep.equal({});
  });

  describe("the Output form", () => {
    afterEach(() => pulumi.runtime.setMocks({ newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs }), call: (a) => a.inputs }, "lookups", "test", false));
    const preview = () => pulumi.runtime.setMocks({ newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs }), call: (a) => a.inputs }, "lookups", "test", true);

    it("takes Inputs and resolves during an update", async () => {
      const storage = pulumi.output(Promise.resolve("local"));
      const out = sdk.getVolumesOutput({ node: "pve1", storage, content: "vztmpl" });
      const r = await settle(out.volumes);
      expect(r.known).to.equal(true);
      expect(r.value!.map((v) => v.volid)).to.include(OSTEMPLATE);
    });

    it('preview: "skip" sends no request during a preview: the value is unknown and applies do not run', async () => {
      await preview();
      await sb.admin.resetCounters();
      let ran = false;
      const newest = sdk.getVolumesOutput({ node: "pve1", storage: "local", content: "vztmpl" }, { preview: "skip" }).apply((v) => {
        ran = true;
        return v.volumes[0].volid;
      });
      const containers = sdk.getContainersOutput({ node: "pve1" }, { preview: "skip" });
      const r = await settle(newest);
      expect(r.known).to.equal(false);
      expect((await settle(containers)).known).to.equal(false);
      expect(ran).to.equal(false);
      expect((await sb.admin.counters()).requests).to.deep.equal({});
    });

    it("resolves during a preview by default (so consumers preview exactly), with one request", async () => {
      await preview();
      await sb.admin.resetCounters();
      const r = await settle(sdk.getVolumesOutput({ node: "pve1", storage: "local", content: "vztmpl" }));
      expect(r.known).to.equal(true);
      expect(r.value!.volumes.map((v) => v.volid)).to.include(OSTEMPLATE);
      expect(await requests(CONTENT)).to.equal(1);
    });

    it("the Promise form is called by the program, so it requests during a preview too", async () => {
      await preview();
      await sb.admin.resetCounters();
      expect((await sdk.getNodes()).nodes).to.have.length(2);
      expect(await requests("GET /nodes")).to.equal(1);
    });

    it("dependsOn: waits for the resources; unknown while one is being created in a preview", async () => {
      const tmpl = new sdk.Noop("dep", { value: "x" } as never);
      const r = await settle(sdk.getNodesOutput({ dependsOn: [tmpl] }));
      expect(r.value!.nodes).to.have.length(2);
      const unknownDep = { id: pulumi.output(pulumi.unknown), urn: pulumi.output("urn"), __pulumiResource: true, __pulumiCustomResource: true };
      await preview();
      await sb.admin.resetCounters();
      expect((await settle(sdk.getNodesOutput({ preview: "query", dependsOn: unknownDep as never }))).known).to.equal(false);
      expect((await sb.admin.counters()).requests).to.deep.equal({});
    });

    it("an argument error fails the Output as well", async () => {
      const out = sdk.getStoragesOutput({ node: "" });
      const err = await settle(out).then(() => undefined, (e: unknown) => e);
      expect((err as Error)?.message).to.match(/Invalid getStorages inputs:\n\s+- node: must be a node name/);
      expect(() => sdk.getNodesOutput({ preview: "always" as never })).to.throw(/getNodesOutput: opts.preview must be "skip" or "query"/);
    });
  });

  describe("connection settings", () => {
    const saved = { ...process.env };
    afterEach(() => {
      for (const k of Object.keys(process.env)) if (k.startsWith("PROXMOX_VE_")) delete process.env[k];
      Object.assign(process.env, saved);
      useConfig();
    });

    it("falls back to PROXMOX_VE_* variables when the stack sets no proxmox:* config", async () => {
      pulumi.runtime.setAllConfig({});
      Object.assign(process.env, { PROXMOX_VE_ENDPOINT: sb.endpoint, PROXMOX_VE_API_TOKEN: sb.apiToken, PROXMOX_VE_TLS_FINGERPRINT: sb.tlsFingerprint });
      expect((await sdk.getNodes()).nodes).to.have.length(2);
    });

    it("without an endpoint: the settings error names the config key and the variable", async () => {
      pulumi.runtime.setAllConfig({});
      const err = await sdk.getNodes().then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(PveSettingsError);
      expect((err as Error).message).to.match(/proxmox:endpoint \(env PROXMOX_VE_ENDPOINT\)/);
    });

    it("pins the certificate: a wrong fingerprint is a PveTlsError and no request reaches the API", async () => {
      await sb.admin.resetCounters();
      useConfig({ "proxmox:tlsFingerprint": "AA".repeat(32) });
      const err = await sdk.getNodes().then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(PveTlsError);
      expect((await sb.admin.counters()).requests).to.deep.equal({});
    });

    it("never puts the token secret in an error or the log", async () => {
      const wrong = sb.apiToken.replace(/=.*$/, "=00000000-1111-2222-3333-444444444444");
      useConfig({ "proxmox:apiToken": wrong });
      const err = await sdk.getNodes().then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(PveAuthenticationError);
      useConfig();
      await sdk.getVolumes({ node: "pve1", storage: "local" });
      flushLogs();
      const log = fs.readFileSync(logFile, "utf8");
      expect(log).to.match(/"lookup":"getVolumes"/);
      expect(log).to.match(/"component":"lookups"/);
      for (const secret of [sb.apiToken.split("=")[1], "00000000-1111-2222-3333-444444444444"]) {
        expect(log, "log").to.not.include(secret);
        expect(String((err as Error).message) + JSON.stringify(err), "error").to.not.include(secret);
      }
    });
  });
});
