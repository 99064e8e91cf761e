/**
 * One fault-matrix row, in process: set up what the operation needs (without faults),
 * inject the fault, `up`, then re-run `up`, preview, refresh and compare with reality.
 * The CLI run (cli.test.ts) reuses the fault/operation definitions of ./matrix.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import type { SandboxHandle } from "../../sandbox";
import type { PveClient } from "../../provider/proxmox/client";
import { Engine, checkReality, useSandbox, volidOf, waitForRequest, sleep, type Res } from "./world";
import { TARGETS, TASK_FAILURE, clearMessage, counterKey, faultSpec, noWorkerSpecs, type Fault, type Operation, type Row } from "./matrix";

export const IN_PROCESS_LOCK_WAIT_MS = 1500;
const LOCK_HOLD_S = 3;
const SLOW_TASK_MS = 2500;
export const NODES = ["pve1", "pve2"];

export interface Env {
  sb: SandboxHandle;
  template: string;
  dir: string;
  tarball: Buffer;
}

interface Plan {
  prior: Res[];
  program: Res[];
  /** vmid of the CT the fault's lock/task targets (after prior). */
  vmid?: (e: Engine) => number;
  markers: Array<{ ct: string; disk: string; text: string }>;
}

function plan(env: Env, op: Operation, fault: Fault, tag: string): Plan {
  const t = TARGETS[op];
  const timeouts = fault === "task-timeout" ? { timeouts: { [t.timeoutKey]: 1 } } : {};
  // Rows other than create use their own vmid: auto-allocation would hand every row CT 100
  // again within a second of the previous row's delete (see the report on verifyEffect).
  const fixed = op === "create" ? {} : { vmid: 1000 + Number(tag.replace(/\D/g, "")) };
  const ct = (extra: Record<string, unknown> = {}): Res => ({
    kind: "Container",
    name: "ct",
    inputs: {
      ...fixed,
      node: "pve1",
      template: env.template,
      hostname: `rs-${tag}`,
      memory: { dedicated: 256, swap: 0 },
      rootfs: { storage: "local-lvm", size: "1G" },
      networks: [{ name: "eth0", bridge: "vmbr0", ip: "10.0.0.5/24" }],
      ...extra,
    },
  });
  const vmidOfCt = (e: Engine) => Number(e.get("ct")!.id);
  const marker = [{ ct: "ct", disk: "rootfs", text: `data of ${tag}` }];
  switch (op) {
    case "create":
      return { prior: [], program: [ct(timeouts)], markers: [] };
    case "update":
      return { prior: [ct()], program: [ct({ memory: { dedicated: 512, swap: 0 }, rootfs: { storage: "local-lvm", size: "2G" }, ...timeouts })], vmid: vmidOfCt, markers: marker };
    case "migrate":
      return { prior: [ct()], program: [ct({ node: "pve2", ...timeouts })], vmid: vmidOfCt, markers: marker };
    case "snapshot": {
      const snap: Res = { kind: "Snapshot", name: "snap", inputs: (e) => ({ node: "pve1", vmid: vmidOfCt(e), name: "before-upgrade", description: `row ${tag}`, ...timeouts }) };
      return { prior: [ct()], program: [ct(), snap], vmid: vmidOfCt, markers: marker };
    }
    case "upload": {
      const file = path.join(env.dir, `rs-${tag}.tar.gz`);
      fs.writeFileSync(file, env.tarball);
      return { prior: [], program: [{ kind: "Template", name: "tmpl", inputs: { node: "pve1", storage: "local", path: file, ...timeouts } }], markers: [] };
    }
    case "delete":
      // Nothing to keep: the CT and its volumes are meant to go.
      return { prior: [ct(timeouts)], program: [], vmid: vmidOfCt, markers: [] };
  }
}

/** Run one row; throws (with the row's story) when the library broke a promise. */
export async function runRow(env: Env, op: Operation, fault: Fault, tag: string): Promise<Row> {
  const { sb } = env;
  const t = TARGETS[op];
  const row: Row = { fault, operation: op, outcome: "" };
  if (fault === "lock-held" && t.noLock) {
    row.outcome = `n/a: ${t.noLock}`;
    return row;
  }
  const started = Date.now();
  const client = useSandbox(sb, fault === "ticket-expires" ? "ticket" : "token", IN_PROCESS_LOCK_WAIT_MS);
  const engine = new Engine();
  const p = plan(env, op, fault, tag);
  const story: string[] = [];
  try {
    if (p.prior.length) {
      const prior = await engine.up(p.prior);
      expect(prior.ok, `setup: ${prior.errors.join("; ")}`).to.equal(true);
    }
    for (const m of p.markers) await sb.admin.writeVolumeMarker(volidOf(engine, m.ct, m.disk), m.text);
    await sb.admin.resetCounters();

    // ---- inject ----
    const spec = faultSpec(fault, t);
    let background: Promise<unknown> = Promise.resolve();
    if (spec) await sb.admin.addFault(spec);
    if (fault === "no-worker") for (const s of noWorkerSpecs(t, client.principal.id)) await sb.admin.addFault(s);
    if (fault === "task-fails") await sb.admin.failTask({ type: t.task, vmid: p.vmid?.(engine), exitstatus: TASK_FAILURE(t.task) });
    if (fault === "lock-held") await sb.admin.holdLock(p.vmid!(engine), "backup", LOCK_HOLD_S);
    if (fault === "task-timeout") await sb.admin.setTaskDuration({ [t.task]: SLOW_TASK_MS });
    if (fault === "ticket-expires") {
      // The provider is logged in (setup ran); expire its ticket while the operation runs.
      await sb.admin.setTaskDuration({ [t.task]: 400 });
      background = waitForRequest(sb, counterKey(t), 1).then(async (seen) => {
        expect(seen, `${counterKey(t)} was never sent`).to.equal(true);
        await sb.admin.expireTickets();
      });
      background.catch(() => undefined); // awaited (and rethrown) after the up below
    }

    const first = await engine.up(p.program);
    await background;
    story.push(`1st up: ${first.ok ? "ok" : first.errors.join("; ")}`);
    const counters = await sb.admin.counters();
    if (spec || fault === "ticket-expires") expect(counters.requests[counterKey(t)] ?? 0, `${counterKey(t)} was never sent, so the fault never fired`).to.be.greaterThan(0);

    if (first.ok) {
      row.outcome = "survived (1st up ok)";
    } else {
      row.firstError = first.errors.join("; ");
      expect(row.firstError, `unclear failure for ${fault} during ${op}`).to.match(clearMessage(fault, t));
      row.outcome = "failed clearly, re-run converged";
    }

    // ---- let the fault pass, re-run ----
    await sb.admin.clearFaults();
    if (fault === "lock-held") await sleep(Math.max(0, LOCK_HOLD_S * 1000 + 200 - (Date.now() - started)));
    if (fault === "task-timeout") await sleep(SLOW_TASK_MS + 300);
    await sb.admin.setTaskDuration(5);
    let second = await engine.up(p.program);
    story.push(`2nd up: ${second.ok ? JSON.stringify(second.ops) : second.errors.join("; ")}`);
    if (!second.ok && op === "delete" && fault === "task-fails") {
      // PVE leaves a CT whose destroy task failed locked 'destroyed'; only an operator may
      // decide it is stale. The re-run must say so, and converge after `pct unlock`.
      expect(second.errors.join("; "), "re-run after a failed destroy").to.match(/locked \('destroyed'\).*pct unlock/s);
      const vmid = Number(engine.get("ct")!.id);
      await sb.admin.holdLock(vmid, "destroyed", 0.05); // = pct unlock, 50 ms from now
      await sleep(150);
      second = await engine.up(p.program);
      story.push(`3rd up (after pct unlock): ${second.ok ? JSON.stringify(second.ops) : second.errors.join("; ")}`);
      row.outcome = "failed clearly; re-run: 'locked (destroyed), pct unlock'; converged after unlock";
    }
    expect(second.ok, `re-run did not converge: ${second.errors.join("; ")}`).to.equal(true);
    expect(await engine.pending(p.program), "preview after the re-run").to.deep.equal([]);
    const refresh = await engine.refresh();
    expect(refresh.drift, `refresh found drift: ${refresh.details.join("; ")}`).to.deep.equal([]);
    const reality = await checkReality(client, sb, engine, { nodes: NODES, markers: p.markers, templateStorage: "local" });
    expect(reality.problems, "state vs reality").to.deep.equal([]);
    row.ms = Date.now() - started;
    return row;
  } catch (e) {
    (e as Error).message = `[${fault} × ${op}] ${(e as Error).message}\n    ${story.join("\n    ")}`;
    throw e;
  } finally {
    await cleanup(env, engine);
  }
}

/** Destroy what the row left (through the handlers), then make sure nothing remains. */
export async function cleanup(env: Env, engine: Engine): Promise<void> {
  const { sb } = env;
  await sb.admin.clearFaults();
  await sb.admin.setTaskDuration(5);
  const client: PveClient = useSandbox(sb, "token", 30_000);
  const res = await engine.up([]).catch((e: Error) => ({ ok: false, errors: [e.message] }));
  // Anything still there is a leak the row's assertions must already have reported; remove it
  // so later rows start clean.
  for (const g of await client.cluster.containers()) {
    const lock = (await client.lxc.getConfig(String(g.node), Number(g.vmid))).lock;
    if (lock) {
      await sb.admin.holdLock(Number(g.vmid), lock, 0.05);
      await sleep(150);
    }
    await client.lxc.destroyAndWait(String(g.node), Number(g.vmid), { purge: true, force: true, "destroy-unreferenced-disks": true }).catch(() => undefined);
  }
  for (const item of await client.storage.content("pve1", "local", { content: "vztmpl" })) {
    await client.storage.deleteVolumeAndWait("pve1", item.volid).catch(() => undefined);
  }
  if (!res.ok) throw new Error(`cleanup failed: ${res.errors.join("; ")}`);
}
