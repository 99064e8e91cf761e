/**
 * GET …/interfaces: `lo` plus one entry per `net[n]` of a running CT, in the schema's
 * shape `{name, hwaddr, hardware-address, inet?, inet6?, ip-addresses}`. Static addresses
 * come from the config; DHCP gets a deterministic lease derived from the vmid and the
 * interface index; `ip6=auto` a SLAAC (EUI-64) address in fd00:10::/64 — unless
 * `admin.setDhcp` made that lease silent or slow (./dhcp).
 */
import type { Core } from "../../core";
import { route } from "../../core";
import { parseKey } from "./config";
import { ctOnNode } from "./status";
import { checkNode } from "../cluster";
import { leaseGranted } from "./dhcp";

function eui64(mac: string): string {
  const b = mac.split(":").map((x) => parseInt(x, 16));
  b[0] ^= 0x02;
  const words = [(b[0] << 8) | b[1], (b[2] << 8) | 0xff, (0xfe << 8) | b[3], (b[4] << 8) | b[5]];
  return words.map((w) => w.toString(16)).join(":");
}

/**
 * `get_interfaces` (`ctr:src/PVE/LXC.pm`) walks `ip --json address show` and writes each
 * address into `inet`/`inet6` in turn, so each keeps the LAST address of its family in kernel
 * order (IPv6: global before link-local, so a NIC's `inet6` is its fe80:: address). The full
 * list is `ip-addresses`; a family without any address has no key.
 */
function lastOfFamily(addrs: Array<ReturnType<typeof addr>>): { inet?: string; inet6?: string } {
  const out: { inet?: string; inet6?: string } = {};
  for (const a of addrs) out[a["ip-address-type"] as "inet" | "inet6"] = `${a["ip-address"]}/${a.prefix}`;
  return out;
}

function addr(ip: string) {
  const [a, prefix] = ip.split("/");
  return { "ip-address": a, "ip-address-type": a.includes(":") ? "inet6" : "inet", prefix: Number(prefix) };
}

export function registerInterfaces(core: Core): void {
  route(core, "GET", "/nodes/{node}/lxc/{vmid}/interfaces", (req) => {
    checkNode(core, req.params.node);
    const ct = ctOnNode(core, req.params.node, Number(req.params.vmid));
    core.auth.check(req.id, `/vms/${ct.vmid}`, ["VM.Audit"]);
    // `PVE::LXC::get_interfaces` returns undef without a running CT: 200 `{"data": null}`.
    if (!ct.rec.running) return null;
    const out: Array<Record<string, unknown>> = [
      { name: "lo", hwaddr: "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00", inet: "127.0.0.1/8", inet6: "::1/128", "ip-addresses": [addr("127.0.0.1/8"), addr("::1/128")] },
    ];
    const keys = Object.keys(ct.conf.keys).filter((k) => /^net\d+$/.test(k)).sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
    for (const k of keys) {
      const n = parseKey(k, ct.conf.keys[k], core.version);
      if (n.link_down === "1") continue;
      const idx = Number(k.slice(3));
      let item: Record<string, unknown> = { name: n.name, hwaddr: n.hwaddr.toLowerCase(), "hardware-address": n.hwaddr.toLowerCase() };
      const addrs = [];
      const lease = (family: "ipv4" | "ipv6") => leaseGranted(core, ct.vmid, n.bridge, family, ct.rec.running!.since);
      if (n.ip === "dhcp") item.inet = lease("ipv4") ? `10.${100 + idx}.${(ct.vmid >> 8) & 255}.${(ct.vmid & 255) || 1}/16` : undefined;
      else if (n.ip && n.ip !== "manual") item.inet = n.ip;
      if (n.ip6 === "auto") item.inet6 = lease("ipv6") ? `fd00:10::${eui64(n.hwaddr)}/64` : undefined;
      else if (n.ip6 === "dhcp") item.inet6 = lease("ipv6") ? `fd00:20::${ct.vmid.toString(16)}:${idx}/128` : undefined;
      else if (n.ip6 && n.ip6 !== "manual") item.inet6 = n.ip6;
      if (item.inet) addrs.push(addr(String(item.inet)));
      if (item.inet6) addrs.push(addr(String(item.inet6)));
      addrs.push(addr(`fe80::${eui64(n.hwaddr)}/64`));
      const { inet, inet6, ...rest } = item;
      item = { ...rest, ...lastOfFamily(addrs), "ip-addresses": addrs };
      out.push(item);
    }
    return out;
  });
}
