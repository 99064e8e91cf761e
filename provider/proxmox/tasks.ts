/**
 * Worker tasks (BEHAVIOR.md 3): status, log, list, and `wait`.
 *
 * `wait` polls GET /nodes/{node}/tasks/{upid}/status adaptively: first after ~50 ms
 * (sandbox and small tasks finish in tens of ms), growing ×1.25 to 2 s, so a 10-minute
 * create costs ~310 polls and a 20 ms task costs one or two. (×1.25 rather than ×1.5:
 * bench/task-latency.ts measured a median of 182 ms from a task's end to `wait` noticing
 * it with ×1.5, over tasks of 50 ms-8 s; ×1.25 lowers that by about a third for ~2 more
 * polls per task and ~5 more on a 10-minute one.) Success iff exitstatus is
 * `OK` or `WARNINGS: n` (3.3); warnings are the log's `WARN:` lines, returned and logged.
 * A failure reads the log tail into PveTaskFailedError.
 */
import { z } from "zod";
import type { PveClient } from "./client";
import type { Logger } from "../logging";
import { zInt, zStr } from "./coerce";
import { PveTaskFailedError, PveTaskTimeoutError } from "./errors";
import { exitStatusIsOk, parseUpid } from "./upid";
import { NEVER_RAN_TASK_STATUS, sleep } from "./retry";

export const TaskStatusSchema = z
  .object({
    upid: z.string(),
    node: z.string(),
    status: z.string(),
    exitstatus: z.string().optional(),
    type: z.string().optional(),
    id: zStr.optional(),
    user: z.string().optional(),
    starttime: zInt.optional(),
    pid: zInt.optional(),
  })
  .passthrough();
export type TaskStatus = z.output<typeof TaskStatusSchema>;

export const TaskLogLineSchema = z.object({ n: zInt, t: z.string() });
export type TaskLogLine = z.output<typeof TaskLogLineSchema>;

export const TaskListItemSchema = z
  .object({
    upid: z.string(),
    node: z.string(),
    type: z.string(),
    id: zStr.optional(),
    user: z.string().optional(),
    starttime: zInt,
    endtime: zInt.optional(),
    status: z.string().optional(),
  })
  .passthrough();
export type TaskListItem = z.output<typeof TaskListItemSchema>;

export interface WaitOptions {
  /** Give up after this long (the task keeps running). Default 10 min. */
  timeoutMs?: number;
  /** Called with each new log line; enables incremental log reads while polling. */
  onProgress?: (line: TaskLogLine) => void;
  logger?: Logger;
  /** First poll interval (default 50 ms) and cap (default 2 s). */
  pollStartMs?: number;
  pollMaxMs?: number;
  /** How many log lines a failure carries (default 20). */
  tailLines?: number;
}

export interface TaskResult {
  upid: string;
  node: string;
  exitstatus: string;
  /** `WARN:` lines of the log (empty unless exitstatus is `WARNINGS: n`). */
  warnings: string[];
  durationMs: number;
}

export interface TaskListFilter {
  vmid?: number;
  typefilter?: string;
  userfilter?: string;
  statusfilter?: string;
  errors?: boolean;
  since?: number;
  until?: number;
  source?: "archive" | "active" | "all";
  start?: number;
  limit?: number;
}

const enc = encodeURIComponent;

export class TasksApi {
  constructor(private readonly client: PveClient) {}

  status(upid: string, logger?: Logger): Promise<TaskStatus> {
    const { node } = parseUpid(upid);
    return this.client.get(`/nodes/${node}/tasks/${upid}/status`, undefined, { schema: TaskStatusSchema, logger });
  }

  /** Log lines; `start` is a 0-based offset, `limit=0` reads everything (3.4). */
  async log(upid: string, opts: { start?: number; limit?: number; logger?: Logger } = {}): Promise<{ lines: TaskLogLine[] }> {
    const { node } = parseUpid(upid);
    const lines = await this.client.get(
      `/nodes/${node}/tasks/${upid}/log`,
      { start: opts.start, limit: opts.limit },
      { schema: z.array(TaskLogLineSchema), logger: opts.logger },
    );
    return { lines };
  }

  list(node: string, filter: TaskListFilter = {}, logger?: Logger): Promise<TaskListItem[]> {
    return this.client.get(`/nodes/${enc(node)}/tasks`, { ...filter }, { schema: z.array(TaskListItemSchema), logger });
  }

  /**
   * The newest task of `type` for `id` that this client's principal started on `node`
   * since `sinceSec` (server time), running or finished — how a POST whose answer was
   * lost is recognised as done (see client.ts `verifyEffect`).
   */
  async findRecent(node: string, q: { type: string; id?: string | number; sinceSec: number }, logger?: Logger): Promise<string | undefined> {
    const me = this.client.principal.id;
    const numericId = q.id !== undefined && /^\d+$/.test(String(q.id)) ? Number(q.id) : undefined;
    const items = await this.list(node, { source: "all", typefilter: q.type, vmid: numericId, since: q.sinceSec, limit: 100 }, logger);
    const hits = items
      .filter((t) => t.type === q.type && (q.id === undefined || String(t.id ?? "") === String(q.id)) && t.starttime >= q.sinceSec)
      // A worker killed before it ran (worker-start failure, retry.ts) is listed too; it did nothing.
      .filter((t) => !NEVER_RAN_TASK_STATUS.test(t.status ?? ""))
      .filter((t) => {
        try {
          return parseUpid(t.upid).user === me;
        } catch {
          return false;
        }
      })
      .sort((a, b) => b.starttime - a.starttime);
    return hits[0]?.upid;
  }

  /** Stop a running task (DELETE …/tasks/{upid}). */
  async stop(upid: string): Promise<void> {
    const { node } = parseUpid(upid);
    await this.client.delete(`/nodes/${node}/tasks/${upid}`);
  }

  /** The last `n` log lines. */
  async tail(upid: string, n = 20, logger?: Logger): Promise<string[]> {
    // Read everything (limit=0): task logs are short, and `total` is not in `data`.
    const { lines } = await this.log(upid, { start: 0, limit: 0, logger });
    return lines.slice(-n).map((l) => l.t);
  }

  /** Wait for a task to stop; throws PveTaskFailedError / PveTaskTimeoutError. */
  async wait(upid: string, opts: WaitOptions = {}): Promise<TaskResult> {
    const log = (opts.logger ?? this.client.log).child({ upid });
    const { node, type } = parseUpid(upid);
    const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
    const started = Date.now();
    let interval = opts.pollStartMs ?? 50;
    const maxInterval = opts.pollMaxMs ?? 2000;
    let seen = 0; // log lines already passed to onProgress
    const statusPath = `/nodes/${node}/tasks/${upid}/status`;

    const readProgress = async () => {
      if (!opts.onProgress) return;
      const { lines } = await this.log(upid, { start: seen, limit: 0, logger: log });
      for (const l of lines) {
        if (l.n <= seen) continue;
        if (l.t === "no content" && l.n === 1 && seen === 0) continue;
        seen = l.n;
        opts.onProgress(l);
      }
    };

    for (;;) {
      const st = await this.status(upid, log);
      await readProgress();
      if (st.status !== "running") {
        const exitstatus = st.exitstatus ?? "unexpected status";
        const durationMs = Date.now() - started;
        if (!exitStatusIsOk(exitstatus)) {
          let tail: string[] = [];
          try {
            tail = await this.tail(upid, opts.tailLines ?? 20, log);
          } catch (e) {
            tail = [`(task log unavailable: ${(e as Error).message})`];
          }
          log.warn({ type, exitstatus, durationMs }, "pve task failed");
          throw new PveTaskFailedError(upid, exitstatus, tail, { method: "GET", endpoint: "/nodes/{node}/tasks/{upid}/status", path: statusPath });
        }
        let warnings: string[] = [];
        if (exitstatus.startsWith("WARNINGS")) {
          const { lines } = await this.log(upid, { start: 0, limit: 0, logger: log });
          warnings = lines.map((l) => l.t).filter((t) => t.startsWith("WARN: ")).map((t) => t.slice(6));
          log.warn({ type, warnings }, `pve task finished with ${exitstatus}`);
        } else {
          log.debug({ type, durationMs }, "pve task ok");
        }
        return { upid, node, exitstatus, warnings, durationMs };
      }
      const elapsed = Date.now() - started;
      if (elapsed >= timeoutMs) {
        throw new PveTaskTimeoutError(upid, timeoutMs, { method: "GET", endpoint: "/nodes/{node}/tasks/{upid}/status", path: statusPath });
      }
      await sleep(Math.min(interval, timeoutMs - elapsed));
      interval = Math.min(maxInterval, interval * 1.25);
    }
  }

  /** Wait when `upid` is a UPID; pass `null` through (endpoints that may not start a task). */
  async waitIfTask(upid: string | null, opts?: WaitOptions): Promise<TaskResult | null> {
    return upid ? this.wait(upid, opts) : null;
  }
}

