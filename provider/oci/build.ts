/**
 * The library's entry points: resolve an image (manifests only), build a PVE template
 * (flattened rootfs .tar.gz/.tar.zst, or an OCI archive .tar), or a runtime bundle.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { RegistryCredentials } from "./auth";
import { BlobCache, removeQuietly } from "./cache";
import { OutputCompression } from "./compression";
import { OciError } from "./errors";
import { HashTap, convert } from "./convert";
import { ResolvedImage } from "./image";
import { LayerFile } from "./layer";
import { Logger, ociLogger } from "./log";
import { ImageMetadata, imageMetadata } from "./metadata";
import { ociArchiveTar, planOciArchive } from "./ociarchive";
import { Platform, formatPlatform, parsePlatform } from "./platform";
import { RegistryClient } from "./registry";
import { resolveSource } from "./resolve";
import { RuntimeOptions, resolveUser, runtimeConfig } from "./runtime";
import { ImageSource, parseSource } from "./source";
import { TlsOptions } from "./http";

/** Bumped when the conversion changes, so cached outputs of older code are not reused. */
const CONVERTER_VERSION = 1;

export interface ImageOptions {
  /** `os/arch[/variant]` or a Platform; default linux/amd64. */
  platform?: string | Platform;
  /** Registry credentials (secret; never logged). Default: the docker config. */
  credentials?: RegistryCredentials;
  /** Docker config file or directory holding `auths`. */
  dockerConfig?: string;
  tls?: TlsOptions;
  /** See RegistryOptions.plainHttp. */
  plainHttp?: boolean;
  retries?: number;
  /** Cache root (default `$XDG_CACHE_HOME/pulumi-proxmox-lxc/oci`). */
  cacheDir?: string;
  logger?: Logger;
  /** Reuse a registry client (e.g. to inspect its request counters). */
  registryClient?: RegistryClient;
}

export interface ImageInfo {
  /** Normalised source, e.g. `docker://docker.io/library/nginx:latest`. */
  source: string;
  /** Digest of the chosen single-platform manifest, as served by the source. */
  manifestDigest: string;
  /** Digest of the multi-platform index it was chosen from, if any. */
  indexDigest?: string;
  configDigest: string;
  platform: string;
  layers: Array<{ digest: string; size: number; mediaType: string }>;
  metadata: ImageMetadata;
  /** Suggested base name for files made from the image (no extension), e.g. `nginx_1.27`. */
  name: string;
}

export type BuildPhase = "resolve" | "download" | "scan" | "write" | "done";

export interface ProgressEvent {
  phase: BuildPhase;
  /** Bytes done in this phase (download: received; scan/write: layer bytes read). */
  bytesDone: number;
  bytesTotal: number;
}

export interface BuildTemplateOptions extends ImageOptions {
  source: string | ImageSource;
  /** `rootfs` (default): a flattened rootfs tarball; `oci-archive`: PVE 9.1's OCI app-container format. */
  format?: "rootfs" | "oci-archive";
  /** rootfs only: gzip or zstd; default from outFile's extension, else gzip. */
  compression?: OutputCompression;
  /** Copy the result here; without it the cached file's path is returned. */
  outFile?: string;
  onProgress?: (e: ProgressEvent) => void;
  /** Limits against hostile images. */
  maxEntries?: number;
  maxBytes?: number;
  devices?: "drop" | "keep" | "error";
  /** Convert in a worker thread (default: yes, except from TypeScript sources; see convert.ts). */
  inWorker?: boolean;
}

export interface BuildResult {
  file: string;
  size: number;
  /** sha256 of the file, hex (what PVE's upload checksum wants). */
  sha256: string;
  format: "rootfs" | "oci-archive";
  compression?: OutputCompression;
  /** The source image's manifest digest (what refresh compares). */
  manifestDigest: string;
  /** oci-archive only: the digest of the (converted) manifest inside the archive. */
  archiveManifestDigest?: string;
  configDigest: string;
  platform: string;
  metadata: ImageMetadata;
  /** Suggested template file name, e.g. `nginx_1.27.tar.gz`. */
  fileName: string;
  /** True when the output came from the cache without converting. */
  cached: boolean;
  warnings: string[];
}

function platformOf(p: string | Platform | undefined): Platform | undefined {
  return typeof p === "string" ? parsePlatform(p) : p;
}

function sourceOf(s: string | ImageSource): ImageSource {
  return typeof s === "string" ? parseSource(s) : s;
}

async function resolve(source: string | ImageSource, opts: ImageOptions): Promise<ResolvedImage> {
  return resolveSource(sourceOf(source), { ...opts, platform: platformOf(opts.platform) });
}

function info(img: ResolvedImage): ImageInfo {
  return {
    source: img.source,
    manifestDigest: img.manifestDigest,
    indexDigest: img.indexDigest,
    configDigest: img.configDigest,
    platform: formatPlatform(img.platform),
    layers: img.manifest.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
    metadata: imageMetadata(img.config),
    name: img.name,
  };
}

/** Resolves a source to its manifest/config digests and metadata. No layer is downloaded. */
export async function resolveImage(source: string | ImageSource, opts: ImageOptions = {}): Promise<ImageInfo> {
  return info(await resolve(source, opts));
}

/** Makes every layer readable on disk (downloading up to 3 at once), with progress. */
async function fetchLayers(img: ResolvedImage, onProgress?: (e: ProgressEvent) => void): Promise<LayerFile[]> {
  const layers = img.manifest.layers;
  const total = layers.reduce((s, l) => s + l.size, 0);
  let done = 0;
  const paths: string[] = new Array(layers.length);
  let next = 0;
  const worker = async () => {
    while (next < layers.length) {
      const i = next++;
      const before = done;
      paths[i] = await img.blobPath(layers[i], (n) => {
        done += n;
        onProgress?.({ phase: "download", bytesDone: done, bytesTotal: total });
      });
      // Cached or local blobs report nothing: count them as done.
      if (done === before) done += layers[i].size;
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  onProgress?.({ phase: "download", bytesDone: total, bytesTotal: total });
  const ids = img.config.rootfs?.diff_ids ?? [];
  return layers.map((l, i) => ({ digest: l.digest, diffId: ids[i], mediaType: l.mediaType, path: paths[i], size: l.size }));
}

/** Writes `chunks` to a cache temp file and moves it to `final`. */
async function writeOutput(cache: BlobCache, final: string, chunks: AsyncIterable<Buffer>): Promise<{ size: number; sha256: string }> {
  const tmp = await cache.tempPath(path.basename(final));
  const tap = new HashTap();
  try {
    const src = Readable.from(chunks, { objectMode: false, highWaterMark: 1 << 16 });
    await pipeline(src, tap, fs.createWriteStream(tmp, { flags: "wx" }));
    await cache.commit(tmp, final);
  } catch (err) {
    await removeQuietly(tmp);
    throw err;
  }
  return { size: tap.size, sha256: tap.hash.digest("hex") };
}

/** Copies the cached output to where the caller wants it (atomically there too). */
async function deliver(cached: string, outFile: string | undefined): Promise<string> {
  if (!outFile) return cached;
  const dest = path.resolve(outFile);
  await fs.promises.mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp.${process.pid}.${randomBytes(4).toString("hex")}`;
  try {
    await fs.promises.copyFile(cached, tmp, fs.constants.COPYFILE_FICLONE);
    await fs.promises.rename(tmp, dest);
  } catch (err) {
    await removeQuietly(tmp);
    throw new OciError("INVALID_OPTION", `outFile '${outFile}': cannot write: ${(err as Error).message}`);
  }
  return dest;
}

/**
 * Builds a PVE container template from an image. Outputs are cached by manifest digest
 * and format, so a second build of the same image neither downloads nor converts.
 */
export async function buildTemplate(opts: BuildTemplateOptions): Promise<BuildResult> {
  const log = ociLogger(opts.logger);
  const format = opts.format ?? "rootfs";
  if (format !== "rootfs" && format !== "oci-archive") {
    throw new OciError("INVALID_OPTION", `format '${String(format)}' is not supported (use rootfs or oci-archive)`);
  }
  if (format === "oci-archive" && opts.compression) {
    throw new OciError("INVALID_OPTION", "compression applies to format rootfs only: PVE detects OCI archives only as uncompressed .tar");
  }
  // PVE picks the decompressor from the file name, so the name must match the content.
  const outExt = opts.outFile ? /\.(tar\.gz|tar\.zst|tar)$/i.exec(opts.outFile)?.[1]?.toLowerCase() : undefined;
  const inferred = outExt === "tar.zst" ? "zstd" : outExt === "tar.gz" ? "gzip" : undefined;
  const compression = format === "rootfs" ? opts.compression ?? inferred ?? "gzip" : undefined;
  if (compression && compression !== "gzip" && compression !== "zstd") {
    throw new OciError("INVALID_OPTION", `compression '${String(compression)}' is not supported (use gzip or zstd)`);
  }
  if (opts.outFile) {
    const want = format === "oci-archive" ? "tar" : compression === "zstd" ? "tar.zst" : "tar.gz";
    if (outExt !== want) {
      throw new OciError("INVALID_OPTION", `outFile '${opts.outFile}' must end in .${want} for format ${format}${compression ? ` with ${compression}` : ""}: PVE recognises templates by their extension`);
    }
  }
  const cache = new BlobCache(opts.cacheDir);
  opts.onProgress?.({ phase: "resolve", bytesDone: 0, bytesTotal: 0 });
  const img = await resolve(opts.source, opts);
  const meta = imageMetadata(img.config);
  const ext = format === "oci-archive" ? ".tar" : compression === "zstd" ? ".tar.zst" : ".tar.gz";
  const hex = img.manifestDigest.split(":")[1];
  const devices = opts.devices ?? "drop";
  const key = `${hex}-${format}${compression ? `-${compression}` : ""}${format === "rootfs" ? `-dev_${devices}` : ""}-v${CONVERTER_VERSION}`;
  const outPath = cache.outputPath(key, ext);
  const sidecar = cache.outputPath(key, ".json");
  const base = {
    format,
    compression,
    manifestDigest: img.manifestDigest,
    configDigest: img.configDigest,
    platform: formatPlatform(img.platform),
    metadata: meta,
    fileName: `${img.name}${ext}`,
  };
  try {
    const prev = JSON.parse(await fs.promises.readFile(sidecar, "utf8")) as BuildResult;
    const st = await fs.promises.stat(outPath);
    if (st.size === prev.size && prev.sha256) {
      log.debug({ manifestDigest: img.manifestDigest, file: outPath }, "template found in cache");
      opts.onProgress?.({ phase: "done", bytesDone: st.size, bytesTotal: st.size });
      return { ...base, file: await deliver(outPath, opts.outFile), size: prev.size, sha256: prev.sha256, archiveManifestDigest: prev.archiveManifestDigest, cached: true, warnings: prev.warnings ?? [] };
    }
  } catch {
    // not cached (or the record is unreadable): build it
  }
  const layers = await fetchLayers(img, opts.onProgress);
  const started = Date.now();
  let written: { size: number; sha256: string };
  let warnings: string[] = [];
  let archiveManifestDigest: string | undefined;
  if (format === "rootfs") {
    const tmp = await cache.tempPath(path.basename(outPath));
    try {
      const r = await convert(
        { kind: "template", layers, target: tmp, compression, maxEntries: opts.maxEntries, maxBytes: opts.maxBytes, devices },
        {
          onProgress: (phase, done, total) => opts.onProgress?.({ phase, bytesDone: done, bytesTotal: total }),
          onWarning: (m) => log.debug({ manifestDigest: img.manifestDigest }, m),
        },
        opts.inWorker,
      );
      await cache.commit(tmp, outPath);
      written = r;
      warnings = r.warnings;
      log.debug({ manifestDigest: img.manifestDigest, entries: r.entries, ms: Date.now() - started }, "rootfs template written");
    } catch (err) {
      await removeQuietly(tmp);
      throw err;
    }
  } else {
    const plan = planOciArchive(img, img.name);
    archiveManifestDigest = plan.manifestDigest;
    const total = layers.reduce((s, l) => s + l.size, 0);
    let done = 0;
    written = await writeOutput(
      cache,
      outPath,
      ociArchiveTar(img, plan, layers.map((l) => l.path), (n) => {
        done += n;
        opts.onProgress?.({ phase: "write", bytesDone: done, bytesTotal: total });
      }),
    );
  }
  const result: BuildResult = { ...base, file: outPath, size: written.size, sha256: written.sha256, archiveManifestDigest, cached: false, warnings };
  await cache.writeFileAtomic(sidecar, JSON.stringify(result));
  opts.onProgress?.({ phase: "done", bytesDone: written.size, bytesTotal: written.size });
  return { ...result, file: await deliver(outPath, opts.outFile) };
}

export interface BuildBundleOptions extends ImageOptions, RuntimeOptions {
  source: string | ImageSource;
  /** Bundle directory: created; must be empty if it exists. */
  dir: string;
  onProgress?: (e: ProgressEvent) => void;
  maxEntries?: number;
  maxBytes?: number;
  /** Extract in a worker thread (default as for buildTemplate). */
  inWorker?: boolean;
}

export interface BundleResult {
  dir: string;
  configPath: string;
  rootfs: string;
  manifestDigest: string;
  configDigest: string;
  platform: string;
  metadata: ImageMetadata;
  warnings: string[];
}

/** Builds an OCI runtime bundle (config.json + rootfs/) that `runc run --bundle` accepts. */
export async function buildBundle(opts: BuildBundleOptions): Promise<BundleResult> {
  const log = ociLogger(opts.logger);
  const dir = path.resolve(opts.dir);
  const existing = await fs.promises.readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [];
    throw new OciError("INVALID_OPTION", `bundle directory '${opts.dir}': ${err.message}`);
  });
  if (existing.length) throw new OciError("INVALID_OPTION", `bundle directory '${opts.dir}' is not empty; give a new or empty directory`);
  opts.onProgress?.({ phase: "resolve", bytesDone: 0, bytesTotal: 0 });
  const img = await resolve(opts.source, opts);
  const meta = imageMetadata(img.config);
  const layers = await fetchLayers(img, opts.onProgress);
  const rootfs = path.join(dir, "rootfs");
  await fs.promises.mkdir(rootfs, { recursive: true, mode: 0o755 });
  const ex = await convert(
    { kind: "extract", layers, target: rootfs, maxEntries: opts.maxEntries, maxBytes: opts.maxBytes, devices: "drop" },
    {
      onProgress: (phase, done, total) => opts.onProgress?.({ phase, bytesDone: done, bytesTotal: total }),
      onWarning: (m) => log.debug({ manifestDigest: img.manifestDigest }, m),
    },
    opts.inWorker,
  );
  // Like Docker and PVE: volume paths and the working directory exist in the rootfs.
  for (const d of [...meta.volumes, ...(meta.workingDir ? [meta.workingDir] : [])]) {
    const rel = d.replace(/^\/+/, "");
    if (!rel || rel.split("/").includes("..")) continue;
    await mkdirInside(rootfs, rel);
  }
  const user = await resolveUser(rootfs, meta.user);
  const config = runtimeConfig(meta, user, opts);
  const configPath = path.join(dir, "config.json");
  await fs.promises.writeFile(configPath, JSON.stringify(config, null, 2));
  opts.onProgress?.({ phase: "done", bytesDone: 0, bytesTotal: 0 });
  return {
    dir,
    configPath,
    rootfs,
    manifestDigest: img.manifestDigest,
    configDigest: img.configDigest,
    platform: formatPlatform(img.platform),
    metadata: meta,
    warnings: ex.warnings,
  };
}

/** mkdir -p that refuses to pass through a symlink (the image controls the tree). */
async function mkdirInside(root: string, rel: string): Promise<void> {
  let cur = root;
  for (const part of rel.split("/").filter(Boolean)) {
    cur = path.join(cur, part);
    const st = await fs.promises.lstat(cur).catch(() => undefined);
    if (!st) await fs.promises.mkdir(cur, { mode: 0o755 });
    else if (!st.isDirectory()) return;
  }
}
