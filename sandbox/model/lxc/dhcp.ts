/**
 * Whether DHCP / SLAAC answers a CT, for GET …/interfaces. By default every `ip=dhcp`,
 * `ip6=dhcp` and `ip6=auto` interface has its address as soon as the CT runs. Tests make a
 * network silent (no DHCP server on the bridge, no DHCP client in the template — on a real
 * host both look the same: the interface has only its link-local address) or slow with
 * `admin.setDhcp(rule)`. Rules live with the running sandbox, not in its state file.
 */
import type { Core } from "../../core";

export interface DhcpRule {
  /** Only this CT (default: every CT). */
  vmid?: number;
  /** Only interfaces on this bridge (default: every bridge). */
  bridge?: string;
  /** Which lease: `ipv4` (ip=dhcp), `ipv6` (ip6=dhcp and ip6=auto), or both (default). */
  family?: "ipv4" | "ipv6";
  /** false: never answers. true (default): answers, after `delayMs` from the CT's start. */
  answers?: boolean;
  delayMs?: number;
}

const rules = new WeakMap<Core, DhcpRule[]>();

/** Add a rule (later rules win); `reset` drops all rules first, `{reset: true}` alone restores the default. */
export function setDhcp(core: Core, rule: DhcpRule & { reset?: boolean }): void {
  const { reset, ...r } = rule;
  const list = reset ? [] : (rules.get(core) ?? []);
  if (!reset || Object.keys(r).length) list.push({ ...r, vmid: r.vmid === undefined ? undefined : Number(r.vmid) });
  rules.set(core, list);
}

/** Whether the CT `vmid`, running since `since`, has its `family` lease on `bridge` now. */
export function leaseGranted(core: Core, vmid: number, bridge: string | undefined, family: "ipv4" | "ipv6", since: number): boolean {
  const rule = [...(rules.get(core) ?? [])]
    .reverse()
    .find((r) => (r.vmid === undefined || r.vmid === vmid) && (r.bridge === undefined || r.bridge === bridge) && (r.family === undefined || r.family === family));
  if (!rule) return true;
  if (rule.answers === false) return false;
  return Date.now() - since >= (rule.delayMs ?? 0);
}
