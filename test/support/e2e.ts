/**
 * Setup shared by the suites that drive the real Pulumi CLI against an in-process sandbox:
 * the sandbox (with an API client on it) and the stack config that points the provider there.
 */
import { startSandbox, type SandboxHandle, type SandboxOptions } from "../../sandbox";
import { PveClient } from "../../provider/proxmox/client";
import { expect } from "chai";
import { pulumiPath } from "./cli";
import { PulumiStack, type ConfigEntry, type OperationResult } from "./pulumi";
import { applianceTemplate } from "./provider";

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

export interface CliStack extends CliSandbox {
  stack: PulumiStack;
  /** The appliance template's volid, as `program` got it. */
  template: string;
}

/**
 * The usual e2e fixture: a CLI sandbox, the appliance starting with `prefix` downloaded to
 * `storage` on pve1, and a stack running `program(template)` against the sandbox.
 */
export async function startCliStack(prefix: string, program: (template: string) => string, storage = "shared-nfs"): Promise<CliStack> {
  const { sb, client } = await startCliSandbox();
  const template = await applianceTemplate(prefix, storage, "pve1", client);
  const stack = await PulumiStack.create({ programSource: program(template), config: sandboxConfig(sb) });
  return { sb, client, stack, template };
}

/** Remove the stack and stop the sandbox (whatever part of the fixture was made); optionally assert no request broke the PVE schema. */
export async function stopCliStack(f: { sb?: SandboxHandle; stack?: PulumiStack }, opts: { noViolations?: boolean } = {}): Promise<void> {
  if (f.stack) await f.stack.remove();
  if (!f.sb) return;
  if (opts.noViolations) expect((await f.sb.admin.counters()).violationCount, "requests violating the PVE schema").to.equal(0);
  await f.sb.stop();
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
