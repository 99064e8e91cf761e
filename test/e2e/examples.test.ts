/**
 * The examples in examples/ through the real Pulumi CLI: for each one, `up`; a preview that
 * shows no changes; a config change whose preview names the expected step; `up`; a refresh
 * without drift; `destroy`, after which no container or volume of the example is left
 * (checked through the Proxmox API).
 *
 * Target: ONE in-process sandbox shared by all examples (nodes pve1, pve2), unless a real
 * Proxmox VE is configured through the environment (see docs/testing.md):
 *   PROXMOX_VE_ENDPOINT + PROXMOX_VE_API_TOKEN (or PROXMOX_VE_USERNAME/PASSWORD)
 *   + PROXMOX_VE_TLS_FINGERPRINT / PROXMOX_VE_CA_CERT / PROXMOX_VE_INSECURE,
 *   PVE_TEST_NODE, PVE_TEST_STORAGE (CT volumes; must support snapshots),
 *   optional PVE_TEST_NODE2 (migration), PVE_TEST_ROOTFS_FILE (quickstart: a real CT template
 *   file on this machine, which the example uploads), PVE_TEST_OCI_IMAGE (oci-app: an image
 *   reference with a runnable app, e.g. docker.io/library/nginx:1.27-alpine), PVE_TEST_TEMPLATE_STORAGE (default
 *   local), PVE_TEST_BRIDGE (default vmbr0).
 * Against a real host the provider reads the PROXMOX_VE_* variables itself (no proxmox:*
 * stack config is set), and the sandbox-only assertions (global emptiness, schema violation
 * counter) are skipped.
 */
import { expect } from "chai";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { PveClient } from "../../provider/proxmox/client";
import { REPO_ROOT, pulumiPath } from "../support/cli";
import { describeChanges, hasNoChanges, opFor, PulumiStack, type ConfigEntry, type OperationResult } from "../support/pulumi";

/** A refresh reports every resource as a "refresh" step; drift shows as non-"same" summary keys. */
const noDrift = (r: OperationResult) => Object.keys(r.changeSummary ?? {}).every((k) => k === "same");

interface Target {
  kind: "sandbox" | "remote";
  client: PveClient;
  node: string;
  node2?: string;
  diskStorage: string;
  templateStorage: string;
  bridge: string;
  /** Remote only: a real template file for the quickstart (its generated rootfs cannot boot). */
  rootfsFile?: string;
  /** Remote only: a registry image for oci-app (its generated image has no shell, it cannot run). */
  ociImage?: string;
  /** proxmox:* stack config (sandbox) — empty for a remote host, whose settings come from the env. */
  providerConfig: Record<string, ConfigEntry | string>;
  sandbox?: SandboxHandle;
}

/**
 * `file` under a name no template on a node has: `pulumi-e2e-<time+random>-<name>`, as a
 * symlink in `dir` (the upload streams through it; the extension PVE checks is kept).
 */
function uniqueUploadName(file: string, dir: string): string {
  const link = path.join(dir, `pulumi-e2e-${Date.now().toString(36)}${crypto.randomBytes(3).toString("hex")}-${path.basename(file)}`);
  fs.symlinkSync(path.resolve(file), link);
  return link;
}

function remoteTarget(): Target | undefined {
  const env = process.env;
  const creds = env.PROXMOX_VE_API_TOKEN || (env.PROXMOX_VE_USERNAME && env.PROXMOX_VE_PASSWORD);
  if (!env.PROXMOX_VE_ENDPOINT || !creds || !env.PVE_TEST_NODE || !env.PVE_TEST_STORAGE) return undefined;
  return {
    kind: "remote",
    client: PveClient.connect({}), // PROXMOX_VE_* from the environment, like the provider
    node: env.PVE_TEST_NODE,
    node2: env.PVE_TEST_NODE2 || undefined,
    diskStorage: env.PVE_TEST_STORAGE,
    templateStorage: env.PVE_TEST_TEMPLATE_STORAGE || "local",
    bridge: env.PVE_TEST_BRIDGE || "vmbr0",
    rootfsFile: env.PVE_TEST_ROOTFS_FILE || undefined,
    ociImage: env.PVE_TEST_OCI_IMAGE || undefined,
    providerConfig: {},
  };
}

describe("e2e: examples/ under the real Pulumi CLI", function () {
  this.timeout(10 * 60 * 1000);
  let target: Target;

  before(async function () {
    this.timeout(45 * 60 * 1000); // the first run on a machine builds the CLI
    await pulumiPath();
    const remote = remoteTarget();
    if (remote) {
      target = remote;
      console.log(`      examples: running against ${process.env.PROXMOX_VE_ENDPOINT} (node ${remote.node}, storage ${remote.diskStorage}); sandbox-only assertions are skipped`);
      return;
    }
    const sb = await startSandbox({ port: 0, nodes: ["pve1", "pve2"], taskDurationMs: 20, authFailureDelayMs: 0 });
    target = {
      kind: "sandbox",
      sandbox: sb,
      client: PveClient.connect({ endpoint: sb.endpoint, apiToken: sb.apiToken, tlsFingerprint: sb.tlsFingerprint }),
      node: "pve1",
      node2: "pve2",
      diskStorage: "local-lvm",
      templateStorage: "local",
      bridge: "vmbr0",
      providerConfig: {
        "proxmox:endpoint": sb.endpoint,
        "proxmox:apiToken": { value: sb.apiToken, secret: true },
        "proxmox:tlsFingerprint": sb.tlsFingerprint,
      },
    };
    console.log("      examples: running against an in-process sandbox (set PROXMOX_VE_ENDPOINT, credentials, PVE_TEST_NODE and PVE_TEST_STORAGE to use a real Proxmox VE)");
  });

  after(async () => {
    if (target?.sandbox) {
      expect((await target.sandbox.admin.counters()).violationCount, "requests violating the PVE schema").to.equal(0);
      await target.sandbox.stop();
    }
  });

  const destroyed = new WeakSet<PulumiStack>();
  /**
   * Remove the stack; if the test failed before its destroy, destroy first, so what it left
   * behind does not make the next example's "nothing left" checks fail on the shared sandbox.
   */
  async function dispose(stack: PulumiStack): Promise<void> {
    if (!destroyed.has(stack)) await stack.run(["destroy", "--yes", "--skip-preview", "--non-interactive"], { allowFailure: true });
    await stack.remove();
  }

  /** The example's stack: its folder copied into a temp project, the package linked as installed. */
  async function exampleStack(name: string, config: Record<string, ConfigEntry | string>): Promise<PulumiStack> {
    return PulumiStack.create({
      programDir: path.join(REPO_ROOT, "examples", name),
      config: { ...target.providerConfig, ...config },
    });
  }

  /** Every volume on the example's storages that belongs to one of `vmids`. */
  async function volumesOf(vmids: number[]): Promise<string[]> {
    const out: string[] = [];
    const nodes = [target.node, ...(target.node2 ? [target.node2] : [])];
    for (const node of nodes) {
      for (const item of await target.client.storage.content(node, target.diskStorage)) {
        if (item.vmid !== undefined && vmids.includes(item.vmid)) out.push(item.volid);
      }
    }
    return out;
  }

  /** After destroy: none of `vmids` exists, none of their volumes; on the sandbox, nothing at all. */
  async function expectNothingLeft(vmids: number[], templateVolids: string[] = []): Promise<void> {
    const cts = await target.client.cluster.containers();
    expect(cts.filter((c) => vmids.includes(c.vmid as number)).map((c) => c.vmid), "containers left").to.deep.equal([]);
    expect(await volumesOf(vmids), "volumes left").to.deep.equal([]);
    for (const volid of templateVolids) {
      expect(await target.client.storage.findVolume(target.node, volid), `template ${volid} left`).to.equal(undefined);
    }
    if (target.kind === "sandbox") {
      expect(cts, "sandbox: no container at all").to.deep.equal([]);
      for (const node of ["pve1", "pve2"]) {
        for (const s of ["local-lvm", "local-zfs"]) {
          expect(await target.client.storage.content(node, s), `sandbox: ${node}/${s} is empty`).to.deep.equal([]);
        }
      }
    }
  }

  /** up → no-op preview. */
  async function upAndSettle(stack: PulumiStack, expectCreated: string[]): Promise<Record<string, unknown>> {
    const up = await stack.up();
    for (const r of expectCreated) expect(opFor(up, r), `${r}: ${describeChanges(up)}`).to.equal("create");
    const preview = await stack.preview();
    expect(hasNoChanges(preview), `preview right after up: ${describeChanges(preview)}`).to.equal(true);
    return stack.outputs();
  }

  /** Config change → preview shows `expected` ({resource: op}) and nothing else → up applies exactly that → refresh has no drift. */
  async function changeAndConverge(stack: PulumiStack, config: Record<string, string>, expected: Record<string, string>): Promise<Record<string, unknown>> {
    await stack.setAllConfig(config);
    const preview = await stack.preview();
    const changed = (preview.steps ?? []).filter((s) => s.op !== "same" && !s.urn.includes("::pulumi:pulumi:Stack::"));
    for (const [r, op] of Object.entries(expected)) expect(opFor(preview, r), `preview of ${r}: ${describeChanges(preview)}`).to.equal(op);
    expect([...new Set(changed.map((s) => s.urn.slice(s.urn.lastIndexOf("::") + 2)))].sort(), describeChanges(preview)).to.deep.equal(Object.keys(expected).sort());
    const up = await stack.up();
    for (const [r, op] of Object.entries(expected)) expect(opFor(up, r), `up of ${r}: ${describeChanges(up)}`).to.equal(op);
    const refresh = await stack.refresh();
    expect(noDrift(refresh), `refresh: ${describeChanges(refresh)}`).to.equal(true);
    return stack.outputs();
  }

  describe("quickstart (Template from a local file, two containers, a Snapshot)", function () {
    let stack: PulumiStack;
    after(async () => stack && (await dispose(stack)));

    it("deploys, changes web's memory in place, refreshes clean and destroys everything", async function () {
      if (target.kind === "remote" && !target.rootfsFile) {
        console.log("      quickstart: skipped — its generated rootfs cannot boot on a real host; set PVE_TEST_ROOTFS_FILE to a CT template file (e.g. debian-12-standard_12.7-1_amd64.tar.zst)");
        this.skip();
      }
      const started = Date.now();
      stack = await PulumiStack.create({
        programDir: path.join(REPO_ROOT, "examples", "quickstart"),
        config: {
          ...target.providerConfig,
          "quickstart:node": target.node,
          "quickstart:templateStorage": target.templateStorage,
          "quickstart:diskStorage": target.diskStorage,
          "quickstart:bridge": target.bridge,
        },
      });
      // The example builds its rootfs archive here (inside the stack's temp folder). A real
      // node's file is uploaded under a name of this run, linked into the stack's folder: the
      // Template is destroyed at the end, and a template of that name already on the node
      // (debian-12-standard_… usually is) must be neither overwritten nor deleted.
      const rootfsFile = target.rootfsFile ? uniqueUploadName(target.rootfsFile, stack.dir) : path.join(stack.dir, "rootfs", "debian-12-mini_12.0_amd64.tar.gz");
      await stack.setConfig("quickstart:rootfsFile", rootfsFile);

      const outs = await upAndSettle(stack, ["debian-mini", "web", "db", "db-baseline"]);
      const webVmid = outs.webVmid as number;
      const dbVmid = outs.dbVmid as number;
      expect(outs.templateVolid).to.equal(`${target.templateStorage}:vztmpl/${path.basename(rootfsFile)}`);
      expect(outs.snapshot).to.equal(`${dbVmid}@baseline`);
      expect(outs.webIp).to.deep.equal({ eth0: ["10.20.0.10/24"] });
      expect(Object.keys(outs.dbVolumes as object).sort()).to.deep.equal(["mp0", "rootfs"]);
      const snaps = await target.client.lxc.listSnapshots(target.node, dbVmid);
      expect(snaps.map((s) => s.name)).to.include("baseline");
      if (target.kind === "sandbox") {
        const web = await target.client.lxc.getConfig(target.node, webVmid, { current: true });
        expect(web.ostype, "ostype detected from the uploaded rootfs's /etc/os-release").to.equal("debian");
      }

      const after = await changeAndConverge(stack, { "quickstart:webMemory": "768" }, { web: "update" });
      expect(after.webVmid, "web keeps its vmid").to.equal(webVmid);
      expect(Number((await target.client.lxc.getConfig(target.node, webVmid, { current: true })).memory)).to.equal(768);

      await stack.destroy();
      destroyed.add(stack);
      await expectNothingLeft([webVmid, dbVmid], [outs.templateVolid as string]);
      console.log(`      quickstart: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    });
  });

  describe("oci-app (OciImage from an OCI layout -> application container)", function () {
    let stack: PulumiStack;
    after(async () => stack && (await dispose(stack)));

    it("converts and uploads the image, runs it with its entrypoint and env, changes env in place, destroys", async function () {
      if (target.kind === "remote" && !target.ociImage) {
        console.log("      oci-app: skipped — its generated image has no shell and cannot run on a real host; set PVE_TEST_OCI_IMAGE to a runnable image reference");
        this.skip();
      }
      const started = Date.now();
      stack = await exampleStack("oci-app", {
        "oci-app:node": target.node,
        "oci-app:storage": target.templateStorage,
        "oci-app:diskStorage": target.diskStorage,
        "oci-app:bridge": target.bridge,
      });
      if (target.ociImage) await stack.setConfig("oci-app:image", target.ociImage);
      else await stack.setConfig("oci-app:layoutDir", path.join(stack.dir, "layout"));

      const outs = await upAndSettle(stack, ["app-image", "app"]);
      const vmid = outs.vmid as number;
      expect(outs.manifestDigest).to.match(/^sha256:[0-9a-f]{64}$/);
      expect((outs.env as Record<string, string>).APP_GREETING).to.equal("hello");
      if (!target.ociImage) {
        expect(outs.templateVolid, "an OCI archive on PVE 9.1").to.match(new RegExp(`^${target.templateStorage}:vztmpl/[^/]+\\.tar$`));
        expect(outs.entrypoint, "the image's Entrypoint").to.equal("/app/server");
        expect(outs.env).to.deep.equal({ PATH: "/usr/local/bin:/usr/bin:/bin", APP_GREETING: "hello" });
      }

      const after = await changeAndConverge(stack, { "oci-app:greeting": "bonjour" }, { app: "update" });
      expect(after.vmid, "vmid kept").to.equal(vmid);
      expect((after.env as Record<string, string>).APP_GREETING).to.equal("bonjour");
      const cfg = await target.client.lxc.getConfig(target.node, vmid, { current: true });
      expect(JSON.stringify(cfg), "env applied on the CT").to.include("APP_GREETING=bonjour");

      await stack.destroy();
      destroyed.add(stack);
      await expectNothingLeft([vmid], [outs.templateVolid as string]);
      console.log(`      oci-app: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    });
  });

  describe("migration (a config value moves the container to another node)", function () {
    let stack: PulumiStack;
    after(async () => stack && (await dispose(stack)));

    it("deploys on one node, previews the node change as an update, migrates keeping vmid and volumes, destroys", async function () {
      if (!target.node2) {
        console.log("      migration: skipped — set PVE_TEST_NODE2 to a second node of the cluster to run it against a real Proxmox VE");
        this.skip();
      }
      const started = Date.now();
      stack = await exampleStack("migration", {
        "migration:node": target.node,
        "migration:templateNode": target.node,
        "migration:templateStorage": target.templateStorage,
        "migration:diskStorage": target.diskStorage,
        "migration:bridge": target.bridge,
      });
      const outs = await upAndSettle(stack, ["debian", "app"]);
      const vmid = outs.vmid as number;
      expect(outs.currentNode).to.equal(target.node);

      const after = await changeAndConverge(stack, { "migration:node": target.node2! }, { app: "update" });
      expect(after.vmid, "vmid kept").to.equal(vmid);
      expect(after.currentNode).to.equal(target.node2);
      expect(after.macs, "MAC addresses kept").to.deep.equal(outs.macs);
      expect((await target.client.cluster.findGuest(vmid))?.node).to.equal(target.node2);
      const volumes = Object.values(after.volumes as Record<string, string>);
      const onNode2 = (await target.client.storage.content(target.node2!, target.diskStorage)).map((c) => c.volid);
      expect(onNode2, "the rootfs moved with the container").to.include.members(volumes);

      const templateVolid = (await stack.exportState()).deployment.resources?.find((r) => r.urn.endsWith("::debian"))?.outputs?.volid as string;
      await stack.destroy();
      destroyed.add(stack);
      await expectNothingLeft([vmid], templateVolid ? [templateVolid] : []);
      console.log(`      migration: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    });
  });

  describe("adopt (take over a container created outside Pulumi)", function () {
    let stack: PulumiStack;
    let tmplVolid: string | undefined;
    let vmid: number | undefined;
    after(async () => {
      if (stack) await dispose(stack);
      // Clean what the test itself created through the API, whatever happened.
      if (vmid !== undefined && (await target.client.cluster.findGuest(vmid))) {
        const node = (await target.client.cluster.findGuest(vmid))!.node as string;
        await target.client.lxc.stopAndWait(node, vmid).catch(() => undefined);
        await target.client.lxc.destroyAndWait(node, vmid, { purge: true }).catch(() => undefined);
      }
      if (tmplVolid) await target.client.storage.deleteVolumeAndWait(target.node, tmplVolid).catch(() => undefined);
    });

    it("adopts the CT without recreating it, changes memory in place, refreshes clean, destroys it", async function () {
      const started = Date.now();
      const { client, node } = target;
      const apl = (await client.storage.aplinfo(node)).find((a) => a.package === "debian-12-standard" || a.template.startsWith("debian-12"));
      expect(apl, "a debian-12 appliance in the node's index").to.not.equal(undefined);
      tmplVolid = `${target.templateStorage}:vztmpl/${apl!.template}`;
      if (!(await client.storage.findVolume(node, tmplVolid))) await client.storage.aplDownloadAndWait(node, target.templateStorage, apl!.template);
      else tmplVolid = undefined; // already there before the test: not ours to delete
      const created = await client.lxc.createContainer({
        node,
        config: {
          ostemplate: `${target.templateStorage}:vztmpl/${apl!.template}`,
          hostname: "legacy",
          memory: 512,
          rootfs: `${target.diskStorage}:2`,
          net0: `name=eth0,bridge=${target.bridge},ip=dhcp`,
          unprivileged: 1,
        },
      });
      vmid = created.vmid;

      stack = await exampleStack("adopt", {
        "adopt:node": node,
        "adopt:vmid": String(vmid),
        "adopt:diskStorage": target.diskStorage,
        "adopt:bridge": target.bridge,
      });
      const outs = await upAndSettle(stack, ["legacy"]);
      expect(outs.vmid, "the existing CT, not a new one").to.equal(vmid);
      expect(outs.status, "started: true is the default, so adopting starts it").to.equal("running");
      const volsBefore = await volumesOf([vmid]);
      expect(volsBefore, "the CT's own root volume, not a new one").to.have.length(1);

      await changeAndConverge(stack, { "adopt:memory": "1024" }, { legacy: "update" });
      expect(Number((await client.lxc.getConfig(node, vmid, { current: true })).memory)).to.equal(1024);
      expect(await volumesOf([vmid])).to.deep.equal(volsBefore);

      await stack.destroy();
      destroyed.add(stack);
      await expectNothingLeft([vmid]);
      if (tmplVolid) {
        await client.storage.deleteVolumeAndWait(node, tmplVolid);
        tmplVolid = undefined;
      }
      vmid = undefined;
      console.log(`      adopt: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    });
  });
});
