/**
 * The pieces between the two flattening passes: layer spools (deleted on success and on
 * failure), the spool's tar reader (bodies skipped by seeking, truncation still caught)
 * and the block writer (buffers reused only once the consumer is done with them).
 */
import { expect } from "chai";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { Writable } from "node:stream";
import { BlockWriter } from "../../provider/oci/blocks";
import { Flattener } from "../../provider/oci/flatten";
import { BufferedTarReader, TAR_END, TarHeader, encodeHeader, padding } from "../../provider/oci/tar";
import { cleanupTmp, tmpDir } from "./support";

function file(name: string, body: Buffer): Buffer[] {
  const h: TarHeader = { name, type: "file", mode: 0o644, uid: 0, gid: 0, uname: "", gname: "", size: body.length, mtime: 0, linkname: "", devmajor: 0, devminor: 0 };
  return [encodeHeader(h), body, Buffer.alloc(padding(body.length))];
}

function readerOf(data: Buffer, reads: number[] = []): BufferedTarReader {
  return new BufferedTarReader(
    async (buf, off, len, position) => {
      reads.push(position);
      const n = Math.min(len, data.length - position);
      data.copy(buf, off, position, position + n);
      return n;
    },
    data.length,
    64 * 1024,
  );
}

describe("oci: between the passes (spools, spool reader, block writer)", () => {
  after(cleanupTmp);

  describe("BufferedTarReader", () => {
    it("reads headers and bodies, and skips unread bodies by seeking instead of reading them", async () => {
      const big = randomBytes(5 << 20);
      const tar = Buffer.concat([...file("a", Buffer.from("hello")), ...file("big", big), ...file("c", Buffer.from("x".repeat(700))), TAR_END]);
      const reads: number[] = [];
      const r = readerOf(tar, reads);
      const names: string[] = [];
      let a = "";
      let c = 0;
      for (let h = await r.next(); h; h = await r.next()) {
        names.push(h.name);
        if (h.name === "a") await r.copyBody((b) => void (a += b.toString()));
        if (h.name === "c") c = await r.copyBody(() => undefined);
      }
      expect(names).to.deep.equal(["a", "big", "c"]);
      expect(a).to.equal("hello");
      expect(c).to.equal(700);
      // The 5 MiB body was skipped: far fewer bytes read than the archive holds.
      expect(reads.length).to.be.lessThan(4);
    });

    it("reads a pax header larger than its buffer (a big binary xattr) and the entries after it", async () => {
      const value = randomBytes(300_000);
      const h: TarHeader = { name: "bin/x", type: "file", mode: 0o755, uid: 0, gid: 0, uname: "", gname: "", size: 3, mtime: 0, linkname: "", devmajor: 0, devminor: 0, xattrs: new Map([["user.big", value]]) };
      const tar = Buffer.concat([encodeHeader(h), Buffer.from("abc"), Buffer.alloc(padding(3)), ...file("after", Buffer.from("z")), TAR_END]);
      const r = readerOf(tar);
      const x = await r.next();
      expect(x?.name).to.equal("bin/x");
      expect(x?.xattrs?.get("user.big")?.equals(value)).to.equal(true);
      expect((await r.next())?.name).to.equal("after");
      expect(await r.next()).to.equal(null);
    });

    it("a body cut short by the end of the file is an error, also when skipped", async () => {
      const tar = Buffer.concat(file("big", randomBytes(100_000))).subarray(0, 50_000);
      const r = readerOf(tar);
      expect((await r.next())?.name).to.equal("big");
      let err: Error | undefined;
      await r.next().catch((e: Error) => (err = e));
      expect(err?.message).to.match(/truncated/);
    });
  });

  describe("BlockWriter", () => {
    it("passes every byte in order and reuses a block only after the consumer's callback", async () => {
      const seen: Buffer[] = [];
      const hash = createHash("sha256");
      const held = new Set<Buffer>();
      let reusedWhileHeld = false;
      const dest = new Writable({
        highWaterMark: 1,
        write(chunk: Buffer, _e, cb) {
          if ([...held].some((h) => h.buffer === chunk.buffer)) reusedWhileHeld = true;
          held.add(chunk);
          seen.push(Buffer.from(chunk));
          // A slow consumer: the block stays in use for a while.
          setTimeout(() => {
            hash.update(chunk);
            held.delete(chunk);
            cb();
          }, 1);
        },
      });
      const w = new BlockWriter(dest, { blockSize: 4096, blocks: 2 });
      const data = randomBytes(100_000);
      for (let o = 0; o < data.length; ) {
        const n = 1 + (o % 3000);
        const p = w.write(data.subarray(o, o + n));
        if (p) await p;
        o += n;
      }
      await w.end();
      await new Promise((r) => dest.on("finish", r));
      expect(reusedWhileHeld).to.equal(false);
      expect(Buffer.concat(seen).equals(data)).to.equal(true);
      expect(hash.digest("hex")).to.equal(createHash("sha256").update(data).digest("hex"));
      expect(seen.every((c) => c.length === 4096 || c === seen[seen.length - 1])).to.equal(true);
    });

    it("rejects a waiting write when the stream fails", async () => {
      const dest = new Writable({ highWaterMark: 1, write: (_c, _e, cb) => setTimeout(() => cb(new Error("disk full")), 5) });
      dest.on("error", () => undefined);
      const w = new BlockWriter(dest, { blockSize: 1024, blocks: 1 });
      let err: Error | undefined;
      try {
        for (let i = 0; i < 10; i++) {
          const p = w.write(Buffer.alloc(1024));
          if (p) await p;
        }
      } catch (e) {
        err = e as Error;
      }
      expect(err?.message).to.equal("disk full");
    });
  });

  describe("layer spools", () => {
    function layerFile(dir: string, name: string, tar: Buffer, digestOk = true) {
      const gz = zlib.gzipSync(tar);
      const p = path.join(dir, name);
      fs.writeFileSync(p, gz);
      const digest = `sha256:${digestOk ? createHash("sha256").update(gz).digest("hex") : "0".repeat(64)}`;
      return { digest, diffId: `sha256:${createHash("sha256").update(tar).digest("hex")}`, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", path: p, size: gz.length };
    }

    it("are written next to the output and gone after a conversion, and after a failed one", async () => {
      const dir = tmpDir("oci-spool-");
      const good = layerFile(dir, "l0", Buffer.concat([...file("etc/a", Buffer.from("1")), TAR_END]));
      const bad = layerFile(dir, "l1", Buffer.concat([...file("etc/b", Buffer.from("2")), TAR_END]), false);
      const spoolDir = tmpDir("oci-spool-out-");
      const seenSpools: string[] = [];
      const ok = new Flattener([good], { spoolPrefix: path.join(spoolDir, "out"), onProgress: () => seenSpools.push(...fs.readdirSync(spoolDir)) });
      let bytes = 0;
      await ok.writeTo((b) => void (bytes += b.length));
      expect(bytes).to.be.greaterThan(1024);
      expect(seenSpools).to.include("out.layer-0.tar");
      expect(fs.readdirSync(spoolDir)).to.deep.equal([]);
      const failing = new Flattener([good, bad], { spoolPrefix: path.join(spoolDir, "out") });
      let err: Error | undefined;
      await failing.writeTo(() => undefined).catch((e: Error) => (err = e));
      expect(err?.message).to.match(/digest|sha256/i);
      expect(fs.readdirSync(spoolDir)).to.deep.equal([]);
    });
  });
});
