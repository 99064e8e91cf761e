/**
 * The image model shared by every source: a single-platform manifest, its config, and
 * where each blob can be read from. Validation here is what every consumer relies on.
 */
import { OciError } from "./errors";
import { isDigest } from "./digest";
import { MT, layerCompressionOf } from "./mediatypes";
import { Platform } from "./platform";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform & { "os.version"?: string; "os.features"?: string[] };
  urls?: string[];
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The image config (image-spec config.md); unknown fields are kept by keeping the bytes. */
export interface ImageConfigFile {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: {
    User?: string;
    ExposedPorts?: Record<string, unknown>;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Volumes?: Record<string, unknown>;
    WorkingDir?: string;
    Labels?: Record<string, string>;
    StopSignal?: string;
  };
  rootfs?: { type?: string; diff_ids?: string[] };
}

function fail(what: string, msg: string): never {
  throw new OciError("UNSUPPORTED", `${what}: ${msg}`);
}

function checkDescriptor(d: unknown, what: string): Descriptor {
  const x = d as Descriptor;
  if (!x || typeof x !== "object") fail(what, "descriptor is not an object");
  if (typeof x.mediaType !== "string") fail(what, "descriptor has no mediaType");
  if (typeof x.digest !== "string" || !isDigest(x.digest)) fail(what, `descriptor has an invalid digest '${String(x.digest)}'`);
  if (typeof x.size !== "number" || !Number.isSafeInteger(x.size) || x.size < 0) fail(what, "descriptor has an invalid size");
  return x;
}

export function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString("utf8")) as T;
  } catch {
    throw new OciError("UNSUPPORTED", `${what} is not valid JSON`);
  }
}

export function parseIndex(bytes: Buffer, what: string): ImageIndex {
  const j = parseJson<ImageIndex>(bytes, what);
  if (j.schemaVersion !== 2 || !Array.isArray(j.manifests)) fail(what, "not an image index (schemaVersion 2 with manifests[])");
  j.manifests.forEach((m, i) => checkDescriptor(m, `${what} manifests[${i}]`));
  return j;
}

export function parseManifest(bytes: Buffer, what: string): ImageManifest {
  const j = parseJson<ImageManifest & { fsLayers?: unknown }>(bytes, what);
  if (j.schemaVersion === 1 || j.fsLayers) fail(what, "Docker schema 1 manifests are not supported (re-push the image with a current client)");
  if (j.schemaVersion !== 2 || !j.config || !Array.isArray(j.layers)) fail(what, "not an image manifest (schemaVersion 2 with config and layers[])");
  checkDescriptor(j.config, `${what} config`);
  if (j.config.mediaType !== MT.ociConfig && j.config.mediaType !== MT.dockerConfig) {
    fail(what, `config media type '${j.config.mediaType}' is not an image config (is this an artifact rather than a container image?)`);
  }
  j.layers.forEach((l, i) => {
    checkDescriptor(l, `${what} layers[${i}]`);
    if (l.mediaType === MT.dockerForeignLayerGzip) fail(what, `layers[${i}] is a foreign (Windows) layer, which cannot be used for Linux containers`);
    if (layerCompressionOf(l.mediaType) === undefined) fail(what, `layers[${i}] has unsupported media type '${l.mediaType}'`);
  });
  return j;
}

export function parseConfig(bytes: Buffer, what: string, layerCount: number): ImageConfigFile {
  const j = parseJson<ImageConfigFile>(bytes, what);
  const ids = j.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.length !== layerCount) {
    fail(what, `rootfs.diff_ids has ${Array.isArray(ids) ? ids.length : "no"} entries but the manifest has ${layerCount} layers`);
  }
  ids.forEach((d, i) => {
    if (!isDigest(d)) fail(what, `rootfs.diff_ids[${i}] is not a digest`);
  });
  return j;
}

/** A resolved single-platform image: everything but the layer data. */
export interface ResolvedImage {
  /** The source string as given, normalised (e.g. `docker://docker.io/library/nginx:latest`). */
  source: string;
  /** Digest of the index the manifest was chosen from, if any. */
  indexDigest?: string;
  manifestDigest: string;
  manifestBytes: Buffer;
  manifest: ImageManifest;
  configDigest: string;
  configBytes: Buffer;
  config: ImageConfigFile;
  platform: Platform;
  /** A name for files made from this image, e.g. `nginx_1.27`. */
  name: string;
  /** Makes a blob readable on disk (downloading it into the cache if needed); returns its path. */
  blobPath(desc: Descriptor, onBytes?: (n: number) => void): Promise<string>;
}
