import * as path from "node:path";
import { OciError } from "./errors";
import { ImageReference, parseReference } from "./reference";

/** Where an image comes from, named like skopeo's transports. */
export type ImageSource =
  | { transport: "docker"; ref: ImageReference }
  | { transport: "oci"; dir: string; tag?: string }
  | { transport: "oci-archive"; file: string; tag?: string }
  | { transport: "docker-archive"; file: string; ref?: string };

const TRANSPORTS = ["docker://", "oci:", "oci-archive:", "docker-archive:"];

/** Splits `PATH[:REF]` at the first ':' as skopeo does (so a REF may contain ':'). */
function splitPathTag(s: string): [string, string | undefined] {
  const i = s.indexOf(":");
  if (i > 0) return [s.slice(0, i), s.slice(i + 1) || undefined];
  return [s, undefined];
}

/**
 * Parses `docker://REF`, bare `REF`, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` and
 * `docker-archive:FILE[:REF]`. Relative paths resolve against the current directory.
 */
export function parseSource(input: string): ImageSource {
  const s = input.trim();
  if (s.startsWith("docker://")) return { transport: "docker", ref: parseReference(s.slice("docker://".length)) };
  for (const [prefix, transport] of [["oci-archive:", "oci-archive"], ["docker-archive:", "docker-archive"], ["oci:", "oci"]] as const) {
    if (!s.startsWith(prefix)) continue;
    const [p, tag] = splitPathTag(s.slice(prefix.length));
    if (!p) throw new OciError("INVALID_SOURCE", `source '${input}': missing path after '${prefix}'`);
    const abs = path.resolve(p);
    if (transport === "oci") return { transport, dir: abs, tag };
    if (transport === "oci-archive") return { transport, file: abs, tag };
    return { transport, file: abs, ref: tag };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(s);
  if (scheme) {
    throw new OciError("INVALID_SOURCE", `source '${input}': unsupported transport '${scheme[1]}://' (use one of ${TRANSPORTS.join(", ")} or a bare image reference)`);
  }
  return { transport: "docker", ref: parseReference(s) };
}

export function describeSource(src: ImageSource): string {
  switch (src.transport) {
    case "docker":
      return `docker://${src.ref.registry}/${src.ref.repository}${src.ref.tag ? `:${src.ref.tag}` : ""}${src.ref.digest ? `@${src.ref.digest}` : ""}`;
    case "oci":
      return `oci:${src.dir}${src.tag ? `:${src.tag}` : ""}`;
    case "oci-archive":
      return `oci-archive:${src.file}${src.tag ? `:${src.tag}` : ""}`;
    case "docker-archive":
      return `docker-archive:${src.file}${src.ref ? `:${src.ref}` : ""}`;
  }
}
