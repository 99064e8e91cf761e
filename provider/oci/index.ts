/**
 * OCI image library: sources (docker://, oci:, oci-archive:, docker-archive:), a registry
 * client, layer flattening into PVE rootfs templates, PVE 9.1 OCI archives, runtime
 * bundles, and a content-addressed cache. The OciImage resource uses `resolveImage` on
 * refresh and `buildTemplate` on create/update.
 */
export { resolveImage, buildTemplate, buildBundle } from "./build";
export type { ImageOptions, ImageInfo, BuildTemplateOptions, BuildResult, BuildBundleOptions, BundleResult, ProgressEvent, BuildPhase } from "./build";
export type { RuntimeOptions } from "./runtime";
export type { ImageMetadata } from "./metadata";
export type { RegistryCredentials } from "./auth";
export type { TlsOptions } from "./http";
export { OciError } from "./errors";
export type { OciErrorCode } from "./errors";
export { parseSource, describeSource } from "./source";
export type { ImageSource } from "./source";
export { parseReference, formatReference } from "./reference";
export type { ImageReference } from "./reference";
export { parsePlatform, formatPlatform, DEFAULT_PLATFORM } from "./platform";
export type { Platform } from "./platform";
export { defaultCacheDir } from "./cache";
