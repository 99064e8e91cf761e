/** Shared sandbox setup for the client tests. */
import { startSandbox, type SandboxHandle } from "../../../sandbox";
import { PveClient, parseSettings, type PveClientOptions } from "../../../provider/proxmox";
import { captureLogger } from "../../../provider/logging";

export const TEMPLATE = "alpine-3.20-default_20240908_amd64.tar.gz";
export const OSTEMPLATE = `local:vztmpl/${TEMPLATE}`;

export async function sandbox(opts: Parameters<typeof startSandbox>[0] = {}): Promise<SandboxHandle> {
  return startSandbox({ port: 0, nodes: ["pve1", "pve2"], taskDurationMs: 20, authFailureDelayMs: 0, logger: captureLogger({ level: "warn" }).logger, ...opts });
}

export function tokenClient(sb: SandboxHandle, opts: PveClientOptions = {}, apiToken = sb.apiToken): PveClient {
  return PveClient.fromSettings(parseSettings({ endpoint: sb.endpoint, apiToken, tlsFingerprint: sb.tlsFingerprint }, {}), {
    logger: captureLogger({ level: "warn" }).logger,
    retry: { baseDelayMs: 10, maxDelayMs: 100 },
    ...opts,
  });
}

export function ticketClient(sb: SandboxHandle, opts: PveClientOptions = {}, creds = { username: sb.username, password: sb.password }): PveClient {
  return PveClient.fromSettings(parseSettings({ endpoint: sb.endpoint, ...creds, tlsFingerprint: sb.tlsFingerprint }, {}), {
    logger: captureLogger({ level: "warn" }).logger,
    retry: { baseDelayMs: 10, maxDelayMs: 100 },
    ...opts,
  });
}

/** Put the small alpine template on `local` of a node (aplinfo download, BEHAVIOR.md 6.4). */
export async function ensureTemplate(client: PveClient, node = "pve1"): Promise<string> {
  const have = await client.storage.content(node, "local", { content: "vztmpl" });
  if (!have.some((i) => i.volid === OSTEMPLATE)) await client.storage.aplDownloadAndWait(node, "local", TEMPLATE);
  return OSTEMPLATE;
}

export const ctConfig = (extra: Record<string, unknown> = {}) => ({
  ostemplate: OSTEMPLATE,
  rootfs: "local-lvm:1",
  hostname: "t1",
  memory: 256,
  ...extra,
});
