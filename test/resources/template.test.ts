/**
 * The Template handler against the sandbox, in process: the three sources (local file,
 * loopback URL, appliance index) each used by a Container, an upload that survives a
 * connection reset, the `existing` policies, refresh of a deleted or changed volume,
 * replacement on a changed local file, and the refusals users will hit (.tgz, storage
 * without vztmpl, unknown appliance, wrong checksum) — with zero schema violations.
 */
import { expect } from "chai";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { templateTarGz } from "../support/fixtures";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { useSandboxProvider } from "../support/provider";
import handler from "../../provider/resources/template/handler";
import containerHandler from "../../provider/resources/container/handler";
import { providerClient } from "../../provider/resources/operation";
import { digestComputations } from "../../provider/resources/template/fileHash";
import { closeMatches } from "../../provider/resources/template/appliance";

const MiB = 1024 * 1024;
const UPLOAD = "POST /nodes/{node}/storage/{storage}/upload";

const tarGz = templateTarGz;

const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

describe("Template handler (in process, against the sandbox)", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  let dir: string;
  let web: http.Server;
  let webBase: string;
  const served = new Map<string, Buffer>();

  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 5, authFailureDelayMs: 0 });
    useSandboxProvider(sb);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tmpl-test-"));
    // A tiny loopback web server the sandbox "node" downloads from (download-url).
    web = http.createServer((req, res) => {
      const body = served.get(req.url ?? "");
      if (!body) {
        res.writeHead(404).end("not found\n");
        return;
      }
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": body.length }).end(body);
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    webBase = `http://127.0.0.1:${(web.address() as { port: number }).port}`;
  });
  after(async () => {
    await new Promise((r) => web?.close(r));
    await sb?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await sb.admin.clearFaults();
  });

  async function check(inputs: Record<string, unknown>) {
    return handler.check!({}, inputs);
  }
  async function up(inputs: Record<string, unknown>): Promise<{ id: string; outs: Record<string, any> }> {
    const checked = await check(inputs);
    expect(checked.failures ?? []).to.deep.equal([]);
    const r = await handler.create(checked.inputs);
    return { id: r.id, outs: r.outs as Record<string, any> };
  }
  async function failure(p: Promise<unknown>): Promise<Error> {
    return p.then(
      () => expect.fail("expected an error") as never,
      (e: Error) => e,
    );
  }
  /** Create a CT from the template with the Container handler, assert it, destroy it. */
  async function containerFrom(volid: string, ostype: string) {
    const checked = await containerHandler.check!({}, { node: "pve1", template: volid, rootfs: { storage: "local-lvm", size: "1G" }, started: false, resourceName: "ct" });
    expect(checked.failures ?? []).to.deep.equal([]);
    const ct = await containerHandler.create(checked.inputs);
    const cfg = await providerClient().lxc.getConfig("pve1", Number(ct.id));
    expect(cfg.ostype).to.equal(ostype);
    await containerHandler.delete!(ct.id, ct.outs);
  }
  const vol = (volid: string) => providerClient().storage.findVolume("pve1", volid);

  it("uploads a local file (checksum checked), is used by a Container, refreshes, replaces on changed content, deletes", async () => {
    const file = path.join(dir, "alpine-custom.tar.gz");
    const data = await tarGz('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n');
    fs.writeFileSync(file, data);

    // A wrong checksum is caught in check(), naming the field, before anything is sent.
    const hashesBefore = digestComputations();
    const bad = await check({ node: "pve1", path: file, checksum: "0".repeat(64) });
    expect(bad.failures?.[0].property).to.equal("checksum");
    expect(bad.failures?.[0].reason).to.include(`is ${sha256(data)}, not ${"0".repeat(64)}`);

    const t = await up({ node: "pve1", path: file, checksum: sha256(data), resourceName: "alpine" });
    // Both check()s and create() share one pass over the file.
    expect(digestComputations() - hashesBefore).to.equal(1);
    expect(t.id).to.equal("local:vztmpl/alpine-custom.tar.gz");
    expect(t.outs).to.include({ volid: t.id, size: data.length, format: "tgz", checksum: sha256(data), checksumAlgorithm: "sha256" });
    expect((await vol(t.id))?.size).to.equal(data.length);

    await containerFrom(t.outs.volid, "alpine");

    // Refresh: unchanged; the same program diffs to nothing.
    const read = await handler.read!(t.id, t.outs);
    expect(read.id).to.equal(t.id);
    const same = await check({ node: "pve1", path: file, resourceName: "alpine" });
    expect((await handler.diff!(t.id, read.props!, same.inputs)).changes).to.equal(false);

    // A non-volume input changes in place.
    const inPlace = await handler.diff!(t.id, read.props!, { ...same.inputs, existing: "adopt" });
    expect(inPlace).to.include({ changes: true, deleteBeforeReplace: false });
    expect(inPlace.replaces).to.deep.equal([]);
    const updated = await handler.update!(t.id, read.props!, { ...same.inputs, existing: "adopt" });
    expect(updated.outs).to.include({ existing: "adopt", volid: t.id, checksum: sha256(data) });

    // Same path, new content: replaced, and the old volume goes first (same volid).
    fs.writeFileSync(file, await tarGz('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.21.0\n'));
    const changed = await check({ node: "pve1", path: file, resourceName: "alpine" });
    const d = await handler.diff!(t.id, read.props!, changed.inputs);
    expect(d.replaces).to.deep.equal(["path"]);
    expect(d.deleteBeforeReplace).to.equal(true);

    await handler.delete!(t.id, t.outs);
    expect(await vol(t.id)).to.equal(undefined);
    // Deleting again (already gone) is fine.
    await handler.delete!(t.id, t.outs);
  });

  it("downloads from a loopback URL with its checksum, and a Container uses it", async () => {
    const data = await tarGz('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n');
    served.set("/images/debian-custom.tar.gz", data);
    const url = `${webBase}/images/debian-custom.tar.gz`;
    const t = await up({ node: "pve1", storage: "shared-nfs", url, checksum: sha256(data), checksumAlgorithm: "sha256", resourceName: "deb" });
    expect(t.outs).to.include({ volid: "shared-nfs:vztmpl/debian-custom.tar.gz", size: data.length, format: "tgz", checksum: sha256(data), checksumAlgorithm: "sha256" });
    await containerFrom(t.outs.volid, "debian");

    // A different checksum replaces; fileName changes the volid, so no delete-first.
    const c1 = await check({ node: "pve1", storage: "shared-nfs", url, checksum: "a".repeat(64), checksumAlgorithm: "sha256" });
    expect((await handler.diff!(t.id, t.outs, c1.inputs)).replaces).to.deep.equal(["checksum"]);
    const c2 = await check({ node: "pve1", storage: "shared-nfs", url, checksum: sha256(data), checksumAlgorithm: "sha256", fileName: "deb2.tar.gz" });
    const d2 = await handler.diff!(t.id, t.outs, c2.inputs);
    expect(d2.replaces).to.deep.equal(["fileName"]);
    expect(d2.deleteBeforeReplace).to.equal(false);

    // A checksum that does not match what the server downloads fails the task with PVE's text.
    served.set("/images/other.tar.gz", data);
    const e = await failure(up({ node: "pve1", url: `${webBase}/images/other.tar.gz`, checksum: "b".repeat(64), checksumAlgorithm: "sha256" }));
    expect(e.message).to.match(/checksum mismatch/);
    expect(await vol("local:vztmpl/other.tar.gz")).to.equal(undefined);

    await handler.delete!(t.id, t.outs);
    expect(await vol(t.id)).to.equal(undefined);
  });

  it("downloads from the appliance index by package name; an unknown name lists close matches", async () => {
    const index = await providerClient().storage.aplinfo("pve1");
    const deb = index.find((a) => a.package === "debian-12-standard")!;
    const t = await up({ node: "pve1", appliance: "debian-12-standard", resourceName: "apl" });
    expect(t.outs).to.include({ volid: `local:vztmpl/${deb.template}`, checksum: deb.sha512sum, checksumAlgorithm: "sha512", format: "tgz" });
    await containerFrom(t.outs.volid, "debian");

    // The same appliance by file name is the same volume: an in-place update, no replace.
    const byFile = await check({ node: "pve1", appliance: deb.template, resourceName: "apl" });
    const d = await handler.diff!(t.id, t.outs, byFile.inputs);
    expect(d).to.include({ changes: true, deleteBeforeReplace: false });
    expect(d.replaces).to.deep.equal([]);
    const other = await check({ node: "pve1", appliance: "alpine-3.20-default", resourceName: "apl" });
    expect((await handler.diff!(t.id, t.outs, other.inputs)).replaces).to.deep.equal(["appliance"]);

    const e = await failure(up({ node: "pve1", appliance: "debain-12-standrd" }));
    expect(e.message).to.include("'debain-12-standrd' is not in the appliance index of node 'pve1'");
    expect(e.message.split("Closest entries:")[1].trim().split(/\s+/)[0]).to.equal(deb.template);
    expect(closeMatches(index, "ubuntu")[0]).to.match(/^ubuntu-24\.04/);
    await handler.delete!(t.id, t.outs);
  });

  it("an upload survives a connection reset mid-body (sent again, checksum verified)", async () => {
    const file = path.join(dir, "reset-me.tar.gz");
    const data = await tarGz("ID=alpine\n", 3 * MiB);
    fs.writeFileSync(file, data);
    await sb.admin.resetCounters();
    await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/storage/{storage}/upload", action: "reset-mid-upload", afterBytes: MiB });
    const t = await up({ node: "pve1", path: file });
    const counters = await sb.admin.counters();
    expect(counters.requests[UPLOAD]).to.equal(2);
    expect(t.outs).to.include({ size: data.length, checksum: sha256(data) });
    expect((await vol(t.id))?.size).to.equal(data.length);
    await handler.delete!(t.id, t.outs);
  });

  it("a reset right after another upload: the client's recovered task is the other upload's, so the file is sent again", async () => {
    // provider/proxmox/upload.ts takes any imgcopy task of ours from the last ~2 s as the
    // lost upload (imgcopy has an empty id); the handler checks the volume really landed.
    const a = path.join(dir, "first.tar.gz");
    const b = path.join(dir, "second.tar.gz");
    fs.writeFileSync(a, await tarGz("ID=alpine\n", 256 * 1024));
    const bData = await tarGz("ID=alpine\n", 2 * MiB);
    fs.writeFileSync(b, bData);
    const first = await up({ node: "pve1", path: a });
    await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/storage/{storage}/upload", action: "reset-mid-upload", afterBytes: MiB });
    const second = await up({ node: "pve1", path: b });
    expect((await vol(second.id))?.size).to.equal(bData.length);
    expect(second.outs).to.include({ size: bData.length, checksum: sha256(bData) });
    await handler.delete!(first.id, first.outs);
    await handler.delete!(second.id, second.outs);
  });

  it("existing: fail (default) refuses, adopt takes the volume as is, overwrite replaces it", async () => {
    const file = path.join(dir, "shared-name.tar.gz");
    const v1 = await tarGz("ID=alpine\n", 1000);
    fs.writeFileSync(file, v1);
    const first = await up({ node: "pve1", path: file });

    // fail: the message names the volid and both ways out.
    const e = await failure(up({ node: "pve1", path: file }));
    expect(e.message).to.include("local:vztmpl/shared-name.tar.gz already exists on node 'pve1'").and.include('existing: "adopt"').and.include('existing: "overwrite"');

    // adopt: no upload, same volume.
    await sb.admin.resetCounters();
    const adopted = await up({ node: "pve1", path: file, existing: "adopt" });
    expect(adopted.id).to.equal(first.id);
    expect(adopted.outs).to.include({ checksum: sha256(v1), size: v1.length });
    expect((await sb.admin.counters()).requests[UPLOAD] ?? 0).to.equal(0);

    // adopt refuses a volume that cannot be this file (size differs).
    const other = path.join(dir, "elsewhere", "shared-name.tar.gz");
    fs.mkdirSync(path.dirname(other));
    fs.writeFileSync(other, await tarGz("ID=alpine\n", 5000));
    const e2 = await failure(up({ node: "pve1", path: other, existing: "adopt" }));
    expect(e2.message).to.match(/is \d+ bytes but '.*' is \d+ bytes, so it is not this file/);

    // overwrite (url source): the old file is deleted, the new one downloaded.
    const v2 = await tarGz("ID=debian\n", 4000);
    served.set("/shared-name.tar.gz", v2);
    const over = await up({ node: "pve1", url: `${webBase}/shared-name.tar.gz`, existing: "overwrite" });
    expect(over.id).to.equal(first.id);
    expect((await vol(over.id))?.size).to.equal(v2.length);

    // overwrite (path source): uploaded over it.
    const over2 = await up({ node: "pve1", path: other, existing: "overwrite" });
    expect((await vol(over2.id))?.size).to.equal(fs.statSync(other).size);
    await handler.delete!(over2.id, over2.outs);
  });

  it("refresh: a deleted volume is gone; a changed one drifts and is replaced", async () => {
    const file = path.join(dir, "drift.tar.gz");
    fs.writeFileSync(file, await tarGz("ID=alpine\n", 100));
    const t = await up({ node: "pve1", path: file });
    // Someone uploads a different file under the same name.
    const intruder = path.join(dir, "intruder", "drift.tar.gz");
    fs.mkdirSync(path.dirname(intruder));
    fs.writeFileSync(intruder, await tarGz("ID=alpine\n", 20000));
    await providerClient().storage.upload({ node: "pve1", storage: "local", content: "vztmpl", filePath: intruder });
    const read = await handler.read!(t.id, t.outs);
    expect(read.props!.size).to.equal(fs.statSync(intruder).size);
    const c = await check({ node: "pve1", path: file });
    const d = await handler.diff!(t.id, read.props!, c.inputs);
    expect(d.replaces).to.deep.equal(["size"]);
    expect(d.deleteBeforeReplace).to.equal(true);

    await providerClient().storage.deleteVolumeAndWait("pve1", t.id);
    const gone = await handler.read!(t.id, t.outs);
    expect(gone.id).to.equal("");
  });

  it("refuses .tgz, a missing file, a directory and a storage without vztmpl, with the fix in the message", async () => {
    await sb.admin.resetCounters();
    const tgz = path.join(dir, "debian.tgz");
    fs.writeFileSync(tgz, "x");
    const r1 = await check({ node: "pve1", path: tgz });
    expect(r1.failures?.[0].property).to.equal("path");
    expect(r1.failures?.[0].reason).to.include("ends in .tgz, which Proxmox accepts for backups but refuses for CT templates; name it 'debian.tar.gz'");
    const r2 = await check({ node: "pve1", url: `${webBase}/x.tar.gz`, fileName: "x.tgz", checksum: "a".repeat(64), checksumAlgorithm: "sha256" });
    expect(r2.failures?.[0].property).to.equal("fileName");

    const r3 = await check({ node: "pve1", path: path.join(dir, "nope.tar.gz") });
    expect(r3.failures?.[0]).to.deep.include({ property: "path" });
    expect(r3.failures?.[0].reason).to.include("does not exist");
    const sub = path.join(dir, "adir.tar.gz");
    fs.mkdirSync(sub);
    const r4 = await check({ node: "pve1", path: sub });
    expect(r4.failures?.[0].reason).to.include("is a directory");

    const r5 = await check({ node: "pve1", url: `${webBase}/x.tar.gz`, checksum: "abc" , checksumAlgorithm: "sha256" });
    expect(r5.failures?.[0].reason).to.include("a sha256 digest has 64 hex digits, this one has 3");

    const file = path.join(dir, "ok.tar.gz");
    fs.writeFileSync(file, await tarGz("ID=alpine\n"));
    const e = await failure(up({ node: "pve1", storage: "local-lvm", path: file }));
    expect(e.message).to.include("storage: 'local-lvm' (type lvmthin) on 'pve1' does not accept CT templates");
    expect(e.message).to.include("'local' (dir)").and.include("'shared-nfs' (nfs)");
    const e2 = await failure(up({ node: "pve1", storage: "nosuch", path: file }));
    expect(e2.message).to.include("storage: 'nosuch' does not exist on node 'pve1'");
    expect((await sb.admin.counters()).requests[UPLOAD] ?? 0).to.equal(0);
  });

  it("logs upload progress at info, and never the credentials in a url", async () => {
    const logFile = path.join(dir, "provider.log");
    useSandboxProvider(sb, { "proxmox:logLevel": "info", "proxmox:logFile": logFile });
    try {
      const file = path.join(dir, "progress.tar.gz");
      fs.writeFileSync(file, await tarGz("ID=alpine\n", 2 * MiB));
      const t = await up({ node: "pve1", path: file, resourceName: "progress" });
      const data = await tarGz("ID=debian\n");
      served.set("/private/creds.tar.gz", data);
      const secret = "s3cret-download-token";
      const u = await up({ node: "pve1", url: `${webBase.replace("http://", `http://bot:${secret}@`)}/private/creds.tar.gz`, resourceName: "creds" });
      expect(u.outs.size).to.equal(data.length);
      await handler.delete!(t.id, t.outs);
      await handler.delete!(u.id, u.outs);

      const lines = fs.readFileSync(logFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, any>);
      const progress = lines.filter((l) => l.file === "progress.tar.gz" && l.percent !== undefined && /upload progress\.tar\.gz: \d+% of /.test(l.msg));
      expect(progress.length, "progress lines").to.be.greaterThan(0);
      expect(progress.every((l) => l.level === "info" && l.resourceType === "Template" && l.resourceName === "progress")).to.equal(true);
      expect(progress[progress.length - 1]).to.include({ percent: 100, bytes: fs.statSync(file).size });
      const text = JSON.stringify(lines);
      expect(text).to.include("credentials omitted");
      expect(text).not.to.include(secret);
    } finally {
      useSandboxProvider(sb);
    }
  });

  it("while previewing with unknown inputs, validates the known part", async () => {
    const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    const r = await check({ node: "pve1", url: UNKNOWN, fileName: "x.tgz" });
    expect(r.failures?.[0].property).to.equal("fileName");
    const ok = await check({ node: UNKNOWN, path: UNKNOWN });
    expect(ok.failures ?? []).to.deep.equal([]);
  });

  it("sent no request the PVE schema rejects", async () => {
    expect((await sb.admin.counters()).violationCount).to.equal(0);
  });
});

describe("Template handler on PVE 8.4: uncompressed .tar", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  let dir: string;
  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1"], pveVersion: "8.4", taskDurationMs: 5, authFailureDelayMs: 0 });
    useSandboxProvider(sb);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tmpl-84-"));
  });
  after(async () => {
    await sb?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("check and create refuse a .tar file name with the server's version and the fix, before any upload", async () => {
    const file = path.join(dir, "app.tar");
    fs.writeFileSync(file, "x".repeat(1024));
    await sb.admin.resetCounters();
    const r = await handler.check!({}, { node: "pve1", path: file });
    expect(r.failures?.[0].property).to.equal("path");
    expect(r.failures?.[0].reason).to.match(/an uncompressed \.tar template needs Proxmox VE 9\.1 or newer; the server runs 8\.4.*Use a compressed template \(\.tar\.zst/);
    const named = await handler.check!({}, { node: "pve1", url: "http://127.0.0.1:1/x", fileName: "x.tar", checksum: "a".repeat(64), checksumAlgorithm: "sha256" });
    expect(named.failures?.[0].property).to.equal("fileName");
    // create checks again (check may have run without a server to ask).
    const e = await handler.create({ node: "pve1", storage: "local", path: file, existing: "fail" }).then(
      () => expect.fail("created") as never,
      (err: Error) => err,
    );
    expect(e.message).to.match(/path: an uncompressed \.tar template needs Proxmox VE 9\.1/);
    expect((await sb.admin.counters()).requests[UPLOAD] ?? 0).to.equal(0);
    // A compressed name asks the server nothing at check.
    await sb.admin.resetCounters();
    const ok = await handler.check!({}, { node: "pve1", url: "http://127.0.0.1:1/x.tar.zst", checksum: "a".repeat(64), checksumAlgorithm: "sha256" });
    expect(ok.failures ?? []).to.deep.equal([]);
    expect((await sb.admin.counters()).requests["GET /version"] ?? 0).to.equal(0);
  });
});
