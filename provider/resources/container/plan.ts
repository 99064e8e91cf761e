/**
 * The change planner: from the previous inputs (as stored in state) and the new inputs,
 * decide exactly what an update does. This is where the library differs from bpg's
 * provider: a node change migrates (bpg #658), a disk on another storage is moved, a
 * bigger disk is resized in place (bpg #2995/#3028), a smaller one is an error that says
 * why, and only vmid, unprivileged and template force a replacement.
 */
import { sizeBytes, type ContainerArgs, type MountPoint } from "./args";
import { mountPointString, rootfsString, toPveKeys, networkString, type PveConfig } from "./pveConfig";
import { assignSlots } from "./args";

/** Fields whose change replaces the container (a new CT; data in the old one is gone). */
export const REPLACE_FIELDS = ["vmid", "unprivileged", "template"] as const;

/** Fields that only matter at creation: PVE has no way to change them later. */
export const CREATE_ONLY_FIELDS = ["password", "sshPublicKeys", "haManaged"] as const;

/** Fields that steer the provider itself, never sent to PVE. */
export const PROVIDER_ONLY_FIELDS = ["timeouts", "pendingChanges", "adopt", "safetySnapshot", "waitForIp", "resourceName", "fromTemplate"] as const;

/** PVE refuses to delete these (`unable to delete required option`), so unsetting them resets them. */
const REQUIRED_DEFAULTS: Record<string, string> = { memory: "512", swap: "512" };
const UNDELETABLE = new Set(["ostype", "arch"]);

export class ProtectedDiskError extends Error {
  constructor(what: string[]) {
    super(
      `protection: the container has protection enabled, and Proxmox refuses every rootfs/mount-point change while it is ` +
        `(${what.join(", ")}). Set protection: false for this change (the provider clears it before touching the disks) ` +
        `and back to true in a later \`pulumi up\`.`,
    );
    this.name = "ProtectedDiskError";
  }
}

export class ShrinkError extends Error {
  constructor(disk: string, from: string, to: string) {
    super(
      `${disk === "rootfs" ? "rootfs.size" : `mountPoints (${disk}).size`}: cannot shrink from ${from} to ${to}. ` +
        `Proxmox can only grow container volumes (shrinking would lose data). Keep size at ${from} or more; ` +
        `to really shrink, copy the data to a new, smaller mount point and remove the old one.`,
    );
    this.name = "ShrinkError";
  }
}

export interface ChangePlan {
  /** Top-level input names whose value changed. */
  changed: string[];
  /** Subset of `changed` that forces a replacement. */
  replaces: string[];
  migrateTo?: string;
  diskMoves: Array<{ disk: string; storage: string }>;
  diskResizes: Array<{ disk: string; size: string }>;
  /**
   * Existing disks whose mount options changed. Rendered by the executor with the volume
   * ID the disk has at that moment (a move earlier in the same update changes it).
   */
  diskRewrites: Array<{ disk: string; render(volid: string): string }>;
  /** Config keys to set (PUT) and delete. */
  set: PveConfig;
  delete: string[];
  pool?: { from?: string; to?: string };
  /**
   * Protection blocks every rootfs/mount-point change, even in the PUT that clears it
   * (BEHAVIOR.md 1.4): when the plan touches disks and changes protection, it is cleared in
   * a PUT of its own before the disk work (`first`) or set after it (`last`).
   */
  protection?: { first?: PveConfig; firstDelete?: string[]; last?: PveConfig };
  power?: "start" | "stop";
  /** Create-only fields that changed: they cannot be applied and are only recorded. */
  createOnlyChanged: string[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));

/** Key order must not matter when comparing stored state with new inputs. */
export function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v as object)
        .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

function mpBySlot(list: MountPoint[] | undefined): Map<number, MountPoint> {
  return new Map((list ?? []).map((m) => [m.slot, m]));
}

const mpKind = (m: MountPoint) => (m.hostPath ? `bind:${m.hostPath}` : m.volume ? `vol:${m.volume}` : "alloc");
const diskOptions = (m: object) => {
  const { storage: _s, size: _z, volume: _v, slot: _l, ...rest } = m as Record<string, unknown>;
  return rest;
};

/**
 * Plan an update. `volids` and `hwaddrs` are what the CT has now (from state), so existing
 * disks keep their volumes and interfaces keep their MAC addresses when re-sent.
 */
export function planChanges(
  prev: ContainerArgs,
  next: ContainerArgs,
  current: { volids: Record<string, string>; hwaddrs: Record<string, string> },
): ChangePlan {
  const plan: ChangePlan = { changed: [], replaces: [], diskMoves: [], diskResizes: [], diskRewrites: [], set: {}, delete: [], createOnlyChanged: [] };
  const keys = new Set([...Object.keys(prev), ...Object.keys(next)]);
  for (const k of keys) {
    if (!same((prev as Record<string, unknown>)[k], (next as Record<string, unknown>)[k])) plan.changed.push(k);
  }
  plan.changed.sort();
  for (const f of REPLACE_FIELDS) {
    // An allocated vmid is not an input change: only a user-set vmid that differs replaces.
    if (f === "vmid" && next.vmid === undefined) continue;
    if (plan.changed.includes(f)) plan.replaces.push(f);
  }
  if (plan.replaces.length) return plan;
  plan.createOnlyChanged = CREATE_ONLY_FIELDS.filter((f) => plan.changed.includes(f));

  if (prev.node !== next.node) plan.migrateTo = next.node;
  if (prev.pool !== next.pool) plan.pool = { from: prev.pool, to: next.pool };
  if (prev.started !== next.started) plan.power = next.started ? "start" : "stop";

  // Plain config keys: the difference between what each input set asks PVE for.
  const before = toPveKeys(prev);
  const after = toPveKeys(next);
  for (const [k, v] of Object.entries(after)) {
    if (before[k] === v) continue;
    // Re-sending a net without its MAC would make PVE assign a new one (BEHAVIOR.md 4.1).
    if (/^net\d+$/.test(k)) {
      const nets = next.networks ?? [];
      const slots = assignSlots(nets);
      const n = nets[slots.indexOf(Number(k.slice(3)))];
      plan.set[k] = networkString({ ...n, hwaddr: n.hwaddr ?? current.hwaddrs[k] });
    } else {
      plan.set[k] = v;
    }
  }
  for (const k of Object.keys(before)) {
    if (k in after) continue;
    if (REQUIRED_DEFAULTS[k]) plan.set[k] = REQUIRED_DEFAULTS[k];
    else if (!UNDELETABLE.has(k)) plan.delete.push(k);
  }

  // rootfs: move, grow, refuse to shrink, options in place.
  if (prev.rootfs && next.rootfs && current.volids.rootfs) {
    planDisk("rootfs", prev.rootfs, next.rootfs, plan);
    if (!same(diskOptions(prev.rootfs), diskOptions(next.rootfs))) {
      const r = next.rootfs;
      plan.diskRewrites.push({ disk: "rootfs", render: (volid) => rootfsString(r, volid) });
    }
  }

  // Mount points, by slot.
  const a = mpBySlot(prev.mountPoints);
  const z = mpBySlot(next.mountPoints);
  for (const [slot, m] of z) {
    const key = `mp${slot}`;
    const old = a.get(slot);
    if (!old || mpKind(old) !== mpKind(m) || !current.volids[key]) {
      // A slot that now holds something else: only the new value is sent. PVE refuses `mpN`
      // together with `delete=mpN` (400 "you can't use '-mpN' and -delete mpN' at the same
      // time") and keeps a replaced volume as `unusedN` itself, as it does for a removed slot.
      plan.set[key] = mountPointString(m);
      continue;
    }
    if (mpKind(m) === "alloc") planDisk(key, old, m, plan);
    if (!same(diskOptions(old), diskOptions(m))) {
      plan.diskRewrites.push({ disk: key, render: (volid) => mountPointString(m, volid) });
    }
  }
  for (const slot of a.keys()) if (!z.has(slot)) plan.delete.push(`mp${slot}`);
  plan.delete = [...new Set(plan.delete)].sort();
  orderProtection(prev, next, plan);
  return plan;
}

/** Whether the plan changes a volume (rootfs/mpN) in any way: what protection forbids. */
export function diskWork(plan: ChangePlan): string[] {
  const keys = [...Object.keys(plan.set), ...plan.delete].filter((k) => /^(rootfs|mp\d+|unused\d+)$/.test(k));
  const work = [...plan.diskMoves, ...plan.diskResizes, ...plan.diskRewrites].map((d) => d.disk);
  return [...new Set([...keys, ...work])].sort();
}

/** See ChangePlan.protection. A CT that stays protected cannot have its disks changed at all. */
function orderProtection(prev: ContainerArgs, next: ContainerArgs, plan: ChangePlan): void {
  const disks = diskWork(plan);
  if (!disks.length) return;
  if (prev.protection && next.protection) throw new ProtectedDiskError(disks);
  if ("protection" in plan.set && plan.set.protection === "1") {
    plan.protection = { last: { protection: "1" } };
    delete plan.set.protection;
  } else if (prev.protection && ("protection" in plan.set || plan.delete.includes("protection"))) {
    plan.protection = "protection" in plan.set ? { first: { protection: plan.set.protection } } : { firstDelete: ["protection"] };
    delete plan.set.protection;
    plan.delete = plan.delete.filter((k) => k !== "protection");
  }
}

function planDisk(disk: string, prev: { storage?: string; size?: string }, next: { storage?: string; size?: string }, plan: ChangePlan): void {
  if (next.storage && prev.storage && next.storage !== prev.storage) plan.diskMoves.push({ disk, storage: next.storage });
  if (prev.size && next.size && prev.size !== next.size) {
    if (sizeBytes(next.size) < sizeBytes(prev.size)) throw new ShrinkError(disk, prev.size, next.size);
    plan.diskResizes.push({ disk, size: next.size });
  }
}

/** True when the plan touches nothing PVE needs to do (only provider-side fields changed). */
export function isStateOnly(plan: ChangePlan): boolean {
  return (
    !plan.migrateTo &&
    !plan.pool &&
    !plan.protection &&
    !plan.power &&
    plan.diskMoves.length === 0 &&
    plan.diskResizes.length === 0 &&
    plan.diskRewrites.length === 0 &&
    Object.keys(plan.set).length === 0 &&
    plan.delete.length === 0
  );
}
