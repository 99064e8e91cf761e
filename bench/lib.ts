/**
 * Shared helpers of the benchmarks: timing of child processes with their peak RSS, medians
 * and ratios, a sandbox in its own process, and the result record every bench returns.
 *
 * Absolute times on the shared 2-core machines are noise: each bench runs ours and the
 * peer on the same data in the same run, interleaved (A B A B), and reports ratios of the
 * medians. Targets are printed with the result, never asserted.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { connectSandboxAdmin, readConnectionFile, type SandboxConnection } from "../sandbox/remote";
import type { SandboxAdmin } from "../sandbox/admin";

export const REPO = path.resolve(__dirname, "..");
export const MiB = 1024 * 1024;

/** A ratio line: ours / peer (lower is better) unless `higherIsBetter` (throughput). */
export interface Ratio {
  name: string;
  ours: number;
  peer: number;
  unit: string;
  ratio: number;
  target: string;
  met: boolean;
}

export interface Metric {
  name: string;
  value: string;
  target?: string;
  met?: boolean;
}

export interface BenchResult {
  name: string;
  /** What was measured and how (markdown lines). */
  setup: string[];
  ratios: Ratio[];
  metrics: Metric[];
  /** Where the time goes, profile notes (markdown lines). */
  notes: string[];
  seconds: number;
}

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : String(n));

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export function tmpDir(prefix: string, base = os.tmpdir()): string {
  return fs.mkdtempSync(path.join(base, prefix));
}

/** /dev/shm when it has room (RAM-backed: no disk noise from other engineers), else tmp. */
export function fastTmpBase(needBytes: number): string {
  try {
    const st = fs.statfsSync("/dev/shm");
    if (st.bavail * st.bsize > needBytes * 1.5) return "/dev/shm";
  } catch {
    // no /dev/shm
  }
  return os.tmpdir();
}

export interface Timed {
  ms: number;
  /** Peak RSS in KiB of the largest process of the command (GNU time %M). */
  maxRssKiB: number;
  /** CPU seconds (user + system) of the command and its children (GNU time %U + %S). */
  cpuS: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd args` under /usr/bin/time (GNU), wall time measured here in ms. Throws with the
 * output tail on a non-zero exit.
 */
export function timed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; onStderrLine?: (line: string, msSinceStart: number) => void } = {}): Promise<Timed> {
  const timeFile = path.join(os.tmpdir(), `bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn("/usr/bin/time", ["-f", "%M %U %S", "-o", timeFile, cmd, ...args], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    let partial = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
      if (!opts.onStderrLine) return;
      const at = Number(process.hrtime.bigint() - t0) / 1e6;
      const lines = (partial + d).split("\n");
      partial = lines.pop()!;
      for (const l of lines) opts.onStderrLine(l, at);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      let maxRssKiB = NaN;
      let cpuS = NaN;
      try {
        const [rss, user, sys] = fs.readFileSync(timeFile, "utf8").trim().split("\n").pop()!.split(" ").map(Number);
        maxRssKiB = rss;
        cpuS = user + sys;
        fs.rmSync(timeFile, { force: true });
      } catch {
        // no time output
      }
      if (code !== 0) reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}\n${stderr.slice(-3000)}\n${stdout.slice(-1000)}`));
      else resolve({ ms, maxRssKiB, cpuS, stdout, stderr });
    });
  });
}

/** Runs A and B alternately `reps` times each (A B A B …; B first on odd reps to spread drift). */
export async function interleave<T>(reps: number, a: () => Promise<T>, b: () => Promise<T>): Promise<{ a: T[]; b: T[] }> {
  const out = { a: [] as T[], b: [] as T[] };
  for (let i = 0; i < reps; i++) {
    if (i % 2 === 0) {
      out.a.push(await a());
      out.b.push(await b());
    } else {
      out.b.push(await b());
      out.a.push(await a());
    }
  }
  return out;
}

export function ratio(name: string, ours: number, peer: number, unit: string, target: string, met: (r: number) => boolean): Ratio {
  const r = ours / peer;
  return { name, ours, peer, unit, ratio: r, target, met: met(r) };
}

/** The compiled CLI (`npm run bench` and `npm test` build dist/ first). */
export function cliMain(): string {
  const main = path.join(REPO, "dist", "provider", "cli", "main.js");
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run 'npx tsc -p tsconfig.json' (npm run build) first`);
  return main;
}

/** A compiled bench helper script (dist/bench/<name>.js). */
export function compiledBench(name: string): string {
  const f = path.join(REPO, "dist", "bench", `${name}.js`);
  if (!fs.existsSync(f)) throw new Error(`${f} is missing: run 'npx tsc -p tsconfig.json' (npm run build) first`);
  return f;
}

export interface SandboxProcess {
  conn: SandboxConnection;
  connectionFile: string;
  admin: SandboxAdmin;
  child: ChildProcess;
  stateDir: string;
  stop(): Promise<void>;
}

/**
 * `pve-lxc sandbox` in its own process (compiled JS), state under `stateBase` (a temp dir
 * made there and removed on stop).
 */
export async function startSandboxProcess(opts: { taskDurationMs: number; stateBase?: string; nodes?: string[] }): Promise<SandboxProcess> {
  const stateDir = tmpDir("bench-sandbox-", opts.stateBase ?? os.tmpdir());
  const connectionFile = path.join(stateDir, "connection.json");
  const args = [cliMain(), "sandbox", "--port", "0", "--state", path.join(stateDir, "state"), "--connection-file", connectionFile];
  args.push("--task-duration-ms", String(opts.taskDurationMs), "--auth-failure-delay-ms", "0", "--log-level", "warn");
  if (opts.nodes) args.push("--nodes", opts.nodes.join(","));
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PULUMI_PROXMOX_LOG_PRETTY: "0" } });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (output = (output + d).slice(-20000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 60_000;
  while (!fs.existsSync(connectionFile)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      fs.rmSync(stateDir, { recursive: true, force: true });
      throw new Error(`sandbox did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const conn = readConnectionFile(connectionFile);
  return {
    conn,
    connectionFile,
    admin: connectSandboxAdmin(conn),
    child,
    stateDir,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Peak RSS (VmHWM) of a running process, in KiB, or NaN once it is gone. */
export function vmHwmKiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Markdown for one bench result. */
export function renderResult(r: BenchResult): string {
  const out: string[] = [`## ${r.name}`, ""];
  out.push(...r.setup.map((l) => (l.startsWith("- ") || l === "" ? l : `- ${l}`)), "");
  if (r.ratios.length) {
    out.push("| ratio | ours (median) | peer (median) | ratio | target | met |", "|---|---|---|---|---|---|");
    for (const x of r.ratios) out.push(`| ${x.name} | ${fmt(x.ours)} ${x.unit} | ${fmt(x.peer)} ${x.unit} | **${fmt(x.ratio)}x** | ${x.target} | ${x.met ? "yes" : "**no**"} |`);
    out.push("");
  }
  if (r.metrics.length) {
    out.push("| metric | value | target | met |", "|---|---|---|---|");
    for (const m of r.metrics) out.push(`| ${m.name} | ${m.value} | ${m.target ?? ""} | ${m.met === undefined ? "" : m.met ? "yes" : "**no**"} |`);
    out.push("");
  }
  if (r.notes.length) out.push(...r.notes, "");
  out.push(`_bench wall time: ${fmt(r.seconds, 0)} s_`, "");
  return out.join("\n");
}

/** Self time per function of a `.cpuprofile` (µs, wall-clock sampling) and the sampled total. */
export function profileSelfTimes(file: string): { total: number; top: (n: number) => Array<[string, number]> } {
  const prof = JSON.parse(fs.readFileSync(file, "utf8")) as {
    nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  prof.samples.forEach((id, i) => {
    const n = byId.get(id)!;
    const dt = prof.timeDeltas[i] ?? 0;
    total += dt;
    const url = n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, "$1/");
    const key = `${n.callFrame.functionName || "(anonymous)"} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ""}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  return { total, top: (n) => [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n) };
}
