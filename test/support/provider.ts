/**
 * In-process handler tests: point the provider (as `configure` would from stack config)
 * at a sandbox, with a fresh API client, and fetch a template from the sandbox's
 * appliance index when a test needs containers.
 */
import type { SandboxHandle } from "../../sandbox";
import { configure } from "../../provider/resources/registry";
import { providerClient, resetProviderClient } from "../../provider/resources/operation";

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

/** Download an appliance (by name prefix) to `storage` on `node`; returns its volid. */
export async function applianceTemplate(prefix: string, storage = "shared-nfs", node = "pve1"): Promise<string> {
  const client = providerClient();
  const apl = (await client.storage.aplinfo(node)).find((a) => a.template.startsWith(prefix));
  if (!apl) throw new Error(`no appliance starting with '${prefix}' in the sandbox's index`);
  await client.storage.aplDownloadAndWait(node, storage, apl.template);
  return `${storage}:vztmpl/${apl.template}`;
}
