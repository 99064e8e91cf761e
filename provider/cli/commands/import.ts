/**
 * `pve-lxc import <node>/<vmid>`: print the TypeScript declaration of an existing CT, as a
 * `Container` with `adopt: true`, so a user can paste it into a program and take the CT
 * under management without recreating it (what `pulumi import` cannot do for dynamic
 * providers). Connection settings come from the PROXMOX_VE_* environment variables, or
 * from a sandbox connection file.
 */
import { parseArgs } from "node:util";
import * as fs from "node:fs";
import type { CliCommand } from "../main";
import { PveClient } from "../../proxmox/client";
import { fromPveConfig } from "../../resources/container/pveConfig";
import { stripUndefined } from "../../resources/container/pveConfig";

const HELP = `Usage: pve-lxc import <node>/<vmid> [--name NAME] [--connection-file FILE]

Prints a TypeScript declaration for an existing container, as a Container with
adopt: true. Paste it into your Pulumi program; the next \`pulumi up\` takes the
container under management and changes nothing that the declaration matches.

Connection: PROXMOX_VE_ENDPOINT with PROXMOX_VE_API_TOKEN (or PROXMOX_VE_USERNAME and
PROXMOX_VE_PASSWORD), PROXMOX_VE_TLS_FINGERPRINT / PROXMOX_VE_CA_CERT / PROXMOX_VE_INSECURE;
or --connection-file FILE written by \`pve-lxc sandbox --connection-file\`.`;

/** A TypeScript object literal, keys unquoted where possible, two-space indentation. */
export function toTs(value: unknown, indent = ""): string {
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => `${inner}${toTs(v, inner)},`).join("\n")}\n${indent}]`;
  }
  if (value && typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (!entries.length) return "{}";
    const key = (k: string) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k));
    return `{\n${entries.map(([k, v]) => `${inner}${key(k)}: ${toTs(v, inner)},`).join("\n")}\n${indent}}`;
  }
  return JSON.stringify(value);
}

export async function declarationFor(client: PveClient, node: string, vmid: number, name: string): Promise<string> {
  const cfg = await client.lxc.getConfig(node, vmid, { current: true });
  const status = await client.lxc.status(node, vmid);
  const observed = fromPveConfig(cfg);
  const args = stripUndefined({
    node,
    vmid,
    adopt: true,
    ...observed.args,
    started: status.status === "running",
  });
  const ident = name.replace(/[^A-Za-z0-9_$]/g, "_").replace(/^(\d)/, "_$1");
  return [
    `import { Container } from "pulumi-proxmox-lxc";`,
    ``,
    `// Adopted from ${node}/${vmid}. Keep adopt: true; the first \`pulumi up\` takes over this CT.`,
    `export const ${ident} = new Container(${JSON.stringify(name)}, ${toTs(args)});`,
    ``,
  ].join("\n");
}

const command: CliCommand = {
  summary: "print a TypeScript Container declaration for an existing CT (adopt)",
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { name: { type: "string" }, "connection-file": { type: "string" }, help: { type: "boolean", short: "h" } },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const target = positionals[0];
    const m = /^([a-z0-9](?:[a-z0-9-]*[a-z0-9])?)\/(\d+)$/i.exec(target ?? "");
    if (!m || positionals.length !== 1) {
      console.error(`pve-lxc import: expected <node>/<vmid>, e.g. pve1/100\n\n${HELP}`);
      return 2;
    }
    let config: Record<string, string | undefined> = {};
    if (values["connection-file"]) {
      const c = JSON.parse(fs.readFileSync(values["connection-file"], "utf8"));
      config = { endpoint: c.endpoint, apiToken: c.apiToken, tlsFingerprint: c.tlsFingerprint };
    }
    const client = PveClient.connect(config);
    const vmid = Number(m[2]);
    process.stdout.write(await declarationFor(client, m[1], vmid, values.name ?? `ct${vmid}`));
    return 0;
  },
};
export default command;
