/**
 * pulumi-up: `pulumi up` of N Containers through the real Pulumi CLI (v3.248.0, offline,
 * file backend; test/support/pulumi.ts) against the sandbox in its own process with
 * 0-ms tasks, vs the same stack made of N `Noop` resources — the engine floor: the same
 * CLI, language host, dynamic-provider host and per-resource gRPC, with no API behind.
 *
 * Also counts the API requests (sandbox counters, per "METHOD /template") per created
 * container, and those made by a `pulumi preview` of the unchanged stack.
 */
import * as fs from "node:fs";
import { PveClient } from "../provider/proxmox/client";
import { PulumiStack } from "../test/support/pulumi";
import { pulumiPath } from "../test/support/cli";
import { BenchResult, fmt, log, median, ratio, startSandboxProcess, type Metric } from "./lib";

export interface PulumiUpOptions {
  containers: number;
  reps: number;
}

export const PULUMI_FULL: PulumiUpOptions = { containers: 50, reps: 3 };
export const PULUMI_SMOKE: PulumiUpOptions = { containers: 1, reps: 1 };

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

const sum = (r: Record<string, number>) => Object.values(r).reduce((s, n) => s + n, 0);
function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
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
    let perCreate: Record<string, number> | undefined;
    let previewReqs: Record<string, number> | undefined;
    const upTimes = { ct: [] as number[], noop: [] as number[] };
    const upOnce = async (kind: "ct" | "noop", rep: number) => {
      const stack = await PulumiStack.create({ programSource: kind === "ct" ? containerProgram(o.containers, template) : noopProgram(o.containers), config: kind === "ct" ? config : {} });
      stacks.push(stack);
      const before = (await sb.admin.counters()).requests;
      const t0 = Date.now();
      const up = await stack.up();
      const ms = Date.now() - t0;
      if (up.result && up.result !== "succeeded") throw new Error(`pulumi up (${kind}) ended with ${up.result}`);
      upTimes[kind].push(ms);
      log(`  ${kind === "ct" ? "containers" : "noops     "} up ${fmt(ms / 1000)} s`);
      if (kind === "ct" && rep === 0) {
        const after = (await sb.admin.counters()).requests;
        perCreate = diff(after, before);
        const b2 = after;
        await stack.preview();
        previewReqs = diff((await sb.admin.counters()).requests, b2);
      }
      // No destroy and no `stack rm`: the stack's backend is its own folder, and the sandbox
      // is thrown away at the end (saves minutes; vmids come from nextid).
      fs.rmSync(stack.dir, { recursive: true, force: true });
      stacks.splice(stacks.indexOf(stack), 1);
    };
    log(`pulumi-up: ${o.containers} containers vs ${o.containers} Noops, ${o.reps} reps`);
    for (let i = 0; i < o.reps; i++) {
      const order: Array<"ct" | "noop"> = i % 2 === 0 ? ["ct", "noop"] : ["noop", "ct"];
      for (const k of order) await upOnce(k, i);
    }
    const ctMs = median(upTimes.ct);
    const noopMs = median(upTimes.noop);
    const per = perCreate ?? {};
    const perCt = Object.entries(per)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `\`${k}\` ${fmt(v / o.containers)}`);
    const creates = per["POST /nodes/{node}/lxc"] ?? 0;
    const polls = per["GET /nodes/{node}/tasks/{upid}/status"] ?? 0;
    const metrics: Metric[] = [
      { name: "API requests per created container (total)", value: fmt(sum(per) / o.containers), target: "1 create + task polls + <= 1 read" },
      { name: "  creates (POST /nodes/{node}/lxc) per container", value: fmt(creates / o.containers), target: "1", met: creates === o.containers },
      { name: "  task status polls per container", value: fmt(polls / o.containers) },
      {
        name: "  other requests per container (not create, not polls)",
        value: fmt((sum(per) - creates - polls) / o.containers),
        target: "<= 1",
        met: (sum(per) - creates - polls) / o.containers <= 1,
      },
      { name: "requests made by `pulumi preview` of the unchanged stack", value: String(sum(previewReqs ?? {})), target: "0", met: sum(previewReqs ?? {}) === 0 },
    ];
    return {
      name: "pulumi-up",
      setup: [
        `${o.containers} \`Container\`s (alpine template, static IP, default started: true) by \`pulumi up --skip-preview\` (real CLI v3.248.0, file backend) against the sandbox in its own process with 0-ms tasks`,
        `floor: the same CLI and provider host with ${o.containers} \`Noop\` resources (no API)`,
        `${o.reps} repetitions of each, interleaved; each on a fresh stack (removed afterwards, containers left to the throw-away sandbox); wall time of \`pulumi up\``,
      ],
      ratios: [ratio("containers / Noop (up time)", ctMs / 1000, noopMs / 1000, "s", "<= 1.3x", (r) => r <= 1.3)],
      metrics,
      notes: [
        `Requests per created container, by endpoint: ${perCt.join(", ")}.`,
        previewReqs && sum(previewReqs) ? `Preview requests: ${Object.entries(previewReqs).map(([k, v]) => `\`${k}\` ${v}`).join(", ")}.` : "Preview of the unchanged stack made no API request.",
      ],
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    for (const s of stacks) fs.rmSync(s.dir, { recursive: true, force: true });
    client.close();
    await sb.stop();
  }
}

if (require.main === module) {
  runPulumiUp(process.argv.includes("--smoke") ? PULUMI_SMOKE : PULUMI_FULL)
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
