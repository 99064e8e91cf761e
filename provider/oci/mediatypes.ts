/** Media types from the OCI image-spec and the Docker image manifest v2 schema 2. */
export const MT = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayerNondistTar: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  ociLayerNondistGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociLayerNondistZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestV1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerManifestV1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerTar: "application/vnd.docker.image.rootfs.diff.tar",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

/** What a registry is asked for when resolving a tag: every index and manifest type we read. */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].join(", ");

export type LayerCompression = "none" | "gzip" | "zstd";

/** The layer's compression as its media type declares it, or undefined for a non-layer type. */
export function layerCompressionOf(mediaType: string): LayerCompression | undefined {
  switch (mediaType) {
    case MT.ociLayerTar:
    case MT.ociLayerNondistTar:
    case MT.dockerLayerTar:
      return "none";
    case MT.ociLayerGzip:
    case MT.ociLayerNondistGzip:
    case MT.dockerLayerGzip:
      return "gzip";
    case MT.ociLayerZstd:
    case MT.ociLayerNondistZstd:
      return "zstd";
    default:
      return undefined;
  }
}

/**
 * The OCI layer media type for a layer, as PVE 9.1 requires in an OCI archive (it skips
 * Docker types, which then fail as "Unknown layer digest"). Foreign (Windows) layers have
 * no OCI equivalent that PVE handles and are refused by the caller before this.
 */
export function ociLayerMediaType(mediaType: string): string {
  const c = layerCompressionOf(mediaType);
  if (c === undefined) throw new Error(`not a layer media type: ${mediaType}`);
  if (mediaType.includes("nondistributable")) return mediaType;
  return c === "none" ? MT.ociLayerTar : c === "gzip" ? MT.ociLayerGzip : MT.ociLayerZstd;
}

export function isIndexType(mt: string | undefined): boolean {
  return mt === MT.ociIndex || mt === MT.dockerList;
}

export function isManifestType(mt: string | undefined): boolean {
  return mt === MT.ociManifest || mt === MT.dockerManifest;
}
