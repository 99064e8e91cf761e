/**
 * The sandbox's shared context: options, schema, state store, auth, tasks, storages,
 * faults, locks, counters and the route table. Handlers receive it through ApiRequest.
 */
import type { Logger } from "../provider/logging";
import { MetricsRegistry } from "../provider/logging";
import type { ApiSchema, HttpMethod, PveVersion } from "../provider/proxmox/schema";
import type { Auth, Identity } from "./auth";
import type { Faults } from "./faults";
import type { FlockManager } from "./locks";
import type { Store } from "./state";
import type { StorageModel } from "./model/storage/storages";
import type { TaskManager } from "./tasks";

export interface ApiRequest {
  core: Core;
  method: HttpMethod;
  template: string;
  path: string;
  /** Validated parameters (path params included), scalars as strings. */
  params: Record<string, any>;
  id: Identity;
  /** The streamed upload's temp file (POST …/upload). */
  uploadFile?: string;
  /** Set by a handler to add `total` to the envelope (task list/log). */
  total?: number;
  /** The HA manager's own call (PVE's rpcenv type `ha`): acts directly instead of via HA. */
  haAgent?: boolean;
}

export type Handler = (req: ApiRequest) => unknown | Promise<unknown>;

export interface Violation {
  method: string;
  path: string;
  errors: Record<string, string>;
}

export interface Core {
  version: PveVersion;
  fullVersion: string;
  schema: ApiSchema;
  nodes: string[];
  store: Store;
  auth: Auth;
  tasks: TaskManager;
  storage: StorageModel;
  faults: Faults;
  flock: FlockManager;
  log: Logger;
  metrics: MetricsRegistry;
  dataDir: string;
  /** https://host:port of this sandbox (for aplinfo locations). */
  endpoint: string;
  /** SHA-256 fingerprint and PEM of the sandbox certificate. */
  fingerprint: string;
  caCertPem: string;
  counters: { requests: Record<string, number>; violations: Violation[] };
  routes: Map<string, Handler>;
  /** Injected hotplug failures (admin `failHotplug`). */
  hotplugFailures: Array<{ vmid?: number; key: string; message: string; times: number }>;
  /** Lock lines held by admin `holdLock` (vmid → timer). */
  heldLocks: Map<number, NodeJS.Timeout>;
  authFailureDelayMs: number;
  save(): void;
}

export function route(core: Core, method: HttpMethod, template: string, handler: Handler): void {
  core.routes.set(`${method} ${template}`, handler);
}

// ----- parameter helpers (validated params arrive as strings) -----

export function bool(v: unknown): boolean {
  return v === true || v === 1 || v === "1";
}

export function int(v: unknown): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  return Number(v);
}

/** A handler result sent as-is instead of the JSON envelope (task log `download=1`). */
export class RawReply {
  constructor(
    readonly body: string | Buffer,
    readonly contentType: string,
  ) {}
}
