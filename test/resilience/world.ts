/**
 * In-process harness for the resilience suite: a small model of what the Pulumi engine
 * does with the resource handlers (check → create, or diff → update; partial failures
 * recorded in state with their init error, which makes the next `up` call update even
 * without a diff; deletes of resources the program no longer declares; refresh = read),
 * plus the consistency checks every scenario ends with: state vs the sandbox's API (no
 * orphan CT, no lost CT, no duplicate, no orphan volume or snapshot or template, content
 * markers intact) and zero schema violations.
 *
 * The handlers run exactly as the provider runs them (provider/resources/registry
 * dispatch → runOperation → the shared PveClient); the only thing a test changes is the
 * client's lock-wait bound (60 s by default), shortened so a lock held "longer than the
 * retry bound" fits in a fast test. The CLI suite (cli.test.ts) uses the real 60 s bound.
 */
import { dispatch, configure } from "../../provider/resources/registry";
import { providerClient, resetProviderClient } from "../../provider/resources/operation";
import type { PveClient } from "../../provider/proxmox/client";
import type { SandboxHandle } from "../../sandbox";
import { canonical } from "../../provider/resources/container/plan";

export type Kind = "Container" | "Snapshot" | "Template";

/** A resource the "program" declares; inputs may depend on state (e.g. a Snapshot's vmid). */
export interface Res {
  kind: Kind;
  name: string;
  inputs: Record<string, unknown> | ((e: Engine) => Record<string, unknown>);
}

export interface StateEntry {
  kind: Kind;
  name: string;
  id: string;
  outs: Record<string, any>;
  /** The resource exists but its create failed part-way (Pulumi's initErrors). */
  initErrors?: string[];
}

export interface RunResult {
  ok: boolean;
  errors: string[];
  /** What happened per resource: create/update/delete/same/failed. */
  ops: Record<string, string>;
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The engine's view: an ordered state, like a stack's checkpoint. */
export class Engine {
  readonly state = new Map<string, StateEntry>();

  get(name: string): StateEntry | undefined {
    return this.state.get(name);
  }

  private inputsOf(r: Res): Record<string, unknown> {
    const i = typeof r.inputs === "function" ? r.inputs(this) : r.inputs;
    return { ...i, resourceName: r.name };
  }

  /** `pulumi up`: resources in program order (dependencies first), then deletes in reverse state order. Stops at the first error, like the engine does for dependents. */
  async up(program: Res[]): Promise<RunResult> {
    const errors: string[] = [];
    const ops: Record<string, string> = {};
    for (const r of program) {
      const news = this.inputsOf(r);
      const checked = await dispatch(r.kind, "check", [{}, news]);
      if (checked.failures?.length) {
        errors.push(`${r.name}: ${checked.failures.map((f: { reason: string }) => f.reason).join("; ")}`);
        ops[r.name] = "failed";
        return { ok: false, errors, ops };
      }
      const prev = this.state.get(r.name);
      try {
        if (!prev) {
          const res = await dispatch(r.kind, "create", [checked.inputs]);
          this.state.set(r.name, { kind: r.kind, name: r.name, id: res.id, outs: res.outs });
          ops[r.name] = "create";
        } else {
          const d = await dispatch(r.kind, "diff", [prev.id, prev.outs, checked.inputs]);
          if (d.replaces?.length) throw new Error(`unexpected replacement of ${r.name}: ${d.replaces.join(", ")}`);
          // Pulumi calls update for a resource with init errors even when diff finds nothing.
          if (d.changes || prev.initErrors) {
            const res = await dispatch(r.kind, "update", [prev.id, prev.outs, checked.inputs]);
            this.state.set(r.name, { kind: r.kind, name: r.name, id: prev.id, outs: res.outs });
            ops[r.name] = "update";
          } else {
            ops[r.name] = "same";
          }
        }
      } catch (e) {
        const partial = e as { id?: string; properties?: Record<string, any>; reasons?: string[] };
        if (!prev && partial.id) {
          this.state.set(r.name, { kind: r.kind, name: r.name, id: partial.id, outs: partial.properties ?? {}, initErrors: partial.reasons ?? [errText(e)] });
        }
        errors.push(`${r.name}: ${errText(e)}`);
        ops[r.name] = "failed";
        return { ok: false, errors, ops };
      }
    }
    const declared = new Set(program.map((r) => r.name));
    for (const entry of [...this.state.values()].reverse()) {
      if (declared.has(entry.name)) continue;
      try {
        await dispatch(entry.kind, "delete", [entry.id, entry.outs]);
        this.state.delete(entry.name);
        ops[entry.name] = "delete";
      } catch (e) {
        errors.push(`${entry.name}: ${errText(e)}`);
        ops[entry.name] = "failed";
        return { ok: false, errors, ops };
      }
    }
    return { ok: true, errors, ops };
  }

  /** `pulumi refresh`: read every resource; returns the names whose state changed (drift). */
  async refresh(): Promise<{ drift: string[]; details: string[] }> {
    const drift: string[] = [];
    const details: string[] = [];
    for (const entry of [...this.state.values()]) {
      const r = await dispatch(entry.kind, "read", [entry.id, entry.outs]);
      if (!r.id) {
        this.state.delete(entry.name);
        drift.push(entry.name);
        details.push(`${entry.name}: gone`);
        continue;
      }
      const before = JSON.stringify(canonical(entry.outs));
      const after = JSON.stringify(canonical(r.props));
      if (before !== after) {
        drift.push(entry.name);
        details.push(`${entry.name}: ${before} → ${after}`);
      }
      this.state.set(entry.name, { ...entry, outs: r.props, initErrors: entry.initErrors });
    }
    return { drift, details };
  }

  /** `pulumi preview` after an up: names of resources that would still change. */
  async pending(program: Res[]): Promise<string[]> {
    const out: string[] = [];
    for (const r of program) {
      const prev = this.state.get(r.name);
      if (!prev) {
        out.push(`${r.name} (create)`);
        continue;
      }
      const checked = await dispatch(r.kind, "check", [{}, this.inputsOf(r)]);
      const d = await dispatch(r.kind, "diff", [prev.id, prev.outs, checked.inputs]);
      if (d.changes || prev.initErrors) out.push(`${r.name} (${d.replaces?.length ? "replace" : "update"})`);
    }
    const declared = new Set(program.map((r) => r.name));
    for (const name of this.state.keys()) if (!declared.has(name)) out.push(`${name} (delete)`);
    return out;
  }
}

export { canonical } from "../../provider/resources/container/plan";

// ---- provider configuration ------------------------------------------------------------

export type AuthMode = "token" | "ticket";

/** Point the provider at the sandbox (API token, or ticket auth with username/password). */
export function useSandbox(sb: SandboxHandle, auth: AuthMode, lockWaitMs?: number): PveClient {
  const cfg: Record<string, string> = {
    "proxmox:endpoint": sb.endpoint,
    "proxmox:tlsFingerprint": sb.tlsFingerprint,
    "proxmox:logLevel": "silent",
    ...(auth === "token" ? { "proxmox:apiToken": sb.apiToken } : { "proxmox:username": sb.username, "proxmox:password": sb.password }),
  };
  configure({ get: (k) => cfg[k] });
  resetProviderClient();
  const client = providerClient();
  // The only test-side change to the provider: how long writes wait out a held lock.
  if (lockWaitMs !== undefined) client.retryPolicy.lockWaitMs = lockWaitMs;
  return client;
}

// ---- reality checks --------------------------------------------------------------------

const GUEST_STORAGES = ["local-lvm", "local-zfs", "shared-nfs"];

/** Volume IDs a CT config references (rootfs, mpN), bind mounts excluded. */
function referencedVolumes(cfg: Record<string, unknown>): string[] {
  return Object.entries(cfg)
    .filter(([k]) => k === "rootfs" || /^mp\d+$/.test(k))
    .map(([, v]) => {
      const s = String(v);
      return /(?:^|,)volume=([^,]+)/.exec(s)?.[1] ?? s.split(",")[0];
    })
    .filter((v) => !v.startsWith("/"));
}

export interface Reality {
  problems: string[];
  cts: number;
  volumes: number;
}

/**
 * Compare the engine's state with the sandbox: every CT in the cluster is in state (no
 * orphan) and every CT in state exists on the node state says (none lost); no two CTs
 * carry the same hostname (no duplicate); every guest volume belongs to a CT config and
 * every referenced volume exists (no orphan or lost volume); snapshots and template
 * volumes match the Snapshot and Template resources; markers read back unchanged.
 */
export async function checkReality(
  client: PveClient,
  sb: SandboxHandle,
  engine: Engine,
  opts: { nodes: string[]; markers?: Array<{ ct: string; disk: string; text: string }>; templateStorage?: string; ignoreVolids?: string[] },
): Promise<Reality> {
  const problems: string[] = [];
  const inState = [...engine.state.values()];
  const stateCts = new Map(inState.filter((e) => e.kind === "Container").map((e) => [Number(e.id), e]));
  const cluster = await client.cluster.containers();
  const configs = new Map<number, Record<string, unknown>>();
  const hostnames = new Map<string, number[]>();
  for (const g of cluster) {
    const vmid = Number(g.vmid);
    const node = String(g.node);
    const cfg = (await client.lxc.getConfig(node, vmid, { current: true })) as Record<string, unknown>;
    configs.set(vmid, cfg);
    const h = String(cfg.hostname ?? "");
    hostnames.set(h, [...(hostnames.get(h) ?? []), vmid]);
    const st = stateCts.get(vmid);
    if (!st) problems.push(`orphan CT ${vmid} (${h}) on ${node}: not in state`);
    else if (st.outs.node !== undefined && st.outs.node !== node) problems.push(`CT ${vmid}: state says node ${st.outs.node}, it is on ${node}`);
    if (cfg.lock) problems.push(`CT ${vmid} is still locked (${String(cfg.lock)})`);
  }
  for (const [vmid, e] of stateCts) if (!cluster.some((g) => Number(g.vmid) === vmid)) problems.push(`CT ${vmid} (${e.name}) is in state but does not exist`);
  for (const [h, ids] of hostnames) if (ids.length > 1) problems.push(`duplicate CTs with hostname ${h}: ${ids.join(", ")}`);

  const referenced = new Set([...configs.values()].flatMap(referencedVolumes));
  const ignore = new Set(opts.ignoreVolids ?? []);
  let volumes = 0;
  const present = new Set<string>();
  for (const node of opts.nodes) {
    for (const s of GUEST_STORAGES) {
      for (const item of await client.storage.content(node, s)) {
        if (item.content !== "images" && item.content !== "rootdir") continue;
        volumes++;
        present.add(item.volid);
        if (!referenced.has(item.volid) && !ignore.has(item.volid)) problems.push(`orphan volume ${item.volid} on ${node}`);
      }
    }
  }
  for (const v of referenced) if (!present.has(v)) problems.push(`volume ${v} is referenced by a CT config but does not exist`);

  const stateSnaps = new Set(inState.filter((e) => e.kind === "Snapshot").map((e) => e.id));
  const realSnaps = new Set<string>();
  for (const g of cluster) {
    for (const s of await client.lxc.listSnapshots(String(g.node), Number(g.vmid))) if (s.name !== "current") realSnaps.add(`${g.vmid}/${s.name}`);
  }
  for (const s of realSnaps) if (!stateSnaps.has(s)) problems.push(`orphan snapshot ${s}`);
  for (const s of stateSnaps) if (!realSnaps.has(s)) problems.push(`snapshot ${s} is in state but does not exist`);

  if (opts.templateStorage) {
    const stateTmpl = new Set(inState.filter((e) => e.kind === "Template").map((e) => e.id));
    for (const node of opts.nodes) {
      for (const item of await client.storage.content(node, opts.templateStorage, { content: "vztmpl" })) {
        if (!stateTmpl.has(item.volid)) problems.push(`orphan template volume ${item.volid} on ${node}`);
        stateTmpl.delete(item.volid);
      }
    }
    for (const v of stateTmpl) problems.push(`template ${v} is in state but does not exist`);
  }

  for (const m of opts.markers ?? []) {
    const e = engine.get(m.ct);
    const cfg = e ? configs.get(Number(e.id)) : undefined;
    const vol = cfg ? referencedVolumes({ [m.disk]: cfg[m.disk] })[0] : undefined;
    const got = vol ? await sb.admin.readVolumeMarker(vol) : undefined;
    if (got !== m.text) problems.push(`data lost: ${m.ct} ${m.disk} (${vol ?? "no volume"}) reads ${JSON.stringify(got)}, expected ${JSON.stringify(m.text)}`);
  }
  return { problems, cts: cluster.length, volumes };
}

/** The rootfs/mpN volume of a CT resource in state. */
export function volidOf(engine: Engine, ct: string, disk: string): string {
  const v = engine.get(ct)?.outs.volids?.[disk];
  if (!v) throw new Error(`no ${disk} volume recorded for ${ct}`);
  return v;
}

export { templateTarGz as tarGz } from "../support/fixtures";

/** Poll the sandbox's request counters until `key` ("POST /nodes/{node}/lxc") was seen `count` times; bounded. */
export async function waitForRequest(sb: SandboxHandle | { admin: SandboxHandle["admin"] }, key: string, count: number, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const c = await sb.admin.counters();
    if ((c.requests[key] ?? 0) >= count) return true;
    await new Promise((r) => setTimeout(r, 15));
  }
  return false;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
