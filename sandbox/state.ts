/**
 * The cluster state the sandbox serves: users/tokens/ACLs, pools, containers (as PVE config
 * TEXT, BEHAVIOR.md §4.1) and finished tasks. Kept as one JSON document; with a state dir it
 * is written atomically shortly after changes (batched, SAVE_WINDOW_MS) and on stop, so
 * another sandbox process started later from the same dir sees the same cluster.
 */
import type { Upid } from "../provider/proxmox/upid";
import * as crypto from "node:crypto";
import * as path from "node:path";
import { readJson, writeFileAtomic } from "./persist";

export interface TokenRecord {
  secret: string;
  privsep: 0 | 1;
  /** Unix seconds, 0 = never. */
  expire: number;
  comment?: string;
}

export interface UserRecord {
  password?: string;
  enable: 0 | 1;
  expire: number;
  comment?: string;
  tokens: Record<string, TokenRecord>;
}

export interface AclEntry {
  path: string;
  /** `user@realm` or `user@realm!token`. */
  ugid: string;
  type: "user" | "token";
  roleid: string;
  propagate: 0 | 1;
}

export interface PoolRecord {
  comment?: string;
  vms: number[];
  storage: string[];
}

export interface CtRecord {
  node: string;
  /** The raw config file text; its SHA-1 is the `digest`. */
  conf: string;
  /** Set while the CT "runs": start time (ms) and a fake pid. */
  running?: { since: number; pid: number };
}

/** A finished task: its UPID fields (provider/proxmox/upid.ts) plus the outcome. */
export interface FinishedTask extends Upid {
  upid: string;
  endtime: number;
  status: string;
  log: string[];
}

export interface SandboxState {
  format: 1;
  secrets: { ticketKey: string; csrfKey: string; adminSecret: string };
  rootPassword: string;
  rootTokenId: string;
  users: Record<string, UserRecord>;
  acls: AclEntry[];
  pools: Record<string, PoolRecord>;
  cts: Record<string, CtRecord>;
  tasks: FinishedTask[];
  nextPid: number;
  /** HA resources by sid (`ct:<vmid>`), see model/lxc/ha.ts; absent in older state files. */
  ha?: Record<string, HaResource>;
}

export interface HaResource {
  /** Requested state (resources.cfg). */
  state: "started" | "stopped" | "ignored" | "disabled";
  group?: string;
  /** The manager's service state (manager_status), what status/current reports. */
  status: string;
}

const MAX_TASKS = 1000;

export function freshState(): SandboxState {
  const rand = () => crypto.randomBytes(24).toString("base64url");
  return {
    format: 1,
    secrets: { ticketKey: rand(), csrfKey: rand(), adminSecret: rand() },
    rootPassword: crypto.randomBytes(12).toString("base64url"),
    rootTokenId: "sandbox",
    users: {
      "root@pam": {
        enable: 1,
        expire: 0,
        tokens: { sandbox: { secret: crypto.randomUUID(), privsep: 0, expire: 0, comment: "sandbox admin token" } },
      },
    },
    acls: [],
    pools: {},
    cts: {},
    tasks: [],
    nextPid: 0x1000 + crypto.randomInt(0x10000),
  };
}

/**
 * How long changes are gathered before the state file is written. Writing the whole
 * document (every CT, up to MAX_TASKS tasks) after each change cost the sandbox most of its
 * CPU in bench/pulumi-up at 200 CTs; batched, a burst of changes costs one write per window.
 * A crash (SIGKILL) loses at most this much; `flush()` on stop (SIGTERM/SIGINT in the CLI).
 */
export const SAVE_WINDOW_MS = 100;

export class Store {
  state: SandboxState;
  private readonly file?: string;
  private timer?: NodeJS.Timeout;

  constructor(readonly dataDir: string, readonly persistent: boolean) {
    this.file = persistent ? path.join(dataDir, "state.json") : undefined;
    const loaded = this.file ? readJson<SandboxState>(this.file) : undefined;
    this.state = loaded ?? freshState();
    if (!loaded) this.flush();
  }

  /** Note a change: written within SAVE_WINDOW_MS (atomically), together with later ones. */
  save(): void {
    if (!this.file) return this.trimTasks();
    this.timer ??= setTimeout(() => this.flush(), SAVE_WINDOW_MS);
  }

  /** Write now (stop; the constructor of a fresh state). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.trimTasks();
    if (this.file) writeFileAtomic(this.file, JSON.stringify(this.state), 0o600);
  }

  private trimTasks(): void {
    if (this.state.tasks.length > MAX_TASKS) this.state.tasks.splice(0, this.state.tasks.length - MAX_TASKS);
  }
}
