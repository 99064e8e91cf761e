/**
 * Setup shared by the suites that drive the real Pulumi CLI against an in-process sandbox:
 * the sandbox (with an API client on it) and the stack config that points the provider there.
 */
import { startSandbox, type SandboxHandle, type SandboxOptions } from "../../sandbox";
import { PveClient } from "../../provider/proxmox/client";
import { pulumiPath } from "./cli";
import type { ConfigEntry, OperationResult } from "./pulumi";

export interface CliSandbox {
  sb: SandboxHandle;
  client: PveClient;
}

/**
 * Wait for the Pulumi CLI, then start a sandbox (two nodes, fast tasks, no 401 delay unless
 * `opts` says otherwise) and connect an API client to it.
 */
export async function startCliSandbox(opts: SandboxOptions = {}): Promise<CliSandbox> {
  await pulumiPath();
  const sb = await startSandbox({ port: 0, nodes: ["pve1", "pve2"], taskDurationMs: 20, authFailureDelayMs: 0, ...opts });
  const client = PveClient.connect({ endpoint: sb.endpoint, apiToken: sb.apiToken, tlsFingerprint: sb.tlsFingerprint });
  return { sb, client };
}

/** Stack config for the sandbox: endpoint, API token (as a secret) and TLS fingerprint, plus `extra`. */
export function sandboxConfig(sb: Pick<SandboxHandle, "endpoint" | "apiToken" | "tlsFingerprint">, extra: Record<string, ConfigEntry | string> = {}): Record<string, ConfigEntry | string> {
  return {
    "proxmox:endpoint": sb.endpoint,
    "proxmox:apiToken": { value: sb.apiToken, secret: true },
    "proxmox:tlsFingerprint": sb.tlsFingerprint,
    ...extra,
  };
}

/** A refresh reports every resource as "refresh" steps; drift shows in the summary as update/delete. */
export const noDrift = (r: OperationResult) => Object.keys(r.changeSummary ?? {}).every((k) => k === "same");
