/**
 * Deterministic fault injection for client tests: reset the connection on the Nth request
 * matching a method+path (before the handler runs, or after it acted with the response
 * dropped, or mid-upload after N bytes), or answer with a given status/message.
 * Task failures and lock holds live in TaskManager / the LXC model.
 */
export type FaultAction = "reset-before" | "reset-after" | "reset-mid-upload" | "status";

export interface FaultSpec {
  /** GET/POST/PUT/DELETE; omitted = any. */
  method?: string;
  /** A schema template (`/nodes/{node}/lxc/{vmid}/config`) or a concrete path, without `/api2/json`. */
  path: string;
  action: FaultAction;
  /** Trigger on the Nth matching request (1-based, default 1)... */
  nth?: number;
  /** ...and on the following `times - 1` ones (default 1). */
  times?: number;
  /** `status`: HTTP status (e.g. 500, 503, 596) and message. */
  status?: number;
  message?: string;
  /** `reset-mid-upload`: bytes of the file part to accept before resetting. */
  afterBytes?: number;
}

interface ActiveFault extends FaultSpec {
  seen: number;
  fired: number;
}

export class Faults {
  private list: ActiveFault[] = [];

  add(spec: FaultSpec): void {
    if (!spec.path || !spec.action) throw new Error("fault needs 'path' and 'action'");
    this.list.push({ ...spec, method: spec.method?.toUpperCase(), seen: 0, fired: 0 });
  }

  clear(): void {
    this.list = [];
  }

  /** Called once per request; returns the fault to apply now, if any. */
  match(method: string, template: string | undefined, path: string): FaultSpec | undefined {
    let hit: FaultSpec | undefined;
    for (const f of this.list) {
      if (f.method && f.method !== method) continue;
      if (f.path !== path && f.path !== template) continue;
      f.seen++;
      const nth = f.nth ?? 1;
      const times = f.times ?? 1;
      if (!hit && f.seen >= nth && f.fired < times) {
        f.fired++;
        hit = f;
      }
    }
    this.list = this.list.filter((f) => f.fired < (f.times ?? 1));
    return hit;
  }

  pending(): FaultSpec[] {
    return this.list.map(({ seen: _s, fired: _f, ...spec }) => spec);
  }
}
