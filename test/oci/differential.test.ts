import { expect } from "chai";
import * as path from "node:path";
import * as fc from "fast-check";
import { buildTemplate } from "../../provider/oci";
import { Entry, cleanupTmp, gnuTarExtract, requireTool, run, tmpDir, treeManifest, writeOciLayout } from "./support";

/**
 * Differential test: random layer stacks over a small path universe, flattened by us and
 * unpacked by umoci, must give the same tree. The generator avoids the cases where the
 * two legitimately differ by design: writing beneath a symlink (umoci follows it inside
 * the root; we turn the path into a directory) and hardlinks across layers (we drop them).
 */
const DIRS = ["a", "a/b", "c"];
const NAMES = ["f1", "f2", "d1"];
const CONTENTS = ["", "one\n", "two two\n", "x".repeat(700)];

const parentArb = fc.constantFrom("", ...DIRS);
const join = (d: string, n: string) => (d ? `${d}/${n}` : n);

type Op =
  | { k: "file"; dir: string; name: string; content: number; mode: number; uid: number }
  | { k: "dir"; dir: string; name: string; mode: number; uid: number }
  | { k: "symlink"; dir: string; name: string; target: string }
  | { k: "link"; dir: string; name: string }
  | { k: "wh"; dir: string; name: string }
  | { k: "opq"; dir: string };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ k: fc.constant("file" as const), dir: parentArb, name: fc.constantFrom(...NAMES), content: fc.nat(CONTENTS.length - 1), mode: fc.constantFrom(0o644, 0o755, 0o4755, 0o600), uid: fc.constantFrom(0, 1000) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("dir" as const), dir: fc.constantFrom("", "a"), name: fc.constantFrom("a", "b", "c", "d1"), mode: fc.constantFrom(0o755, 0o700, 0o1777), uid: fc.constantFrom(0, 1000) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("symlink" as const), dir: parentArb, name: fc.constantFrom("lnk1", "lnk2"), target: fc.constantFrom("f1", "/etc/passwd", "../up") }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("link" as const), dir: parentArb, name: fc.constantFrom("h1", "h2") }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("wh" as const), dir: parentArb, name: fc.constantFrom(...NAMES, "b", "lnk1", "h1") }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("opq" as const), dir: fc.constantFrom(...DIRS) }) },
);

/** Turns ops into layer entries: explicit parent dirs, hardlinks to an earlier file of the same layer. */
function toEntries(ops: Op[]): Entry[] {
  const out: Entry[] = [];
  const files: string[] = [];
  const ensureDirs = (d: string) => {
    const parts = d.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) out.push({ name: parts.slice(0, i).join("/") + "/", type: "dir" });
  };
  for (const op of ops) {
    if (op.k !== "dir") ensureDirs(op.dir);
    switch (op.k) {
      case "file": {
        const p = join(op.dir, op.name);
        out.push({ name: p, content: CONTENTS[op.content], mode: op.mode, uid: op.uid, gid: op.uid });
        files.push(p);
        break;
      }
      case "dir":
        ensureDirs(op.dir);
        out.push({ name: join(op.dir, op.name) + "/", type: "dir", mode: op.mode, uid: op.uid, gid: op.uid });
        break;
      case "symlink":
        out.push({ name: join(op.dir, op.name), type: "symlink", linkname: op.target });
        break;
      case "link":
        if (files.length) out.push({ name: join(op.dir, op.name), type: "link", linkname: files[files.length - 1] });
        break;
      case "wh":
        out.push({ name: join(op.dir, `.wh.${op.name}`) });
        break;
      case "opq":
        out.push({ name: `${op.dir}/.wh..wh..opq` });
        break;
    }
  }
  return out;
}

/** True if some entry would be written beneath a path that is not a directory at that time. */
function writesThroughNonDir(layers: Entry[][]): boolean {
  const kinds = new Map<string, string>();
  for (const layer of layers) {
    for (const e of layer) {
      const name = e.name.replace(/\/$/, "");
      const base = name.slice(name.lastIndexOf("/") + 1);
      const parts = name.split("/");
      for (let i = 1; i < parts.length; i++) {
        const k = kinds.get(parts.slice(0, i).join("/"));
        if (k && k !== "dir") return true;
      }
      if (base.startsWith(".wh.")) {
        const target = name.slice(0, name.length - base.length) + base.slice(4);
        for (const key of [...kinds.keys()]) if (key === target || key.startsWith(target + "/")) kinds.delete(key);
        continue;
      }
      // a hardlink whose target was replaced in between would differ too: treat as unsafe
      if (e.type === "link" && kinds.get(e.linkname!) !== "file") return true;
      const t = e.type ?? "file";
      if (t !== "dir") for (const key of [...kinds.keys()]) if (key.startsWith(name + "/")) kinds.delete(key);
      kinds.set(name, t === "link" ? "file" : t);
    }
  }
  return false;
}

describe("oci: differential test against umoci (random layer stacks)", function () {
  this.timeout(120_000);
  before(() => requireTool("umoci"));
  after(() => cleanupTmp());

  it("regression: the parent of an entry hidden by an opaque marker still exists (no explicit dir entries)", async () => {
    const layers: Entry[][] = [[{"name": "c/d1", "content": "one\n", "mode": 2541, "uid": 0, "gid": 0}, {"name": "f1", "content": "", "mode": 420, "uid": 0, "gid": 0}, {"name": "c/", "type": "dir"}, {"name": "c/h2", "type": "link", "linkname": "f1"}, {"name": "a/", "type": "dir"}, {"name": "a/.wh..wh..opq"}, {"name": "a/b/h2", "type": "link", "linkname": "f1"}, {"name": "c/f1", "content": "", "mode": 384, "uid": 1000, "gid": 1000}, {"name": "a/f1", "content": "one\n", "mode": 493, "uid": 1000, "gid": 1000}, {"name": "a/.wh.lnk1"}, {"name": "a/", "type": "dir"}, {"name": "a/d1", "content": "one\n", "mode": 384, "uid": 0, "gid": 0}, {"name": "d1", "content": "xx", "mode": 493, "uid": 1000, "gid": 1000}], [{"name": "a/f2", "content": "", "mode": 493, "uid": 1000, "gid": 1000}, {"name": "d1/", "type": "dir", "mode": 493, "uid": 0, "gid": 0}, {"name": "h1", "type": "link", "linkname": "a/f2"}, {"name": "b/", "type": "dir", "mode": 448, "uid": 1000, "gid": 1000}, {"name": "a/f1", "content": "xx", "mode": 2541, "uid": 0, "gid": 0}, {"name": "d1", "content": "one\n", "mode": 420, "uid": 0, "gid": 0}, {"name": "c/", "type": "dir"}, {"name": "c/.wh.f1"}, {"name": "a/b/.wh..wh..opq"}], [{"name": ".wh.d1"}]];
    const layout = path.join(tmpDir("diff-"), "l");
    await writeOciLayout(layout, { t: { layers: layers.map((entries) => ({ entries })) } });
    const bundle = path.join(tmpDir("diff-umoci-"), "b");
    await run("umoci", ["unpack", "--image", `${layout}:t`, bundle]);
    const r = await buildTemplate({ source: `oci:${layout}:t`, cacheDir: tmpDir("diff-cache-") });
    const ours = await treeManifest(await gnuTarExtract(r.file));
    expect(ours["a/b"]).to.equal("dir 755 0:0");
    expect(ours).to.deep.equal(await treeManifest(path.join(bundle, "rootfs")));
  });

  it("flattened rootfs equals umoci unpack for random whiteout/opaque/replace/hardlink stacks", async () => {
    const cacheDir = tmpDir("diff-cache-");
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 1, maxLength: 10 }), { minLength: 1, maxLength: 4 }), async (layerOps) => {
        const layers = layerOps.map(toEntries);
        fc.pre(!writesThroughNonDir(layers));
        const layout = path.join(tmpDir("diff-"), "l");
        await writeOciLayout(layout, { t: { layers: layers.map((entries) => ({ entries })) } });
        const bundle = path.join(tmpDir("diff-umoci-"), "b");
        await run("umoci", ["unpack", "--image", `${layout}:t`, bundle]);
        const reference = await treeManifest(path.join(bundle, "rootfs"));
        const r = await buildTemplate({ source: `oci:${layout}:t`, cacheDir });
        const ours = await treeManifest(await gnuTarExtract(r.file));
        n++;
        expect(ours, JSON.stringify(layers)).to.deep.equal(reference);
      }),
      { numRuns: 40, seed: 20261125, endOnFailure: true },
    );
    expect(n).to.be.greaterThan(10);
  });
});
