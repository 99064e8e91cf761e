/**
 * Asynchronous workers with UPIDs (BEHAVIOR.md §3). A handler that "forks" calls
 * `tasks.start(...)` and returns the UPID at once; the worker runs on the event loop,
 * sleeps its configured duration in `ctx.work()` and logs like PVE (`TASK OK`,
 * `TASK WARNINGS: n`, `TASK ERROR: ...`). Finished tasks go to the (persisted) index.
 */
import type { Upid } from "../provider/proxmox/upid";
import { formatUpid } from "../provider/proxmox/upid";
import type { Store, FinishedTask } from "./state";
import type { Identity } from "./auth";

export interface TaskContext {
  upid: string;
  log(line: string): void;
  /** `WARN: <msg>` — counted in `TASK WARNINGS: n` (§3.3). */
  warn(msg: string): void;
  /** The simulated work: sleeps the task duration; an injected task failure throws here. */
  work(fraction?: number): Promise<void>;
  sleep(ms: number): Promise<void>;
}

export interface RunningTask extends Upid {
  upid: string;
  log: string[];
  warnings: number;
  done: Promise<void>;
}

export interface TaskFailure {
  type?: string;
  vmid?: number | string;
  exitstatus: string;
  /** How many matching tasks fail (default 1). */
  times?: number;
}

/** Process start ticks of the fake pveproxy; constant per sandbox run like a real daemon. */
const PSTART = 0x0034c5d6;

export class TaskManager {
  readonly running = new Map<string, RunningTask>();
  private readonly aborted = new Set<string>();
  private durations: { default: number; byType: Record<string, number> };
  private failures: TaskFailure[] = [];
  /** Listeners for task completion (used by `delay` on DELETE content, §3.2). */
  private waiters = new Map<string, Array<() => void>>();

  constructor(
    private readonly store: Store,
    defaultDurationMs: number,
    private readonly onChange: () => void,
  ) {
    this.durations = { default: defaultDurationMs, byType: {} };
  }

  setDuration(ms: number | Record<string, number>): void {
    if (typeof ms === "number") this.durations = { default: ms, byType: {} };
    else this.durations.byType = { ...this.durations.byType, ...ms };
  }

  durationFor(type: string): number {
    return this.durations.byType[type] ?? this.durations.default;
  }

  addFailure(f: TaskFailure): void {
    this.failures.push({ ...f, times: f.times ?? 1 });
  }

  clearFailures(): void {
    this.failures = [];
  }

  private takeFailure(type: string, id: string): string | undefined {
    // ids are the vmid, `<vmid>@<storage>` (imgdel) or `<vmid>-<key>>…` (move_volume)
    const matchesVmid = (v: number | string) => id === String(v) || id.startsWith(`${v}-`) || id.startsWith(`${v}@`);
    const i = this.failures.findIndex((f) => (!f.type || f.type === type) && (f.vmid === undefined || matchesVmid(f.vmid)));
    if (i < 0) return undefined;
    const f = this.failures[i];
    f.times = (f.times ?? 1) - 1;
    if (f.times <= 0) this.failures.splice(i, 1);
    return f.exitstatus;
  }

  start(opts: { node: string; type: string; id: string; who: Identity; worker: (ctx: TaskContext) => Promise<void> }): string {
    const st = this.store.state;
    const pid = st.nextPid++;
    const starttime = Math.floor(Date.now() / 1000);
    const upid = formatUpid({ node: opts.node, pid, pstart: PSTART, starttime, type: opts.type, id: opts.id, user: opts.who.authid });
    const injected = this.takeFailure(opts.type, opts.id);
    const task: RunningTask = {
      upid, node: opts.node, pid, pstart: PSTART, starttime, type: opts.type, id: opts.id, user: opts.who.authid,
      log: [], warnings: 0, done: Promise.resolve(),
    };
    const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
    const ctx: TaskContext = {
      upid,
      log: (line) => task.log.push(...line.replace(/\n$/, "").split("\n")),
      warn: (msg) => {
        task.warnings++;
        task.log.push(`WARN: ${msg.replace(/\n$/, "")}`);
      },
      sleep,
      work: async (fraction = 1) => {
        // Sleep in slices so DELETE …/tasks/{upid} can interrupt the work like a SIGTERM.
        const until = Date.now() + this.durationFor(opts.type) * fraction;
        for (;;) {
          if (this.aborted.has(upid)) throw new Error("received interrupt");
          const left = until - Date.now();
          if (left <= 0) break;
          await sleep(Math.min(left, 50));
        }
        if (injected !== undefined) throw new Error(injected);
      },
    };
    this.running.set(upid, task);
    task.done = (async () => {
      // Yield first so the HTTP response with the UPID goes out before any work, like fork.
      await new Promise((r) => setImmediate(r));
      let status: string;
      try {
        await opts.worker(ctx);
        status = task.warnings ? `WARNINGS: ${task.warnings}` : "OK";
        task.log.push(task.warnings ? `TASK WARNINGS: ${task.warnings}` : "TASK OK");
      } catch (e) {
        // fork_worker: newlines become spaces, trailing newline dropped (§3.3).
        const msg = String((e as Error).message ?? e).replace(/\n$/, "").replace(/\n/g, " ");
        status = msg;
        task.log.push(`TASK ERROR: ${msg}`);
      }
      this.running.delete(upid);
      this.aborted.delete(upid);
      const fin: FinishedTask = {
        upid, node: task.node, pid, pstart: PSTART, starttime, type: task.type, id: task.id, user: task.user,
        endtime: Math.floor(Date.now() / 1000), status, log: task.log,
      };
      this.store.state.tasks.push(fin);
      this.onChange();
      for (const w of this.waiters.get(upid) ?? []) w();
      this.waiters.delete(upid);
    })();
    return upid;
  }

  /** Interrupt a running task at its next work slice. */
  abort(upid: string): void {
    if (this.running.has(upid)) this.aborted.add(upid);
  }

  find(upid: string): { running?: RunningTask; finished?: FinishedTask } | undefined {
    const r = this.running.get(upid);
    if (r) return { running: r };
    // Newest first: a status poll almost always asks about a task that just ended.
    const tasks = this.store.state.tasks;
    for (let i = tasks.length - 1; i >= 0; i--) if (tasks[i].upid === upid) return { finished: tasks[i] };
    return undefined;
  }

  /** Resolves when the task ends or after `ms`; true if it ended. */
  waitFor(upid: string, ms: number): Promise<boolean> {
    if (!this.running.has(upid)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      const list = this.waiters.get(upid) ?? [];
      list.push(() => {
        clearTimeout(t);
        resolve(true);
      });
      this.waiters.set(upid, list);
    });
  }

  /** Wait for every running task (used by stop()). */
  async drain(): Promise<void> {
    await Promise.all([...this.running.values()].map((t) => t.done));
  }
}
