/**
 * Backups (vzdump): POST /nodes/{node}/vzdump, and finding the volume a backup task made.
 *
 * Source: pve-manager `PVE/API2/VZDump.pm` and `PVE/VZDump.pm` (`exec_backup_task`).
 * - The call is proxied to `{node}` and answers a `vzdump` UPID (id = the vmid when one
 *   guest is backed up) — or the plain string `OK`, doing nothing, when the guest is not
 *   on that node ("silent exit if specified VMs run on other nodes"). So it must be sent to
 *   the guest's current node, and `OK` is an error here.
 * - The worker logs `INFO: creating vzdump archive '<dumpdir>/<name>'` (a file storage) or
 *   `INFO: creating Proxmox Backup Server archive '<ct/100/2025-…Z>'` (PBS) before it
 *   writes, then `INFO: archive file size: 189MB`. The volume ID is `<storage>:backup/`
 *   plus the file's base name (or the PBS snapshot name) — the log names a path, not the
 *   storage, so without an explicit storage the storage is found by listing.
 * - File names: `vzdump-lxc-<vmid>-<YYYY_MM_DD-HH_MM_SS>.tar[.zst|.gz|.lzo]`, node-local time.
 * - `remove` defaults to 1: after the backup PVE prunes older backups of the guest by the
 *   storage's `prune-backups`. This library always sends `remove: 0`, so a backup never
 *   deletes another one (e.g. one another Backup resource owns).
 */
import { z } from "zod";
import type { PveClient } from "./client";
import type { Logger } from "../logging";
import type { ContentItem } from "./storage";
import type { TaskResult, WaitOptions } from "./tasks";
import { isUpid, parseUpid } from "./upid";
import { LOCK_RES, PveTaskFailedError } from "./errors";
import { sleep } from "./retry";

const enc = encodeURIComponent;

export type VzdumpMode = "snapshot" | "suspend" | "stop";
/** PVE's `compress` values; `0` = none. */
export type VzdumpCompress = "0" | "gzip" | "lzo" | "zstd";

export interface VzdumpParams {
  vmid: number;
  mode?: VzdumpMode;
  compress?: VzdumpCompress;
  storage?: string;
  "notes-template"?: string;
  protected?: boolean;
}

interface CallOpts {
  logger?: Logger;
}
interface WaitCallOpts extends CallOpts {
  wait?: Omit<WaitOptions, "logger">;
}

/** Where a backup task wrote its archive, read from its log. */
export interface ArchiveTarget {
  /** File base name (file storages) or PBS snapshot path (`ct/100/2025-01-02T03:04:05Z`). */
  name: string;
  pbs: boolean;
}

/** The archive a vzdump task log announces, or undefined (task failed before that line). */
export function archiveFromLog(lines: string[]): ArchiveTarget | undefined {
  for (const t of lines) {
    const file = /^INFO: creating vzdump archive '(.+)'\s*$/.exec(t);
    if (file) return { name: file[1].slice(file[1].lastIndexOf("/") + 1), pbs: false };
    const pbs = /^INFO: creating Proxmox Backup Server archive '(.+)'\s*$/.exec(t);
    if (pbs) return { name: pbs[1], pbs: true };
  }
  return undefined;
}

/** The volume ID of `target` on `storage`. */
export function backupVolid(storage: string, target: ArchiveTarget): string {
  return `${storage}:backup/${target.name}`;
}

export class VzdumpApi {
  constructor(private readonly client: PveClient) {}

  /** POST /nodes/{node}/vzdump → vzdump UPID. Always `remove: 0` (see the module comment). */
  async start(node: string, params: VzdumpParams, opts: CallOpts = {}): Promise<string> {
    const since = Math.floor(this.client.serverNow() / 1000) - 2;
    const answer = await this.client.post(`/nodes/${enc(node)}/vzdump`, { ...params, remove: false }, {
      schema: z.string(),
      logger: opts.logger,
      verifyEffect: async () => (await this.client.tasks.findRecent(node, { type: "vzdump", id: params.vmid, sinceSec: since }, opts.logger)) ?? false,
    });
    if (!isUpid(answer)) {
      throw new Error(`vzdump on node '${node}' answered '${answer}' and backed up nothing: CT ${params.vmid} is not on '${node}' (it moved?); retry, the node is looked up again.`);
    }
    return answer;
  }

  /**
   * Start a backup and wait for it; returns the UPID of the task that succeeded. vzdump takes
   * the CT's lock inside the task (`lock_vm`, before any archive exists), so a task that
   * failed only on `CT is locked (…)` — a snapshot or another backup running — did nothing
   * and is started again, within the client's `lockWaitMs` (as LxcApi does for its tasks).
   */
  async run(node: string, params: VzdumpParams, opts: WaitCallOpts = {}): Promise<{ upid: string; task: TaskResult }> {
    const deadline = Date.now() + this.client.retryPolicy.lockWaitMs;
    let delay = 500;
    for (;;) {
      const upid = await this.start(node, params, opts);
      try {
        return { upid, task: await this.client.tasks.wait(upid, { ...(opts.wait ?? {}), logger: opts.logger }) };
      } catch (e) {
        const lockedOnly = e instanceof PveTaskFailedError && e.logTail.some((l) => LOCK_RES.some((r) => r.test(l))) && !archiveFromLog(e.logTail);
        if (lockedOnly && Date.now() + delay < deadline) {
          (opts.logger ?? this.client.log).debug({ upid, delayMs: delay }, "backup failed on the CT's lock; starting it again");
          await sleep(delay);
          delay = Math.min(5000, delay * 1.5);
          continue;
        }
        throw e;
      }
    }
  }

  /** The archive the task's log names (a finished or still running task). */
  async archiveOf(upid: string, opts: CallOpts = {}): Promise<ArchiveTarget | undefined> {
    const { lines } = await this.client.tasks.log(upid, { start: 0, limit: 0, logger: opts.logger });
    return archiveFromLog(lines.map((l) => l.t));
  }

  /** Storages on `node` that hold backups (enabled, content `backup`). */
  async backupStorages(node: string, opts: CallOpts = {}): Promise<string[]> {
    const list = await this.client.storage.list(node, { content: "backup" }, opts);
    return list.filter((s) => s.enabled !== false && (s.content ?? "").split(/[,;\s]+/).includes("backup")).map((s) => s.storage);
  }

  /** Backups of `vmid` on `storage` (a listing shows only the first line of notes). */
  list(node: string, storage: string, vmid: number, opts: CallOpts = {}): Promise<ContentItem[]> {
    return this.client.storage.content(node, storage, { content: "backup", vmid }, opts);
  }

  /** The listed backup with this volume ID, or undefined when it is gone. */
  async find(node: string, volid: string, vmid: number, opts: CallOpts = {}): Promise<ContentItem | undefined> {
    return (await this.list(node, volid.split(":")[0], vmid, opts)).find((i) => i.volid === volid);
  }

  /**
   * The volume a finished task made: from its log (storage given, or found among the
   * node's backup storages by name); if the log names none, the newest backup of `vmid`
   * made since the task started.
   */
  async locate(node: string, upid: string, vmid: number, storage: string | undefined, opts: CallOpts = {}): Promise<ContentItem | undefined> {
    const target = await this.archiveOf(upid, opts);
    const storages = storage ? [storage] : await this.backupStorages(node, opts);
    const started = parseUpid(upid).starttime;
    let newest: ContentItem | undefined;
    for (const s of storages) {
      const items = await this.list(node, s, vmid, opts);
      if (target) {
        const hit = items.find((i) => i.volid === backupVolid(s, target));
        if (hit) return hit;
        continue;
      }
      for (const i of items) if ((i.ctime ?? 0) >= started - 1 && (!newest || (i.ctime ?? 0) > (newest.ctime ?? 0))) newest = i;
    }
    return newest;
  }
}
