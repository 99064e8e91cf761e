/**
 * The frame around every provider operation (check, diff, create, read, update, delete):
 * one place that sets up logging from the stack config, gives each operation a logger
 * carrying its context (resource type and name, operation, request id, node, vmid),
 * records per-operation timings, writes the metrics file, builds the API client once per
 * process, and makes sure no error leaving the provider carries a secret.
 */
import { randomUUID } from "node:crypto";
import { configureLogging, flushLogs, getLogger, metrics, registerSecret, scrubSecrets, type Logger } from "../logging";
import type { PveClient } from "../proxmox/client";
import { createProgress, type ProgressReporter } from "../logging/progress";
import { warnUser } from "../logging/engineLog";
import { getProviderConfig, type ProviderConfig } from "./registry";

export type OperationName = "check" | "diff" | "create" | "read" | "update" | "delete";

export interface OperationMeta {
  resourceType: string;
  operation: OperationName;
  /** The Pulumi resource name (the SDK passes it as the `resourceName` input). */
  resourceName?: string;
  node?: string;
  vmid?: number | string;
}

export interface OperationContext {
  log: Logger;
  requestId: string;
  /** The API client for the stack's connection settings, logging with this operation's context. */
  client(): PveClient;
  /** Add context (e.g. the vmid once allocated) to every later line of this operation. */
  bind(fields: Record<string, unknown>): void;
  /** Progress lines shown in the `pulumi up` output (stderr) and logged, throttled. */
  progress(step: string): ProgressReporter;
  /** A warning for the user: logged, and shown as an engine warning (a stderr line outside a provider host). */
  warn(message: string, fields?: Record<string, unknown>): Promise<void>;
}

let configuredFrom: string | undefined;
let cachedClient: { key: string; client: PveClient } | undefined;

function configKey(cfg: Readonly<ProviderConfig>): string {
  return JSON.stringify(Object.entries(cfg).sort());
}

/** Logging follows the stack config; re-done only when the config changes. */
function ensureLogging(cfg: Readonly<ProviderConfig>): void {
  const key = JSON.stringify([cfg.logLevel, cfg.logFile]);
  if (configuredFrom === key) return;
  configureLogging({ level: cfg.logLevel, file: cfg.logFile, base: { component: "provider" } });
  configuredFrom = key;
  for (const secret of [cfg.apiToken, cfg.password, cfg.otp]) registerSecret(secret);
  // The token's secret part alone may also show up (e.g. echoed in an error).
  if (cfg.apiToken?.includes("=")) registerSecret(cfg.apiToken.slice(cfg.apiToken.lastIndexOf("=") + 1));
}

/** One client per process and configuration: keeps the ticket and keep-alive connections. */
export function providerClient(): PveClient {
  const cfg = getProviderConfig();
  const key = configKey(cfg);
  if (!cachedClient || cachedClient.key !== key) {
    // Loaded on the first API call: a preview (check and diff only) never needs the client,
    // its HTTP stack (axios) or the API areas, ~0.2-0.3 s of module loading per command.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { PveClient } = require("../proxmox/client") as typeof import("../proxmox/client");
    cachedClient = { key, client: PveClient.connect(cfg as Record<string, string | undefined>, { logger: getLogger() }) };
  }
  return cachedClient.client;
}

/** For tests that switch sandboxes inside one process. */
export function resetProviderClient(): void {
  cachedClient = undefined;
}

/**
 * An error after the physical resource exists (e.g. created, then failed to start). The
 * dynamic provider host turns `id` + `properties` into ErrorResourceInitFailed, so the
 * engine keeps the resource in state and the next `up` converges it.
 */
export interface PartialFailure {
  id?: string;
  properties?: Record<string, unknown>;
  reasons?: string[];
}

export function partialFailure(err: unknown, id: string, properties: Record<string, unknown>): Error {
  const message = err instanceof Error ? err.message : String(err);
  const e = new Error(message) as Error & PartialFailure;
  e.name = err instanceof Error ? err.name : "Error";
  e.id = id;
  e.properties = properties;
  e.reasons = [message];
  return e;
}

/**
 * The dynamic provider host (@pulumi/pulumi cmd/dynamic-provider) prints
 * `${err}: ${err.stack}` to stderr when check, diff, read or delete fail, and then hands the
 * error to the engine, which shows its message as the resource's error: the user saw every
 * failed delete twice, once with our stack trace (issue 19). The errors we throw are shaped
 * for the user already (typed message, no secrets), so that echo of exactly them is dropped;
 * anything else the host prints still goes through.
 */
const hostEchoes = new Set<string>();
let echoFilterInstalled = false;

function dropHostEcho(err: Error): void {
  if (!echoFilterInstalled) {
    echoFilterInstalled = true;
    const original = console.error.bind(console);
    console.error = (...args: unknown[]) => {
      if (args.length === 1 && typeof args[0] === "string" && hostEchoes.delete(args[0])) return;
      original(...args);
    };
  }
  hostEchoes.add(`${err}: ${err.stack}`);
  // Create and update errors are not echoed; forget ours after a while so the set stays small.
  setTimeout(() => hostEchoes.delete(`${err}: ${err.stack}`), 60_000).unref();
}

/** The error a failed operation hands to the engine: the message only, no stack frames, nothing secret. */
function userFacingError(err: unknown, message: string): Error & PartialFailure {
  const clean = new Error(message) as Error & PartialFailure;
  clean.name = (err as Error)?.name ?? "Error";
  clean.stack = `${clean.name}: ${message}`;
  // Keep the "created but failed to initialise" details: the engine then records the
  // resource in state instead of leaving an orphan behind (see PartialFailure).
  const partial = err as PartialFailure;
  if (partial?.id) {
    clean.id = partial.id;
    clean.properties = partial.properties;
    clean.reasons = partial.reasons?.map(scrubSecrets);
  }
  dropHostEcho(clean);
  return clean;
}

export async function runOperation<T>(meta: OperationMeta, fn: (ctx: OperationContext) => Promise<T>): Promise<T> {
  const cfg = getProviderConfig();
  ensureLogging(cfg);
  const requestId = randomUUID().slice(0, 8);
  const fields: Record<string, unknown> = { resourceType: meta.resourceType, operation: meta.operation, requestId };
  if (meta.resourceName) fields.resourceName = meta.resourceName;
  if (meta.node) fields.node = meta.node;
  if (meta.vmid !== undefined) fields.vmid = meta.vmid;
  let log = getLogger().child(fields);
  const who = meta.resourceName ? `${meta.resourceType} ${meta.resourceName}` : meta.resourceType;
  const ctx: OperationContext = {
    get log() {
      return log;
    },
    requestId,
    client: () => providerClient().withLogger(log),
    bind(extra) {
      log = log.child(extra);
    },
    progress(step) {
      return createProgress(`${who} ${step}`, { logger: log });
    },
    warn(message, extra) {
      log.warn(extra ?? {}, message);
      return warnUser(who, message);
    },
  };
  const started = Date.now();
  log.debug("operation started");
  try {
    const result = await fn(ctx);
    const durationMs = Date.now() - started;
    metrics.recordOperation({ resourceType: meta.resourceType, operation: meta.operation, outcome: "ok", durationMs });
    log.info({ durationMs }, "operation finished");
    return result;
  } catch (err) {
    const durationMs = Date.now() - started;
    metrics.recordOperation({ resourceType: meta.resourceType, operation: meta.operation, outcome: "error", durationMs });
    const message = scrubSecrets(err instanceof Error ? err.message : String(err));
    log.error({ durationMs, err: { type: (err as Error)?.name, message } }, "operation failed");
    // A fresh Error: the original may carry request objects with credentials in them.
    throw userFacingError(err, message);
  } finally {
    if (cfg.metricsFile) {
      await metrics.writeFile(cfg.metricsFile).catch((e: Error) => log.warn({ err: e.message }, "could not write the metrics file"));
    }
    flushLogs();
  }
}
