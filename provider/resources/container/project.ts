/**
 * Refresh compares only what the user declared: the observed config is projected onto the
 * shape of the previous inputs, so PVE's defaults and computed values (auto MAC, volume
 * IDs, hash-ordered lists) never show up as drift, while a changed declared value does.
 */
import { assignSlots } from "./args";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === "object" && !Array.isArray(v);

/**
 * Keep from `observed` the keys present in `declared`, recursively. Arrays of slotted
 * items (networks, mountPoints, devices) are matched by slot; an observed item with no
 * declared counterpart is kept whole (someone added it out of band: that is drift).
 * A declared key PVE no longer reports becomes undefined (drift: it was removed).
 */
export function projectLike(observed: unknown, declared: unknown): unknown {
  if (Array.isArray(declared)) {
    if (!Array.isArray(observed)) return observed;
    const slotted = declared.every((d) => isObj(d)) && observed.every((o) => isObj(o) && "slot" in o);
    if (!slotted) return observed;
    const dSlots = assignSlots(declared as Array<{ slot?: number }>);
    return (observed as Obj[]).map((o) => {
      const i = dSlots.indexOf(o.slot as number);
      if (i < 0) return o;
      const d = declared[i] as Obj;
      const p = projectLike(o, d) as Obj;
      // Keep the declared form of slot (explicit or implicit) so equal things compare equal.
      if (d.slot === undefined) delete p.slot;
      return p;
    });
  }
  if (isObj(declared)) {
    if (!isObj(observed)) return observed;
    const out: Obj = {};
    for (const k of Object.keys(declared)) {
      if (declared[k] === undefined) continue;
      out[k] = projectLike(observed[k], declared[k]);
    }
    return out;
  }
  return observed;
}

/** Inputs that PVE's config cannot tell us: kept from the previous state on refresh. */
const KEPT_ON_REFRESH = ["template", "password", "sshPublicKeys", "timeouts", "pendingChanges", "adopt", "safetySnapshot", "waitForIp", "vmid", "haManaged", "resourceName", "fromTemplate"];

/**
 * The inputs as reality has them now: declared keys from the observed config, node and
 * power state from where and how the CT runs, pool from the cluster, the rest kept.
 */
export function refreshedArgs<T extends Record<string, unknown>>(
  prev: T,
  observedArgs: Record<string, unknown>,
  facts: { node: string; running: boolean; pool?: string },
): T {
  const { node: _n, started: _s, pool: _p, ...declared } = prev;
  for (const k of KEPT_ON_REFRESH) delete (declared as Record<string, unknown>)[k];
  const projected = projectLike(observedArgs, declared) as Record<string, unknown>;
  const out: Record<string, unknown> = { ...projected, node: facts.node, started: facts.running };
  if (prev.pool !== undefined || facts.pool !== undefined) out.pool = facts.pool;
  for (const k of KEPT_ON_REFRESH) if (prev[k] !== undefined) out[k] = prev[k];
  return out as T;
}
