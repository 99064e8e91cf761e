import { OciError } from "./errors";
import { isDigest } from "./digest";

/**
 * A registry image reference, normalised the way Docker does it
 * (github.com/distribution/reference `ParseNormalizedNamed`):
 * `nginx` → `docker.io/library/nginx:latest`, `user/app` → `docker.io/user/app:latest`,
 * a first component with a `.` or `:` or equal to `localhost` is a registry host.
 */
export interface ImageReference {
  /** Registry as written/normalised, e.g. `docker.io`, `localhost:5000`, `ghcr.io`. */
  registry: string;
  /** Repository path inside the registry, e.g. `library/nginx`. */
  repository: string;
  tag?: string;
  digest?: string;
}

export const DOCKER_HUB = "docker.io";
/** docker.io is a name, not a host: its API lives here. */
export const DOCKER_HUB_API_HOST = "registry-1.docker.io";

const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const REPO_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const HOST_RE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;

export function parseReference(input: string): ImageReference {
  const ref = input.trim();
  if (!ref) throw new OciError("INVALID_REFERENCE", "image reference is empty (expected e.g. 'nginx:1.27' or 'ghcr.io/org/app@sha256:…')");
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) {
      throw new OciError("INVALID_REFERENCE", `image reference '${input}': '${digest}' is not a valid digest (expected sha256:<64 hex>)`);
    }
  }
  let registry = DOCKER_HUB;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (/[.:]/.test(first) || first === "localhost" || first !== first.toLowerCase()) {
      registry = first;
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) {
      throw new OciError("INVALID_REFERENCE", `image reference '${input}': invalid tag '${tag}' (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')`);
    }
  }
  if (registry === "index.docker.io") registry = DOCKER_HUB;
  if (!HOST_RE.test(registry)) {
    throw new OciError("INVALID_REFERENCE", `image reference '${input}': invalid registry host '${registry}'`);
  }
  let repository = rest;
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;
  if (!REPO_RE.test(repository)) {
    throw new OciError(
      "INVALID_REFERENCE",
      `image reference '${input}': invalid repository '${repository}' (lowercase letters, digits and separators '.', '_', '__', '-', '/')`,
    );
  }
  if (!tag && !digest) tag = "latest";
  return { registry, repository, tag, digest };
}

/** `registry/repository[:tag][@digest]`, fully qualified. */
export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
}

/** The host:port the registry API is served from. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : registry;
}

/** True for registries on this machine, where plain HTTP is accepted like Docker does. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, "").replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
