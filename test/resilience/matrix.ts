/**
 * The fault matrix, shared by the in-process run (every row) and the CLI run (a subset):
 * the faults, the operations, and for each operation the request a fault hits, the worker
 * task it waits for, the lock that blocks it and the timeout input that bounds it.
 */
import type { FaultSpec } from "../../sandbox";

export const FAULTS = ["reset-before", "reset-after", "502", "503", "596", "no-worker", "task-fails", "lock-held", "ticket-expires", "task-timeout"] as const;
export type Fault = (typeof FAULTS)[number];

export const OPERATIONS = ["create", "update", "migrate", "snapshot", "upload", "delete"] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface OpTarget {
  method: string;
  /** Schema template of the request the fault hits (also the counters key). */
  path: string;
  /** Worker task type the operation waits for. */
  task: string;
  /** The `timeouts` key of the resource that bounds that wait. */
  timeoutKey: string;
  /** Why a held lock does not apply, when it does not. */
  noLock?: string;
  /**
   * Every worker-starting request the operation sends (`METHOD template`): a `no-worker`
   * fault (PVE's `got no worker upid - start worker failed`) hits the first of each.
   */
  workers: string[];
}

export const TARGETS: Record<Operation, OpTarget> = {
  create: {
    method: "POST", path: "/nodes/{node}/lxc", task: "vzcreate", timeoutKey: "create",
    workers: ["POST /nodes/{node}/lxc", "POST /nodes/{node}/lxc/{vmid}/status/start"],
    noLock: "no lock can be held on a CT that does not exist yet (the new vmid is locked by the create itself)",
  },
  // Update = live memory change (PUT config, synchronous) + rootfs growth (resize task).
  update: { method: "PUT", path: "/nodes/{node}/lxc/{vmid}/config", task: "resize", timeoutKey: "update", workers: ["PUT /nodes/{node}/lxc/{vmid}/resize"] },
  migrate: {
    method: "POST", path: "/nodes/{node}/lxc/{vmid}/migrate", task: "vzmigrate", timeoutKey: "migrate",
    workers: ["POST /nodes/{node}/lxc/{vmid}/migrate", "POST /nodes/{node}/lxc/{vmid}/status/shutdown", "POST /nodes/{node}/lxc/{vmid}/status/stop", "POST /nodes/{node}/lxc/{vmid}/status/start"],
  },
  snapshot: { method: "POST", path: "/nodes/{node}/lxc/{vmid}/snapshot", task: "vzsnapshot", timeoutKey: "create", workers: ["POST /nodes/{node}/lxc/{vmid}/snapshot"] },
  upload: {
    method: "POST", path: "/nodes/{node}/storage/{storage}/upload", task: "imgcopy", timeoutKey: "create",
    noLock: "an upload takes no guest lock (PVE locks nothing a test could hold)",
    workers: ["POST /nodes/{node}/storage/{storage}/upload"],
  },
  delete: {
    method: "DELETE", path: "/nodes/{node}/lxc/{vmid}", task: "vzdestroy", timeoutKey: "delete",
    workers: ["POST /nodes/{node}/lxc/{vmid}/status/stop", "POST /nodes/{node}/lxc/{vmid}/status/shutdown", "DELETE /nodes/{node}/lxc/{vmid}"],
  },
};

export const counterKey = (t: OpTarget) => `${t.method} ${t.path}`;

/** The admin-API fault for the transport/status kinds. */
export function faultSpec(fault: Fault, t: OpTarget): FaultSpec | undefined {
  switch (fault) {
    case "reset-before":
    case "reset-after":
      return { method: t.method, path: t.path, action: fault };
    case "502":
    case "503":
    case "596":
      return { method: t.method, path: t.path, action: "status", status: Number(fault), message: fault === "596" ? "Connection timed out" : "Bad Gateway" };
    default:
      return undefined;
  }
}

/**
 * The `no-worker` faults: each worker-starting request of the operation fails once the way
 * PVE does when it cannot start the worker; the killed worker is listed under `user` (the
 * client's own principal, so the client must not take it for its call's effect).
 */
export function noWorkerSpecs(t: OpTarget, user: string): FaultSpec[] {
  return t.workers.map((w) => {
    const [method, path] = w.split(" ");
    return { method, path, action: "no-worker", user };
  });
}

/** The injected task failure text (the error must carry it to the user). */
export const TASK_FAILURE = (task: string) => `injected ${task} failure: storage 'local-lvm' is not online`;

/** What a clear failure message must say, per fault kind. */
export function clearMessage(fault: Fault, t: OpTarget): RegExp {
  switch (fault) {
    case "task-fails":
      return new RegExp(TASK_FAILURE(t.task).replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    case "lock-held":
      // Either the client's own wait ran out, or the worker task kept failing on the lock.
      return /locked \('?backup'?\)/;
    case "task-timeout":
      // ...and points at the resource's `timeouts` input (not customTimeouts, which never reach a dynamic provider).
      return new RegExp(`${t.task}.*still running after \\d+ s.*not cancelled.*\`timeouts\` input`, "s");
    default:
      // Transport faults should be survived; if not, the message must name the request.
      return new RegExp(`${t.method} \\S*`);
  }
}

/** The rows cli.test.ts runs through the real Pulumi CLI (every operation and every fault kind once). */
export const CLI_ROWS: ReadonlyArray<[Fault, Operation]> = [
  ["503", "create"],
  ["task-timeout", "create"],
  ["reset-after", "update"],
  ["task-fails", "update"],
  ["596", "migrate"],
  ["ticket-expires", "snapshot"],
  ["502", "upload"],
  ["reset-before", "delete"],
  ["lock-held", "delete"],
];
export const viaCli = (f: Fault, o: Operation) => CLI_ROWS.some(([a, b]) => a === f && b === o);

export interface Row {
  fault: Fault;
  operation: Operation;
  /** "survived" (first up succeeded), "failed clearly, converged" or "n/a: reason". */
  outcome: string;
  firstError?: string;
  cli?: boolean;
  ms?: number;
}

export function printTable(title: string, rows: Row[]): string {
  const head = ["fault", "operation", "outcome", "via"];
  const body = rows.map((r) => [r.fault, r.operation, r.outcome, r.cli ? "in-process + CLI (cli.test.ts)" : "in-process"]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  const out = [title, line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)].join("\n");
  console.log(out.split("\n").map((l) => `      ${l}`).join("\n"));
  return out;
}
