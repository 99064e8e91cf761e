import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tarStream from "tar-stream";
import { createGzip } from "node:zlib";
import { pipeline } from "node:stream/promises";
import type { SandboxHandle } from "../../sandbox";
import { PveClient, PveTaskFailedError, PveValidationError } from "../../provider/proxmox";
import { sandbox, tokenClient } from "./support/sandbox";

const MiB = 1024 * 1024;

async function makeTarGz(file: string, entries: Array<{ name: string; body: string }>): Promise<void> {
  const pack = tarStream.pack();
  for (const e of entries) pack.entry({ name: e.name }, e.body);
  pack.finalize();
  await pipeline(pack, createGzip(), fs.createWriteStream(file));
}

describe("streaming upload (POST …/storage/{storage}/upload)", function () {
  let sb: SandboxHandle;
  let c: PveClient;
  let dir: string;
  const count = async (key: string) => (await sb.admin.counters()).requests[key] ?? 0;
  const UPLOAD = "POST /nodes/{node}/storage/{storage}/upload";

  let stateDir: string | undefined;

  before(async () => {
    // The sandbox writes each upload twice (temp file, then the template dir, as PVE does).
    // On a shared VM disk that dominates the 1 GiB test, so keep its state in tmpfs when
    // there is one; the client side (what is measured) is the same either way.
    if (fs.existsSync("/dev/shm")) stateDir = fs.mkdtempSync("/dev/shm/pve-upload-sandbox-");
    sb = await sandbox({ stateDir });
    c = tokenClient(sb);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pve-upload-"));
  });
  after(async () => {
    c.close();
    await sb.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await sb.admin.clearFaults();
    await sb.admin.resetCounters();
  });

  it("a 1 GiB file streams with flat memory (peak RSS growth < 100 MiB), checksum verified by the task", async function () {
    this.timeout(120_000);
    const file = path.join(dir, "big-1g.tar.zst");
    // Sparse: no disk or page-cache cost to create it.
    const fd = fs.openSync(file, "w");
    fs.ftruncateSync(fd, 1024 * MiB);
    fs.closeSync(fd);
    try {
      (global as { gc?: () => void }).gc?.();
      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
      let progressCalls = 0;
      let lastProgress = { bytes: 0, rateBps: 0 };
      const t0 = Date.now();
      const r = await c.storage.upload({
        node: "pve1",
        storage: "local",
        content: "vztmpl",
        filePath: file,
        onProgress: (p) => {
          progressCalls++;
          lastProgress = p;
        },
        waitOptions: { timeoutMs: 120_000 },
      });
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage().rss);
      const secs = (Date.now() - t0) / 1000;
      const growth = (peak - baseline) / MiB;
      // eslint-disable-next-line no-console
      console.log(
        `      1 GiB upload: baseline RSS ${(baseline / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, growth ${growth.toFixed(1)} MiB; ` +
          `${secs.toFixed(1)} s total incl. sha256 pass and server-side copy (${(1024 / secs).toFixed(0)} MiB/s); send rate ${(lastProgress.rateBps / MiB).toFixed(0)} MiB/s`,
      );
      expect(growth).to.be.lessThan(100);
      expect(r.volid).to.equal("local:vztmpl/big-1g.tar.zst");
      expect(r.task?.exitstatus).to.equal("OK");
      expect(r.checksum?.algorithm).to.equal("sha256");
      expect(lastProgress.bytes).to.equal(1024 * MiB);
      expect(progressCalls).to.be.greaterThan(1);
      const item = await c.storage.findVolume("pve1", r.volid);
      expect(item?.size).to.equal(1024 * MiB);
      await c.storage.deleteVolumeAndWait("pve1", r.volid);
      expect(await c.storage.findVolume("pve1", r.volid)).to.equal(undefined);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it("a connection reset mid-upload: the whole upload is sent again", async () => {
    const file = path.join(dir, "mid.tar.gz");
    fs.writeFileSync(file, Buffer.alloc(3 * MiB, 7));
    await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/storage/{storage}/upload", action: "reset-mid-upload", afterBytes: MiB });
    const r = await c.storage.upload({ node: "pve1", storage: "local", content: "vztmpl", filePath: file });
    expect(r.attempts).to.equal(2);
    expect(r.task?.exitstatus).to.equal("OK");
    expect(await count(UPLOAD)).to.equal(2);
    expect((await c.storage.findVolume("pve1", "local:vztmpl/mid.tar.gz"))?.size).to.equal(3 * MiB);
  });

  it("a lost answer after the server took the upload: found, not uploaded again", async () => {
    const file = path.join(dir, "lost.tar.gz");
    fs.writeFileSync(file, Buffer.alloc(2 * MiB, 3));
    await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/storage/{storage}/upload", action: "reset-after" });
    const r = await c.storage.upload({ node: "pve1", storage: "local", content: "vztmpl", filePath: file });
    expect(r.verifiedAfterFailure).to.equal(true);
    expect(await count(UPLOAD)).to.equal(1);
    expect((await c.storage.findVolume("pve1", "local:vztmpl/lost.tar.gz"))?.size).to.equal(2 * MiB);
  });

  it("a wrong checksum fails the imgcopy task with PVE's text", async () => {
    const file = path.join(dir, "sum.tar.gz");
    fs.writeFileSync(file, "not really a tarball");
    const e = await c.storage
      .upload({ node: "pve1", storage: "local", content: "vztmpl", filePath: file, checksum: { algorithm: "sha256", value: "0".repeat(64) } })
      .then(() => undefined, (err) => err);
    expect(e).to.be.instanceOf(PveTaskFailedError);
    expect((e as PveTaskFailedError).exitstatus).to.match(/checksum mismatch/);
  });

  it("refuses a bad extension or storage name locally, before reading the file twice", async () => {
    const file = path.join(dir, "x.tgz");
    fs.writeFileSync(file, "x");
    const e = await c.storage.upload({ node: "pve1", storage: "local", content: "vztmpl", filePath: file }).then(() => undefined, (err) => err);
    expect(e).to.be.instanceOf(PveValidationError);
    expect((e as Error).message).to.include("filename").and.include(".tgz is not accepted");
    expect(await count(UPLOAD)).to.equal(0);
  });

  it("task WARNINGS are returned: a template without /etc/os-release → ostype unmanaged", async () => {
    const file = path.join(dir, "bare.tar.gz");
    await makeTarGz(file, [{ name: "./bin/true", body: "#!/bin/sh\n" }]);
    const up = await c.storage.upload({ node: "pve1", storage: "local", content: "vztmpl", filePath: file });
    const r = await c.createContainer({ node: "pve1", config: { ostemplate: up.volid, rootfs: "local-lvm:1" } });
    expect(r.task?.exitstatus).to.match(/^WARNINGS: \d+$/);
    expect(r.task?.warnings.join("\n")).to.include("falling back to 'unmanaged'");
  });
});
