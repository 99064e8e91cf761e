/**
 * Lookups through the real Pulumi CLI against the sandbox: a program finds the newest Debian
 * template with getVolumesOutput and creates a Container from it. What a user relies on:
 * `up` uses the newest template; a preview of the unchanged stack shows no change (and with
 * `preview: "skip"` makes no lookup request); a newer template does not replace the container (ignoreChanges, as
 * docs/lookups.md recommends); the Promise form is queried in a preview; refresh finds no
 * drift and destroy leaves nothing. Not one request may violate the PVE schema.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { SandboxHandle } from "../../sandbox";
import type { PveClient } from "../../provider/proxmox/client";
import { templateTarGz } from "../support/fixtures";
import { describeChanges, findResource, hasNoChanges, opFor, PulumiStack } from "../support/pulumi";
import { noDrift, sandboxConfig, startCliSandbox } from "../support/e2e";

const CONTENT = "GET /nodes/{node}/storage/{storage}/content";

interface Knobs {
  memory?: number;
  fileNameRegex?: string;
  preview?: "skip" | "query";
  ignoreTemplate?: boolean;
}

function program(k: Knobs = {}): string {
  const opts = k.preview ? `, { preview: ${JSON.stringify(k.preview)} }` : "";
  return `
import { Container, getNodes, getVolumesOutput } from "pulumi-proxmox-lxc";

const debian = getVolumesOutput({ node: "pve1", storage: "local", content: "vztmpl", fileNameRegex: ${JSON.stringify(k.fileNameRegex ?? "^debian-")} }${opts});
const template = debian.apply((d) => {
  if (d.volumes.length === 0) throw new Error("no Debian template on local");
  return d.volumes[0].volid; // newest first
});
const web = new Container("web", {
  node: "pve1",
  template,
  hostname: "lookup-web",
  memory: { dedicated: ${k.memory ?? 512} },
  rootfs: { storage: "local-lvm", size: "2G" },
  networks: [{ name: "eth0", bridge: "vmbr0", ip: "dhcp" }],
}${k.ignoreTemplate === false ? "" : `, { ignoreChanges: ["template"] }`});

export const templateUsed = template;
export const vmid = web.vmid;
export const nodeCount = getNodes().then((n) => n.nodes.length);
`;
}

describe("e2e: lookup functions through the real Pulumi CLI", function () {
  this.timeout(15 * 60 * 1000);
  let sb: SandboxHandle;
  let stack: PulumiStack;
  let client: PveClient;
  let newer: string;
  const requests = async (key: string) => (await sb.admin.counters()).requests[key] ?? 0;
  /** Upload a small Debian-named CT template to pve1's `local` (a second second: ctime orders them). */
  const uploadDebian = async (fileName: string, versionId: string) => {
    await new Promise((r) => setTimeout(r, 1100));
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lookups-e2e-")), fileName);
    fs.writeFileSync(file, await templateTarGz(`ID=debian\nVERSION_ID="${versionId}"\n`));
    return (await client.storage.upload({ node: "pve1", storage: "local", content: "vztmpl", filePath: file })).volid;
  };

  before(async function () {
    this.timeout(45 * 60 * 1000);
    ({ sb, client } = await startCliSandbox());
    // An unrelated template, then two Debian ones: the lookup must pick the newer Debian.
    await client.storage.aplDownloadAndWait("pve1", "local", "alpine-3.20-default_20240908_amd64.tar.gz");
    await uploadDebian("debian-11-standard_11.7-1_amd64.tar.gz", "11");
    newer = await uploadDebian("debian-12-custom_12.7-1_amd64.tar.gz", "12");
    await new Promise((r) => setTimeout(r, 1100));
    await client.storage.aplDownloadAndWait("pve1", "local", "ubuntu-24.04-standard_24.04-2_amd64.tar.gz");
    stack = await PulumiStack.create({
      programSource: program(),
      config: sandboxConfig(sb),
    });
  });
  after(async () => {
    if (stack) await stack.remove();
    client?.close();
    if (sb) await sb.stop();
  });

  let vmid: number;
  it("up creates the container from the newest Debian template found by getVolumesOutput", async () => {
    const up = await stack.up();
    expect(opFor(up, "web")).to.equal("create");
    const outs = await stack.outputs();
    expect(outs.templateUsed).to.equal(newer);
    expect(outs.nodeCount).to.equal(2);
    vmid = outs.vmid as number;
    expect((await client.cluster.containers()).map((c) => c.vmid)).to.deep.equal([vmid]);
    expect(findResource(await stack.exportState(), "web")?.inputs?.template).to.equal(newer);
  });

  it("a preview of the unchanged stack shows no change; with preview \"skip\" it makes no lookup request; the Promise form is queried", async () => {
    await sb.admin.resetCounters();
    const preview = await stack.preview();
    expect(hasNoChanges(preview), describeChanges(preview)).to.equal(true);
    expect(await requests(CONTENT), "getVolumesOutput (default: query) requests in the preview").to.equal(1);
    stack.writeProgram(program({ preview: "skip" }));
    await sb.admin.resetCounters();
    const skipped = await stack.preview();
    expect(hasNoChanges(skipped), describeChanges(skipped)).to.equal(true);
    expect(await requests(CONTENT), "getVolumesOutput (skip) requests in the preview").to.equal(0);
    expect(await requests("GET /nodes"), "getNodes (Promise form) in the preview").to.be.at.least(1);
  });

  it("a newer template does not replace the container; a memory change is an update in place", async () => {
    const newest = await uploadDebian("debian-13-custom_13.0-1_amd64.tar.gz", "13");
    await sb.admin.resetCounters();
    stack.writeProgram(program({ memory: 768 }));
    const preview = await stack.preview();
    expect(opFor(preview, "web"), describeChanges(preview)).to.equal("update");
    const up = await stack.up();
    expect(opFor(up, "web"), describeChanges(up)).to.equal("update");
    expect(await requests(CONTENT), "up resolves the lookup").to.be.at.least(1);
    const outs = await stack.outputs();
    expect(outs.vmid).to.equal(vmid);
    expect(outs.templateUsed, "the lookup sees the newest template").to.equal(newest);
    expect(findResource(await stack.exportState(), "web")?.inputs?.template, "the container keeps its template").to.equal(newer);
    expect(Number((await client.lxc.getConfig("pve1", vmid, { current: true })).memory)).to.equal(768);
  });

  it("without ignoreChanges: the default (query) previews exactly, preview \"skip\" shows the unknown template as a replacement", async () => {
    const previewOf = async (k: Knobs) => {
      stack.writeProgram(program({ memory: 768, ignoreTemplate: false, ...k }));
      await sb.admin.resetCounters();
      const preview = await stack.preview();
      return { op: opFor(preview, "web") ?? "same", lookups: await requests(CONTENT), describe: describeChanges(preview) };
    };
    // The lookup now finds Debian 13, the container was made from 12: up would replace it.
    expect(await previewOf({})).to.deep.include({ op: "replace", lookups: 1 });
    // Pinned to the template the container has: nothing to do, and the preview knows it.
    const pinned = await previewOf({ fileNameRegex: "^debian-12-" });
    expect(pinned, pinned.describe).to.deep.include({ op: "same", lookups: 1 });
    // "skip": no request, so the template is unknown and may change — shown as a replacement.
    expect(await previewOf({ preview: "skip", fileNameRegex: "^debian-12-" })).to.deep.include({ op: "replace", lookups: 0 });
    stack.writeProgram(program({ memory: 768 }));
  });

  it("refresh finds no drift, then destroy leaves nothing", async () => {
    const refresh = await stack.refresh();
    expect(noDrift(refresh), describeChanges(refresh)).to.equal(true);
    expect(hasNoChanges(await stack.preview()), "preview after refresh").to.equal(true);
    await stack.destroy();
    expect(await client.cluster.containers()).to.deep.equal([]);
    expect((await sb.admin.counters()).violationCount, "schema violations").to.equal(0);
  });
});
