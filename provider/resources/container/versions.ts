/**
 * Inputs only some Proxmox VE releases accept. The client validates against the 9.1 schema
 * for every 9.x server, so a 9.0 server would be sent keys it does not know (and 8.4 has no
 * OCI keys at all); uncompressed `.tar` templates are extracted only from 9.1 on (older
 * releases fail the create with `unrecognized compression format`/`does not look like a
 * template archive`). These are found here, with the server's version, before anything
 * is sent.
 */
import type { ContainerArgs } from "./args";

export interface ServerRelease {
  major: number;
  minor: number;
  version: string;
}

const atLeast91 = (v: ServerRelease) => v.major > 9 || (v.major === 9 && v.minor >= 1);

/**
 * An uncompressed `.tar` CT template (a Container's `template`, a Template's file name) on a
 * release that cannot use it: 8.x refuses the upload (`wrong file extension`) and extracts
 * nothing but compressed templates; 9.0 may store one but only 9.1 creates from it.
 */
export function uncompressedTarProblem(fileName: string, v: ServerRelease): string | undefined {
  if (atLeast91(v) || !/\.tar$/i.test(fileName)) return undefined;
  return `an uncompressed .tar template needs Proxmox VE 9.1 or newer; the server runs ${v.version}. Use a compressed template (.tar.zst, .tar.gz, .tar.xz), or upgrade the node`;
}

export function versionProblems(a: ContainerArgs, v: ServerRelease): Array<{ field: string; message: string }> {
  if (atLeast91(v)) return [];
  const needs = (what: string) => `${what} needs Proxmox VE 9.1 or newer; the server runs ${v.version}. Remove it, or upgrade the node`;
  const out: Array<{ field: string; message: string }> = [];
  const tarProblem = a.template ? uncompressedTarProblem(a.template, v) : undefined;
  if (tarProblem) out.push({ field: "template", message: tarProblem });
  if (a.entrypoint !== undefined) out.push({ field: "entrypoint", message: needs("entrypoint (OCI application containers)") });
  if (a.env !== undefined) out.push({ field: "env", message: needs("env (OCI application containers)") });
  if (a.haManaged !== undefined) out.push({ field: "haManaged", message: needs("haManaged (ha-managed at create)") });
  (a.networks ?? []).forEach((n, i) => {
    if (n.hostManaged !== undefined) out.push({ field: `networks[${i}].hostManaged`, message: needs("hostManaged (host-managed networking)") });
  });
  return out;
}
