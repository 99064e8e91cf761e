import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { OciError, buildBundle, buildTemplate } from "../../provider/oci";
import { readTar } from "../../provider/oci/tar";
import { Entry, ImageSpec, cleanupTmp, layerTar, tmpDir, writeOciLayout } from "./support";

/** Entries of a gzip rootfs template: name → type/linkname. */
async function listTemplate(file: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of readTar(fs.createReadStream(file).pipe(zlib.createGunzip()))) {
    out.set(e.header.name, e.header.type + (e.header.linkname ? ` -> ${e.header.linkname}` : ""));
  }
  return out;
}

describe("oci: hostile layers are refused or contained", function () {
  this.timeout(30_000);
  let root: string;
  let cacheDir: string;
  let n = 0;
  /** An outside directory that symlinks in the corpus point at. */
  let outside: string;

  const image = async (layers: Entry[][]): Promise<string> => {
    const dir = path.join(root, `img${n++}`);
    const spec: ImageSpec = { layers: layers.map((entries) => ({ entries })), config: { Cmd: ["/bin/true"] } };
    await writeOciLayout(dir, { t: spec });
    return `oci:${dir}:t`;
  };
  const rejects = async (p: Promise<unknown>, code: string, text: string) => {
    try {
      await p;
    } catch (err) {
      expect(err).to.be.instanceOf(OciError);
      expect((err as OciError).code).to.equal(code);
      expect((err as OciError).message).to.include(text);
      return;
    }
    throw new Error("expected the image to be refused");
  };

  before(() => {
    root = tmpDir("hostile-");
    cacheDir = tmpDir("hostile-cache-");
    outside = tmpDir("outside-");
  });
  after(() => cleanupTmp());

  it("refuses a path escaping the root with '..'", async () => {
    const src = await image([[{ name: "ok", content: "x" }, { name: "a/../../../evil", content: "pwned" }]]);
    await rejects(buildTemplate({ source: src, cacheDir }), "HOSTILE_LAYER", "a/../../../evil");
  });

  it("refuses a whiteout escaping the root", async () => {
    const src = await image([[{ name: "x", content: "x" }], [{ name: "../.wh.etc" }]]);
    await rejects(buildTemplate({ source: src, cacheDir }), "HOSTILE_LAYER", "escapes");
  });

  it("makes absolute paths relative", async () => {
    const src = await image([[{ name: "/etc/abs", content: "x" }]]);
    const r = await buildTemplate({ source: src, cacheDir });
    expect((await listTemplate(r.file)).get("./etc/abs")).to.equal("file");
  });

  it("never writes through a symlink (across layers): the link becomes a directory", async () => {
    const src = await image([[{ name: "esc", type: "symlink", linkname: outside }], [{ name: "esc/pwned", content: "pwned" }]]);
    const r = await buildTemplate({ source: src, cacheDir });
    const list = await listTemplate(r.file);
    expect(list.get("./esc/")).to.equal("dir");
    expect(list.get("./esc/pwned")).to.equal("file");
    expect([...list.values()].filter((v) => v.startsWith("symlink"))).to.deep.equal([]);
    const b = await buildBundle({ source: src, dir: path.join(root, "bundle-esc"), cacheDir });
    expect(fs.lstatSync(path.join(b.rootfs, "esc")).isDirectory()).to.equal(true);
    expect(fs.readdirSync(outside)).to.deep.equal([]);
  });

  it("never writes through a symlink (same layer, relative escape)", async () => {
    const src = await image([[{ name: "up", type: "symlink", linkname: "../../../../../../.." + outside }, { name: "up/pwned", content: "pwned" }]]);
    const b = await buildBundle({ source: src, dir: path.join(root, "bundle-up"), cacheDir });
    expect(fs.lstatSync(path.join(b.rootfs, "up")).isDirectory()).to.equal(true);
    expect(fs.readFileSync(path.join(b.rootfs, "up", "pwned"), "utf8")).to.equal("pwned");
    expect(fs.readdirSync(outside)).to.deep.equal([]);
  });

  it("a file replacing a symlink that points outside replaces the link, not its target", async () => {
    const src = await image([[{ name: "etc/", type: "dir" }, { name: "etc/shadow-link", type: "symlink", linkname: path.join(outside, "f") }], [{ name: "etc/shadow-link", content: "replaced" }]]);
    const b = await buildBundle({ source: src, dir: path.join(root, "bundle-link"), cacheDir });
    expect(fs.lstatSync(path.join(b.rootfs, "etc/shadow-link")).isFile()).to.equal(true);
    expect(fs.readdirSync(outside)).to.deep.equal([]);
  });

  it("refuses a hardlink escaping the root", async () => {
    const src = await image([[{ name: "x", content: "x" }, { name: "hl", type: "link", linkname: "../../../etc/passwd" }]]);
    await rejects(buildTemplate({ source: src, cacheDir }), "HOSTILE_LAYER", "../../../etc/passwd");
  });

  it("drops a hardlink to a file that is not in the layer (e.g. the host's /etc/shadow)", async () => {
    const src = await image([[{ name: "x", content: "x" }, { name: "hl", type: "link", linkname: "/etc/shadow" }]]);
    const r = await buildTemplate({ source: src, cacheDir });
    expect((await listTemplate(r.file)).has("./hl")).to.equal(false);
    expect(r.warnings.join("\n")).to.include("hl");
    const b = await buildBundle({ source: src, dir: path.join(root, "bundle-hl"), cacheDir });
    expect(fs.existsSync(path.join(b.rootfs, "hl"))).to.equal(false);
  });

  it("drops device nodes by default and refuses them with devices: 'error'", async () => {
    const src = await image([[{ name: "dev/", type: "dir" }, { name: "dev/mem", type: "char", devmajor: 1, devminor: 1 }, { name: "dev/sda", type: "block", devmajor: 8, devminor: 0 }, { name: "ok", content: "x" }]]);
    const r = await buildTemplate({ source: src, cacheDir });
    const list = await listTemplate(r.file);
    expect(list.has("./dev/mem")).to.equal(false);
    expect(list.has("./dev/sda")).to.equal(false);
    expect(list.get("./ok")).to.equal("file");
    await rejects(buildTemplate({ source: src, cacheDir, devices: "error" }), "HOSTILE_LAYER", "dev/mem");
    const kept = await buildTemplate({ source: src, cacheDir, devices: "keep" });
    expect((await listTemplate(kept.file)).get("./dev/mem")).to.equal("char");
  });

  it("caps the number of entries", async () => {
    const many: Entry[] = [];
    for (let i = 0; i < 3000; i++) many.push({ name: `f${i}`, content: "" });
    const src = await image([many]);
    await rejects(buildTemplate({ source: src, cacheDir, maxEntries: 1000 }), "LIMIT_EXCEEDED", "1000");
  });

  it("refuses names longer than PATH_MAX", async () => {
    const src = await image([[{ name: "d/".repeat(2100) + "f", content: "x" }]]);
    await rejects(buildTemplate({ source: src, cacheDir }), "HOSTILE_LAYER", "4096");
  });

  it("caps the total size (a decompression bomb stops before it is read)", async () => {
    const src = await image([[{ name: "zeros", content: Buffer.alloc(8 << 20) }]]);
    await rejects(buildTemplate({ source: src, cacheDir, maxBytes: 1 << 20 }), "LIMIT_EXCEEDED", "maxBytes");
  });

  it("refuses a layer whose content does not match its digest", async () => {
    const dir = path.join(root, "tampered");
    await writeOciLayout(dir, { t: { layers: [{ entries: [{ name: "a", content: "original" }] }] } });
    const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "blobs", ...index.manifests[0].digest.split(":")), "utf8"));
    const layerFile = path.join(dir, "blobs", ...manifest.layers[0].digest.split(":"));
    fs.writeFileSync(layerFile, zlib.gzipSync(await layerTar([{ name: "a", content: "tampered" }])));
    await rejects(buildTemplate({ source: `oci:${dir}:t`, cacheDir }), "DIGEST_MISMATCH", manifest.layers[0].digest);
  });

  it("refuses a truncated layer", async () => {
    const dir = path.join(root, "truncated");
    const tar = await layerTar([{ name: "a", content: Buffer.alloc(10_000, 1) }]);
    await writeOciLayout(dir, { t: { layers: [{ tar: tar.subarray(0, 3000), compression: "none" }] } });
    await rejects(buildTemplate({ source: `oci:${dir}:t`, cacheDir }), "HOSTILE_LAYER", "truncated");
  });
});
