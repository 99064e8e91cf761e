/**
 * OciImage in each mode against the sandbox, feeding a Container: client mode from an OCI
 * layout and from an authenticated registry (PVE 9.1: an app-container archive), server
 * mode through the sandbox's oci-registry-pull (anonymous loopback registry), PVE 8.4
 * (auto → client with a rootfs template), and refresh noticing a tag that moved.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { providerClient } from "../../provider/resources/operation";
import { useSandboxProvider } from "../support/provider";
import ociHandler, { rootfsCompression } from "../../provider/resources/oci-image/handler";
import containerHandler from "../../provider/resources/container/handler";
import { flushLogs } from "../../provider/logging";
import { writeOciLayout, startRegistry, pushImage, tmpDir, type RegistryHandle } from "../oci/support";
import { startAnonymousRegistry, skopeoCopy } from "../support/fixtures";
import { runnableImage } from "../oci/images";

async function create(inputs: Record<string, unknown>) {
  const checked = await ociHandler.check!({}, inputs);
  expect(checked.failures ?? []).to.deep.equal([]);
  const r = await ociHandler.create(checked.inputs);
  return { id: r.id, outs: r.outs as Record<string, any>, inputs: checked.inputs };
}

describe("OciImage handler (in process, against the sandbox)", function () {
  this.timeout(180_000);
  let sb: SandboxHandle;
  let layout: string;
  before(async () => {
    sb = await startSandbox({ port: 0, taskDurationMs: 5, authFailureDelayMs: 0 });
    layout = tmpDir("oci-image-layout-");
    const v2 = runnableImage();
    v2.config = { ...v2.config, Env: ["FOO=baz"] };
    await writeOciLayout(layout, { v1: runnableImage(), v2 });
  });
  after(async () => {
    await sb?.stop();
  });

  it("client mode from an OCI layout makes an app-container template a Container runs with its entrypoint and env", async () => {
    useSandboxProvider(sb);
    const img = await create({ node: "pve1", source: `oci:${layout}:v1`, mode: "client", resourceName: "app" });
    expect(img.outs.volid).to.match(/^local:vztmpl\/.+\.tar$/);
    expect(img.outs.resolvedMode).to.equal("client");
    expect(img.outs.resolvedFormat).to.equal("oci-archive");
    expect(img.outs.manifestDigest).to.match(/^sha256:[0-9a-f]{64}$/);
    expect(img.outs.entrypoint).to.equal(`/bin/sh -c 'read g < greeting; echo "$g user=$HOME cwd=$PWD foo=$FOO"'`);
    expect(img.outs.env).to.deep.equal({ FOO: "bar" });
    expect(img.outs.workdir).to.equal("/srv");

    const ct = await containerHandler.check!({}, { node: "pve1", template: img.outs.volid, entrypoint: img.outs.entrypoint, env: { ...img.outs.env, EXTRA: "1" }, rootfs: { storage: "local-lvm", size: "1G" }, networks: [{ name: "eth0", bridge: "vmbr0", ip: "dhcp" }], started: false });
    expect(ct.failures ?? []).to.deep.equal([]);
    const created = await containerHandler.create(ct.inputs);
    const cfg = await providerClient().lxc.getConfig("pve1", Number(created.id), { current: true });
    expect(cfg.entrypoint).to.equal(img.outs.entrypoint);
    expect(String(cfg.env).split("\u0000")).to.include.members(["FOO=bar", "EXTRA=1"]);
    expect(cfg.cmode).to.equal("console");
    await containerHandler.delete!(created.id, created.outs);

    // Refresh sees the volume; deleting the resource removes it.
    expect((await ociHandler.read!(img.id, img.outs)).id).to.equal(img.id);
    await ociHandler.delete!(img.id, img.outs);
    expect(await providerClient().storage.findVolume("pve1", img.id)).to.equal(undefined);
    expect((await sb.admin.counters()).violationCount).to.equal(0);
  });

  it("client mode pulls from an authenticated registry and keeps the password out of logs and errors", async () => {
    const dir = tmpDir("oci-image-log-");
    const logFile = path.join(dir, "provider.log");
    useSandboxProvider(sb, { "proxmox:logLevel": "debug", "proxmox:logFile": logFile });
    const reg: RegistryHandle = await startRegistry({ auth: "htpasswd", users: { alice: "s3cret-registry-pass" } });
    try {
      await pushImage(reg, layout, "v1", "team/app:1.0");
      const source = `docker://${reg.host}/team/app:1.0`;
      const wrong = await ociHandler.check!({}, { node: "pve1", source, credentials: { username: "alice", password: "wrong-password-xyz" }, insecureRegistry: true, resourceName: "bad" });
      const err = await ociHandler.create(wrong.inputs).then(() => undefined, (e: Error) => e);
      expect(err, "wrong credentials must fail").to.be.instanceOf(Error);
      expect(err!.message).to.match(/auth|credential|denied|unauthori/i);
      expect(err!.message).to.not.include("wrong-password-xyz");

      const img = await create({ node: "pve1", source, credentials: { username: "alice", password: "s3cret-registry-pass" }, insecureRegistry: true, fileName: "team-app.tar", resourceName: "private" });
      expect(img.outs.resolvedMode, "auto chooses client mode when credentials are given").to.equal("client");
      expect(img.outs.volid).to.equal("local:vztmpl/team-app.tar");
      await ociHandler.delete!(img.id, img.outs);
      flushLogs();
      const text = fs.readFileSync(logFile, "utf8");
      expect(text).to.not.include("s3cret-registry-pass");
      expect(text).to.not.include("wrong-password-xyz");
    } finally {
      await reg.stop();
    }
  });

  it("server mode lets PVE pull; refresh notices the tag moving and the next diff replaces", async () => {
    useSandboxProvider(sb);
    const reg = await startAnonymousRegistry();
    try {
      skopeoCopy(`oci:${layout}:v1`, `docker://${reg.host}/demo/app:1.0`);
      const source = `${reg.host}/demo/app:1.0`;
      const img = await create({ node: "pve1", source, resourceName: "served" });
      expect(img.outs.resolvedMode, "auto picks the server on PVE 9.1 without credentials").to.equal("server");
      expect(img.outs.volid).to.equal("local:vztmpl/app_1.0.tar");
      expect(img.outs.env).to.deep.equal({ FOO: "bar" });
      expect((await ociHandler.diff!(img.id, img.outs, img.inputs)).changes).to.equal(false);

      skopeoCopy(`oci:${layout}:v2`, `docker://${reg.host}/demo/app:1.0`);
      const refreshed = await ociHandler.read!(img.id, img.outs);
      expect(refreshed.props!.latestDigest).to.not.equal(img.outs.manifestDigest);
      const d = await ociHandler.diff!(img.id, refreshed.props!, img.inputs);
      expect(d.replaces).to.include("source");
      expect(d.deleteBeforeReplace).to.equal(true);
      await ociHandler.delete!(img.id, refreshed.props!);
    } finally {
      reg.stop();
    }
  });

  it("a rootfs template's compression: explicit, else fileName's extension, else zstd where PVE reads it", () => {
    expect(rootfsCompression({ compression: "gzip", fileName: undefined }, { major: 9 })).to.equal("gzip");
    expect(rootfsCompression({ compression: undefined, fileName: "a.tar.gz" }, { major: 9 })).to.equal("gzip");
    expect(rootfsCompression({ compression: undefined, fileName: "a.tar.zst" }, { major: 6 })).to.equal("zstd");
    expect(rootfsCompression({ compression: undefined, fileName: undefined }, { major: 8 })).to.equal("zstd");
    expect(rootfsCompression({ compression: undefined, fileName: undefined }, { major: 6 })).to.equal("gzip");
  });

  it("on PVE 8.4, auto converts on the client to a rootfs template (no app-container outputs)", async () => {
    const old = await startSandbox({ port: 0, taskDurationMs: 5, authFailureDelayMs: 0, pveVersion: "8.4" });
    try {
      useSandboxProvider(old);
      const img = await create({ node: "pve1", source: `oci:${layout}:v1`, resourceName: "legacy" });
      expect(img.outs.resolvedMode).to.equal("client");
      expect(img.outs.resolvedFormat).to.equal("rootfs");
      // zstd by default where PVE reads .tar.zst templates; a fileName's extension is kept.
      expect(img.outs.volid).to.match(/\.tar\.zst$/);
      const gz = await create({ node: "pve1", source: `oci:${layout}:v1`, fileName: "legacy-gz.tar.gz", resourceName: "legacy-gz" });
      expect(gz.outs.volid).to.equal("local:vztmpl/legacy-gz.tar.gz");
      expect(img.outs.entrypoint).to.equal("");
      expect(img.outs.env).to.deep.equal({});
      expect(img.outs.imageConfig.entrypoint).to.deep.equal(["/bin/sh", "-c"]);
      const forced = await ociHandler.check!({}, { node: "pve1", source: `${"127.0.0.1:1"}/x/y:1`, mode: "server" });
      await ociHandler.create(forced.inputs).then(
        () => expect.fail("server mode on 8.4 must be refused"),
        (e: Error) => expect(e.message).to.match(/needs Proxmox VE 9\.1/),
      );
      expect((await old.admin.counters()).violationCount).to.equal(0);
    } finally {
      await old.stop();
    }
  });

  it("check() refuses what server mode cannot do, naming the field", async () => {
    const r = await ociHandler.check!({}, { node: "pve1", source: "docker://ghcr.io/a/b:1", mode: "server", credentials: { username: "u", password: "p" } });
    // credentials is a secret: named in the reason, but no property (the CLI would print its value).
    expect(r.failures!.find((f) => /^OciImage credentials: /.test(f.reason))?.property).to.equal("");
    const r2 = await ociHandler.check!({}, { node: "pve1", source: "ghcr.io/a/b@sha256:" + "a".repeat(64), mode: "server" });
    expect(r2.failures![0].reason).to.match(/needs a tag/);
    const r3 = await ociHandler.check!({}, { node: "pve1", source: `oci:${layout}-missing:v1` });
    expect(r3.failures![0].reason).to.match(/does not exist/);
  });
});
