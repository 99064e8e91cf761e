/**
 * The Snapshot resource handler: a named snapshot of an LXC container (BEHAVIOR.md 5).
 *
 * - The CT is found by vmid (cluster resources) on every operation, never by the stored
 *   node: a migrated CT keeps its snapshots, so a node change must not replace this one.
 * - `description` changes in place (PUT …/snapshot/{name}/config).
 * - `rollbackTrigger`: when it changes to a new value, update() rolls the CT back to this
 *   snapshot — declaratively, so "roll back" is a reviewed, recorded `pulumi up`. PVE
 *   hard-stops a running CT for a rollback; `startAfterRollback` starts it again.
 * - Before creating, GET …/feature?feature=snapshot: when PVE says no, the error lists
 *   the CT's volumes with their storage types, instead of the task's bare "snapshot
 *   feature is not available".
 */
import type * as pulumi from "@pulumi/pulumi";
import { snapshotArgsSchema, type SnapshotArgs } from "./args";
import { checkInputs, parseInputs, unknownPaths } from "../validation";
import { runOperation, partialFailure, type OperationContext } from "../operation";
import { PveTaskTimeoutError } from "../../proxmox/errors";
import type { ResourceHandler } from "../registry";
import type { PveClient } from "../../proxmox/client";
import type { LxcConfig, Snapshot } from "../../proxmox/lxc";

const TYPE = "Snapshot";

export interface SnapshotOutputs extends SnapshotArgs {
  /** Unix time the snapshot was taken. */
  snaptime: number;
  /** The snapshot this one was taken on top of, if any. */
  parent?: string;
}

const COMPUTED = ["snaptime", "parent"] as const;
const DEFAULT_TIMEOUTS_S = { create: 600, delete: 600, rollback: 600 };
const timeoutMs = (a: Pick<SnapshotArgs, "timeouts">, k: keyof typeof DEFAULT_TIMEOUTS_S) => (a.timeouts?.[k] ?? DEFAULT_TIMEOUTS_S[k]) * 1000;

/** Storage types whose CT volumes can be snapshotted (BEHAVIOR.md 5 table). */
export const SNAPSHOT_STORAGE_TYPES = ["zfspool", "lvmthin", "rbd", "btrfs"];

export function snapshotId(vmid: number, name: string): string {
  return `${vmid}/${name}`;
}

function parse(inputs: Record<string, unknown>): SnapshotArgs {
  const args: Record<string, unknown> = { ...inputs };
  for (const k of COMPUTED) delete args[k];
  return parseInputs(TYPE, snapshotArgsSchema, args);
}

function stripUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** The CT's current node, or undefined if no guest has this vmid. */
async function locate(client: PveClient, vmid: number): Promise<string | undefined> {
  const guest = await client.cluster.findGuest(vmid);
  if (!guest) return undefined;
  if (guest.type !== "lxc") throw new Error(`vmid: ${vmid} is a QEMU VM on ${guest.node}, not a container; this resource snapshots containers only.`);
  return guest.node as string;
}

async function findSnapshot(client: PveClient, node: string, vmid: number, name: string, ctx: OperationContext): Promise<Snapshot | undefined> {
  return (await client.lxc.listSnapshots(node, vmid, { logger: ctx.log })).find((s) => s.name === name);
}

function outputsFor(a: SnapshotArgs, node: string, snap: Snapshot): SnapshotOutputs {
  // An unset description reads back as "": keep it unset so refresh shows no drift. PVE keeps
  // it as comment lines and lists it newline-terminated ("known good\n", recorded from 8.4):
  // that newline is PVE's, not the user's.
  const stored = (snap.description ?? "").replace(/\n$/, "");
  const description = a.description === undefined && !stored ? undefined : stored;
  return stripUndefined({ ...a, node, description, snaptime: snap.snaptime ?? 0, parent: snap.parent }) as SnapshotOutputs;
}

// ---------------------------------------------------------------------------------------

interface VolumeInfo {
  key: string;
  /** Volume id, or the host path of a bind/device mount. */
  volume: string;
  storage?: string;
  type?: string;
  ok: boolean;
}

/** `rootfs`/`mpN` of a config, with storage and whether PVE can snapshot each. */
export function volumesOf(cfg: Record<string, unknown>, storageTypes: Record<string, string | undefined>): VolumeInfo[] {
  const out: VolumeInfo[] = [];
  const keys = Object.keys(cfg).filter((k) => k === "rootfs" || /^mp\d+$/.test(k)).sort((a, b) => (a === "rootfs" ? -1 : b === "rootfs" ? 1 : Number(a.slice(2)) - Number(b.slice(2))));
  for (const key of keys) {
    const raw = String(cfg[key]);
    // `<volume>,size=…` or `volume=<volume>,…` (property string, default key first).
    const volume = /(?:^|,)volume=([^,]+)/.exec(raw)?.[1] ?? raw.split(",")[0];
    if (volume.startsWith("/")) {
      out.push({ key, volume, ok: false });
      continue;
    }
    const storage = volume.split(":")[0];
    const type = storageTypes[storage];
    out.push({ key, volume, storage, type, ok: type !== undefined && SNAPSHOT_STORAGE_TYPES.includes(type) });
  }
  return out;
}

/** The message for a CT PVE cannot snapshot: every volume, its storage type, and what to do. */
export function snapshotRefusal(vmid: number, name: string, node: string, vols: VolumeInfo[], capable: string[]): string {
  const lines = vols.map((v) => {
    if (!v.storage) return `    ${v.key}: bind/device mount of host path '${v.volume}' — blocks snapshots`;
    return `    ${v.key}: ${v.volume} on storage '${v.storage}' (type ${v.type ?? "unknown"}) — ${v.ok ? "can snapshot" : "cannot snapshot"}`;
  });
  const bad = vols.filter((v) => !v.ok);
  const fix = bad.some((v) => v.storage)
    ? `Move ${bad.filter((v) => v.storage).map((v) => v.key).join(", ")} to a storage of type ${SNAPSHOT_STORAGE_TYPES.join(", ")}` +
      (capable.length ? ` (on '${node}': ${capable.map((c) => `'${c}'`).join(", ")})` : "") +
      ` — e.g. set the Container's rootfs.storage / mountPoints[].storage, which moves the volume in place`
    : "";
  const binds = bad.filter((v) => !v.storage).map((v) => v.key);
  const fixBind = binds.length ? `remove the bind/device mount point${binds.length > 1 ? "s" : ""} ${binds.join(", ")}` : "";
  return (
    `Cannot snapshot CT ${vmid} as '${name}': Proxmox snapshots a container only when every volume is on a storage of type ` +
    `${SNAPSHOT_STORAGE_TYPES.join(", ")} and it has no bind or device mount points. ` +
    `Directory, NFS, CIFS and thick-LVM storages cannot snapshot container volumes.\n  Volumes of CT ${vmid}:\n${lines.join("\n")}\n  ` +
    `To fix: ${[fix, fixBind].filter(Boolean).join("; and ")}.`
  );
}

async function explainNoSnapshot(client: PveClient, node: string, vmid: number, name: string, ctx: OperationContext): Promise<string> {
  const cfg = (await client.lxc.getConfig(node, vmid, { current: true }, { logger: ctx.log })) as LxcConfig;
  const storages = await client.storage.list(node, {}, { logger: ctx.log });
  const types = Object.fromEntries(storages.map((s) => [s.storage, s.type]));
  const capable = storages
    .filter((s) => s.type && SNAPSHOT_STORAGE_TYPES.includes(s.type) && (s.content ?? "").split(/[,;\s]+/).includes("rootdir") && s.enabled !== false)
    .map((s) => s.storage);
  return snapshotRefusal(vmid, name, node, volumesOf(cfg, types), capable);
}

// ---------------------------------------------------------------------------------------

async function check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
  return runOperation({ resourceType: TYPE, operation: "check", resourceName: news.resourceName as string }, async () =>
    // The SDK registers outputs as undefined inputs; they are not inputs.
    checkInputs(TYPE, snapshotArgsSchema, Object.fromEntries(Object.entries(news).filter(([, v]) => v !== undefined))),
  );
}

async function diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
  return runOperation({ resourceType: TYPE, operation: "diff", resourceName: news.resourceName as string, vmid: olds.vmid as number }, async () => {
    const unknown = new Set(unknownPaths(news).map((p) => p.split(/[.[]/)[0]));
    const same = (k: string) => !unknown.has(k) && JSON.stringify(normalised(k, olds[k])) === JSON.stringify(normalised(k, news[k]));
    // vmid or name: another snapshot. An unknown vmid may be another CT's (its Container is
    // being replaced; sdk/snapshot.ts passes the Container's id, known while it is updated).
    const replaces = ["vmid", "name"].filter((k) => !same(k));
    // node alone is no change: every operation finds the CT by vmid, so a migrated CT keeps
    // its snapshot and `up` has nothing to do; read and any update record the new node.
    // An unknown value (preview) may change: rollbackTrigger and description then update.
    const changed = ["description", "rollbackTrigger", "startAfterRollback", "timeouts", "resourceName", ...replaces].filter((k) => !same(k));
    // A replacement always differs in vmid or name, so both can exist for a moment: the
    // new snapshot is taken first, then the old one deleted (Pulumi's default order).
    return { changes: changed.length > 0, replaces, deleteBeforeReplace: false };
  });
}

/** Compare like with like: an unset description is "", PVE's trailing newline is not a change. */
function normalised(k: string, v: unknown): unknown {
  if (k === "description") return typeof v === "string" ? v.replace(/\n$/, "") : "";
  return v ?? null;
}

async function create(inputs: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
  return runOperation({ resourceType: TYPE, operation: "create", resourceName: inputs.resourceName as string, node: inputs.node as string, vmid: inputs.vmid as number }, async (ctx) => {
    const a = parse(inputs);
    const client = ctx.client();
    const node = await locate(client, a.vmid);
    if (!node) throw new Error(`vmid: no container ${a.vmid} exists in the cluster; create it first (or fix vmid).`);
    if (node !== a.node) ctx.log.info({ declared: a.node, actual: node }, "container is on another node than declared; using its current node");
    if (await findSnapshot(client, node, a.vmid, a.name, ctx)) {
      throw new Error(`name: CT ${a.vmid} already has a snapshot '${a.name}'. Choose another name, or delete that snapshot first (pct delsnapshot ${a.vmid} ${a.name}).`);
    }
    if (!(await client.lxc.hasFeature(node, a.vmid, "snapshot", undefined, { logger: ctx.log }))) {
      throw new Error(await explainNoSnapshot(client, node, a.vmid, a.name, ctx));
    }
    ctx.log.info({ snapshot: a.name }, "creating snapshot");
    try {
      await client.lxc.createSnapshotAndWait(node, a.vmid, { snapname: a.name, description: a.description }, { logger: ctx.log, wait: { timeoutMs: timeoutMs(a, "create") } });
    } catch (e) {
      // The snapshot task outlived timeouts.create and was not cancelled: record the snapshot,
      // or the next `up` fails on "already has a snapshot" forever (found by test/resilience).
      if (e instanceof PveTaskTimeoutError) throw partialFailure(e, snapshotId(a.vmid, a.name), stripUndefined({ ...a, node, snaptime: 0 }));
      throw e;
    }
    const snap = await findSnapshot(client, node, a.vmid, a.name, ctx);
    if (!snap) throw new Error(`the snapshot task for '${a.name}' of CT ${a.vmid} finished, but the snapshot is not listed; check the node's task log.`);
    return { id: snapshotId(a.vmid, a.name), outs: outputsFor(a, node, snap) };
  });
}

async function read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
  return runOperation({ resourceType: TYPE, operation: "read", resourceName: props.resourceName as string, vmid: props.vmid as number }, async (ctx) => {
    const client = ctx.client();
    const vmid = Number(props.vmid ?? id.split("/")[0]);
    const name = String(props.name ?? id.split("/").slice(1).join("/"));
    const node = await locate(client, vmid);
    if (!node) {
      ctx.log.info("container is gone, and with it the snapshot");
      return { id: "", props: {} };
    }
    const snap = await findSnapshot(client, node, vmid, name, ctx);
    if (!snap) {
      ctx.log.info({ snapshot: name }, "snapshot is gone");
      return { id: "", props: {} };
    }
    const declared: Record<string, unknown> = { ...props, vmid, name };
    for (const k of COMPUTED) delete declared[k];
    return { id, props: outputsFor(declared as SnapshotArgs, node, snap) };
  });
}

async function update(id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
  return runOperation({ resourceType: TYPE, operation: "update", resourceName: news.resourceName as string, vmid: olds.vmid as number }, async (ctx) => {
    const a = parse(news);
    const client = ctx.client();
    const node = await locate(client, a.vmid);
    if (!node) throw new Error(`CT ${a.vmid} no longer exists; run \`pulumi refresh\` so Pulumi forgets this snapshot.`);
    if (!(await findSnapshot(client, node, a.vmid, a.name, ctx))) {
      throw new Error(`snapshot '${a.name}' of CT ${a.vmid} no longer exists; run \`pulumi refresh\`, then \`pulumi up\` takes it again.`);
    }
    if ((a.description ?? "") !== ((olds.description as string | undefined) ?? "")) {
      ctx.log.info({ snapshot: a.name }, "updating snapshot description");
      await client.lxc.updateSnapshotConfig(node, a.vmid, a.name, { description: a.description ?? "" }, { logger: ctx.log });
    }
    if (a.rollbackTrigger !== undefined && JSON.stringify(a.rollbackTrigger) !== JSON.stringify(olds.rollbackTrigger ?? null)) {
      await rollback(client, node, a, ctx);
    }
    const snap = await findSnapshot(client, node, a.vmid, a.name, ctx);
    if (!snap) throw new Error(`snapshot '${a.name}' of CT ${a.vmid} vanished during the update; check the node's task log.`);
    return { outs: outputsFor(a, node, snap) };
  });
}

async function rollback(client: PveClient, node: string, a: SnapshotArgs, ctx: OperationContext): Promise<void> {
  const running = (await client.lxc.status(node, a.vmid, { logger: ctx.log })).status === "running";
  if (running) await ctx.warn(`rolling back to ${a.name} stops the running container hard (no clean shutdown)`, { snapshot: a.name });
  ctx.log.info({ snapshot: a.name, startAfterRollback: !!a.startAfterRollback }, "rolling back to snapshot (rollbackTrigger changed)");
  // Start ourselves rather than with start=1: PVE starts it as a separate task the rollback
  // task does not wait for, and we want to report a start failure.
  await client.lxc.rollbackAndWait(node, a.vmid, a.name, {}, { logger: ctx.log, wait: { timeoutMs: timeoutMs(a, "rollback") } });
  if (a.startAfterRollback) {
    await client.lxc.startAndWait(node, a.vmid, {}, { logger: ctx.log, wait: { timeoutMs: timeoutMs(a, "rollback") } });
  }
}

async function destroy(id: string, props: Record<string, unknown>): Promise<void> {
  return runOperation({ resourceType: TYPE, operation: "delete", resourceName: props.resourceName as string, vmid: props.vmid as number }, async (ctx) => {
    const client = ctx.client();
    const vmid = Number(props.vmid ?? id.split("/")[0]);
    const name = String(props.name ?? id.split("/").slice(1).join("/"));
    const node = await locate(client, vmid);
    if (!node || !(await findSnapshot(client, node, vmid, name, ctx))) {
      ctx.log.info({ snapshot: name }, "snapshot already gone");
      return;
    }
    await client.lxc.deleteSnapshotAndWait(node, vmid, name, {}, { logger: ctx.log, wait: { timeoutMs: timeoutMs(props as Pick<SnapshotArgs, "timeouts">, "delete") } });
    ctx.log.info({ snapshot: name }, "snapshot deleted");
  });
}

const handler: ResourceHandler = { check, diff, create, read, update, delete: destroy };
export default handler;
