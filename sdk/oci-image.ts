/**
 * OciImage: an OCI/Docker image as a CT template volume, ready for a Container.
 *
 * `mode: "server"` lets Proxmox VE 9.1+ pull it (oci-registry-pull; public registries,
 * no credentials); `"client"` pulls, converts and uploads it from the machine running
 * Pulumi (registry credentials, any PVE version); `"auto"` (default) picks server when it
 * can. Pass the resource as a Container's `template`: the image's entrypoint and env come
 * with it (explicit Container inputs win). See docs/oci-image.md.
 */
import * as pulumi from "@pulumi/pulumi";
import { ProxmoxResource } from "./resource";

type In<T> = pulumi.Input<T>;

export interface OciImageArgs {
  /** Node whose storage receives the template. Changing it replaces the template. */
  node: In<string>;
  /** Storage with `vztmpl` content. Default "local". Changing it replaces the template. */
  storage?: In<string>;
  /** `docker://REF` or `REF` (`nginx` → docker.io/library/nginx:latest), `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`. */
  source: In<string>;
  /** `os/arch[/variant]`; default linux/amd64. */
  platform?: In<string>;
  /** Registry credentials (client mode). Stored as a secret. */
  credentials?: In<{ username: In<string>; password: In<string> }>;
  /** A docker config.json (or its folder) with registry credentials. */
  dockerConfig?: In<string>;
  /** Skip registry TLS verification / allow plain HTTP (test registries only). */
  insecureRegistry?: In<boolean>;
  /** PEM CA certificates for the registry. */
  registryCaCert?: In<string>;
  /** File name on the storage (default from the image reference). */
  fileName?: In<string>;
  mode?: In<"server" | "client" | "auto">;
  /** Client mode: "oci-archive" (default on PVE 9.1+, an app container template) or "rootfs" (default on PVE 8). */
  format?: In<"oci-archive" | "rootfs">;
  /** rootfs format: "gzip" or "zstd"; default: from fileName's extension, else "zstd" (PVE 7+ reads .tar.zst; "gzip" when this machine cannot write zstd). */
  compression?: In<"gzip" | "zstd">;
  /** Seconds. */
  timeouts?: In<{ create?: In<number>; delete?: In<number> }>;
}

export class OciImage extends ProxmoxResource {
  /** The template volume ID, e.g. `local:vztmpl/nginx_1.27.tar`. */
  declare public readonly volid: pulumi.Output<string>;
  declare public readonly size: pulumi.Output<number>;
  /** The manifest digest the template was made from. */
  declare public readonly manifestDigest: pulumi.Output<string | undefined>;
  /** What the source pointed at on the last refresh. */
  declare public readonly latestDigest: pulumi.Output<string | undefined>;
  declare public readonly resolvedMode: pulumi.Output<"server" | "client">;
  declare public readonly resolvedFormat: pulumi.Output<"oci-archive" | "rootfs">;
  declare public readonly imageConfig: pulumi.Output<{ entrypoint: string[]; cmd: string[]; env: string[]; workdir?: string; user?: string; stopSignal?: string }>;
  /** Entrypoint + Cmd as Proxmox stores it (PVE 9.1+ app containers). */
  declare public readonly entrypoint: pulumi.Output<string | undefined>;
  declare public readonly env: pulumi.Output<Record<string, string> | undefined>;
  declare public readonly workdir: pulumi.Output<string | undefined>;
  declare public readonly user: pulumi.Output<string | undefined>;

  constructor(name: string, args: OciImageArgs, opts?: pulumi.CustomResourceOptions) {
    const props: Record<string, unknown> = {
      ...args,
      // Secret from the start, so neither inputs nor outputs hold it in plain text.
      credentials: args.credentials === undefined ? undefined : pulumi.secret(args.credentials),
      resourceName: name,
    };
    for (const k of ["volid", "size", "manifestDigest", "latestDigest", "resolvedMode", "resolvedFormat", "imageConfig", "entrypoint", "env", "workdir", "user"]) props[k] = undefined;
    super("OciImage", name, props, opts, { secretOutputs: ["credentials"] });
  }
}
