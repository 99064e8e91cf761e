import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import { buildBundle, buildTemplate } from "../../provider/oci";
import { readTar } from "../../provider/oci/tar";
import { workerConversionsRunning } from "../../provider/oci/convert";
import { layer1, mainImage } from "./images";
import { cleanupTmp, gnuTarExtract, requireTool, tmpDir, treeManifest, umociUnpack, writeOciLayout } from "./support";

describe("oci: layers → rootfs (compared with umoci unpack)", function () {
  this.timeout(60_000);
  let layout: string;
  let cacheDir: string;
  let reference: Record<string, string>;

  before(async () => {
    for (const t of ["umoci", "zstd", "tar"]) requireTool(t);
    layout = path.join(tmpDir(), "layout");
    cacheDir = tmpDir("oci-cache-");
    // umoci 0.4.7 cannot read zstd layers: the reference is the same image, all gzip.
    const allGzip = { ...mainImage, layers: mainImage.layers.map((l) => ({ ...l, compression: "gzip" as const })) };
    await writeOciLayout(layout, { main: mainImage, "main-gz": allGzip });
    reference = await treeManifest(await umociUnpack(layout, "main-gz"));
  });
  after(() => cleanupTmp());

  it("the reference itself shows the changeset rules (guards the fixture)", () => {
    expect(reference["etc/old.conf"]).to.equal(undefined);
    expect(reference["var/lib/app/a"]).to.equal(undefined);
    expect(reference["var/lib/app/new"]).to.match(/^file /);
    expect(reference["opt/data"]).to.match(/^file /);
    expect(reference["etc/motd"]).to.match(/^dir /);
    expect(reference["share/h2"]).to.match(/^file 644 0:0 12 /);
  });

  for (const compression of ["gzip", "zstd"] as const) {
    it(`rootfs .tar.${compression === "gzip" ? "gz" : "zst"} extracts (GNU tar) to exactly umoci's tree`, async () => {
      const out = path.join(tmpDir(), `main.tar.${compression === "gzip" ? "gz" : "zst"}`);
      const r = await buildTemplate({ source: `oci:${layout}:main`, outFile: out, compression, cacheDir });
      expect(r.file).to.equal(out);
      expect(r.size).to.equal(fs.statSync(out).size);
      expect(r.fileName).to.equal(`layout_main.tar.${compression === "gzip" ? "gz" : "zst"}`);
      const ours = await treeManifest(await gnuTarExtract(out));
      expect(ours).to.deep.equal(reference);
    });
  }

  it("in a worker thread (the default outside tests): same tree, progress and typed errors come back", async function () {
    this.timeout(60_000);
    const phases = new Set<string>();
    // The process-wide heap growth factor is set while a worker converts, and reset after
    // (also after a failure, below).
    let runningDuringWrite = 0;
    const onProgress = (e: { phase: string }) => {
      phases.add(e.phase);
      if (e.phase === "write") runningDuringWrite = workerConversionsRunning();
    };
    const r = await buildTemplate({ source: `oci:${layout}:main`, cacheDir: tmpDir("oci-cache-"), inWorker: true, onProgress });
    expect(await treeManifest(await gnuTarExtract(r.file))).to.deep.equal(reference);
    expect([...phases]).to.include.members(["scan", "write", "done"]);
    expect(runningDuringWrite).to.equal(1);
    expect(workerConversionsRunning()).to.equal(0);
    try {
      await buildTemplate({ source: `oci:${layout}:main`, cacheDir: tmpDir("oci-cache-"), inWorker: true, maxEntries: 10 });
      throw new Error("accepted");
    } catch (err) {
      expect((err as { code?: string }).code).to.equal("LIMIT_EXCEEDED");
      expect((err as Error).message).to.include("maxEntries");
    }
    expect(workerConversionsRunning()).to.equal(0);
  });

  it("keeps xattrs, setuid bits and owners in the tar, and lists each path once (dirs aside)", async () => {
    const r = await buildTemplate({ source: `oci:${layout}:main`, compression: "gzip", cacheDir });
    const zlib = await import("node:zlib");
    const seen = new Map<string, number>();
    let xattr: Buffer | undefined;
    for await (const e of readTar(fs.createReadStream(r.file).pipe(zlib.createGunzip()))) {
      if (e.header.type !== "dir") seen.set(e.header.name, (seen.get(e.header.name) ?? 0) + 1);
      if (e.header.name === "./xattr-file") xattr = e.header.xattrs?.get("user.test");
      if (e.header.name === "./usr/bin/suid") expect(e.header.mode).to.equal(0o4755);
      expect(e.header.name.startsWith("./")).to.equal(true);
    }
    expect(xattr?.toString()).to.equal("value");
    expect([...seen].filter(([, n]) => n > 1)).to.deep.equal([]);
    expect(seen.has("./abs/path")).to.equal(true);
  });

  it("zstd output without the zstd program fails saying what to install", async () => {
    const prev = process.env.PATH;
    process.env.PATH = tmpDir("empty-path-");
    try {
      await buildTemplate({ source: `oci:${layout}:main`, compression: "zstd", cacheDir: tmpDir("oci-cache-") });
      throw new Error("accepted");
    } catch (err) {
      expect((err as { code?: string }).code).to.equal("MISSING_TOOL");
      expect((err as Error).message).to.include("apt-get install zstd");
    } finally {
      process.env.PATH = prev;
    }
  });

  it("outFile's extension chooses the compression and must match the format", async () => {
    const zst = path.join(tmpDir(), "x.tar.zst");
    const r = await buildTemplate({ source: `oci:${layout}:main`, outFile: zst, cacheDir });
    expect(r.compression).to.equal("zstd");
    expect(fs.readFileSync(zst).readUInt32LE(0)).to.equal(0xfd2fb528);
    for (const [outFile, opts] of [
      ["x.tar.gz", { compression: "zstd" as const }],
      ["x.tgz", {}],
      ["x.tar.gz", { format: "oci-archive" as const }],
    ] as const) {
      try {
        await buildTemplate({ source: `oci:${layout}:main`, outFile: path.join(tmpDir(), outFile), cacheDir, ...opts });
        throw new Error(`accepted ${outFile}`);
      } catch (err) {
        expect((err as { code?: string }).code, outFile).to.equal("INVALID_OPTION");
        expect((err as Error).message).to.include(outFile).and.include("extension");
      }
    }
  });

  it("metadata comes from the image config", async () => {
    const r = await buildTemplate({ source: `oci:${layout}:main`, cacheDir });
    expect(r.metadata).to.deep.include({
      entrypoint: ["/usr/bin/hello"],
      cmd: ["--flag"],
      env: ["PATH=/usr/bin:/bin", "FOO=bar"],
      workingDir: "/srv",
      user: "user",
      stopSignal: "SIGQUIT",
      volumes: ["/data"],
      exposedPorts: ["80/tcp"],
      labels: { "org.example": "yes" },
      architecture: "amd64",
      os: "linux",
    });
  });

  it("a runtime bundle's rootfs equals umoci's tree too", async () => {
    const dir = path.join(tmpDir(), "bundle");
    const b = await buildBundle({ source: `oci:${layout}:main`, dir, cacheDir });
    const ours = await treeManifest(b.rootfs);
    // Like Docker/PVE, the bundle creates the image's volume and working directories.
    const expected = { ...reference, data: "dir 755 0:0", srv: reference.srv };
    expect(ours).to.deep.equal(expected);
    const config = JSON.parse(fs.readFileSync(b.configPath, "utf8"));
    expect(config.process.args).to.deep.equal(["/usr/bin/hello", "--flag"]);
    expect(config.process.user).to.deep.equal({ uid: 1000, gid: 1000, additionalGids: [100] });
    expect(config.process.cwd).to.equal("/srv");
    expect(config.process.env).to.include("FOO=bar").and.include("HOME=/home/user");
  });

  it("the fixture has the layer-1 entries it claims (sanity)", () => {
    expect(layer1.length).to.be.greaterThan(30);
  });
});
