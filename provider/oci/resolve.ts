/**
 * Resolving a source to a single-platform image (manifest + config) for every transport.
 * Registry resolution reads only manifests and the (small) config, so it is cheap enough
 * for a refresh to notice a tag moving to a new digest.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { BlobCache, removeQuietly } from "./cache";
import { DigestVerifier, digestOf } from "./digest";
import { OciError } from "./errors";
import { Descriptor, ImageConfigFile, ResolvedImage, parseConfig, parseIndex, parseJson, parseManifest } from "./image";
import { Logger, ociLogger } from "./log";
import { MT, isIndexType, isManifestType } from "./mediatypes";
import { DEFAULT_PLATFORM, Platform, formatPlatform, selectPlatform } from "./platform";
import { RegistryClient, RegistryOptions } from "./registry";
import { ImageReference } from "./reference";
import { ImageSource, describeSource } from "./source";
import { readTar } from "./tar";

export interface ResolveOptions extends Omit<RegistryOptions, "logger"> {
  /** Platform to select from a multi-platform index (default linux/amd64). */
  platform?: Platform;
  /** Cache directory (default: see defaultCacheDir()). */
  cacheDir?: string;
  logger?: Logger;
  /** An existing client to reuse (tests count its requests). */
  registryClient?: RegistryClient;
}

/** Readable names for files: what PVE's oci-registry-pull would call them. */
export function fileNameFor(base: string, tag?: string): string {
  const raw = tag ? `${base}_${tag}` : base;
  return raw.replace(/[^A-Za-z0-9_.-]/g, "_");
}

interface ManifestSource {
  /** Reads a manifest/index/config blob (small) by descriptor. */
  read(desc: Descriptor, what: string): Promise<Buffer>;
}

async function readVerified(file: string, digest: string, what: string, limit = 16 << 20): Promise<Buffer> {
  let data: Buffer;
  try {
    const st = await fs.promises.stat(file);
    if (st.size > limit) throw new OciError("UNSUPPORTED", `${what} is ${st.size} bytes, more than the ${limit} allowed for JSON metadata`);
    data = await fs.promises.readFile(file);
  } catch (err) {
    if (err instanceof OciError) throw err;
    throw new OciError("NOT_FOUND", `${what}: blob ${digest} is missing (${(err as Error).message})`);
  }
  const v = new DigestVerifier(digest);
  v.update(data);
  v.verify(what);
  return data;
}

/**
 * From an index or manifest descriptor to a manifest for `platform`, then its config.
 * A manifest whose config declares another os/architecture is refused.
 */
async function resolveManifest(
  top: { bytes: Buffer; digest: string; mediaType: string },
  src: ManifestSource,
  platform: Platform,
  what: string,
): Promise<{ indexDigest?: string; manifestDigest: string; manifestBytes: Buffer; configBytes: Buffer; config: ImageConfigFile; manifest: ReturnType<typeof parseManifest> }> {
  let indexDigest: string | undefined;
  let cur = top;
  for (let depth = 0; isIndexType(cur.mediaType) || (!cur.mediaType && parseJson<{ manifests?: unknown }>(cur.bytes, what).manifests); depth++) {
    if (depth > 3) throw new OciError("UNSUPPORTED", `${what}: indexes nested too deeply`);
    const index = parseIndex(cur.bytes, `${what} index ${cur.digest}`);
    indexDigest ??= cur.digest;
    const images = index.manifests.filter((m) => isManifestType(m.mediaType) || isIndexType(m.mediaType));
    const chosen = selectPlatform(images, platform) ?? (images.length === 1 && !images[0].platform ? images[0] : undefined);
    if (!chosen) {
      const have = images.map((m) => (m.platform ? formatPlatform(m.platform) : "unspecified")).filter((p) => p !== "unknown/unknown");
      throw new OciError("PLATFORM_NOT_FOUND", `${what} has no image for platform ${formatPlatform(platform)} (available: ${have.join(", ") || "none"}); choose one with the platform option`);
    }
    cur = { bytes: await src.read(chosen, `${what} manifest ${chosen.digest}`), digest: chosen.digest, mediaType: chosen.mediaType };
  }
  if (cur.mediaType === MT.dockerManifestV1Signed || cur.mediaType === MT.dockerManifestV1) {
    throw new OciError("UNSUPPORTED", `${what}: Docker schema 1 manifests are not supported (re-push the image with a current client)`);
  }
  const manifest = parseManifest(cur.bytes, `${what} manifest ${cur.digest}`);
  const configBytes = await src.read(manifest.config, `${what} config ${manifest.config.digest}`);
  const config = parseConfig(configBytes, `${what} config ${manifest.config.digest}`, manifest.layers.length);
  if (config.architecture && (config.architecture !== platform.architecture || (config.os && config.os !== platform.os))) {
    throw new OciError(
      "PLATFORM_NOT_FOUND",
      `${what} is for ${config.os ?? "?"}/${config.architecture}, not ${formatPlatform(platform)}; set the platform option to ${config.os ?? "linux"}/${config.architecture} if that is intended`,
    );
  }
  return { indexDigest, manifestDigest: cur.digest, manifestBytes: cur.bytes, manifest, configBytes, config };
}

export async function resolveSource(source: ImageSource, opts: ResolveOptions = {}): Promise<ResolvedImage> {
  const platform = opts.platform ?? DEFAULT_PLATFORM;
  const cache = new BlobCache(opts.cacheDir);
  const log = ociLogger(opts.logger);
  const what = describeSource(source);
  log.debug({ source: what, platform: formatPlatform(platform) }, "resolving image");
  switch (source.transport) {
    case "docker":
      return resolveRegistry(source.ref, opts, platform, cache, what);
    case "oci":
      return resolveLayout(source.dir, source.tag, platform, what, (d) => path.join(source.dir, "blobs", ...d.digest.split(":")), undefined);
    case "oci-archive": {
      const { indexBytes } = await importOciArchive(source.file, cache, what);
      return resolveLayout(source.file, source.tag, platform, what, (d) => cache.blobPath(d.digest), indexBytes);
    }
    case "docker-archive":
      return resolveDockerArchive(source.file, source.ref, platform, cache, what);
  }
}

async function resolveRegistry(ref: ImageReference, opts: ResolveOptions, platform: Platform, cache: BlobCache, what: string): Promise<ResolvedImage> {
  const client = opts.registryClient ?? new RegistryClient(ref.registry, { ...opts, logger: opts.logger });
  const top = await client.getManifest(ref.repository, ref.digest ?? ref.tag!);
  const src: ManifestSource = {
    async read(desc, w) {
      if (isIndexType(desc.mediaType) || isManifestType(desc.mediaType)) {
        const m = await client.getManifest(ref.repository, desc.digest);
        return m.bytes;
      }
      // The config: a blob, cached like layers.
      const p = (await cache.hasBlob(desc.digest)) ? cache.blobPath(desc.digest) : await client.downloadBlob(ref.repository, desc.digest, cache);
      return readVerified(p, desc.digest, w);
    },
  };
  const r = await resolveManifest(top, src, platform, what);
  const base = ref.repository.slice(ref.repository.lastIndexOf("/") + 1);
  return {
    source: what,
    ...r,
    configDigest: r.manifest.config.digest,
    platform,
    name: fileNameFor(base, ref.tag ?? ref.digest!.slice(7, 19)),
    async blobPath(desc, onBytes) {
      if (await cache.hasBlob(desc.digest)) return cache.blobPath(desc.digest);
      return client.downloadBlob(ref.repository, desc.digest, cache, onBytes);
    },
  };
}

/** An OCI image layout (a directory, or an archive already imported into the cache). */
async function resolveLayout(
  location: string,
  tag: string | undefined,
  platform: Platform,
  what: string,
  blobFile: (d: Descriptor) => string,
  indexBytes: Buffer | undefined,
): Promise<ResolvedImage> {
  if (!indexBytes) {
    try {
      await fs.promises.access(path.join(location, "oci-layout"));
      indexBytes = await fs.promises.readFile(path.join(location, "index.json"));
    } catch {
      throw new OciError("NOT_FOUND", `${what}: '${location}' is not an OCI image layout (needs oci-layout and index.json)`);
    }
  }
  const index = parseIndex(indexBytes, `${what} index.json`);
  const REF = "org.opencontainers.image.ref.name";
  let entries = index.manifests;
  if (tag) {
    entries = entries.filter((m) => m.annotations?.[REF] === tag);
    if (!entries.length) {
      const tags = index.manifests.map((m) => m.annotations?.[REF]).filter(Boolean);
      throw new OciError("NOT_FOUND", `${what}: no image tagged '${tag}' (tags: ${tags.join(", ") || "none"})`);
    }
  }
  const src: ManifestSource = { read: (d, w) => readVerified(blobFile(d), d.digest, w) };
  let top: { bytes: Buffer; digest: string; mediaType: string };
  if (entries.length === 1) {
    const d = entries[0];
    top = { bytes: await src.read(d, `${what} ${d.digest}`), digest: d.digest, mediaType: d.mediaType };
  } else {
    // Several entries without a tag: treat index.json itself as the index (platforms).
    if (!tag && entries.some((m) => m.annotations?.[REF]) && !entries.some((m) => m.platform)) {
      const tags = entries.map((m) => m.annotations?.[REF]).filter(Boolean);
      throw new OciError("INVALID_SOURCE", `${what} holds several images; add ':TAG' to choose one (tags: ${tags.join(", ")})`);
    }
    top = { bytes: Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: entries })), digest: digestOf(indexBytes), mediaType: MT.ociIndex };
  }
  const r = await resolveManifest(top, src, platform, what);
  const base = path.basename(location).replace(/\.(tar|oci)$/, "");
  return {
    source: what,
    ...r,
    configDigest: r.manifest.config.digest,
    platform,
    name: fileNameFor(base, tag),
    async blobPath(desc) {
      return blobFile(desc);
    },
  };
}

/** A read stream on a local archive, or NOT_FOUND naming the source when it cannot be read. */
async function openArchive(file: string, what: string): Promise<fs.ReadStream> {
  try {
    await fs.promises.access(file);
    return fs.createReadStream(file, { highWaterMark: 1 << 18 });
  } catch (err) {
    throw new OciError("NOT_FOUND", `${what}: cannot read '${file}': ${(err as Error).message}`);
  }
}

/**
 * Streams an oci-archive once: blobs go into the cache (verified; already cached ones are
 * skipped), index.json is kept. The archive is never unpacked elsewhere.
 */
async function importOciArchive(file: string, cache: BlobCache, what: string): Promise<{ indexBytes: Buffer }> {
  let indexBytes: Buffer | undefined;
  let sawLayout = false;
  const input = await openArchive(file, what);
  for await (const e of readTar(input)) {
    const name = e.header.name.replace(/^\.?\//, "");
    if (e.header.type !== "file") continue;
    if (name === "index.json") indexBytes = await collect(e.body(), 16 << 20, `${what} index.json`);
    else if (name === "oci-layout") {
      sawLayout = true;
      await collect(e.body(), 1 << 16, `${what} oci-layout`);
    } else {
      const m = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/.exec(name);
      if (!m) continue;
      const digest = `${m[1]}:${m[2]}`;
      if (await cache.hasBlob(digest)) continue;
      await writeBlob(e.body(), digest, cache, `${what} ${name}`);
    }
  }
  if (!sawLayout || !indexBytes) throw new OciError("INVALID_SOURCE", `${what}: not an OCI archive (needs top-level oci-layout and index.json)`);
  return { indexBytes };
}

async function collect(body: AsyncIterable<Buffer>, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > limit) throw new OciError("UNSUPPORTED", `${what} is larger than ${limit} bytes`);
    parts.push(Buffer.from(c));
  }
  return Buffer.concat(parts);
}

/** Body → cache blob, verified against `digest` (or hashed when digest is undefined). */
async function writeBlob(body: AsyncIterable<Buffer>, digest: string | undefined, cache: BlobCache, what: string): Promise<{ digest: string; size: number }> {
  const tmp = await cache.tempPath(digest ?? "import");
  const hash = createHash(digest?.startsWith("sha512:") ? "sha512" : "sha256");
  let size = 0;
  const out = fs.createWriteStream(tmp, { flags: "wx" });
  try {
    for await (const c of body) {
      hash.update(c);
      size += c.length;
      if (!out.write(c)) await new Promise<void>((r) => out.once("drain", r));
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const actual = `${digest?.startsWith("sha512:") ? "sha512" : "sha256"}:${hash.digest("hex")}`;
    if (digest && actual !== digest) throw new OciError("DIGEST_MISMATCH", `${what}: content digest ${actual} does not match its name ${digest}`);
    await cache.commit(tmp, cache.blobPath(actual));
    return { digest: actual, size };
  } catch (err) {
    out.destroy();
    await removeQuietly(tmp);
    throw err;
  }
}

/**
 * `docker save` archives: manifest.json lists Config and Layers by file name. Files are
 * imported into the cache by content digest and an OCI manifest is synthesised, so the
 * rest of the pipeline (and the cache keys) see a normal image.
 */
async function resolveDockerArchive(file: string, refWanted: string | undefined, platform: Platform, cache: BlobCache, what: string): Promise<ResolvedImage> {
  const files = new Map<string, { digest: string; size: number }>();
  let manifestJson: Buffer | undefined;
  const input = await openArchive(file, what);
  for await (const e of readTar(input)) {
    if (e.header.type !== "file") continue;
    const name = e.header.name.replace(/^\.?\//, "");
    if (name === "manifest.json") {
      manifestJson = await collect(e.body(), 4 << 20, `${what} manifest.json`);
      continue;
    }
    if (name === "repositories" || name.endsWith("/json") || name.endsWith("/VERSION")) continue;
    files.set(name, await writeBlob(e.body(), undefined, cache, `${what} ${name}`));
  }
  if (!manifestJson) throw new OciError("INVALID_SOURCE", `${what}: not a docker-archive (no manifest.json)`);
  const list = parseJson<Array<{ Config: string; RepoTags?: string[]; Layers: string[] }>>(manifestJson, `${what} manifest.json`);
  if (!Array.isArray(list) || !list.length) throw new OciError("INVALID_SOURCE", `${what}: manifest.json lists no images`);
  let entry = list[0];
  if (refWanted) {
    const found = list.find((m) => m.RepoTags?.some((t) => t === refWanted || t.endsWith(`/${refWanted}`)));
    if (!found) throw new OciError("NOT_FOUND", `${what}: no image tagged '${refWanted}' (tags: ${list.flatMap((m) => m.RepoTags ?? []).join(", ") || "none"})`);
    entry = found;
  } else if (list.length > 1) {
    throw new OciError("INVALID_SOURCE", `${what} holds ${list.length} images; add ':REPO:TAG' to choose one (tags: ${list.flatMap((m) => m.RepoTags ?? []).join(", ")})`);
  }
  const lookup = (n: string, role: string) => {
    const f = files.get(n);
    if (!f) throw new OciError("INVALID_SOURCE", `${what}: ${role} '${n}' listed in manifest.json is missing`);
    return f;
  };
  const cfg = lookup(entry.Config, "config");
  const layers: Descriptor[] = [];
  for (const l of entry.Layers) {
    const f = lookup(l, "layer");
    const head = Buffer.alloc(4);
    const fh = await fs.promises.open(cache.blobPath(f.digest), "r");
    await fh.read(head, 0, 4, 0).finally(() => fh.close());
    const gz = head[0] === 0x1f && head[1] === 0x8b;
    const zst = head.readUInt32LE(0) === 0xfd2fb528;
    layers.push({ mediaType: gz ? MT.ociLayerGzip : zst ? MT.ociLayerZstd : MT.ociLayerTar, digest: f.digest, size: f.size });
  }
  const manifestBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: { mediaType: MT.ociConfig, digest: cfg.digest, size: cfg.size }, layers }));
  const src: ManifestSource = { read: (d, w) => readVerified(cache.blobPath(d.digest), d.digest, w) };
  const r = await resolveManifest({ bytes: manifestBytes, digest: digestOf(manifestBytes), mediaType: MT.ociManifest }, src, platform, what);
  const tag = entry.RepoTags?.[0];
  const base = tag ? tag.slice(tag.lastIndexOf("/") + 1).replace(":", "_") : path.basename(file).replace(/\.tar$/, "");
  return {
    source: what,
    ...r,
    configDigest: r.manifest.config.digest,
    platform,
    name: fileNameFor(base),
    async blobPath(desc) {
      return cache.blobPath(desc.digest);
    },
  };
}
