/**
 * The lookups' connection: they run in the Pulumi program's process (not in the dynamic
 * provider host), so they read the stack's `proxmox:*` config from the Pulumi runtime
 * themselves and fall back to the same `PROXMOX_VE_*` environment variables, through the
 * providers' own settings parser and client (schema validation, TLS pinning, typed errors,
 * secret scrubbing).
 *
 * The client code (axios, the PVE schemas) is loaded on the first lookup only, so a program
 * that calls none does not pay for it. One client per process and configuration keeps the
 * ticket and keep-alive connections for all lookups of a run.
 */
import * as pulumi from "@pulumi/pulumi";
import type { PveClient } from "../../provider/proxmox/client";
import { CONFIG_NAMESPACE, PROVIDER_CONFIG_KEYS, type ProviderConfig } from "../../provider/resources/registry";

/** The program's `proxmox:*` stack config (secrets arrive decrypted, as the providers get them). */
function readConfig(): ProviderConfig {
  const cfg: ProviderConfig = {};
  for (const key of PROVIDER_CONFIG_KEYS) {
    const value = pulumi.runtime.getConfig(`${CONFIG_NAMESPACE}:${key}`);
    if (value !== undefined) cfg[key] = value;
  }
  return cfg;
}

let cached: { key: string; client: Promise<PveClient> } | undefined;
let loggingFrom: string | undefined;

/**
 * The client for the current configuration. The cache key holds the config and the
 * PROXMOX_VE_* variables (parseSettings falls back to them); it lives only in memory. The
 * promise is cached, so lookups started together share one client.
 */
export function lookupClient(): Promise<PveClient> {
  const cfg = readConfig();
  const env = Object.entries(process.env).filter(([name]) => /^(PROXMOX_VE_|PULUMI_PROXMOX_)/.test(name)).sort();
  const key = JSON.stringify([Object.entries(cfg).sort(), env]);
  // A replaced client is not closed: a lookup may still be using it; its idle sockets are unref'd.
  if (cached?.key !== key) cached = { key, client: connect(cfg) };
  return cached.client;
}

async function connect(cfg: ProviderConfig): Promise<PveClient> {
  const logging = await import("../../provider/logging");
  const logKey = JSON.stringify([cfg.logLevel, cfg.logFile]);
  if (loggingFrom !== logKey) {
    // Same destination and level as the providers (proxmox:logFile / logLevel), marked as ours.
    logging.configureLogging({ level: cfg.logLevel, file: cfg.logFile, base: { component: "lookups" } });
    loggingFrom = logKey;
  }
  const { PveClient } = await import("../../provider/proxmox/client");
  // parseSettings registers the credentials as secrets, so no later log line or error shows them.
  return PveClient.connect(cfg as Record<string, string | undefined>, { logger: logging.getLogger() });
}
