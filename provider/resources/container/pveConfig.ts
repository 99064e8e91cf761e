/**
 * Mapping between Container inputs and PVE's LXC config keys, both ways, through the one
 * property-string codec. `toPveKeys` is what we send; `fromPveConfig` reads what PVE
 * returns back into the input shape so refresh compares like with like.
 */
import { lxcKeyFormat } from "../../proxmox/schema";
import { parsePropertyString, printPropertyString } from "../../proxmox/propertyString";
import { formatSize, parseSize, splitList } from "../../proxmox/formats";
import { assignSlots, type ContainerArgs, type MountPoint, type Network, type Rootfs, type Device } from "./args";

export type PveConfig = Record<string, string>;

const fmt = (key: string) => {
  const f = lxcKeyFormat(key);
  if (!f) throw new Error(`internal: no property-string format for LXC key '${key}'`);
  return f;
};
const b = (v: boolean | undefined) => (v === undefined ? undefined : v ? 1 : 0);

/** GiB as PVE's create syntax wants it (`STORAGE:SIZE_IN_GiB`, decimals allowed). */
export function sizeInGiB(size: string): string {
  const gib = parseSize(size)! / 1024 ** 3;
  return String(Math.round(gib * 1024) / 1024);
}

function mountOptionFields(m: { acl?: boolean; quota?: boolean; replicate?: boolean; mountOptions?: string[] }) {
  return {
    acl: b(m.acl),
    quota: b(m.quota),
    replicate: b(m.replicate),
    mountoptions: m.mountOptions?.length ? m.mountOptions.join(";") : undefined,
  };
}

/**
 * rootfs value. `volume` is the existing volume ID (updates), or undefined on create,
 * when `storage:GiB` asks PVE to allocate.
 */
export function rootfsString(r: Rootfs, volume?: string): string {
  return printPropertyString(
    { volume: volume ?? `${r.storage}:${sizeInGiB(r.size)}`, size: volume ? r.size : undefined, ...mountOptionFields(r) },
    fmt("rootfs"),
  );
}

export function mountPointString(m: MountPoint, volume?: string): string {
  const vol = m.hostPath ?? m.volume ?? volume ?? `${m.storage}:${sizeInGiB(m.size!)}`;
  const sizeKnown = volume !== undefined && m.size !== undefined;
  return printPropertyString(
    {
      volume: vol,
      mp: m.path,
      backup: b(m.backup),
      ro: b(m.readOnly),
      shared: b(m.shared),
      size: sizeKnown ? m.size : undefined,
      ...mountOptionFields(m),
    },
    fmt("mp0"),
  );
}

export function networkString(n: Network): string {
  return printPropertyString(
    {
      name: n.name,
      bridge: n.bridge,
      firewall: b(n.firewall),
      gw: n.gw,
      gw6: n.gw6,
      hwaddr: n.hwaddr,
      ip: n.ip,
      ip6: n.ip6,
      link_down: b(n.linkDown),
      mtu: n.mtu,
      rate: n.rate,
      tag: n.tag,
      trunks: n.trunks?.join(";"),
      "host-managed": b(n.hostManaged),
      type: "veth",
    },
    fmt("net0"),
  );
}

export function deviceString(d: Device): string {
  return printPropertyString({ path: d.path, mode: d.mode, uid: d.uid, gid: d.gid, "deny-write": b(d.denyWrite) }, fmt("dev0"));
}

/**
 * Config keys for everything the inputs set, except disks (which need volume IDs or
 * allocation syntax; see rootfsString/mountPointString) and create-only parameters.
 * Keys the inputs leave unset are absent: PVE keeps its own value for them.
 */
export function toPveKeys(a: ContainerArgs): PveConfig {
  const out: Record<string, string | number | undefined> = {
    hostname: a.hostname,
    description: a.description,
    tags: a.tags?.length ? a.tags.join(";") : undefined,
    protection: b(a.protection),
    ostype: a.ostype,
    arch: a.arch,
    cores: a.cpu?.cores,
    cpulimit: a.cpu?.limit,
    cpuunits: a.cpu?.units,
    memory: a.memory?.dedicated,
    swap: a.memory?.swap,
    onboot: b(a.startOnBoot),
    console: b(a.console?.enabled),
    cmode: a.console?.mode,
    tty: a.console?.ttys,
    timezone: a.timezone,
    hookscript: a.hookscript,
    entrypoint: a.entrypoint,
    nameserver: a.dns?.servers?.length ? a.dns.servers.join(" ") : undefined,
    searchdomain: a.dns?.searchDomains?.length ? a.dns.searchDomains.join(" ") : undefined,
    env: a.env && Object.keys(a.env).length ? Object.entries(a.env).map(([k, v]) => `${k}=${v}`).join("\0") : undefined,
  };
  if (a.features) {
    const f = a.features;
    const s = printPropertyString(
      { nesting: b(f.nesting), keyctl: b(f.keyctl), fuse: b(f.fuse), mknod: b(f.mknod), mount: f.mount?.length ? f.mount.join(";") : undefined, force_rw_sys: b(f.forceRwSys) },
      fmt("features"),
    );
    if (s) out.features = s;
  }
  if (a.startup) {
    const s = printPropertyString({ order: a.startup.order, up: a.startup.up, down: a.startup.down }, "pve-startup-order");
    if (s) out.startup = s;
  }
  const nets = a.networks ?? [];
  assignSlots(nets).forEach((slot, i) => (out[`net${slot}`] = networkString(nets[i])));
  const devs = a.devices ?? [];
  assignSlots(devs).forEach((slot, i) => (out[`dev${slot}`] = deviceString(devs[i])));
  const res: PveConfig = {};
  for (const [k, v] of Object.entries(out)) if (v !== undefined && v !== "") res[k] = String(v);
  return res;
}

// ---------------------------------------------------------------------------------------
// Reading PVE config back into the input shape

const asBool = (v: unknown): boolean | undefined => (v === undefined || v === null || v === "" ? undefined : String(v) === "1");
const asNum = (v: unknown): number | undefined => (v === undefined || v === null || v === "" ? undefined : Number(v));

/** What refresh learns from a CT's config, in the input shape, plus volume IDs and MACs. */
export interface ObservedContainer {
  args: Partial<ContainerArgs>;
  /** `rootfs`/`mpN` → volume ID (or host path for bind mounts). */
  volids: Record<string, string>;
  /** `netN` → MAC address. */
  hwaddrs: Record<string, string>;
  /** Keys still pending (changed but not applied; BEHAVIOR.md 1.4). */
  template: boolean;
  lock?: string;
}

function storageOf(volume: string): string {
  return volume.split(":")[0];
}

type MountOption = NonNullable<Rootfs["mountOptions"]>[number];
function parseMountOptions(v: PveConfig[string] | undefined): MountOption[] | undefined {
  return v ? (v.split(";").filter(Boolean) as MountOption[]) : undefined;
}

/** Parse GET config (current=1) output. Unknown keys are ignored. */
export function fromPveConfig(raw: Record<string, unknown>): ObservedContainer {
  const c: PveConfig = {};
  // The client's zod schemas coerce some keys to numbers/booleans; back to PVE's text form.
  for (const [k, v] of Object.entries(raw)) if (v !== undefined && v !== null) c[k] = typeof v === "boolean" ? (v ? "1" : "0") : String(v);
  const a: Partial<ContainerArgs> = {};
  const volids: Record<string, string> = {};
  const hwaddrs: Record<string, string> = {};

  if (c.hostname !== undefined) a.hostname = c.hostname;
  // PVE returns the description with a trailing newline (BEHAVIOR.md 4.1).
  if (c.description !== undefined) a.description = c.description.replace(/\n$/, "");
  if (c.tags !== undefined) a.tags = [...new Set(splitList(c.tags).map((t) => t.toLowerCase()))].sort();
  if (c.protection !== undefined) a.protection = asBool(c.protection);
  if (c.ostype !== undefined) a.ostype = c.ostype as ContainerArgs["ostype"];
  if (c.arch !== undefined) a.arch = c.arch as ContainerArgs["arch"];
  a.unprivileged = asBool(c.unprivileged) ?? false;
  if (c.cores !== undefined || c.cpulimit !== undefined || c.cpuunits !== undefined) {
    a.cpu = { cores: asNum(c.cores), limit: asNum(c.cpulimit), units: asNum(c.cpuunits) };
  }
  a.memory = { dedicated: asNum(c.memory) ?? 512, swap: asNum(c.swap) ?? 512 };
  if (c.onboot !== undefined) a.startOnBoot = asBool(c.onboot);
  if (c.console !== undefined || c.cmode !== undefined || c.tty !== undefined) {
    a.console = { enabled: asBool(c.console), mode: c.cmode as "shell", ttys: asNum(c.tty) };
  }
  if (c.timezone !== undefined) a.timezone = c.timezone;
  if (c.hookscript !== undefined) a.hookscript = c.hookscript;
  if (c.entrypoint !== undefined) a.entrypoint = c.entrypoint;
  if (c.env !== undefined && c.env !== "") {
    a.env = Object.fromEntries(
      c.env.split("\0").filter(Boolean).map((kv) => {
        const i = kv.indexOf("=");
        return [kv.slice(0, i), kv.slice(i + 1)];
      }),
    );
  }
  if (c.nameserver !== undefined || c.searchdomain !== undefined) {
    a.dns = {
      servers: c.nameserver ? c.nameserver.split(/[\s,;]+/).filter(Boolean) : undefined,
      searchDomains: c.searchdomain ? c.searchdomain.split(/[\s,;]+/).filter(Boolean) : undefined,
    };
  }
  if (c.features !== undefined) {
    const f = parsePropertyString(c.features, fmt("features"));
    a.features = {
      nesting: asBool(f.nesting),
      keyctl: asBool(f.keyctl),
      fuse: asBool(f.fuse),
      mknod: asBool(f.mknod),
      mount: f.mount ? f.mount.split(";").filter(Boolean) : undefined,
      forceRwSys: asBool(f.force_rw_sys),
    };
  }
  if (c.startup !== undefined) {
    const s = parsePropertyString(c.startup, "pve-startup-order");
    a.startup = { order: asNum(s.order), up: asNum(s.up), down: asNum(s.down) };
  }
  if (c.rootfs !== undefined) {
    const r = parsePropertyString(c.rootfs, fmt("rootfs"));
    volids.rootfs = r.volume;
    a.rootfs = {
      storage: storageOf(r.volume),
      size: r.size ? formatSize(parseSize(r.size)!) : "0",
      acl: asBool(r.acl),
      quota: asBool(r.quota),
      replicate: asBool(r.replicate),
      mountOptions: parseMountOptions(r.mountoptions),
    };
  }
  const mps: MountPoint[] = [];
  const nets: Network[] = [];
  const devs: Device[] = [];
  for (const key of Object.keys(c).sort(bySlot)) {
    let m: RegExpExecArray | null;
    if ((m = /^mp(\d+)$/.exec(key))) {
      const p = parsePropertyString(c[key], fmt("mp0"));
      volids[key] = p.volume;
      const isBind = p.volume.startsWith("/");
      mps.push({
        slot: Number(m[1]),
        // `volume` too: projected onto a declared `volume` mount point it keeps its kind, so
        // a later change to an allocated one is seen (refresh keeps only declared keys).
        ...(isBind ? { hostPath: p.volume } : { storage: storageOf(p.volume), size: p.size ? formatSize(parseSize(p.size)!) : undefined, volume: p.volume }),
        path: p.mp,
        acl: asBool(p.acl),
        backup: asBool(p.backup),
        quota: asBool(p.quota),
        readOnly: asBool(p.ro),
        replicate: asBool(p.replicate),
        shared: asBool(p.shared),
        mountOptions: parseMountOptions(p.mountoptions),
      });
    } else if ((m = /^net(\d+)$/.exec(key))) {
      const p = parsePropertyString(c[key], fmt("net0"));
      if (p.hwaddr) hwaddrs[key] = p.hwaddr.toUpperCase();
      nets.push({
        slot: Number(m[1]),
        name: p.name,
        bridge: p.bridge,
        firewall: asBool(p.firewall),
        ip: p.ip,
        gw: p.gw,
        ip6: p.ip6,
        gw6: p.gw6,
        hwaddr: p.hwaddr?.toUpperCase(),
        mtu: asNum(p.mtu),
        rate: asNum(p.rate),
        tag: asNum(p.tag),
        trunks: p.trunks ? (p.trunks.split(";").map(Number) as [number, ...number[]]) : undefined,
        linkDown: asBool(p.link_down),
        hostManaged: asBool(p["host-managed"]),
      });
    } else if ((m = /^dev(\d+)$/.exec(key))) {
      const p = parsePropertyString(c[key], fmt("dev0"));
      devs.push({ slot: Number(m[1]), path: p.path, mode: p.mode, uid: asNum(p.uid), gid: asNum(p.gid), denyWrite: asBool(p["deny-write"]) });
    }
  }
  if (mps.length) a.mountPoints = mps;
  if (nets.length) a.networks = nets;
  if (devs.length) a.devices = devs;
  return { args: stripUndefined(a), volids, hwaddrs, template: asBool(c.template) ?? false, lock: c.lock };
}

function bySlot(x: string, y: string): number {
  const nx = /^(\D+)(\d+)$/.exec(x);
  const ny = /^(\D+)(\d+)$/.exec(y);
  if (nx && ny && nx[1] === ny[1]) return Number(nx[2]) - Number(ny[2]);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Deep copy without undefined values (Pulumi state cannot hold them; comparisons must not see them). */
export function stripUndefined<T>(v: T): T {
  if (Array.isArray(v)) return v.map(stripUndefined) as unknown as T;
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = stripUndefined(x);
    return out as T;
  }
  return v;
}
