/**
 * Template compression on every core: block-parallel gzip (independent gzip members,
 * concatenated) must be a file that PVE's tools read — `gzip -t`, GNU `tar -z` — and the
 * sandbox's template reader; the multi-threaded zstd output likewise (`zstd -t`,
 * `tar --zstd`, fzstd).
 */
import { expect } from "chai";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { buildTemplate } from "../../provider/oci";
import { ParallelGzip } from "../../provider/oci/pgzip";
import { decompress as sandboxTemplateTar } from "../../sandbox/model/lxc/ostype";
import { Entry, cleanupTmp, gnuTarExtract, requireTool, run, tmpDir, treeManifest, umociUnpack, writeOciLayout } from "./support";

/** Offsets of gzip member headers as zlib writes them (magic, deflate, no flags, mtime 0). */
function memberStarts(gz: Buffer): number[] {
  const sig = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00]);
  const out: number[] = [];
  for (let i = gz.indexOf(sig); i >= 0; i = gz.indexOf(sig, i + 1)) out.push(i);
  return out;
}

async function pgzip(data: Buffer, opts: ConstructorParameters<typeof ParallelGzip>[0], chunk = 10_000): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let o = 0; o < data.length; o += chunk) parts.push(data.subarray(o, o + chunk));
  const out: Buffer[] = [];
  await pipeline(Readable.from(parts), new ParallelGzip(opts), async function* (src: AsyncIterable<Buffer>) {
    for await (const c of src) out.push(c);
  });
  return Buffer.concat(out);
}

/** Text-like and random content, so blocks compress differently. */
function sample(bytes: number): Buffer {
  const text = Buffer.from("the quick brown fox jumps over the lazy dog 0123456789\n".repeat(Math.ceil(bytes / 110)));
  return Buffer.concat([text, randomBytes(bytes - Math.min(bytes, text.length))]).subarray(0, bytes);
}

describe("oci: parallel compression of templates", function () {
  this.timeout(120_000);
  after(() => cleanupTmp());

  describe("ParallelGzip", () => {
    it("writes one gzip member per block, in order, that zlib reads back as the input", async () => {
      const data = sample(1_000_003);
      const gz = await pgzip(data, { blockSize: 100_000, parallel: 3 });
      expect(memberStarts(gz)).to.have.length(11);
      expect(memberStarts(gz)[0]).to.equal(0);
      expect(zlib.gunzipSync(gz).equals(data)).to.equal(true);
    });

    it("is deterministic (blocks cut by offset, not timing) whatever the input chunking", async () => {
      const data = sample(700_000);
      const a = await pgzip(data, { blockSize: 65_536, parallel: 2 }, 7_000);
      const b = await pgzip(data, { blockSize: 65_536, parallel: 4 }, 300_000);
      expect(a.equals(b)).to.equal(true);
    });

    it("empty input gives a valid gzip file of nothing", async () => {
      const gz = await pgzip(Buffer.alloc(0), {});
      expect(memberStarts(gz)).to.deep.equal([0]);
      expect(zlib.gunzipSync(gz).length).to.equal(0);
    });

    it("is accepted by `gzip -t` and gunzipped by `zcat` to the same bytes", async () => {
      requireTool("gzip");
      const data = sample(3_000_000);
      const file = path.join(tmpDir(), "x.gz");
      fs.writeFileSync(file, await pgzip(data, { blockSize: 256 * 1024 }));
      await run("gzip", ["-t", file]);
      const out = path.join(tmpDir(), "x");
      await run("sh", ["-c", 'zcat "$1" > "$2"', "sh", file, out]);
      expect(fs.readFileSync(out).equals(data)).to.equal(true);
    });
  });

  describe("rootfs templates larger than one block", () => {
    let layout: string;
    let reference: Record<string, string>;
    before(async () => {
      for (const t of ["umoci", "zstd", "tar", "gzip"]) requireTool(t);
      layout = path.join(tmpDir(), "layout");
      // ~5 MiB of files over two layers (block size is 1 MiB): several gzip members.
      const l1: Entry[] = [{ name: "data", type: "dir" }, { name: "data/random.bin", content: randomBytes(3 << 20) }, { name: "data/keep.txt", content: sample(1 << 20) }];
      const l2: Entry[] = [{ name: "data/random.bin", content: sample(2 << 20) }, { name: "data/.wh.keep.txt", content: "" }, { name: "etc", type: "dir" }, { name: "etc/hostname", content: "big\n" }];
      await writeOciLayout(layout, { big: { layers: [{ entries: l1 }, { entries: l2 }] } });
      reference = await treeManifest(await umociUnpack(layout, "big"));
    });

    it(".tar.gz: several members; `gzip -t` passes, GNU tar -z extracts umoci's tree, the sandbox reads it", async () => {
      const out = path.join(tmpDir(), "big.tar.gz");
      await buildTemplate({ source: `oci:${layout}:big`, outFile: out, cacheDir: tmpDir("oci-cache-") });
      expect(memberStarts(fs.readFileSync(out)).length).to.be.greaterThan(2);
      await run("gzip", ["-t", out]);
      expect(await run("tar", ["-tzf", out])).to.include("data/random.bin");
      expect(await treeManifest(await gnuTarExtract(out))).to.deep.equal(reference);
      const tar = sandboxTemplateTar(out);
      expect(tar?.includes(Buffer.from("etc/hostname"))).to.equal(true);
    });

    it(".tar.zst: `zstd -t` passes, GNU tar --zstd extracts umoci's tree, the sandbox reads it (fzstd)", async () => {
      const out = path.join(tmpDir(), "big.tar.zst");
      const r = await buildTemplate({ source: `oci:${layout}:big`, outFile: out, cacheDir: tmpDir("oci-cache-") });
      expect(r.compression).to.equal("zstd");
      await run("zstd", ["-q", "-t", out]);
      expect(await treeManifest(await gnuTarExtract(out))).to.deep.equal(reference);
      const tar = sandboxTemplateTar(out);
      expect(tar?.includes(Buffer.from("etc/hostname"))).to.equal(true);
    });

    it("the same image gives the same .tar.gz bytes twice (cache and upload checksums stay stable)", async () => {
      const a = await buildTemplate({ source: `oci:${layout}:big`, compression: "gzip", cacheDir: tmpDir("oci-cache-") });
      const b = await buildTemplate({ source: `oci:${layout}:big`, compression: "gzip", cacheDir: tmpDir("oci-cache-") });
      expect(a.sha256).to.equal(b.sha256);
    });
  });
});
