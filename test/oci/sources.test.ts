import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import { buildTemplate, resolveImage } from "../../provider/oci";
import { main } from "../../provider/cli/main";
import { mainImage } from "./images";
import { cleanupTmp, gnuTarExtract, requireTool, run, tmpDir, treeManifest, umociUnpack, writeOciLayout } from "./support";

/** Runs the CLI in-process, capturing what it prints. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await main(["oci", ...args]);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

describe("oci: local sources and the CLI", function () {
  this.timeout(60_000);
  let layout: string;
  let reference: Record<string, string>;
  let cacheDir: string;

  before(async () => {
    for (const t of ["skopeo", "umoci"]) requireTool(t);
    layout = path.join(tmpDir(), "layout");
    cacheDir = tmpDir("cache-");
    const allGzip = { ...mainImage, layers: mainImage.layers.map((l) => ({ ...l, compression: "gzip" as const })) };
    await writeOciLayout(layout, { "main-gz": allGzip });
    reference = await treeManifest(await umociUnpack(layout, "main-gz"));
  });
  after(() => cleanupTmp());

  it("oci-archive: source (written by skopeo)", async () => {
    const file = path.join(tmpDir(), "img.tar");
    await run("skopeo", ["copy", "--quiet", `oci:${layout}:main-gz`, `oci-archive:${file}:v1`]);
    const r = await buildTemplate({ source: `oci-archive:${file}:v1`, cacheDir });
    expect(await treeManifest(await gnuTarExtract(r.file))).to.deep.equal(reference);
    expect(r.fileName).to.equal("img_v1.tar.gz");
  });

  it("docker-archive: source (written by skopeo, docker media types)", async () => {
    const file = path.join(tmpDir(), "docker.tar");
    await run("skopeo", ["copy", "--quiet", `oci:${layout}:main-gz`, `docker-archive:${file}:example/app:2`]);
    const info = await resolveImage(`docker-archive:${file}`, { cacheDir });
    expect(info.metadata.workingDir).to.equal("/srv");
    expect(info.name).to.equal("app_2");
    const r = await buildTemplate({ source: `docker-archive:${file}`, cacheDir, format: "oci-archive" });
    expect(r.fileName).to.equal("app_2.tar");
    const rootfs = await buildTemplate({ source: `docker-archive:${file}:example/app:2`, cacheDir });
    expect(await treeManifest(await gnuTarExtract(rootfs.file))).to.deep.equal(reference);
  });

  it("oci: with a missing tag lists the tags", async () => {
    try {
      await resolveImage(`oci:${layout}:nope`);
      throw new Error("accepted");
    } catch (err) {
      expect((err as Error).message).to.include("main-gz");
    }
  });

  it("CLI: template writes the file and reports it", async () => {
    const out = path.join(tmpDir(), "t.tar.zst");
    const r = await cli(["template", `oci:${layout}:main-gz`, "--out", out, "--compression", "zstd", "--cache-dir", cacheDir, "--quiet", "--json"]);
    expect(r.code, r.err).to.equal(0);
    const result = JSON.parse(r.out);
    expect(result.file).to.equal(out);
    expect(fs.statSync(out).size).to.equal(result.size);
    expect(await treeManifest(await gnuTarExtract(out))).to.deep.equal(reference);
  });

  it("CLI: bundle and inspect", async () => {
    const dir = path.join(tmpDir(), "b");
    const r = await cli(["bundle", `oci:${layout}:main-gz`, dir, "--cache-dir", cacheDir, "--quiet", "--hostname", "h1", "--memory", "67108864"]);
    expect(r.code, r.err).to.equal(0);
    const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    expect(config.hostname).to.equal("h1");
    expect(config.linux.resources.memory.limit).to.equal(67108864);
    const i = await cli(["inspect", `oci:${layout}:main-gz`]);
    expect(i.code, i.err).to.equal(0);
    expect(JSON.parse(i.out).metadata.user).to.equal("user");
  });

  it("CLI: usage errors exit 2 and name the problem", async () => {
    const noOut = await cli(["template", `oci:${layout}:main-gz`]);
    expect(noOut.code).to.equal(2);
    expect(noOut.err).to.include("--out");
    const badFormat = await cli(["template", "x", "--out", "/tmp/x", "--format", "qcow2"]);
    expect(badFormat.code).to.equal(2);
    expect(badFormat.err).to.include("--format");
    const badPlatform = await cli(["inspect", `oci:${layout}:main-gz`, "--platform", "amd64"]);
    expect(badPlatform.code).to.equal(1);
    expect(badPlatform.err).to.include("os/arch");
    const unknown = await cli(["template", "x", "--bogus"]);
    expect(unknown.code).to.equal(2);
  });
});
