/**
 * Container inputs: the zod schema behind check(). Every rule here exists so that nothing
 * invalid is ever sent to Proxmox, and every message names the field and the fix.
 * Values come out normalised (sizes canonical, tags lower-cased/sorted/deduplicated the
 * way PVE stores them — so `Web` vs `web` never shows a perpetual diff, bpg #1851).
 */
import { z } from "zod";
import { formatSize, isCidr, isIPv4, isIPv6, parseSize } from "../../proxmox/formats";

const GiB = 1024 ** 3;

/** Sizes: "8G", "512M", "1T", or a number of GiB. Normalised to PVE's canonical text. */
export const sizeSchema = z
  .union([z.number().positive(), z.string()])
  .transform((v, ctx) => {
    const bytes = typeof v === "number" ? Math.round(v * GiB) : parseSize(v.toUpperCase().replace(/I?B$/, ""));
    if (bytes === undefined || bytes <= 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `'${v}' is not a size; use e.g. "8G", "512M" or a number of GiB` });
      return z.NEVER;
    }
    // PVE allocates whole MiB (BEHAVIOR.md 4.2); anything finer would read back differently.
    if (bytes % (1024 * 1024) !== 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `'${v}' is not a whole number of MiB; Proxmox rounds to MiB, so use e.g. "${Math.ceil(bytes / 1048576)}M"` });
      return z.NEVER;
    }
    return formatSize(bytes);
  });

export function sizeBytes(size: string): number {
  return parseSize(size)!;
}

const storageId = z.string().regex(/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, "not a storage ID (letters, digits, '-', '_', '.'; e.g. 'local-lvm')");
const mountOption = z.enum(["discard", "lazytime", "noatime", "nodev", "noexec", "nosuid"]);
const DNS_NAME = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*$/;

const containerPath = z
  .string()
  .regex(/^\//, "must be an absolute path inside the container, e.g. '/data'")
  .refine((p) => !/(^|\/)\.\.?(\/|$)/.test(p), "may not contain '.' or '..' components")
  .refine((p) => !/[,;=]/.test(p), "may not contain ',', ';' or '='");

export const rootfsSchema = z
  .object({
    storage: storageId,
    size: sizeSchema,
    acl: z.boolean().optional(),
    quota: z.boolean().optional(),
    replicate: z.boolean().optional(),
    mountOptions: z.array(mountOption).optional(),
  })
  .strict();

export const mountPointSchema = z
  .object({
    slot: z.number().int().min(0).max(255),
    /** A new volume on this storage (with `size`). */
    storage: storageId.optional(),
    size: sizeSchema.optional(),
    /** An existing volume ID to attach, e.g. `local-lvm:vm-100-disk-3`. */
    volume: z.string().regex(/^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$/i, "must be a volume ID like 'local-lvm:vm-100-disk-1'").optional(),
    /** A host directory or device to bind-mount (root@pam only). */
    hostPath: z.string().regex(/^\//, "must be an absolute host path").optional(),
    path: containerPath,
    acl: z.boolean().optional(),
    backup: z.boolean().optional(),
    quota: z.boolean().optional(),
    readOnly: z.boolean().optional(),
    replicate: z.boolean().optional(),
    shared: z.boolean().optional(),
    mountOptions: z.array(mountOption).optional(),
  })
  .strict()
  .superRefine((mp, ctx) => {
    const kinds = [mp.storage !== undefined, mp.volume !== undefined, mp.hostPath !== undefined].filter(Boolean).length;
    if (kinds !== 1) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: "set exactly one of storage (+ size) for a new volume, volume for an existing one, or hostPath for a bind mount" });
    }
    if (mp.storage !== undefined && mp.size === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["size"], message: "is required with storage (e.g. size: \"8G\")" });
    }
    if (mp.hostPath !== undefined && mp.size !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["size"], message: "cannot be set on a bind mount (hostPath)" });
    }
  });

const ipv4Config = z
  .string()
  .refine((v) => v === "dhcp" || v === "manual" || isCidr(v, 4), "must be 'dhcp', 'manual' or an IPv4 address with prefix, e.g. '192.168.1.10/24'");
const ipv6Config = z
  .string()
  .refine(
    (v) => v === "auto" || v === "dhcp" || v === "manual" || isCidr(v, 6),
    "must be 'auto', 'dhcp', 'manual' or an IPv6 address with prefix, e.g. 'fd00::10/64'",
  );

export const networkSchema = z
  .object({
    slot: z.number().int().min(0).max(31).optional(),
    name: z.string().regex(/^[-_.\w\d]+$/, "must be an interface name like 'eth0'"),
    bridge: z.string().regex(/^[-_.\w\d]+$/, "must be a bridge name like 'vmbr0'").optional(),
    firewall: z.boolean().optional(),
    ip: ipv4Config.optional(),
    gw: z.string().refine(isIPv4, "must be an IPv4 address (the gateway for ip)").optional(),
    ip6: ipv6Config.optional(),
    gw6: z.string().refine(isIPv6, "must be an IPv6 address (the gateway for ip6)").optional(),
    hwaddr: z
      .string()
      .regex(/^[a-f0-9]{2}(?::[a-f0-9]{2}){5}$/i, "must be a MAC address like 'BC:24:11:00:00:01'")
      .refine((v) => (parseInt(v.slice(0, 2), 16) & 1) === 0, "must be a unicast MAC address (the first octet must be even)")
      .transform((v) => v.toUpperCase())
      .optional(),
    mtu: z.number().int().min(64).max(65535).optional(),
    rate: z.number().positive().optional(),
    tag: z.number().int().min(1).max(4094).optional(),
    trunks: z.array(z.number().int().min(1).max(4094)).nonempty().optional(),
    linkDown: z.boolean().optional(),
    hostManaged: z.boolean().optional(),
  })
  .strict()
  .superRefine((n, ctx) => {
    if (n.gw && (!n.ip || !isCidr(n.ip, 4))) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["gw"], message: "needs a static IPv4 address in ip (a CIDR); with dhcp the gateway comes from DHCP" });
    }
    if (n.gw6 && (!n.ip6 || !isCidr(n.ip6, 6))) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["gw6"], message: "needs a static IPv6 address in ip6 (a CIDR)" });
    }
    if (n.hostManaged && n.ip6 === "auto" && !n.linkDown) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["ip6"], message: "SLAAC ('auto') is not supported with hostManaged; use 'dhcp' or a static address" });
    }
  });

export const deviceSchema = z
  .object({
    slot: z.number().int().min(0).max(255).optional(),
    path: z.string().regex(/^\/dev\/[^,;=]+$/, "must be a device path under /dev, e.g. '/dev/net/tun'"),
    mode: z.string().regex(/^0[0-7]{3}$/, "must be an octal mode like '0660'").optional(),
    uid: z.number().int().min(0).optional(),
    gid: z.number().int().min(0).optional(),
    denyWrite: z.boolean().optional(),
  })
  .strict();

const seconds = z.number().int().positive();

export const containerArgsSchema = z
  .object({
    node: z.string().regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i, "must be a Proxmox node name like 'pve1'"),
    vmid: z.number().int().min(100).max(999999999).optional(),
    hostname: z
      .string()
      .max(255)
      .regex(DNS_NAME, "must be a DNS name (letters, digits and '-', labels separated by '.'), e.g. 'web-1'")
      .optional(),
    description: z.string().optional(),
    tags: z
      .array(z.string().regex(/^[a-z0-9_][a-z0-9_\-+.]*$/i, "tags may contain letters, digits, '_', '-', '+', '.' and must not start with '-', '+' or '.'"))
      .transform((t) => [...new Set(t.map((x) => x.toLowerCase()))].sort())
      .optional(),
    pool: z.string().regex(/^[A-Za-z0-9.\-_]+$/, "must be a pool ID").optional(),
    protection: z.boolean().optional(),
    template: z
      .string()
      // A backup volid is a restore (POST …/lxc with restore=1), which Container does not do;
      // PVE would fail the create on the server after the preview said it was fine.
      .refine((v) => !/^[^:]+:backup\//i.test(v), "is a backup archive (storage:backup/…); Container creates from CT templates only. Restore the backup with `pct restore` and adopt it (adopt: true, vmid), or use a template volume ID like 'local:vztmpl/…'")
      .refine((v) => /^[a-z][a-z0-9\-_.]*[a-z0-9]:vztmpl\/.+$/i.test(v) || /^[^:]+:backup\//i.test(v), "must be a template volume ID like 'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst'")
      .optional(),
    ostype: z.enum(["debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos", "unmanaged"]).optional(),
    arch: z.enum(["amd64", "i386", "arm64", "armhf", "riscv32", "riscv64"]).optional(),
    unprivileged: z.boolean().default(true),
    features: z
      .object({
        nesting: z.boolean().optional(),
        keyctl: z.boolean().optional(),
        fuse: z.boolean().optional(),
        mknod: z.boolean().optional(),
        mount: z.array(z.string().regex(/^[a-zA-Z0-9_]+$/, "must be a file system type like 'nfs'")).optional(),
        forceRwSys: z.boolean().optional(),
      })
      .strict()
      .optional(),
    cpu: z
      .object({
        cores: z.number().int().min(1).max(8192).optional(),
        limit: z.number().min(0).max(8192).optional(),
        units: z.number().int().min(0).max(500000).optional(),
      })
      .strict()
      .optional(),
    memory: z
      .object({
        dedicated: z.number().int().min(16, "must be at least 16 (MiB); Proxmox refuses less").optional(),
        swap: z.number().int().min(0).optional(),
      })
      .strict()
      .optional(),
    rootfs: rootfsSchema.optional(),
    mountPoints: z.array(mountPointSchema).optional(),
    networks: z.array(networkSchema).max(32).optional(),
    dns: z
      .object({
        servers: z.array(z.string().refine((v) => isIPv4(v) || isIPv6(v), "must be an IP address")).optional(),
        searchDomains: z.array(z.string().regex(DNS_NAME, "must be a DNS domain")).optional(),
      })
      .strict()
      .optional(),
    startup: z
      .object({ order: z.number().int().min(0).optional(), up: z.number().int().min(0).optional(), down: z.number().int().min(0).optional() })
      .strict()
      .optional(),
    startOnBoot: z.boolean().optional(),
    started: z.boolean().default(true),
    console: z
      .object({ enabled: z.boolean().optional(), mode: z.enum(["shell", "console", "tty"]).optional(), ttys: z.number().int().min(0).max(6).optional() })
      .strict()
      .optional(),
    timezone: z.string().regex(/^[A-Za-z0-9_+\-/]+$/, "must be 'host' or a zone like 'Europe/Berlin'").optional(),
    hookscript: z.string().regex(/^[a-z][a-z0-9\-_.]*[a-z0-9]:snippets\/.+$/i, "must be a snippet volume ID like 'local:snippets/hook.sh'").optional(),
    devices: z.array(deviceSchema).optional(),
    sshPublicKeys: z.string().optional(),
    password: z.string().min(5, "must be at least 5 characters (Proxmox's minimum)").optional(),
    entrypoint: z
      .string()
      .refine((v) => !/[\x00-\x08\x0a-\x1f\x7f]/.test(v), "may not contain control characters other than TAB")
      .optional(),
    env: z
      .record(
        z.string().regex(/^\w+$/, "environment variable names may only contain letters, digits and '_'"),
        z.string().refine((v) => !/[\x00-\x08\x0a-\x1f\x7f]/.test(v), "may not contain control characters other than TAB"),
      )
      .optional(),
    haManaged: z.boolean().optional(),
    timeouts: z
      .object({ create: seconds.optional(), update: seconds.optional(), delete: seconds.optional(), start: seconds.optional(), shutdown: seconds.optional(), migrate: seconds.optional() })
      .strict()
      .optional(),
    /**
     * Whether create/update wait for addresses (docs/container.md "Addresses"). A family
     * left unset is awaited only on interfaces configured `dhcp`/`auto` for it; `true` also
     * waits for one on any interface when none is; `false` never waits for it.
     */
    waitForIp: z
      .object({ ipv4: z.boolean().optional(), ipv6: z.boolean().optional(), timeout: z.number().int().min(0).optional(), required: z.boolean().optional() })
      .strict()
      .optional(),
    pendingChanges: z.enum(["reboot", "leave"]).default("reboot"),
    adopt: z.boolean().optional(),
    safetySnapshot: z.boolean().optional(),
    /** Set by the SDK: the Pulumi resource name, for logs. */
    resourceName: z.string().optional(),
    /** Set by the SDK: inputs taken from the template's image (OciImage), which follow `template`. */
    fromTemplate: z.array(z.enum(["entrypoint", "env"])).optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (!a.adopt && !a.template) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["template"], message: "is required to create a container (a template volume ID, or a Template/OciImage resource); set adopt: true with vmid to take over an existing CT instead" });
    }
    if (a.adopt && a.vmid === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["vmid"], message: "is required with adopt: true (the ID of the existing CT to take over)" });
    }
    uniqueSlots(ctx, "mountPoints", (a.mountPoints ?? []).map((m) => m.slot));
    uniqueSlots(ctx, "networks", assignSlots(a.networks ?? []));
    uniqueSlots(ctx, "devices", assignSlots(a.devices ?? []));
    const names = (a.networks ?? []).map((n) => n.name);
    names.forEach((n, i) => {
      if (names.indexOf(n) !== i) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["networks", i, "name"], message: `interface name '${n}' is used twice` });
    });
    const paths = (a.mountPoints ?? []).map((m) => m.path);
    paths.forEach((p, i) => {
      if (paths.indexOf(p) !== i) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["mountPoints", i, "path"], message: `mount path '${p}' is used twice` });
    });
    if (a.mountPoints?.length && !a.rootfs && !a.adopt) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["rootfs"], message: "is required when mountPoints are set (Proxmox: mount points configured, but 'rootfs' not set)" });
    }
  });

function uniqueSlots(ctx: z.RefinementCtx, field: string, slots: number[]): void {
  slots.forEach((s, i) => {
    if (slots.indexOf(s) !== i) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [field, i, "slot"], message: `slot ${s} is used twice; each entry needs its own slot` });
  });
}

/** Entries without an explicit slot take the lowest free ones, in order. */
export function assignSlots<T extends { slot?: number }>(items: T[]): number[] {
  const taken = new Set(items.map((i) => i.slot).filter((s): s is number => s !== undefined));
  let next = 0;
  return items.map((i) => {
    if (i.slot !== undefined) return i.slot;
    while (taken.has(next)) next++;
    taken.add(next);
    return next;
  });
}

export type ContainerArgs = z.infer<typeof containerArgsSchema>;
export type MountPoint = z.infer<typeof mountPointSchema>;
export type Network = z.infer<typeof networkSchema>;
export type Device = z.infer<typeof deviceSchema>;
export type Rootfs = z.infer<typeof rootfsSchema>;

/**
 * Things only root@pam may do (BEHAVIOR.md 2.4, `check_ct_modify_config_perm`), for the
 * change from `prev` (the previous inputs; undefined on create) to `a`. PVE checks only the
 * keys a request sends, so an unchanged bind mount or feature set does not count; features
 * are compared as PVE does, by their printed values (`keyctl: false` is `keyctl=0`, a
 * change like any other).
 */
export function rootOnlyReasons(a: ContainerArgs, prev?: Partial<ContainerArgs>): string[] {
  const out: string[] = [];
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  const prevMps = new Map((prev?.mountPoints ?? []).map((m) => [m.slot, m]));
  (a.mountPoints ?? []).forEach((m, i) => {
    const before = prevMps.get(m.slot);
    if ((m.hostPath || before?.hostPath) && !same(m, before)) out.push(`mountPoints[${i}].hostPath: bind and device mounts can only be set by root@pam`);
  });
  const kept = new Set((a.mountPoints ?? []).map((m) => m.slot));
  for (const m of prev?.mountPoints ?? []) {
    if (m.hostPath && !kept.has(m.slot)) out.push(`mountPoints: removing the bind mount in slot ${m.slot} can only be done by root@pam`);
  }
  if ((a.devices?.length || prev?.devices?.length) && !same(a.devices ?? [], prev?.devices ?? [])) {
    out.push("devices: device passthrough (dev[n]) can only be set by root@pam");
  }
  if ((a.hookscript ?? "") !== (prev?.hookscript ?? "")) out.push("hookscript: can only be set by root@pam");
  const now = printedFeatures(a.features);
  const before = printedFeatures(prev?.features);
  if (!same(now, before)) {
    if (!a.unprivileged) out.push("features: any feature change on a privileged container can only be made by root@pam");
    else if (otherFeatureChanged(before, now)) out.push("features: everything except nesting can only be set by root@pam (PVE compares printed values, so keyctl: false counts too)");
  }
  return out;
}

/** Feature flags as PVE's printed `features` property string would hold them. */
function printedFeatures(f: ContainerArgs["features"] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const flag = (k: string, v: boolean | undefined) => v !== undefined && (out[k] = v ? "1" : "0");
  if (!f) return out;
  flag("nesting", f.nesting);
  flag("keyctl", f.keyctl);
  flag("fuse", f.fuse);
  flag("mknod", f.mknod);
  flag("force_rw_sys", f.forceRwSys);
  if (f.mount?.length) out.mount = f.mount.join(";");
  return out;
}

/** PVE's rule: without old features only `nesting=1` alone is not root-only; with them, any non-nesting key whose value changed. */
function otherFeatureChanged(before: Record<string, string>, now: Record<string, string>): boolean {
  const nestingOnly = (x: Record<string, string>) => Object.keys(x).length === 1 && x.nesting === "1";
  if (!Object.keys(before).length) return Object.keys(now).length > 0 && !nestingOnly(now);
  if (!Object.keys(now).length) return !nestingOnly(before);
  return [...new Set([...Object.keys(before), ...Object.keys(now)])].some((k) => k !== "nesting" && (before[k] ?? "") !== (now[k] ?? ""));
}
