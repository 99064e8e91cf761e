/**
 * Writes a single-platform OCI archive in the shape PVE 9.1 detects as an application
 * container image (BEHAVIOR.md §7): an uncompressed tar with top-level `oci-layout` and
 * `index.json`, whose first manifest is `application/vnd.oci.image.manifest.v1+json` with
 * an `application/vnd.oci.image.config.v1+json` config and OCI layer media types.
 *
 * Docker v2 images are converted by rewriting media types only: layer and config bytes
 * are kept, so their digests (and the config's diff_ids) stay valid. The manifest is
 * re-serialised, so its digest changes; the result reports the new one.
 */
import * as fs from "node:fs";
import { DigestVerifier, digestOf } from "./digest";
import { OciError } from "./errors";
import { Descriptor, ResolvedImage } from "./image";
import { MT, ociLayerMediaType } from "./mediatypes";
import { TAR_END, TarHeader, encodeHeader, padding } from "./tar";

export interface OciArchivePlan {
  manifestBytes: Buffer;
  manifestDigest: string;
  indexBytes: Buffer;
  layers: Descriptor[];
}

export function planOciArchive(img: ResolvedImage, refName: string): OciArchivePlan {
  const layers = img.manifest.layers.map((l) => ({ mediaType: ociLayerMediaType(l.mediaType), digest: l.digest, size: l.size }));
  const manifest = {
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, digest: img.manifest.config.digest, size: img.configBytes.length },
    layers,
    ...(img.manifest.annotations ? { annotations: img.manifest.annotations } : {}),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = digestOf(manifestBytes);
  const { os, architecture, variant } = img.platform;
  const index = {
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: [
      {
        mediaType: MT.ociManifest,
        digest: manifestDigest,
        size: manifestBytes.length,
        platform: variant ? { architecture, os, variant } : { architecture, os },
        annotations: { "org.opencontainers.image.ref.name": refName },
      },
    ],
  };
  return { manifestBytes, manifestDigest, indexBytes: Buffer.from(JSON.stringify(index)), layers };
}

function fileHeader(name: string, size: number): Buffer {
  const h: TarHeader = { name, type: "file", mode: 0o644, uid: 0, gid: 0, uname: "", gname: "", size, mtime: 0, linkname: "", devmajor: 0, devminor: 0 };
  return encodeHeader(h);
}

function dirHeader(name: string): Buffer {
  return encodeHeader({ name, type: "dir", mode: 0o755, uid: 0, gid: 0, uname: "", gname: "", size: 0, mtime: 0, linkname: "", devmajor: 0, devminor: 0 });
}

function* smallFile(name: string, data: Buffer): Generator<Buffer> {
  yield fileHeader(name, data.length);
  yield data;
  const pad = padding(data.length);
  if (pad) yield Buffer.alloc(pad);
}

/** The archive as a byte stream; layer blobs are streamed from disk and re-verified. */
export async function* ociArchiveTar(img: ResolvedImage, plan: OciArchivePlan, layerPaths: string[], onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  yield* smallFile("oci-layout", Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
  yield* smallFile("index.json", plan.indexBytes);
  yield dirHeader("blobs/");
  yield dirHeader(`blobs/sha256/`);
  const written = new Set<string>();
  const blob = (d: string) => `blobs/${d.replace(":", "/")}`;
  yield* smallFile(blob(plan.manifestDigest), plan.manifestBytes);
  written.add(plan.manifestDigest);
  if (!written.has(img.configDigest)) {
    yield* smallFile(blob(img.configDigest), img.configBytes);
    written.add(img.configDigest);
  }
  for (let i = 0; i < plan.layers.length; i++) {
    const l = plan.layers[i];
    if (written.has(l.digest)) continue; // the same layer twice: one blob
    written.add(l.digest);
    const st = await fs.promises.stat(layerPaths[i]);
    if (st.size !== l.size) throw new OciError("DIGEST_MISMATCH", `layer ${l.digest}: blob is ${st.size} bytes, the manifest says ${l.size}`);
    yield fileHeader(blob(l.digest), l.size);
    const v = new DigestVerifier(l.digest);
    for await (const chunk of fs.createReadStream(layerPaths[i], { highWaterMark: 1 << 18 })) {
      v.update(chunk as Buffer);
      onBytes?.((chunk as Buffer).length);
      yield chunk as Buffer;
    }
    v.verify(`layer ${l.digest}`);
    const pad = padding(l.size);
    if (pad) yield Buffer.alloc(pad);
  }
  yield TAR_END;
}
