/**
 * task-latency: how long after a PVE task ends does our client notice it?
 *
 * Tasks of random durations (log-uniform between `minMs` and `maxMs`, seeded) run in the
 * sandbox (its own process): a container is started and stopped alternately, the duration
 * of vzstart/vzstop set before each task. For every task two watchers run side by side from
 * the moment the POST returned the UPID: our `client.tasks.wait(upid)` (adaptive polling)
 * and a fixed loop (status, then sleep 1 s). Each records when it saw the task stopped;
 * the task's end is taken as POST-answered time + its duration (the sandbox starts the work
 * right after answering and ends it within a few ms of the duration — a small bias that
 * counts against us equally on both sides).
 */
import { PveClient } from "../provider/proxmox/client";
import { BenchResult, fmt, log, median, percentile, ratio, startSandboxProcess } from "./lib";

export interface TaskLatencyOptions {
  tasks: number;
  minMs: number;
  maxMs: number;
  seed?: number;
}

export const LATENCY_FULL: TaskLatencyOptions = { tasks: 40, minMs: 50, maxMs: 8000 };
export const LATENCY_SMOKE: TaskLatencyOptions = { tasks: 3, minMs: 20, maxMs: 300 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runTaskLatency(o: TaskLatencyOptions): Promise<BenchResult> {
  const started = Date.now();
  const sb = await startSandboxProcess({ taskDurationMs: 0 });
  const client = PveClient.connect({ endpoint: sb.conn.endpoint, apiToken: sb.conn.apiToken, tlsFingerprint: sb.conn.tlsFingerprint });
  try {
    const node = sb.conn.nodes[0];
    const apl = (await client.storage.aplinfo(node)).find((a) => a.template.startsWith("alpine"))!;
    await client.storage.aplDownloadAndWait(node, "local", apl.template);
    const { vmid } = await client.lxc.createContainer({ node, config: { ostemplate: `local:vztmpl/${apl.template}`, rootfs: "local-lvm:1", hostname: "lat" } });
    let seed = o.seed ?? 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const ours: number[] = [];
    const fixed: number[] = [];
    const polls = { ours: 0, fixed: 0 };
    const rows: string[] = [];
    let running = false;
    const pollsBefore = (await sb.admin.counters()).requests["GET /nodes/{node}/tasks/{upid}/status"] ?? 0;
    log(`task-latency: ${o.tasks} tasks of ${o.minMs}-${o.maxMs} ms (log-uniform)`);
    for (let i = 0; i < o.tasks; i++) {
      const d = Math.round(o.minMs * Math.pow(o.maxMs / o.minMs, rnd()));
      await sb.admin.setTaskDuration({ vzstart: d, vzstop: d });
      const upid = running ? await client.lxc.stop(node, vmid) : await client.lxc.start(node, vmid);
      const t0 = Date.now();
      const end = t0 + d;
      running = !running;
      const watchOurs = (async () => {
        await client.tasks.wait(upid);
        return Date.now();
      })();
      const watchFixed = (async () => {
        for (;;) {
          polls.fixed++;
          const st = await client.tasks.status(upid);
          if (st.status !== "running") return Date.now();
          await sleep(1000);
        }
      })();
      const [a, b] = await Promise.all([watchOurs, watchFixed]);
      ours.push(Math.max(0, a - end));
      fixed.push(Math.max(0, b - end));
      rows.push(`${d}:${a - end}/${b - end}`);
    }
    const statusKey = "GET /nodes/{node}/tasks/{upid}/status";
    polls.ours = ((await sb.admin.counters()).requests[statusKey] ?? 0) - pollsBefore - polls.fixed;
    const mOurs = median(ours);
    const mFixed = median(fixed);
    return {
      name: "task-latency",
      setup: [
        `${o.tasks} sandbox tasks (vzstart/vzstop, sandbox in its own process) of random durations, log-uniform ${o.minMs}-${o.maxMs} ms (seeded); each watched at once by our \`tasks.wait\` and by a fixed 1 s poll loop`,
        "latency = time the watcher saw the task stopped - (time the POST answered + the task's duration)",
      ],
      ratios: [ratio("median latency ours / fixed 1 s poll", mOurs, mFixed, "ms", "(ours <= 150 ms)", () => mOurs <= 150)],
      metrics: [
        { name: "our median latency", value: `${fmt(mOurs, 0)} ms`, target: "<= 150 ms", met: mOurs <= 150 },
        { name: "our p90 latency", value: `${fmt(percentile(ours, 90), 0)} ms` },
        { name: "fixed 1 s poll median / p90", value: `${fmt(mFixed, 0)} ms / ${fmt(percentile(fixed, 90), 0)} ms` },
        { name: "status polls per task ours / fixed", value: `${fmt(polls.ours / o.tasks, 1)} / ${fmt(polls.fixed / o.tasks, 1)}` },
      ],
      notes: [`Per task (duration ms: ours/fixed latency ms): ${rows.join(", ")}.`],
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    client.close();
    await sb.stop();
  }
}

if (require.main === module) {
  runTaskLatency(process.argv.includes("--smoke") ? LATENCY_SMOKE : LATENCY_FULL)
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
