/**
 * Deterministic fault injection for client tests: reset the connection on the Nth request
 * matching a method+path (before the handler runs, or after it acted with the response
 * dropped, or mid-upload after N bytes), answer with a given status/message, or fail to
 * start the task worker (`no-worker`).
 * Task failures and lock holds live in TaskManager / the LXC model.
 */
export type FaultAction = "reset-before" | "reset-after" | "reset-mid-upload" | "status" | "no-worker";

/**
 * `no-worker`: PVE's answer when fork_worker never got the UPID back from the worker it
 * forked (pve-common src/PVE/RESTEnvironment.pm `fork_worker`: `die "got no worker upid -
 * start worker failed\n"`, a plain die → HTTP 500 with the text as reason and message). The
 * worker is killed before it is told to run, so nothing is done; it was registered, though,
 * so it is listed as a finished task of the caller with an empty log and the status
 * `upid_read_status` gives an empty file.
 */
export const NO_WORKER_MESSAGE = "got no worker upid - start worker failed";
export const NO_WORKER_TASK_STATUS = "unable to read tail (got 0 bytes)";

/** Worker type per endpoint (`METHOD template`), for the task a `no-worker` fault lists. */
export const WORKER_TYPES: Record<string, string> = {
  "POST /nodes/{node}/lxc": "vzcreate",
  "DELETE /nodes/{node}/lxc/{vmid}": "vzdestroy",
  "POST /nodes/{node}/lxc/{vmid}/status/start": "vzstart",
  "POST /nodes/{node}/lxc/{vmid}/status/stop": "vzstop",
  "POST /nodes/{node}/lxc/{vmid}/status/shutdown": "vzshutdown",
  "POST /nodes/{node}/lxc/{vmid}/status/reboot": "vzreboot",
  "POST /nodes/{node}/lxc/{vmid}/migrate": "vzmigrate",
  "POST /nodes/{node}/lxc/{vmid}/snapshot": "vzsnapshot",
  "DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}": "vzdelsnapshot",
  "POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback": "vzrollback",
  "PUT /nodes/{node}/lxc/{vmid}/resize": "resize",
  "POST /nodes/{node}/lxc/{vmid}/move_volume": "move_volume",
  "POST /nodes/{node}/lxc/{vmid}/clone": "vzclone",
  "POST /nodes/{node}/storage/{storage}/upload": "imgcopy",
  "DELETE /nodes/{node}/storage/{storage}/content/{volume}": "imgdel",
  "POST /nodes/{node}/storage/{storage}/download-url": "download",
};

/** The task a `no-worker` fault leaves in the task list (never ran, empty log). */
export interface GhostTask {
  node: string;
  type: string;
  id: string;
  user: string;
}

export interface FaultSpec {
  /** GET/POST/PUT/DELETE; omitted = any. */
  method?: string;
  /** A schema template (`/nodes/{node}/lxc/{vmid}/config`) or a concrete path, without `/api2/json`. */
  path: string;
  action: FaultAction;
  /** Trigger on the Nth matching request (1-based, default 1)... */
  nth?: number;
  /** ...and on the following `times - 1` ones (default 1). */
  times?: number;
  /** `status`: HTTP status (e.g. 500, 503, 596) and message. */
  status?: number;
  message?: string;
  /** `reset-mid-upload`: bytes of the file part to accept before resetting. */
  afterBytes?: number;
  /** `no-worker`: the user the killed worker's task is listed under (default root@pam); its id (default the path's vmid). */
  user?: string;
  taskId?: string;
}

interface ActiveFault extends FaultSpec {
  seen: number;
  fired: number;
}

export class Faults {
  private list: ActiveFault[] = [];
  /** Lists the task of a `no-worker` fault (set by the admin surface, which owns the task index). */
  onNoWorker?: (ghost: GhostTask) => void;

  add(spec: FaultSpec): void {
    if (!spec.path || !spec.action) throw new Error("fault needs 'path' and 'action'");
    this.list.push({ ...spec, method: spec.method?.toUpperCase(), seen: 0, fired: 0 });
  }

  clear(): void {
    this.list = [];
  }

  /** Called once per request; returns the fault to apply now, if any. */
  match(method: string, template: string | undefined, path: string): FaultSpec | undefined {
    let hit: FaultSpec | undefined;
    for (const f of this.list) {
      if (f.method && f.method !== method) continue;
      if (f.path !== path && f.path !== template) continue;
      f.seen++;
      const nth = f.nth ?? 1;
      const times = f.times ?? 1;
      if (!hit && f.seen >= nth && f.fired < times) {
        f.fired++;
        hit = f;
      }
    }
    this.list = this.list.filter((f) => f.fired < (f.times ?? 1));
    return hit?.action === "no-worker" ? this.noWorker(hit, method, template, path) : hit;
  }

  /** A `no-worker` fault: list the killed worker's task, answer like fork_worker's die. */
  private noWorker(f: FaultSpec, method: string, template: string | undefined, path: string): FaultSpec {
    const type = WORKER_TYPES[`${method} ${template ?? ""}`] ?? "unknown";
    const node = /^\/nodes\/([^/]+)/.exec(path)?.[1] ?? "";
    const id = f.taskId ?? /\/lxc\/(\d+)/.exec(path)?.[1] ?? "";
    this.onNoWorker?.({ node, type, id, user: f.user ?? "root@pam" });
    return { ...f, action: "status", status: 500, message: NO_WORKER_MESSAGE };
  }

  pending(): FaultSpec[] {
    return this.list.map(({ seen: _s, fired: _f, ...spec }) => spec);
  }
}
