/**
 * A synthetic multi-layer OCI image, made locally and deterministically (seeded PRNG), that
 * looks like a real distro image to a converter:
 *
 * - 4 layers, files spread ~60/20/15/5 %, sizes skewed (most files small, a few MiB-sized),
 *   content partly compressible: ~60 % of files are word-salad text (gzip ~3x), ~40 % are
 *   random bytes (like already-compressed data or stripped binaries);
 * - layer 2 overwrites ~5 % of the base files and deletes ~5 % (`.wh.<name>`) plus whole
 *   directories; layer 3 makes a base directory opaque (`.wh..wh..opq`) and refills it;
 *   layers 1 and 3 have hardlinks and symlinks; layer 4 deletes some layer-2 files.
 *
 * Each layer is a directory tree written to disk and packed by GNU tar (--format=pax,
 * sorted, fixed mtime, numeric owner 0) and `gzip -6 -n`, the way image builders do it;
 * the result is an OCI image layout `DIR` with tag `bench`, readable as `oci:DIR:bench`.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

export interface ImageSpecOptions {
  /** Total files over all layers (whiteouts and links not counted). */
  files: number;
  /** Total file bytes over all layers (uncompressed). */
  bytes: number;
  seed?: number;
}

export interface BenchImage {
  dir: string;
  ref: string;
  layers: Array<{ path: string; size: number; tarSize: number }>;
  files: number;
  whiteouts: number;
  hardlinks: number;
  symlinks: number;
  tarBytes: number;
  blobBytes: number;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sha256File = (p: string) => createHash("sha256").update(fs.readFileSync(p)).digest("hex");

export function makeBenchImage(dir: string, o: ImageSpecOptions): BenchImage {
  const rnd = mulberry32(o.seed ?? 42);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo));
  // Content pools: 16 MiB of random bytes, 8 MiB of word salad; files are slices of them.
  const randPool = Buffer.alloc(16 * 1024 * 1024);
  for (let i = 0; i < randPool.length; i += 4) randPool.writeUInt32LE(Math.floor(rnd() * 4294967296), i);
  const vocab = Array.from({ length: 3000 }, () => Array.from({ length: int(2, 11) }, () => String.fromCharCode(97 + int(0, 26))).join(""));
  const textParts: string[] = [];
  let textLen = 0;
  while (textLen < 8 * 1024 * 1024) {
    const line = Array.from({ length: int(3, 14) }, () => vocab[Math.floor(Math.pow(rnd(), 2) * vocab.length)]).join(" ") + "\n";
    textParts.push(line);
    textLen += line.length;
  }
  const textPool = Buffer.from(textParts.join(""));

  // Skewed sizes, scaled so that they add up to o.bytes.
  const raw = Array.from({ length: o.files }, () => {
    const u = rnd();
    if (u < 0.75) return int(200, 6 * 1024);
    if (u < 0.97) return int(6 * 1024, 48 * 1024);
    if (u < 0.998) return int(48 * 1024, 512 * 1024);
    return int(512 * 1024, 4 * 1024 * 1024);
  });
  const scale = o.bytes / raw.reduce((s, n) => s + n, 0);
  const sizes = raw.map((n) => Math.max(0, Math.min(randPool.length - 1, Math.round(n * scale))));
  let next = 0;
  const content = (size: number): Buffer => {
    const pool = rnd() < 0.6 ? textPool : randPool;
    const n = Math.min(size, pool.length);
    const off = int(0, pool.length - n);
    return pool.subarray(off, off + n);
  };

  const work = path.join(dir, "work");
  const layout = path.join(dir, "layout");
  fs.mkdirSync(path.join(layout, "blobs", "sha256"), { recursive: true });
  const stats = { whiteouts: 0, hardlinks: 0, symlinks: 0 };
  const base: string[] = []; // regular files of layer 1 (relative paths)
  const layer2Files: string[] = [];
  const layerDirs = ["usr/lib", "usr/share/doc", "usr/bin", "etc", "var/lib", "opt/app", "usr/share/locale"];

  const writeFile = (root: string, rel: string) => {
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content(sizes[next++ % sizes.length]));
    if (rnd() < 0.1) fs.chmodSync(abs, 0o755);
    return rel;
  };
  const addFiles = (root: string, count: number, prefix: string, into?: string[]) => {
    for (let i = 0; i < count; i++) {
      const top = layerDirs[i % layerDirs.length];
      const rel = `${top}/${prefix}${Math.floor(i / 40)}/sub${i % 3}/f${i}.${["so", "txt", "py", "conf", "dat"][i % 5]}`;
      writeFile(root, rel);
      into?.push(rel);
    }
  };
  const link = (root: string, target: string, rel: string, kind: "hard" | "sym") => {
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    if (kind === "hard") {
      fs.linkSync(path.join(root, target), abs);
      stats.hardlinks++;
    } else {
      fs.symlinkSync(path.relative(path.dirname(rel), target) || ".", abs);
      stats.symlinks++;
    }
  };
  const whiteout = (root: string, rel: string) => {
    const abs = path.join(root, path.dirname(rel), `.wh.${path.basename(rel)}`);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, "");
    stats.whiteouts++;
  };

  const n1 = Math.round(o.files * 0.6);
  const n2 = Math.round(o.files * 0.2);
  const n3 = Math.round(o.files * 0.15);
  const n4 = o.files - n1 - n2 - n3;
  const roots = [1, 2, 3, 4].map((i) => path.join(work, `l${i}`));
  for (const r of roots) fs.mkdirSync(r, { recursive: true });

  // Layer 1: the base.
  addFiles(roots[0], n1, "pkg", base);
  for (let i = 0; i < Math.max(2, Math.round(n1 * 0.02)); i++) link(roots[0], base[int(0, base.length)], `usr/lib/hl/h${i}`, "hard");
  for (let i = 0; i < Math.max(2, Math.round(n1 * 0.03)); i++) link(roots[0], base[int(0, base.length)], `usr/lib/sl/s${i}`, "sym");
  // Layer 2: new packages, overwrites, deletions (files and whole directories).
  addFiles(roots[1], n2, "upd", layer2Files);
  const pick = (xs: string[], frac: number) => xs.filter(() => rnd() < frac);
  const deletedDirs = ["usr/share/doc/pkg1", "var/lib/pkg2"];
  const alive = base.filter((rel) => !deletedDirs.some((d) => rel.startsWith(`${d}/`)));
  const touched = pick(alive, 0.1);
  touched.forEach((rel, i) => (i % 2 ? writeFile(roots[1], rel) : whiteout(roots[1], rel)));
  for (const d of deletedDirs) whiteout(roots[1], d);
  // Layer 3: an opaque directory refilled, new files, links.
  const opaque = path.join(roots[2], "usr/share/locale/pkg0");
  fs.mkdirSync(opaque, { recursive: true });
  fs.writeFileSync(path.join(opaque, ".wh..wh..opq"), "");
  stats.whiteouts++;
  const l3: string[] = [];
  addFiles(roots[2], n3, "app", l3);
  for (let i = 0; i < 20 && l3.length; i++) writeFile(roots[2], `usr/share/locale/pkg0/new${i}.mo`);
  for (let i = 0; i < Math.max(1, Math.round(n3 * 0.02)); i++) link(roots[2], l3[int(0, l3.length)], `opt/app/hl/h${i}`, "hard");
  for (let i = 0; i < Math.max(1, Math.round(n3 * 0.02)); i++) link(roots[2], l3[int(0, l3.length)], `opt/app/sl/s${i}`, "sym");
  // Layer 4: config tweaks, deletions of layer-2 files.
  addFiles(roots[3], n4, "cfg");
  for (const rel of pick(layer2Files, 0.03)) whiteout(roots[3], rel);

  const layers: BenchImage["layers"] = [];
  const diffIds: string[] = [];
  const descs: Array<{ mediaType: string; digest: string; size: number }> = [];
  for (const [i, root] of roots.entries()) {
    const tarFile = path.join(work, `l${i + 1}.tar`);
    execFileSync("tar", ["--format=pax", "--pax-option=delete=atime,delete=ctime", "--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner", "-C", root, "-cf", tarFile, "."]);
    fs.rmSync(root, { recursive: true, force: true });
    diffIds.push(`sha256:${sha256File(tarFile)}`);
    const gz = `${tarFile}.gz`;
    execFileSync("sh", ["-c", 'gzip -6 -n -c "$1" > "$2"', "sh", tarFile, gz]);
    const tarSize = fs.statSync(tarFile).size;
    fs.rmSync(tarFile);
    const digest = sha256File(gz);
    const blob = path.join(layout, "blobs", "sha256", digest);
    fs.renameSync(gz, blob);
    const size = fs.statSync(blob).size;
    layers.push({ path: blob, size, tarSize });
    descs.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: `sha256:${digest}`, size });
  }
  fs.rmSync(work, { recursive: true, force: true });
  const putJson = (obj: unknown) => {
    const data = Buffer.from(JSON.stringify(obj));
    const digest = createHash("sha256").update(data).digest("hex");
    fs.writeFileSync(path.join(layout, "blobs", "sha256", digest), data);
    return { digest: `sha256:${digest}`, size: data.length };
  };
  const config = putJson({
    created: "2024-01-01T00:00:00Z",
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: diffIds },
    history: diffIds.map(() => ({ created: "2024-01-01T00:00:00Z", created_by: "bench" })),
  });
  const manifest = putJson({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: descs,
  });
  fs.writeFileSync(path.join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  fs.writeFileSync(
    path.join(layout, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations: { "org.opencontainers.image.ref.name": "bench" } }] }),
  );
  return {
    dir: layout,
    ref: `oci:${layout}:bench`,
    layers,
    files: o.files,
    ...stats,
    tarBytes: layers.reduce((s, l) => s + l.tarSize, 0),
    blobBytes: layers.reduce((s, l) => s + l.size, 0),
  };
}
