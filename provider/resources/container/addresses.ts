/**
 * The `ipv4`/`ipv6` outputs of a Container: which addresses a CT has, and how long
 * create/update wait for the ones DHCP or SLAAC hand out (`waitForIp`).
 *
 * - Addresses come from `ip-addresses` of GET …/interfaces: `inet`/`inet6` hold only the
 *   last address of each family, and the kernel lists link-local last, so on a real host
 *   `inet6` is the fe80:: address and a global IPv6 address was never seen.
 * - Link-local, loopback and multicast addresses are left out: nobody reaches the CT there.
 * - Only a create, and an update or adoption that (re)started the CT or changed its networks, wait,
 *   bounded by `waitForIp.timeout` (default 30 s); refresh and diff report what the CT has
 *   now. A wait that runs out is a warning naming the interface and the likely causes, or
 *   an error with `waitForIp.required: true` (field report: three ~2-minute waits per run,
 *   one of them in `pulumi refresh`, for a DHCP lease that never came).
 */
import type { ContainerArgs, Network } from "./args";
import type { PveClient } from "../../proxmox/client";
import type { LxcInterface } from "../../proxmox/lxc";
import type { OperationContext } from "../operation";
import { isCidr } from "../../proxmox/formats";

export type Family = "ipv4" | "ipv6";

/** Interface name → addresses (CIDR), per family. */
export interface Addresses {
  ipv4: Record<string, string[]>;
  ipv6: Record<string, string[]>;
}

/** An address create/update waits for: on interface `name`, or on any interface. */
export interface AwaitedAddress {
  family: Family;
  name?: string;
  /** How the interface gets it, for messages: `dhcp`, `auto` (SLAAC), or undefined for "any". */
  mode?: string;
  bridge?: string;
}

export const DEFAULT_WAIT_S = 30;

/** Inputs whose change may change the addresses, so an update that changes them waits. */
export const ADDRESS_FIELDS = ["node", "networks", "started", "waitForIp"] as const;

export const emptyAddresses = (): Addresses => ({ ipv4: {}, ipv6: {} });

/** Global addresses only: no loopback, link-local (fe80::/10, 169.254/16), multicast or unspecified. */
export function isReachable(addr: string): boolean {
  const ip = addr.split("/")[0].toLowerCase();
  if (ip.includes(":")) {
    if (ip === "::1" || ip === "::" || ip.startsWith("ff")) return false;
    return !/^fe[89ab]/.test(ip);
  }
  const [a, b] = ip.split(".").map(Number);
  return !(a === 127 || a === 0 || (a === 169 && b === 254) || a >= 224);
}

/** One interface's addresses in the kernel's order; `inet`/`inet6` only when PVE sent no list. */
function listed(i: LxcInterface): Array<{ family: Family; cidr: string }> {
  const list = i["ip-addresses"];
  if (list) {
    return list
      .filter((x) => typeof x["ip-address"] === "string")
      .map((x) => {
        const ip = x["ip-address"]!;
        const family: Family = x["ip-address-type"] === "inet6" || ip.includes(":") ? "ipv6" : "ipv4";
        return { family, cidr: x.prefix === undefined ? ip : `${ip}/${x.prefix}` };
      });
  }
  return [
    ...(i.inet ? [{ family: "ipv4" as const, cidr: i.inet }] : []),
    ...(i.inet6 ? [{ family: "ipv6" as const, cidr: i.inet6 }] : []),
  ];
}

/** The reachable addresses of GET …/interfaces, per family and interface (`lo` never counts). */
export function addressesOf(ifaces: LxcInterface[]): Addresses {
  const out = emptyAddresses();
  for (const i of ifaces) {
    if (i.name === "lo") continue;
    for (const { family, cidr } of listed(i)) {
      if (!isReachable(cidr)) continue;
      const list = (out[family][i.name] ??= []);
      if (!list.includes(cidr)) list.push(cidr);
    }
  }
  return out;
}

/**
 * Static addresses are known from the config: a running CT's interface that does not show
 * its configured static address yet (the template's network setup is still running) gets it.
 */
export function withStatic(observed: Addresses, networks: Network[] | undefined): Addresses {
  const out: Addresses = { ipv4: { ...observed.ipv4 }, ipv6: { ...observed.ipv6 } };
  for (const n of networks ?? []) {
    if (n.linkDown) continue;
    if (n.ip && isCidr(n.ip, 4) && !out.ipv4[n.name]) out.ipv4[n.name] = [n.ip];
    if (n.ip6 && isCidr(n.ip6, 6) && !out.ipv6[n.name]) out.ipv6[n.name] = [n.ip6];
  }
  return out;
}

/** What create/update wait for, from `waitForIp` and how each interface gets its addresses. */
export function awaitedAddresses(a: Pick<ContainerArgs, "networks" | "waitForIp" | "started">): AwaitedAddress[] {
  if (a.started === false) return [];
  const nets = (a.networks ?? []).filter((n) => !n.linkDown);
  const out: AwaitedAddress[] = [];
  const family = (f: Family, dynamic: (n: Network) => string | undefined) => {
    const wanted = a.waitForIp?.[f];
    if (wanted === false) return;
    const list = nets.flatMap((n): AwaitedAddress[] => {
      const mode = dynamic(n);
      return mode ? [{ family: f, name: n.name, mode, bridge: n.bridge }] : [];
    });
    if (!list.length && wanted === true && nets.length) list.push({ family: f });
    out.push(...list);
  };
  family("ipv4", (n) => (n.ip === "dhcp" ? "dhcp" : undefined));
  family("ipv6", (n) => (n.ip6 === "dhcp" || n.ip6 === "auto" ? n.ip6 : undefined));
  return out;
}

/** The awaited addresses `have` does not show yet. */
export function missingAddresses(awaited: AwaitedAddress[], have: Addresses): AwaitedAddress[] {
  return awaited.filter((w) => (w.name ? !have[w.family][w.name]?.length : !Object.values(have[w.family]).some((l) => l.length)));
}

/**
 * Whether an operation waits for addresses: `true` (create), `false` (refresh), or a time
 * (update, adopt): only if the CT was (re)started since then — it migrated, rebooted for
 * pending changes, was stopped for a volume move, or started. `uptimeS` is whole seconds.
 */
export function waitsNow(wait: boolean | number, running: boolean, uptimeS: number | undefined): boolean {
  if (!running || wait === false) return false;
  if (wait === true) return true;
  return uptimeS !== undefined && uptimeS * 1000 <= Date.now() - wait;
}

/** One read of the CT's addresses now (refresh, and every poll of a wait). */
export async function currentAddresses(client: PveClient, node: string, vmid: number, a: Pick<ContainerArgs, "networks">, running: boolean): Promise<Addresses> {
  if (!running) return emptyAddresses();
  return withStatic(addressesOf(await client.lxc.interfaces(node, vmid)), a.networks);
}

const FAMILY_NAME: Record<Family, string> = { ipv4: "IPv4", ipv6: "IPv6" };

function describe(w: AwaitedAddress): string {
  const how = w.mode === "auto" ? " (SLAAC)" : w.mode === "dhcp" ? (w.family === "ipv6" ? " (DHCPv6)" : " (DHCP)") : "";
  return `an ${FAMILY_NAME[w.family]} address${how} on ${w.name ?? "any interface"}`;
}

/** The progress line while waiting. */
export function waitingLine(missing: AwaitedAddress[], leftMs: number): string {
  return `waiting for ${missing.map(describe).join(", ")}: ${Math.max(0, Math.ceil(leftMs / 1000))} s left`;
}

/** The warning (or, with `required`, the error) when the wait ran out. */
export function timeoutMessage(missing: AwaitedAddress[], waitedS: number, required: boolean): string {
  const causes = new Set<string>();
  for (const w of missing) {
    const bridge = w.bridge ? `bridge ${w.bridge}` : "the bridge";
    if (w.mode === "auto") causes.add(`no router sending IPv6 router advertisements on ${bridge}`);
    else if (w.mode === "dhcp") causes.add(`no ${w.family === "ipv6" ? "DHCPv6" : "DHCP"} server answering on ${bridge}`);
    else causes.add("no address configured inside the container");
  }
  causes.add("no DHCP client (or network setup) in the template, or one that brings the interface up late");
  causes.add("a firewall (the interface's firewall option, or the node/cluster firewall) dropping DHCP or router advertisements");
  const names = missing.map((w) => `${w.name ?? "any interface"} (${FAMILY_NAME[w.family]}${w.mode ? `, ${w.mode}` : ""})`);
  const what = `no address on ${names.join(", ")} after ${waitedS} s`;
  const hint = "Set waitForIp.timeout to wait longer, or waitForIp: { ipv4: false } / { ipv6: false } not to wait for that family";
  if (required) {
    return `${what}, and waitForIp.required is true. Likely causes: ${[...causes].join("; ")}. The container exists; ${hint}, or required: false to accept a container without it.`;
  }
  return `${what}; the ipv4/ipv6 outputs stay empty for it until a refresh sees one. Likely causes: ${[...causes].join("; ")}. ${hint}; waitForIp.required: true makes this an error.`;
}

/** `waitForIp.required` and the wait ran out: the CT exists (the caller records it). */
export class AddressesRequiredError extends Error {
  constructor(
    message: string,
    readonly addresses: Addresses,
  ) {
    super(message);
    this.name = "AddressesRequiredError";
  }
}

/**
 * Poll until every awaited address shows or `waitForIp.timeout` runs out. A progress line
 * says what is awaited and how long is left; running out is a warning, or
 * AddressesRequiredError with `waitForIp.required`.
 */
export async function waitForAddresses(client: PveClient, node: string, vmid: number, a: ContainerArgs, ctx: OperationContext): Promise<Addresses> {
  const awaited = awaitedAddresses(a);
  const timeoutMs = (a.waitForIp?.timeout ?? DEFAULT_WAIT_S) * 1000;
  const started = Date.now();
  const progress = ctx.progress("addresses");
  let waited = false;
  for (let delay = 250; ; delay = Math.min(delay * 2, 2000)) {
    const have = await currentAddresses(client, node, vmid, a, true);
    const missing = missingAddresses(awaited, have);
    if (!missing.length) {
      if (waited) progress.done(`got the awaited addresses after ${Math.round((Date.now() - started) / 1000)} s`);
      return have;
    }
    const left = timeoutMs - (Date.now() - started);
    if (left <= 0) {
      const message = timeoutMessage(missing, Math.round(timeoutMs / 1000), a.waitForIp?.required === true);
      if (a.waitForIp?.required) throw new AddressesRequiredError(message, have);
      await ctx.warn(message, { missing });
      return have;
    }
    progress.update(waitingLine(missing, left), { missing }, !waited);
    waited = true;
    await new Promise((r) => setTimeout(r, Math.min(delay, left)));
  }
}
