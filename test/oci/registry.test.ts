import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { createHash } from "node:crypto";
import { OciError, buildBundle, buildTemplate, resolveImage } from "../../provider/oci";
import { readTar } from "../../provider/oci/tar";
import { captureLogger } from "../../provider/logging";
import { mainImage, multiArch, runnableImage } from "./images";
import {
  RegistryHandle,
  TestCert,
  cleanupTmp,
  gnuTarExtract,
  makeCert,
  pushImage,
  requireTool,
  run,
  startRegistry,
  tmpDir,
  treeManifest,
  umociUnpack,
  writeOciLayout,
} from "./support";

const PASSWORD = "s3cret-Pa55word";

async function expectReject(p: Promise<unknown>): Promise<OciError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(OciError);
    return err as OciError;
  }
  throw new Error("expected a rejection");
}

describe("oci: registries (docker-registry on loopback)", function () {
  this.timeout(60_000);
  let basic: RegistryHandle;
  let token: RegistryHandle;
  let cert: TestCert;
  let layout: string;
  const creds = { username: "alice", password: PASSWORD };
  /** A docker config without credentials, so "anonymous" does not depend on the machine. */
  const emptyDockerConfig = () => {
    const dir = tmpDir("docker-config-");
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ auths: {} }));
    return dir;
  };

  before(async function () {
    this.timeout(120_000);
    for (const t of ["docker-registry", "skopeo", "umoci", "runc", "zstd"]) requireTool(t);
    cert = await makeCert(tmpDir("cert-"));
    [basic, token] = await Promise.all([
      startRegistry({ auth: "htpasswd", users: { alice: PASSWORD } }),
      startRegistry({ auth: "token", users: { alice: PASSWORD }, cert }),
    ]);
    layout = path.join(tmpDir(), "layout");
    const allGzip = { ...mainImage, layers: mainImage.layers.map((l) => ({ ...l, compression: "gzip" as const })) };
    await writeOciLayout(layout, { main: mainImage, "main-gz": allGzip, multi: multiArch(), run: runnableImage() });
    await Promise.all([
      pushImage(basic, layout, "main", "test/main:1"),
      pushImage(basic, layout, "multi", "test/multi:latest", ["--all"]),
      pushImage(basic, layout, "run", "test/run:v2s2", ["--format", "v2s2"]),
      pushImage(token, layout, "main-gz", "test/main:gz"),
    ]);
  });
  after(async () => {
    await Promise.all([basic?.stop(), token?.stop()]);
    cleanupTmp();
  });

  describe("authentication", () => {
    it("anonymous access to a Basic-auth registry fails naming the registry", async () => {
      const err = await expectReject(resolveImage(`${basic.host}/test/main:1`, { dockerConfig: emptyDockerConfig() }));
      expect(err.code).to.equal("AUTH_REQUIRED");
      expect(err.message).to.include(basic.host).and.include("credentials");
    });

    it("Basic auth with explicit credentials resolves the manifest", async () => {
      const info = await resolveImage(`${basic.host}/test/main:1`, { credentials: creds });
      expect(info.manifestDigest).to.match(/^sha256:[a-f0-9]{64}$/);
      expect(info.layers).to.have.length(3);
      expect(info.metadata.entrypoint).to.deep.equal(["/usr/bin/hello"]);
      expect(info.name).to.equal("main_1");
    });

    it("a wrong password fails clearly and never shows the password", async () => {
      const wrong = "Wrong-Password-123";
      const err = await expectReject(resolveImage(`${basic.host}/test/main:1`, { credentials: { username: "alice", password: wrong } }));
      expect(err.code).to.equal("AUTH_FAILED");
      expect(err.message).to.include(basic.host).and.include("alice");
      expect(err.message).not.to.include(wrong);
      expect(JSON.stringify(err)).not.to.include(wrong);
      expect(String(err.stack)).not.to.include(wrong);
    });

    it("credentials come from a docker config.json (base64 auth)", async () => {
      const dir = tmpDir("docker-config-");
      const auth = Buffer.from(`alice:${PASSWORD}`).toString("base64");
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ auths: { [basic.host]: { auth } } }));
      const info = await resolveImage(`docker://${basic.host}/test/main:1`, { dockerConfig: dir });
      expect(info.layers).to.have.length(3);
      // $DOCKER_CONFIG is the default location
      const prev = process.env.DOCKER_CONFIG;
      process.env.DOCKER_CONFIG = dir;
      try {
        expect((await resolveImage(`${basic.host}/test/main:1`)).manifestDigest).to.equal(info.manifestDigest);
      } finally {
        if (prev === undefined) delete process.env.DOCKER_CONFIG;
        else process.env.DOCKER_CONFIG = prev;
      }
    });

    it("Bearer token flow over TLS with a custom CA", async () => {
      const before = token.tokenRequests;
      const info = await resolveImage(`${token.host}/test/main:gz`, { credentials: creds, tls: { caFile: cert.certFile } });
      expect(info.layers).to.have.length(3);
      expect(token.tokenRequests).to.be.greaterThan(before);
    });

    it("Bearer: wrong password and anonymous fail clearly", async () => {
      const wrong = "Nope-Not-It-42";
      const e1 = await expectReject(resolveImage(`${token.host}/test/main:gz`, { credentials: { username: "alice", password: wrong }, tls: { caFile: cert.certFile } }));
      expect(e1.code).to.equal("AUTH_FAILED");
      expect(e1.message).to.include(token.host).and.not.include(wrong);
      const e2 = await expectReject(resolveImage(`${token.host}/test/main:gz`, { dockerConfig: emptyDockerConfig(), tls: { caFile: cert.certFile } }));
      expect(e2.code).to.equal("AUTH_REQUIRED");
      expect(e2.message).to.include(token.host);
    });

    it("debug logs show the auth flow but never the password or the Basic header", async () => {
      const captured = captureLogger({ level: "trace" });
      const cacheDir = tmpDir("cache-");
      await buildTemplate({ source: `${token.host}/test/main:gz`, credentials: creds, tls: { caFile: cert.certFile }, cacheDir, logger: captured.logger });
      const text = captured.text();
      expect(captured.records.some((r) => r.msg === "obtained registry token")).to.equal(true);
      expect(captured.records.some((r) => r.msg === "fetched manifest")).to.equal(true);
      expect(text).not.to.include(PASSWORD);
      expect(text).not.to.include(Buffer.from(`alice:${PASSWORD}`).toString("base64"));
    });

    it("TLS without the registry's CA is refused", async () => {
      const err = await expectReject(resolveImage(`${token.host}/test/main:gz`, { credentials: creds, retries: 0 }));
      expect(err.code).to.equal("TRANSPORT");
      expect(err.message).to.include(token.host);
    });

    it("an explicit docker config that does not exist is an error naming it", async () => {
      const missing = path.join(tmpDir(), "missing.json");
      const err = await expectReject(resolveImage(`${basic.host}/test/main:1`, { dockerConfig: missing }));
      expect(err.code).to.equal("INVALID_OPTION");
      expect(err.message).to.include(missing);
    });

    it("an unknown tag is NOT_FOUND naming the image", async () => {
      const err = await expectReject(resolveImage(`${basic.host}/test/main:nope`, { credentials: creds }));
      expect(err.code).to.equal("NOT_FOUND");
      expect(err.message).to.include("test/main:nope");
    });
  });

  describe("templates from a registry", () => {
    it("flattened rootfs equals umoci's tree; a second build reuses the cache", async () => {
      const cacheDir = tmpDir("cache-");
      const reference = await treeManifest(await umociUnpack(layout, "main-gz"));
      const events: string[] = [];
      const gets0 = basic.blobGets();
      const r1 = await buildTemplate({ source: `${basic.host}/test/main:1`, credentials: creds, cacheDir, onProgress: (e) => events.push(e.phase) });
      expect(r1.cached).to.equal(false);
      expect(events).to.include.members(["resolve", "download", "scan", "write", "done"]);
      const gets1 = basic.blobGets();
      expect(gets1 - gets0).to.equal(4); // config + 3 layers
      expect(await treeManifest(await gnuTarExtract(r1.file))).to.deep.equal(reference);
      expect(createHash("sha256").update(fs.readFileSync(r1.file)).digest("hex")).to.equal(r1.sha256);

      const r2 = await buildTemplate({ source: `${basic.host}/test/main:1`, credentials: creds, cacheDir });
      expect(r2.cached).to.equal(true);
      expect(r2.sha256).to.equal(r1.sha256);
      expect(basic.blobGets()).to.equal(gets1);
      // Another format converts again but downloads nothing.
      const r3 = await buildTemplate({ source: `${basic.host}/test/main:1`, credentials: creds, cacheDir, compression: "zstd" });
      expect(r3.cached).to.equal(false);
      expect(basic.blobGets()).to.equal(gets1);
    });

    it("selects the platform from a multi-arch index", async () => {
      const cacheDir = tmpDir("cache-");
      const read = async (platform?: string) => {
        const r = await buildTemplate({ source: `${basic.host}/test/multi`, credentials: creds, cacheDir, platform });
        const root = await gnuTarExtract(r.file);
        return { arch: fs.readFileSync(path.join(root, "arch"), "utf8").trim(), r };
      };
      expect((await read()).arch).to.equal("amd64");
      expect((await read("linux/arm64")).arch).to.equal("arm64");
      expect((await read("linux/arm64/v8")).arch).to.equal("arm64");
      const armhf = await read("linux/arm/v7");
      expect(armhf.arch).to.equal("armv7");
      expect(armhf.r.platform).to.equal("linux/arm/v7");
      const info = await resolveImage(`${basic.host}/test/multi`, { credentials: creds, platform: "linux/arm64" });
      expect(info.indexDigest).to.match(/^sha256:/);
      expect(info.indexDigest).not.to.equal(info.manifestDigest);
      const err = await expectReject(resolveImage(`${basic.host}/test/multi`, { credentials: creds, platform: "linux/s390x" }));
      expect(err.code).to.equal("PLATFORM_NOT_FOUND");
      expect(err.message).to.include("linux/amd64").and.include("linux/arm64");
    });

    it("OCI archive from a Docker v2 image has the shape PVE 9.1 detects", async () => {
      const cacheDir = tmpDir("cache-");
      const out = path.join(tmpDir(), "run.tar");
      const info = await resolveImage(`${basic.host}/test/run:v2s2`, { credentials: creds });
      expect(info.layers[0].mediaType).to.equal("application/vnd.docker.image.rootfs.diff.tar.gzip");
      const r = await buildTemplate({ source: `${basic.host}/test/run:v2s2`, credentials: creds, cacheDir, format: "oci-archive", outFile: out });
      expect(r.fileName).to.equal("run_v2s2.tar");
      const files = new Map<string, Buffer>();
      const order: string[] = [];
      for await (const e of readTar(fs.createReadStream(out))) {
        order.push(e.header.name);
        if (e.header.type !== "file") continue;
        const parts: Buffer[] = [];
        for await (const c of e.body()) parts.push(Buffer.from(c));
        files.set(e.header.name, Buffer.concat(parts));
      }
      expect(order.slice(0, 2)).to.deep.equal(["oci-layout", "index.json"]);
      const index = JSON.parse(files.get("index.json")!.toString());
      expect(index.manifests).to.have.length(1);
      expect(index.manifests[0].mediaType).to.equal("application/vnd.oci.image.manifest.v1+json");
      expect(index.manifests[0].platform).to.deep.equal({ architecture: "amd64", os: "linux" });
      // every blob's name is its digest
      for (const [name, data] of files) {
        const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
        if (m) expect(createHash("sha256").update(data).digest("hex"), name).to.equal(m[1]);
      }
      const manifest = JSON.parse(files.get(`blobs/${index.manifests[0].digest.replace(":", "/")}`)!.toString());
      expect(r.archiveManifestDigest).to.equal(index.manifests[0].digest);
      expect(manifest.config.mediaType).to.equal("application/vnd.oci.image.config.v1+json");
      const config = JSON.parse(files.get(`blobs/${manifest.config.digest.replace(":", "/")}`)!.toString());
      expect(manifest.layers).to.have.length(2);
      manifest.layers.forEach((l: { mediaType: string; digest: string }, i: number) => {
        expect(l.mediaType).to.equal("application/vnd.oci.image.layer.v1.tar+gzip");
        const tar = zlib.gunzipSync(files.get(`blobs/${l.digest.replace(":", "/")}`)!);
        expect("sha256:" + createHash("sha256").update(tar).digest("hex")).to.equal(config.rootfs.diff_ids[i]);
      });
      // and a standard tool reads it as an image: umoci unpacks it to the expected tree
      const extracted = tmpDir("archive-");
      await run("tar", ["-xf", out, "-C", extracted]);
      const rootfs = await umociUnpack(extracted, "run_v2s2");
      expect(fs.readFileSync(path.join(rootfs, "srv", "greeting"), "utf8")).to.equal("hello-from-image");
    });

    it("oci-archive with compression is refused with a clear error", async () => {
      const err = await expectReject(buildTemplate({ source: `${basic.host}/test/main:1`, credentials: creds, format: "oci-archive", compression: "zstd" }));
      expect(err.code).to.equal("INVALID_OPTION");
      expect(err.message).to.include("compression");
    });
  });

  describe("runtime bundle", () => {
    it("runs under runc and prints what the image's entrypoint prints", async function () {
      this.timeout(60_000);
      const dir = path.join(tmpDir("bundle-"), "b");
      const b = await buildBundle({ source: `${basic.host}/test/run:v2s2`, credentials: creds, dir, cacheDir: tmpDir("cache-"), hostname: "oci-test", memoryBytes: 64 << 20, pidsLimit: 64 });
      const config = JSON.parse(fs.readFileSync(b.configPath, "utf8"));
      expect(config.linux.resources.memory.limit).to.equal(64 << 20);
      expect(config.linux.namespaces.map((n: { type: string }) => n.type)).to.include("network");
      const id = `oci-test-${process.pid}-${Date.now()}`;
      const out = await run("runc", ["run", "--bundle", b.dir, id], { timeoutMs: 30_000 });
      expect(out.trim()).to.equal("hello-from-image user=/home/user cwd=/srv foo=bar");
    });
  });
});
