/**
 * In-process handler tests: point the provider (as `configure` would from stack config)
 * at a sandbox, with a fresh API client, and fetch a template from the sandbox's
 * appliance index when a test needs containers.
 */
import { expect } from "chai";
import { startSandbox, type SandboxHandle, type SandboxOptions } from "../../sandbox";
import { configure, type ResourceHandler } from "../../provider/resources/registry";
import { providerClient, resetProviderClient } from "../../provider/resources/operation";
import type { PveClient } from "../../provider/proxmox/client";

export function useSandboxProvider(sb: Pick<SandboxHandle, "endpoint" | "apiToken" | "tlsFingerprint">, extra: Record<string, string> = {}): void {
  const cfg: Record<string, string> = {
    "proxmox:endpoint": sb.endpoint,
    "proxmox:apiToken": sb.apiToken,
    "proxmox:tlsFingerprint": sb.tlsFingerprint,
    "proxmox:logLevel": "silent",
    ...extra,
  };
  configure({ get: (k) => cfg[k] });
  resetProviderClient();
}

/**
 * Download an appliance (by name prefix) to `storage` on `node`; returns its volid. Uses the
 * provider's client unless given one (suites that drive the Pulumi CLI have their own).
 */
export async function applianceTemplate(prefix: string, storage = "shared-nfs", node = "pve1", client: PveClient = providerClient()): Promise<string> {
  const apl = (await client.storage.aplinfo(node)).find((a) => a.template.startsWith(prefix));
  if (!apl) throw new Error(`no appliance starting with '${prefix}' in the sandbox's index`);
  await client.storage.aplDownloadAndWait(node, storage, apl.template);
  return `${storage}:vztmpl/${apl.template}`;
}

/**
 * A sandbox (two nodes, fast tasks unless `opts` says otherwise) with the provider pointed at
 * it and the appliance starting with `prefix` downloaded to shared-nfs as `template`.
 */
export async function startProviderSandbox(prefix: string, opts: SandboxOptions = {}): Promise<{ sb: SandboxHandle; template: string }> {
  const sb = await startSandbox({ port: 0, nodes: ["pve1", "pve2"], taskDurationMs: 5, authFailureDelayMs: 0, ...opts });
  useSandboxProvider(sb);
  return { sb, template: await applianceTemplate(prefix) };
}

/** What `pulumi up` does for a new resource: check() (which must accept `inputs`), then create(). */
export async function createChecked<Outs = Record<string, any>>(handler: ResourceHandler, inputs: Record<string, unknown>): Promise<{ id: string; outs: Outs }> {
  const checked = await handler.check!({}, inputs);
  expect(checked.failures ?? []).to.deep.equal([]);
  const r = await handler.create(checked.inputs);
  return { id: r.id, outs: r.outs as Outs };
}
