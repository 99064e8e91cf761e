/**
 * A Proxmox VE-compatible API server for local runs, tests and the demo (`pve-lxc
 * sandbox`). It behaves like a PVE 9.1 (or 8.4) cluster for everything this library
 * touches, validating every request against the official schema. See BEHAVIOR.md
 * (/work/shared/pve-api) for the behaviour it reproduces.
 */
import * as fs from "node:fs";
import * as https from "node:https";
import * as net from "node:net";
import { dispatchConnection } from "./http/redirect";
import * as os from "node:os";
import * as path from "node:path";
import type { Socket } from "node:net";
import { getLogger, MetricsRegistry, registerSecret, type Logger } from "../provider/logging";
import { loadSchema } from "../provider/proxmox/schema";
import { Auth } from "./auth";
import type { Core } from "./core";
import { Faults } from "./faults";
import { FlockManager } from "./locks";
import { Store } from "./state";
import { StorageModel, STORAGES, defineStorage, type StorageSpec } from "./model/storage/storages";
import { TaskManager } from "./tasks";
import { loadOrCreateTls } from "./tls";
import { createRequestHandler } from "./http/server";
import { adminOps, type SandboxAdmin } from "./admin";
import { registerRoutes } from "./routes";
import { ensureAppliances } from "./model/storage/appliances";
import { writeFileAtomic } from "./persist";
import { setHaDelay, stopHa } from "./model/lxc/ha";

export type { SandboxAdmin, SandboxCounters, AclSpec } from "./admin";
export type { FaultSpec, FaultAction } from "./faults";
export type { TaskFailure } from "./tasks";
export { connectSandboxAdmin, readConnectionFile, type SandboxConnection } from "./remote";

export interface SandboxOptions {
  port?: number;
  host?: string;
  stateDir?: string;
  nodes?: string[];
  /**
   * The storages every node has (`--storage NAME:TYPE[:CONTENT,…]`); replaces the default set
   * (`local` dir, `local-lvm` lvmthin, `local-zfs` zfspool, `shared-nfs` nfs) when given.
   */
  storages?: StorageSpec[];
  pveVersion?: "9.1" | "8.4";
  /** Default duration of simulated task work (tests use ~0-50). */
  taskDurationMs?: number;
  /** Default 7200. */
  ticketLifetimeSec?: number;
  /** PVE delays every 401 by ~3 s; default 3000 for the CLI, tests pass 0. */
  authFailureDelayMs?: number;
  /** How long the simulated HA manager takes to act on a queued hastart/hastop/hamigrate (default 2000). */
  haDelayMs?: number;
  /** Config flock wait (PVE: 10 s); tests shorten it to exercise the timeout text. */
  lockTimeoutMs?: number;
  /** Write the connection JSON here once listening. */
  connectionFile?: string;
  logger?: Logger;
}

export interface SandboxHandle {
  endpoint: string;
  /** `root@pam!sandbox=<uuid>` */
  apiToken: string;
  /** SHA-256, colon-separated uppercase hex. */
  tlsFingerprint: string;
  caCertPem: string;
  username: "root@pam";
  password: string;
  nodes: string[];
  pveVersion: string;
  stateDir?: string;
  /** Secret for the `/_sandbox/` admin endpoints (header `X-Sandbox-Admin`). */
  adminSecret: string;
  admin: SandboxAdmin;
  stop(): Promise<void>;
}

/** 8.4: what the recorded genuine node answered (../shared/pve-api/transcripts). */
const FULL_VERSION = { "9.1": "9.1.5", "8.4": "8.4.21" } as const;

export async function startSandbox(opts: SandboxOptions = {}): Promise<SandboxHandle> {
  const version = opts.pveVersion ?? "9.1";
  const stateDir = opts.stateDir ? path.resolve(opts.stateDir) : undefined;
  if (stateDir) fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const dataDir = stateDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "pve-sandbox-"));
  const store = new Store(dataDir, !!stateDir);
  const st = store.state as typeof store.state & { nodes?: string[]; pveVersion?: string; storages?: StorageSpec[] };
  const nodes = opts.nodes ?? st.nodes ?? ["pve1"];
  st.nodes = nodes;
  // A kept state dir keeps its storage layout unless one is given.
  const storages = opts.storages ?? st.storages;
  if (opts.storages) st.storages = opts.storages;
  const storageDefs = storages ? storages.map(defineStorage) : STORAGES;
  if (new Set(storageDefs.map((s) => s.storage)).size !== storageDefs.length) throw new Error("storages: each storage ID may be given once");
  const log = (opts.logger ?? getLogger()).child({ component: "sandbox" });
  const tls = await loadOrCreateTls(stateDir);
  const schema = loadSchema(version);
  registerSecret(store.state.rootPassword);
  registerSecret(store.state.secrets.adminSecret);
  for (const u of Object.values(store.state.users)) for (const t of Object.values(u.tokens)) registerSecret(t.secret);

  // Running CTs survive a sandbox restart (the "cluster" did not reboot), tasks do not.
  const core: Core = {
    version, fullVersion: FULL_VERSION[version], schema, nodes, store,
    auth: new Auth(store, opts.ticketLifetimeSec ?? 7200),
    tasks: undefined as unknown as TaskManager,
    storage: new StorageModel(dataDir, nodes, storageDefs),
    faults: new Faults(),
    flock: new FlockManager((opts.lockTimeoutMs ?? 10000) / 10000),
    log, metrics: new MetricsRegistry(), dataDir, endpoint: "", fingerprint: tls.fingerprint, caCertPem: tls.cert,
    counters: { requests: {}, violations: [] },
    routes: new Map(), heldLocks: new Map(), hotplugFailures: [],
    authFailureDelayMs: opts.authFailureDelayMs ?? 3000,
    save: () => store.save(),
  };
  core.tasks = new TaskManager(store, opts.taskDurationMs ?? 1000, () => store.save());
  store.save();
  setHaDelay(core, opts.haDelayMs ?? 2000);
  registerRoutes(core);

  const tlsServer = https.createServer({ key: tls.key, cert: tls.cert }, createRequestHandler(core));
  tlsServer.keepAliveTimeout = 5000;
  const sockets = new Set<Socket>();
  const server = net.createServer({ pauseOnConnect: true }, (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    dispatchConnection(s, tlsServer);
  });
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 8006, host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  core.endpoint = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  await ensureAppliances(core);

  const rootToken = store.state.users["root@pam"].tokens[store.state.rootTokenId];
  const handle: SandboxHandle = {
    endpoint: core.endpoint,
    apiToken: `root@pam!${store.state.rootTokenId}=${rootToken.secret}`,
    tlsFingerprint: tls.fingerprint,
    caCertPem: tls.cert,
    username: "root@pam",
    password: store.state.rootPassword,
    nodes,
    pveVersion: core.fullVersion,
    stateDir,
    adminSecret: store.state.secrets.adminSecret,
    admin: adminOps(core),
    stop: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      await Promise.race([core.tasks.drain(), new Promise((r) => setTimeout(r, 2000))]);
      for (const t of core.heldLocks.values()) clearTimeout(t);
      stopHa(core);
      store.flush(); // batched saves (state.ts): the last changes reach the file before we go
      if (!stateDir) fs.rmSync(dataDir, { recursive: true, force: true });
      log.info({ endpoint: core.endpoint }, "sandbox stopped");
    },
  };
  if (opts.connectionFile) writeConnectionFile(opts.connectionFile, handle);
  log.info({ endpoint: core.endpoint, nodes, pveVersion: core.fullVersion, stateDir }, "sandbox listening");
  return handle;
}

/** `{endpoint, apiToken, tlsFingerprint, username, password, nodes, ...}` (mode 0600). */
export function writeConnectionFile(file: string, h: SandboxHandle): void {
  const data = {
    endpoint: h.endpoint, apiToken: h.apiToken, tlsFingerprint: h.tlsFingerprint, username: h.username, password: h.password,
    nodes: h.nodes, pveVersion: h.pveVersion, adminSecret: h.adminSecret, caCertPem: h.caCertPem,
  };
  writeFileAtomic(path.resolve(file), JSON.stringify(data, null, 2) + "\n", 0o600);
}
