/**
 * Reading an OCI image-layout tar as pve-container does on create (BEHAVIOR.md §7):
 * detection (`oci-layout`, `index.json`, `blobs/` at top level of an uncompressed `.tar`),
 * the first OCI manifest of index.json, its config (Entrypoint, Cmd, Env, WorkingDir,
 * User, StopSignal) and the ostype from `/etc/os-release` found in the layers.
 */
import * as fs from "node:fs";
import * as zlib from "node:zlib";
import { readTar } from "../../tarball";
import { decompress as zstdDecompress } from "fzstd";

const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const CONFIG = "application/vnd.oci.image.config.v1+json";
const MAX_BLOB = 64 * 1024 * 1024;

export interface OciImage {
  entrypoint?: string[];
  env: string[];
  workingDir?: string;
  user?: string;
  stopSignal?: string;
  /** ID from /etc/os-release, or undefined when the file is absent. */
  osReleaseId?: string;
  osReleaseIdLike?: string;
}

async function readTarEntries(buf: Buffer, want: (name: string) => boolean): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of readTar(buf, (n) => want(n))) if (e.data && e.size <= MAX_BLOB) out.set(e.name, e.data);
  return out;
}

/** Top-level names of a tar (for OCI detection). */
export async function isOciArchive(file: string): Promise<boolean> {
  // `archive_is_oci_format` matches `\.tar$` case-sensitively: `x.TAR` is a plain rootfs tarball.
  if (!/\.tar$/.test(file)) return false;
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return false;
  }
  let names: Set<string>;
  try {
    names = new Set(readTar(buf).map((e) => e.name));
  } catch {
    return false;
  }
  return names.has("oci-layout") && names.has("index.json") && [...names].some((n) => n.startsWith("blobs/"));
}

function decompressLayer(mediaType: string, data: Buffer): Buffer {
  if (/\+gzip$/.test(mediaType) || (data[0] === 0x1f && data[1] === 0x8b)) return zlib.gunzipSync(data);
  if (/\+zstd$/.test(mediaType)) return Buffer.from(zstdDecompress(data));
  return data;
}

export async function readOciImage(file: string): Promise<OciImage> {
  const buf = fs.readFileSync(file);
  const files = await readTarEntries(buf, (n) => n === "index.json" || n.startsWith("blobs/"));
  const blob = (digest: string) => {
    const [alg, hex] = digest.split(":");
    const b = files.get(`blobs/${alg}/${hex}`);
    if (!b) throw new Error(`Error while parsing OCI image: blob ${digest} is missing`);
    return b;
  };
  const index = JSON.parse(files.get("index.json")?.toString("utf8") ?? "{}");
  const desc = (index.manifests ?? []).find((m: { mediaType?: string }) => m.mediaType === MANIFEST);
  if (!desc) throw new Error("Error while parsing OCI image: Unsupported CPU architecture");
  const manifest = JSON.parse(blob(desc.digest).toString("utf8"));
  if (manifest.config?.mediaType !== CONFIG) throw new Error("Error while parsing OCI image: Wrong media type");
  const config = JSON.parse(blob(manifest.config.digest).toString("utf8"));
  const c = config.config ?? {};
  for (const [k, v] of Object.entries({ Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir })) {
    const vals = Array.isArray(v) ? v : v === undefined ? [] : [v];
    if (vals.some((s) => /[\x00-\x08\x0a-\x1f\x7f]/.test(String(s)))) throw new Error(`OCI config value for '${k}' contains forbidden control characters!`);
  }
  const img: OciImage = {
    entrypoint: [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])],
    env: c.Env ?? [],
    workingDir: c.WorkingDir || undefined,
    user: c.User || undefined,
    stopSignal: c.StopSignal || undefined,
  };
  // os-release: the last layer that has it (or deletes it via a whiteout) wins.
  let osRelease: string | undefined;
  for (const layer of manifest.layers ?? []) {
    let data: Buffer;
    try {
      data = decompressLayer(layer.mediaType ?? "", blob(layer.digest));
    } catch (e) {
      throw new Error(`Error while extracting OCI image: ${(e as Error).message}`);
    }
    const entries = await readTarEntries(data, (n) => /^(usr\/lib|etc)\/(os-release|\.wh\.os-release)$/.test(n));
    if (entries.has("etc/.wh.os-release")) osRelease = undefined;
    const f = entries.get("etc/os-release") ?? entries.get("usr/lib/os-release");
    if (f) osRelease = f.toString("utf8");
  }
  if (osRelease !== undefined) {
    const field = (k: string) => new RegExp(`^${k}=("?)([^"\\n]*)\\1$`, "m").exec(osRelease!)?.[2];
    img.osReleaseId = field("ID") ?? "";
    img.osReleaseIdLike = field("ID_LIKE");
  }
  return img;
}

/** PVE::Cmd `to_string` quoting: the one implementation shared with the provider. */
export { shellJoin } from "../../../provider/proxmox/shellQuote";
