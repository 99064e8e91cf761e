/**
 * pulumi-up: `pulumi up`, `pulumi preview` (unchanged stack) and `pulumi destroy` of N
 * Containers through the real Pulumi CLI (v3.248.0, offline, file backend;
 * test/support/pulumi.ts) against the sandbox in its own process with 0-ms tasks, vs the
 * same operations on a stack of N `Noop` resources — the engine floor: the same CLI,
 * language host, dynamic-provider host and per-resource gRPC, with no API behind. Run at
 * each size (50 and 200), interleaved (containers, Noops / Noops, containers).
 *
 * Also: the API requests of each operation (sandbox counters, per "METHOD /template"), the
 * provider host's peak RSS (VmHWM of the dynamic-provider process, sampled from /proc), the
 * CPU time of each process of the run (where the time goes) and, optionally, the provider
 * host's CPU profile.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { PveClient } from "../provider/proxmox/client";
import { PulumiStack } from "../test/support/pulumi";
import { pulumiPath } from "../test/support/cli";
import { BenchResult, fmt, log, median, profileSelfTimes, ratio, startSandboxProcess, tmpDir, type Metric, type Ratio } from "./lib";

export interface PulumiUpSize {
  containers: number;
  reps: number;
}

export interface PulumiUpOptions {
  sizes: PulumiUpSize[];
  /** One extra `up` of the first size with `node --cpu-prof` in the provider host. */
  profile: boolean;
}

export const PULUMI_FULL: PulumiUpOptions = {
  sizes: [
    { containers: 50, reps: 3 },
    { containers: 200, reps: 2 },
  ],
  profile: true,
};
export const PULUMI_SMOKE: PulumiUpOptions = { sizes: [{ containers: 1, reps: 1 }], profile: false };

type Kind = "ct" | "noop";
type Op = "up" | "preview" | "destroy";
const OPS: Op[] = ["up", "preview", "destroy"];
type Counts = Record<string, number>;

const CREATE = "POST /nodes/{node}/lxc";
const POLL = "GET /nodes/{node}/tasks/{upid}/status";
const START = "POST /nodes/{node}/lxc/{vmid}/status/start";

function containerProgram(n: number, template: string): string {
  return `
import { Container } from "pulumi-proxmox-lxc";
for (let i = 0; i < ${n}; i++) {
  new Container(\`ct\${i}\`, {
    node: "pve1",
    template: ${JSON.stringify(template)},
    hostname: \`ct\${i}\`,
    memory: { dedicated: 256 },
    rootfs: { storage: "local-lvm", size: "2G" },
    networks: [{ name: "eth0", bridge: "vmbr0", ip: \`10.20.\${Math.floor(i / 200)}.\${(i % 200) + 10}/16\`, gw: "10.20.0.1" }],
  });
}
`;
}

function noopProgram(n: number): string {
  return `
import { Noop } from "pulumi-proxmox-lxc";
for (let i = 0; i < ${n}; i++) new Noop(\`ct\${i}\`, { value: { hostname: \`ct\${i}\`, memory: 256 } });
`;
}

const sum = (r: Counts) => Object.values(r).reduce((s, n) => s + n, 0);
function diff(after: Counts, before: Counts): Counts {
  const out: Counts = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}
const listCounts = (c: Counts, per = 1) =>
  Object.entries(c)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `\`${k}\` ${fmt(v / per)}`)
    .join(", ") || "none";

// ---------------------------------------------------------------------------------------
// The processes of one pulumi command: the engine starts its plugins (language host,
// program, dynamic-provider host) in the project folder, so every process whose cwd is that
// folder belongs to this stack — other test runs on the machine have their own folders.

const TICK_S = 0.01; // USER_HZ: /proc/<pid>/stat times are in 1/100 s on Linux

function role(cmdline: string): string {
  // Not the launcher's `node -e "require.resolve('…/cmd/dynamic-provider')"`.
  if (cmdline.includes("cmd/dynamic-provider") && !cmdline.includes("\0-e\0")) return "provider host (node)";
  if (cmdline.includes("pulumi-resource-pulumi-nodejs") || cmdline.includes("\0-e\0")) return "provider launcher (sh, node -e)";
  if (cmdline.includes("pulumi-language-nodejs")) return "language host (Go)";
  if (/^\S*pulumi\0/.test(cmdline)) return "engine (pulumi CLI)";
  if (cmdline.includes("@pulumi/pulumi/cmd/run") || cmdline.includes("run-plugin")) return "program (node)";
  if (cmdline.startsWith("node") || cmdline.includes("/node\0")) return "program (node)";
  if (process.env.BENCH_DEBUG && cmdline) log(`other process: ${cmdline.replace(/\0/g, " ").slice(0, 200)}`);
  return "other";
}

interface ProcSample {
  role: string;
  cpuS: number;
  hwmKiB: number;
}

/** Samples every process of the stack every 200 ms: CPU time and VmHWM per pid. */
class ProcSampler {
  readonly seen = new Map<number, ProcSample>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly cwd: string) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 200);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  private sample(): void {
    for (const d of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      const pid = Number(d);
      try {
        if (!this.seen.has(pid) && fs.readlinkSync(`/proc/${pid}/cwd`) !== this.cwd) continue;
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const cpuS = (Number(f[11]) + Number(f[12])) * TICK_S; // utime, stime
        const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN);
        const prev = this.seen.get(pid);
        // Read each time: the provider's launcher script execs node in the same pid.
        // (A zombie's cmdline is empty: it keeps the role it had.)
        const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
        const r = !cmdline && prev ? prev.role : role(cmdline);
        this.seen.set(pid, { role: r, cpuS, hwmKiB: Number.isFinite(hwm) ? hwm : prev?.hwmKiB ?? 0 });
      } catch {
        // gone meanwhile (its last sample stays)
      }
    }
  }

  /** CPU seconds per role (a process's last 200 ms before it exits are not seen). */
  cpuByRole(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.seen.values()) out[s.role] = (out[s.role] ?? 0) + s.cpuS;
    return out;
  }

  providerHwmKiB(): number {
    let max = 0;
    for (const s of this.seen.values()) if (s.role.startsWith("provider host")) max = Math.max(max, s.hwmKiB);
    return max;
  }
}

function procCpuS(pid: number | undefined): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * TICK_S;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------

interface OpRun {
  ms: number;
  requests: Counts;
  cpu: Record<string, number>;
  providerHwmKiB: number;
}

interface SizeRuns {
  n: number;
  runs: Record<Kind, Record<Op, OpRun[]>>;
}

const medianOf = (runs: OpRun[]) => median(runs.map((r) => r.ms)) / 1000;

/** Top self-time functions of a .cpuprofile, as markdown lines. */
function profileTop(file: string, top: number, who = "provider host"): string[] {
  const { total, top: topOf } = profileSelfTimes(file);
  const lines = [`- ${who} (${fmt(total / 1e6)} s sampled, wall clock: idle and descheduled time count too):`];
  for (const [k, v] of topOf(top)) lines.push(`  - ${fmt((v / total) * 100, 1)} % ${k}`);
  return lines;
}

export async function runPulumiUp(o: PulumiUpOptions): Promise<BenchResult> {
  const started = Date.now();
  await pulumiPath();
  const sb = await startSandboxProcess({ taskDurationMs: 0 });
  const client = PveClient.connect({ endpoint: sb.conn.endpoint, apiToken: sb.conn.apiToken, tlsFingerprint: sb.conn.tlsFingerprint });
  const stacks: PulumiStack[] = [];
  try {
    const apl = (await client.storage.aplinfo("pve1")).find((a) => a.template.startsWith("alpine"))!;
    await client.storage.aplDownloadAndWait("pve1", "local", apl.template);
    const template = `local:vztmpl/${apl.template}`;
    const config = {
      "proxmox:endpoint": sb.conn.endpoint,
      "proxmox:apiToken": { value: sb.conn.apiToken, secret: true },
      "proxmox:tlsFingerprint": sb.conn.tlsFingerprint,
    };
    const newStack = async (kind: Kind, n: number) => {
      const s = await PulumiStack.create({ programSource: kind === "ct" ? containerProgram(n, template) : noopProgram(n), config: kind === "ct" ? config : {} });
      stacks.push(s);
      return s;
    };
    const dropStack = (s: PulumiStack) => {
      fs.rmSync(s.dir, { recursive: true, force: true });
      stacks.splice(stacks.indexOf(s), 1);
    };
    const runOp = async (stack: PulumiStack, op: Op): Promise<OpRun> => {
      const sampler = new ProcSampler(fs.realpathSync(stack.projectDir));
      const before = (await sb.admin.counters()).requests;
      const sbCpu0 = procCpuS(sb.child.pid);
      sampler.start();
      const t0 = Date.now();
      const res = await stack[op]().finally(() => sampler.stop());
      const ms = Date.now() - t0;
      if (res.result && res.result !== "succeeded") throw new Error(`pulumi ${op} ended with ${res.result}`);
      const requests = diff((await sb.admin.counters()).requests, before);
      const cpu = { ...sampler.cpuByRole(), "sandbox (API server)": procCpuS(sb.child.pid) - sbCpu0 };
      return { ms, requests, cpu, providerHwmKiB: sampler.providerHwmKiB() };
    };

    const all: SizeRuns[] = [];
    for (const size of o.sizes) {
      const n = size.containers;
      const runs: SizeRuns["runs"] = { ct: { up: [], preview: [], destroy: [] }, noop: { up: [], preview: [], destroy: [] } };
      log(`pulumi-up: ${n} containers vs ${n} Noops, ${size.reps} reps`);
      for (let i = 0; i < size.reps; i++) {
        const order: Kind[] = i % 2 === 0 ? ["ct", "noop"] : ["noop", "ct"];
        const st = { ct: await newStack("ct", n), noop: await newStack("noop", n) };
        for (const op of OPS) {
          for (const k of order) {
            const r = await runOp(st[k], op);
            runs[k][op].push(r);
            log(`  ${n} ${k === "ct" ? "containers" : "noops     "} ${op.padEnd(7)} ${fmt(r.ms / 1000)} s, ${sum(r.requests)} requests${r.providerHwmKiB ? `, provider host VmHWM ${fmt(r.providerHwmKiB / 1024, 1)} MiB` : ""}`);
          }
        }
        for (const k of order) dropStack(st[k]);
      }
      all.push({ n, runs });
    }
    const profile = o.profile ? await profileProvider(newStack, dropStack, o.sizes[0].containers) : [];
    return report(o, all, profile, (Date.now() - started) / 1000);
  } finally {
    for (const s of [...stacks]) fs.rmSync(s.dir, { recursive: true, force: true });
    client.close();
    await sb.stop();
  }
}

/**
 * One more container `up` with the provider host under `node --cpu-prof` (not allowed in
 * NODE_OPTIONS: a `node` wrapper first in PATH adds it for the dynamic-provider process;
 * the plugin launcher runs `node` from PATH).
 */
async function profileProvider(newStack: (k: Kind, n: number) => Promise<PulumiStack>, dropStack: (s: PulumiStack) => void, n: number): Promise<string[]> {
  const profDir = tmpDir("bench-pulumi-prof-");
  const binDir = path.join(profDir, "bin");
  fs.mkdirSync(binDir);
  // The engine ends its plugins with a signal (SIGINT, then SIGKILL): exit cleanly on it so
  // that node writes the profile.
  const preload = path.join(profDir, "exit-on-signal.js");
  fs.writeFileSync(preload, `for (const s of ["SIGINT", "SIGTERM"]) process.on(s, () => process.exit(0));\n`);
  const prof = `--cpu-prof --cpu-prof-dir=${profDir} -r ${preload}`;
  // BENCH_PROFILE_PROGRAM=1 profiles the program process (`@pulumi/pulumi/cmd/run`) too.
  const program = process.env.BENCH_PROFILE_PROGRAM === "1" ? `\ncase "$1" in *cmd/run*) exec ${process.execPath} ${prof} "$@";; esac` : "";
  fs.writeFileSync(path.join(binDir, "node"), `#!/bin/sh\ncase "$1" in *cmd/dynamic-provider*) exec ${process.execPath} ${prof} "$@";; esac${program}\nexec ${process.execPath} "$@"\n`, { mode: 0o755 });
  const stack = await newStack("ct", n);
  const sampler = new ProcSampler(fs.realpathSync(stack.projectDir));
  try {
    stack.setEnv("PATH", `${binDir}:${await pulumiPath()}`);
    sampler.start();
    await stack.up();
    sampler.stop();
    await stack.destroy();
    const providerPids = [...sampler.seen.entries()].filter(([, s]) => s.role.startsWith("provider host")).map(([pid]) => pid);
    const files = fs.readdirSync(profDir).filter((f) => f.endsWith(".cpuprofile") && providerPids.some((pid) => f.includes(`.${pid}.0.`)));
    if (!files.length) return [`(no provider-host profile was written: pids ${providerPids.join(", ")}, files ${fs.readdirSync(profDir).join(", ")})`];
    const lines = [`Where the provider host's time goes in a ${n}-container \`up\` (\`node --cpu-prof\`, one extra run; self time per function, top 12):`, "", ...profileTop(path.join(profDir, files[0]), 12)];
    const programPids = [...sampler.seen.entries()].filter(([, s]) => s.role.startsWith("program")).map(([pid]) => pid);
    const progFile = fs.readdirSync(profDir).find((f) => f.endsWith(".cpuprofile") && programPids.some((pid) => f.includes(`.${pid}.0.`)));
    if (progFile) lines.push("", "The program's (`cmd/run`):", "", ...profileTop(path.join(profDir, progFile), 20, "program"));
    return lines;
  } catch (e) {
    return [`(profile failed: ${(e as Error).message.split("\n").slice(0, 3).join(" ")})`];
  } finally {
    sampler.stop();
    dropStack(stack);
    // BENCH_KEEP_PROFILES=DIR keeps the .cpuprofile files (for a closer look in DevTools).
    const keep = process.env.BENCH_KEEP_PROFILES;
    if (keep) for (const f of fs.readdirSync(profDir).filter((x) => x.endsWith(".cpuprofile"))) fs.cpSync(path.join(profDir, f), path.join(keep, f));
    fs.rmSync(profDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------

function report(o: PulumiUpOptions, all: SizeRuns[], profile: string[], seconds: number): BenchResult {
  const ratios: Ratio[] = [];
  const metrics: Metric[] = [];
  const notes: string[] = [];
  const largest = all[all.length - 1];
  for (const { n, runs } of all) {
    const t = (k: Kind, op: Op) => medianOf(runs[k][op]);
    ratios.push(ratio(`up: containers / Noop (${n})`, t("ct", "up"), t("noop", "up"), "s", "<= 1.2x", (r) => r <= 1.2));
    ratios.push(ratio(`preview (unchanged): containers / Noop (${n})`, t("ct", "preview"), t("noop", "preview"), "s", "<= 1.1x", (r) => r <= 1.1));
    ratios.push(ratio(`destroy: containers / Noop (${n})`, t("ct", "destroy"), t("noop", "destroy"), "s", "<= 1.3x", (r) => r <= 1.3));

    const up = runs.ct.up[0].requests; // the first rep's (every rep creates the same N)
    const creates = up[CREATE] ?? 0;
    const others: Counts = Object.fromEntries(Object.entries(up).filter(([k]) => ![CREATE, POLL, START].includes(k)));
    const other = sum(others);
    const previewReqs = Math.max(...runs.ct.preview.map((r) => sum(r.requests)));
    const hwm = Math.max(...runs.ct.up.map((r) => r.providerHwmKiB), ...runs.ct.preview.map((r) => r.providerHwmKiB), ...runs.ct.destroy.map((r) => r.providerHwmKiB));
    const noopHwm = Math.max(...runs.noop.up.map((r) => r.providerHwmKiB));
    metrics.push(
      { name: `creates (POST /nodes/{node}/lxc) per container (${n})`, value: fmt(creates / n), target: "1.00", met: creates === n },
      { name: `other requests per container, besides create, task polls, start (${n})`, value: fmt(other / n), target: "<= 1", met: other / n <= 1 },
      { name: `requests made by \`pulumi preview\` of the unchanged stack (${n})`, value: String(previewReqs), target: "0", met: previewReqs === 0 },
      {
        name: `provider host peak RSS, VmHWM (${n})`,
        value: `${fmt(hwm / 1024, 1)} MiB (Noop: ${fmt(noopHwm / 1024, 1)} MiB)`,
        ...(n === largest.n ? { target: "<= 250 MiB", met: hwm > 0 && hwm / 1024 <= 250 } : {}),
      },
      { name: `  requests per container in \`up\`, all (${n})`, value: fmt(sum(up) / n) },
      { name: `  requests per container in \`destroy\` (${n})`, value: fmt(sum(runs.ct.destroy[0].requests) / n) },
    );
    notes.push(
      `${n} containers — \`up\` requests per container: ${listCounts(up, n)}. Besides create, polls and start: ${listCounts(others)} (counts for the whole run).`,
      `${n} containers — \`destroy\` requests per container: ${listCounts(runs.ct.destroy[0].requests, n)}.`,
      "",
    );
  }
  if (all.length > 1) {
    const [a, b] = [all[0], largest];
    for (const op of OPS) {
      for (const k of ["ct", "noop"] as Kind[]) {
        const pa = medianOf(a.runs[k][op]) / a.n;
        const pb = medianOf(b.runs[k][op]) / b.n;
        const name = `${op}, ${k === "ct" ? "containers" : "Noop"}: time per resource ${a.n} → ${b.n}`;
        const value = `${fmt(pa * 1000, 0)} → ${fmt(pb * 1000, 0)} ms (${fmt(pb / pa)}x)`;
        metrics.push(k === "ct" ? { name, value, target: "flat (<= 1.2x)", met: pb / pa <= 1.2 } : { name: `  ${name}`, value });
      }
    }
  }
  notes.push("Where the time goes — CPU seconds per process (medians of the reps; processes sampled from /proc every 200 ms, so the last 200 ms of a process that exits are missed):", "");
  for (const { n, runs } of all) {
    for (const op of OPS) {
      const line = (k: Kind) => {
        const roles = [...new Set(runs[k][op].flatMap((r) => Object.keys(r.cpu)))].sort();
        return roles
          .map((ro) => [ro, median(runs[k][op].map((r) => r.cpu[ro] ?? 0))] as const)
          .filter(([, v]) => v >= 0.05)
          .map(([ro, v]) => `${ro} ${fmt(v, 1)}`)
          .join(", ");
      };
      notes.push(`- ${n}, \`${op}\` (wall ${fmt(medianOf(runs.ct[op]), 1)} s vs ${fmt(medianOf(runs.noop[op]), 1)} s): containers: ${line("ct")}; Noop: ${line("noop")}`);
    }
  }
  notes.push("", ...profile);
  return {
    name: "pulumi-up",
    setup: [
      `${o.sizes.map((s) => s.containers).join(" and ")} \`Container\`s (alpine template, static IP, default started: true) by \`pulumi up --skip-preview\`, then \`pulumi preview\` of the unchanged stack, then \`pulumi destroy --skip-preview\` (real CLI v3.248.0, file backend), against the sandbox in its own process with 0-ms tasks`,
      `floor: the same CLI and provider host with the same number of \`Noop\` resources (no API), same operations`,
      `${o.sizes.map((s) => `${s.reps} reps at ${s.containers}`).join(", ")}; each rep makes a fresh container stack and a fresh Noop stack and runs up, preview, destroy interleaved (containers, Noops / Noops, containers); wall time of each command, medians`,
      `provider host peak RSS: VmHWM of the dynamic-provider process (\`@pulumi/pulumi/cmd/dynamic-provider\`, the process in the stack's project folder), sampled from /proc every 200 ms`,
      `requests: the sandbox's per-endpoint counters around each command`,
    ],
    ratios,
    metrics,
    notes,
    seconds,
  };
}

// `npx ts-node -T bench/pulumi-up.ts 200 [50 …] [--profile]`: only those sizes, BENCH_REPS reps
// each (default 1); no sizes: PULUMI_FULL, what `npm run bench` runs.
if (require.main === module) {
  const sizes = process.argv
    .slice(2)
    .filter((a) => /^\d+$/.test(a))
    .map((a) => ({ containers: Number(a), reps: Number(process.env.BENCH_REPS ?? 1) }));
  const opts = process.argv.includes("--smoke") ? PULUMI_SMOKE : sizes.length ? { sizes, profile: process.argv.includes("--profile") } : PULUMI_FULL;
  runPulumiUp(opts)
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
