/**
 * Template: a CT template volume (`<storage>:vztmpl/<file>`) on a node, from exactly one of
 *   - `url`: the node downloads it (download-url; give `checksum` to have it verified),
 *   - `appliance`: a template file or package name from the node's appliance index (`pveam available`),
 *   - `path`: a local file, streamed up with constant memory and a sha256 the server verifies.
 *
 * A changed source, checksum, node, storage or fileName — or, for `path`, changed file
 * content — replaces the volume. Use the resource as a Container's `template`.
 */
import * as pulumi from "@pulumi/pulumi";
import { ProxmoxResource } from "./resource";

type In<T> = pulumi.Input<T>;

export interface TemplateArgs {
  node: In<string>;
  /** A storage that accepts CT templates (content `vztmpl`). Default "local". */
  storage?: In<string>;
  /** http(s) URL the node downloads from. */
  url?: In<string>;
  /** Template file name or package name from the node's appliance index, e.g. "debian-12-standard". */
  appliance?: In<string>;
  /** Local file to upload (.tar, .tar.gz, .tar.xz, .tar.zst or .tar.bz2; not .tgz). */
  path?: In<string>;
  /** Hex digest of the file; verified by Proxmox (url) or locally before upload (path). */
  checksum?: In<string>;
  /** Required with `checksum` for url; default sha256 for path. */
  checksumAlgorithm?: In<"md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512">;
  /** Name on the storage (default: from the url or path). */
  fileName?: In<string>;
  /** When the volume already exists at create: "fail" (default), "adopt" it as is, or "overwrite" it. */
  existing?: In<"fail" | "adopt" | "overwrite">;
  /** url over https: check the server's certificate (Proxmox default true). */
  verifyCertificates?: In<boolean>;
  /** Seconds. Pulumi's customTimeouts do not reach dynamic providers, so they are inputs here. */
  timeouts?: In<{ create?: In<number>; delete?: In<number> }>;
}

export class Template extends ProxmoxResource {
  /** `<storage>:vztmpl/<file>`: pass it (or this resource) as a Container's `template`. */
  declare public readonly volid: pulumi.Output<string>;
  /** Bytes, as the storage reports them. */
  declare public readonly size: pulumi.Output<number>;
  /** tar, tgz, txz, tzst or tbz2. */
  declare public readonly format: pulumi.Output<string>;
  /** path: sha256 of the uploaded file; url: the given checksum; appliance: the index's sha512. */
  declare public readonly checksum: pulumi.Output<string | undefined>;
  declare public readonly checksumAlgorithm: pulumi.Output<string | undefined>;
  declare public readonly node: pulumi.Output<string>;
  declare public readonly storage: pulumi.Output<string>;

  constructor(name: string, args: TemplateArgs, opts?: pulumi.CustomResourceOptions) {
    const props: Record<string, unknown> = { ...args, resourceName: name };
    for (const k of ["volid", "size", "format", "checksum", "checksumAlgorithm", "createdSize", "storage"]) if (props[k] === undefined) props[k] = undefined;
    super("Template", name, props, opts);
  }
}
