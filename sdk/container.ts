/**
 * Container: a Proxmox VE LXC container, managed declaratively.
 *
 * What a change does (shown by `pulumi preview`): `vmid`, `unprivileged`, `template`,
 * `clone`, `restore` and `isTemplate` true → false replace the container; a `node` change
 * migrates it (restart mode when running); a disk on another storage is moved; a bigger disk is grown in place; a smaller one is refused
 * with an explanation; everything else is changed in place (applied live where Proxmox
 * can hotplug it, otherwise after a reboot per `pendingChanges`). See docs/container.md.
 */
import * as pulumi from "@pulumi/pulumi";
import { ProxmoxResource } from "./resource";

type In<T> = pulumi.Input<T>;

/** A size: "8G", "512M", "1T", or a number of GiB. */
export type Size = string | number;

export interface RootfsArgs {
  /** Storage for the root volume, e.g. "local-lvm". A change moves the volume. */
  storage: In<string>;
  /** Size; growing resizes in place, shrinking is refused. */
  size: In<Size>;
  acl?: In<boolean>;
  quota?: In<boolean>;
  replicate?: In<boolean>;
  mountOptions?: In<In<"discard" | "lazytime" | "noatime" | "nodev" | "noexec" | "nosuid">[]>;
}

export interface MountPointArgs {
  /** The `mpN` slot (0-255). Adding a slot adds a mount point, removing one detaches it. */
  slot: In<number>;
  /** New volume on this storage (with `size`). */
  storage?: In<string>;
  size?: In<Size>;
  /** An existing volume ID to attach. */
  volume?: In<string>;
  /** A host directory or device to bind-mount (root@pam only). */
  hostPath?: In<string>;
  /** Path inside the container, e.g. "/data". */
  path: In<string>;
  acl?: In<boolean>;
  backup?: In<boolean>;
  quota?: In<boolean>;
  readOnly?: In<boolean>;
  replicate?: In<boolean>;
  shared?: In<boolean>;
  mountOptions?: In<In<"discard" | "lazytime" | "noatime" | "nodev" | "noexec" | "nosuid">[]>;
}

export interface NetworkArgs {
  /** The `netN` slot (0-31); defaults to the lowest free one, in order. */
  slot?: In<number>;
  /** Interface name inside the container, e.g. "eth0". */
  name: In<string>;
  bridge?: In<string>;
  firewall?: In<boolean>;
  /** "dhcp", "manual" or a CIDR such as "192.168.1.10/24". */
  ip?: In<string>;
  gw?: In<string>;
  /** "auto", "dhcp", "manual" or a CIDR. */
  ip6?: In<string>;
  gw6?: In<string>;
  /** Fixed MAC address; by default Proxmox assigns one and it is kept across changes. */
  hwaddr?: In<string>;
  mtu?: In<number>;
  /** Rate limit in MB/s. */
  rate?: In<number>;
  /** VLAN tag. */
  tag?: In<number>;
  trunks?: In<In<number>[]>;
  linkDown?: In<boolean>;
  /** Let the host manage the IP configuration (application containers). */
  hostManaged?: In<boolean>;
}

export interface DeviceArgs {
  slot?: In<number>;
  path: In<string>;
  mode?: In<string>;
  uid?: In<number>;
  gid?: In<number>;
  denyWrite?: In<boolean>;
}

/** Anything with a template volume ID: a Template or an OciImage resource. */
export interface TemplateSource {
  volid: pulumi.Output<string>;
  /** OciImage: the image's entrypoint/env, used unless the container sets its own. */
  entrypoint?: pulumi.Output<string | undefined>;
  env?: pulumi.Output<Record<string, string> | undefined>;
}

/** A Container resource as a clone source (its id is its vmid). */
export interface CloneSource {
  id: pulumi.Output<string>;
  node: pulumi.Output<string>;
}

/** `clone`: make the container as a copy of another CT or CT template (docs/container.md "Clone"). */
export interface ContainerCloneArgs {
  /** The CT or CT template to clone: a Container resource, or its vmid. */
  source: CloneSource | In<number>;
  /** The source's node; default: wherever the source is (found through /cluster/resources). A change alone replaces nothing. */
  node?: In<string>;
  /** Clone the state of this snapshot of the source. */
  snapshot?: In<string>;
  /** true: full copy; false: linked clone (a CT template only). Default: linked for a template, full otherwise. */
  full?: In<boolean>;
  /** Storage for a full clone's volumes (default: the source's). */
  storage?: In<string>;
  /** Pool the clone is created in (default: `pool`). */
  pool?: In<string>;
}

/** A Backup resource as a restore source (its id is the backup's volume ID). */
export interface BackupSource {
  id: pulumi.Output<string>;
  volume: pulumi.Output<string>;
}

/** `restore`: make the container from a vzdump backup (docs/container.md "Restore"). */
export interface ContainerRestoreArgs {
  /** A Backup resource, or a backup volume ID such as "local:backup/vzdump-lxc-105-2026_11_28-09_30_00.tar.zst". */
  backup: BackupSource | In<string>;
  /** Overwrite the existing (stopped, unprotected) container `vmid`. */
  force?: In<boolean>;
  /** New MAC addresses for the restored network interfaces. */
  unique?: In<boolean>;
}

export interface ContainerArgs {
  /** The node the container runs on. Changing it migrates the container. */
  node: In<string>;
  /** Fixed VMID; allocated when omitted. Changing it replaces the container. */
  vmid?: In<number>;
  hostname?: In<string>;
  description?: In<string>;
  /** Tags; stored lower-cased, sorted and deduplicated, as Proxmox does. */
  tags?: In<In<string>[]>;
  /** Resource pool membership. */
  pool?: In<string>;
  /** Proxmox protection flag: blocks destroy and disk removal. */
  protection?: In<boolean>;
  /** Template volume ID, or a Template/OciImage resource. Changing it replaces the container. */
  template?: In<string> | TemplateSource;
  /** Make the container as a clone of another CT or CT template instead. Changing it replaces the container. */
  clone?: ContainerCloneArgs;
  /** Make the container from a backup instead. Changing it replaces the container. */
  restore?: ContainerRestoreArgs;
  /** Convert the container into a CT template (never started). true → false replaces it. */
  isTemplate?: In<boolean>;
  ostype?: In<"debian" | "devuan" | "ubuntu" | "centos" | "fedora" | "opensuse" | "archlinux" | "alpine" | "gentoo" | "nixos" | "unmanaged">;
  arch?: In<"amd64" | "i386" | "arm64" | "armhf" | "riscv32" | "riscv64">;
  /** Default true (with clone/restore: the source's). Changing it replaces the container. */
  unprivileged?: In<boolean>;
  features?: In<{ nesting?: In<boolean>; keyctl?: In<boolean>; fuse?: In<boolean>; mknod?: In<boolean>; mount?: In<In<string>[]>; forceRwSys?: In<boolean> }>;
  cpu?: In<{ cores?: In<number>; limit?: In<number>; units?: In<number> }>;
  /** Memory and swap in MiB. */
  memory?: In<{ dedicated?: In<number>; swap?: In<number> }>;
  rootfs?: In<RootfsArgs>;
  mountPoints?: In<In<MountPointArgs>[]>;
  networks?: In<In<NetworkArgs>[]>;
  dns?: In<{ servers?: In<In<string>[]>; searchDomains?: In<In<string>[]> }>;
  startup?: In<{ order?: In<number>; up?: In<number>; down?: In<number> }>;
  startOnBoot?: In<boolean>;
  /** Desired power state. Default true. */
  started?: In<boolean>;
  console?: In<{ enabled?: In<boolean>; mode?: In<"shell" | "console" | "tty">; ttys?: In<number> }>;
  timezone?: In<string>;
  hookscript?: In<string>;
  devices?: In<In<DeviceArgs>[]>;
  /** Applied at creation only. */
  sshPublicKeys?: In<string>;
  /** Root password, applied at creation only. Stored as a secret. */
  password?: In<string>;
  /** Application containers: the command to run. */
  entrypoint?: In<string>;
  env?: In<Record<string, In<string>>>;
  haManaged?: In<boolean>;
  /** Seconds. Pulumi's customTimeouts do not reach dynamic providers, so they are inputs here. */
  timeouts?: In<{ create?: In<number>; update?: In<number>; delete?: In<number>; start?: In<number>; shutdown?: In<number>; migrate?: In<number> }>;
  /**
   * How long create/update wait for DHCP/SLAAC addresses (the `ipv4`/`ipv6` outputs).
   * Default: only families an interface gets by `dhcp`/`auto`, up to `timeout` (30) seconds;
   * when it runs out the container is kept with a warning, or it is an error with
   * `required: true`. `ipv4`/`ipv6: false` never waits for that family; `true` also waits
   * for one on any interface when none is `dhcp`/`auto`. Refresh never waits.
   */
  waitForIp?: In<{ ipv4?: In<boolean>; ipv6?: In<boolean>; timeout?: In<number>; required?: In<boolean> }>;
  /** What to do when a change on a running CT needs a restart: "reboot" (default) or "leave" it pending. */
  pendingChanges?: In<"reboot" | "leave">;
  /** Take over the existing container `vmid` instead of creating one. */
  adopt?: In<boolean>;
  /** Snapshot before a risky update, roll back if it fails, delete it after success. */
  safetySnapshot?: In<boolean>;
}

/** What each Container declared as `isTemplate`: a clone's check() refuses a linked clone of a non-template. */
const declaredIsTemplate = new WeakMap<object, In<boolean> | undefined>();

function isResourceLike(v: unknown, output: string): v is Record<string, pulumi.Output<unknown>> {
  return !!v && typeof v === "object" && pulumi.Output.isInstance((v as Record<string, unknown>).id) && pulumi.Output.isInstance((v as Record<string, unknown>)[output]);
}

function cloneProps(c: ContainerCloneArgs): Record<string, unknown> {
  const { source, ...rest } = c;
  if (!isResourceLike(source, "node")) return { ...rest, source };
  // The id, not the vmid output: a source that is only updated keeps a known id in a preview.
  // Not its node: the provider finds the source wherever it is, so a migrated source is no change.
  const out: Record<string, unknown> = { ...rest, source: (source.id as pulumi.Output<string>).apply((id) => Number(id)) };
  if (declaredIsTemplate.has(source)) out.sourceIsTemplate = declaredIsTemplate.get(source) ?? false;
  return out;
}

function restoreProps(r: ContainerRestoreArgs): Record<string, unknown> {
  // A Backup's id is its volume ID, known in a preview unless the backup is made anew.
  return { ...r, backup: isResourceLike(r.backup, "volume") ? r.backup.id : r.backup };
}

function isTemplateSource(t: unknown): t is TemplateSource {
  return !!t && typeof t === "object" && "volid" in (t as object) && pulumi.Output.isInstance((t as TemplateSource).volid);
}

/** The outputs declared below (Pulumi makes an Output for each registered property). */
const OUTPUT_KEYS = ["vmid", "node", "status", "hostname", "volids", "hwaddrs", "ipv4", "ipv6", "tags", "template", "isTemplate", "entrypoint", "env"];

export class Container extends ProxmoxResource {
  declare public readonly vmid: pulumi.Output<number>;
  declare public readonly node: pulumi.Output<string>;
  /** "running" or "stopped". */
  declare public readonly status: pulumi.Output<string>;
  declare public readonly hostname: pulumi.Output<string | undefined>;
  /** `rootfs`/`mpN` → volume ID. */
  declare public readonly volids: pulumi.Output<Record<string, string>>;
  /** `netN` → MAC address. */
  declare public readonly hwaddrs: pulumi.Output<Record<string, string>>;
  /**
   * Interface name → IPv4 addresses (CIDR) of the running CT, without loopback and
   * link-local; empty when stopped, or when a DHCP lease did not come within `waitForIp`.
   */
  declare public readonly ipv4: pulumi.Output<Record<string, string[]>>;
  /** Interface name → IPv6 addresses (CIDR), global and unique-local; never link-local (fe80::/10). */
  declare public readonly ipv6: pulumi.Output<Record<string, string[]>>;
  declare public readonly tags: pulumi.Output<string[] | undefined>;
  declare public readonly template: pulumi.Output<string | undefined>;
  /** True once the container is a CT template. */
  declare public readonly isTemplate: pulumi.Output<boolean | undefined>;
  declare public readonly entrypoint: pulumi.Output<string | undefined>;
  declare public readonly env: pulumi.Output<Record<string, string> | undefined>;

  constructor(name: string, args: ContainerArgs, opts?: pulumi.CustomResourceOptions) {
    const { template, clone, restore, ...rest } = args;
    const props: Record<string, unknown> = { ...rest, resourceName: name };
    if (clone !== undefined) props.clone = cloneProps(clone);
    if (restore !== undefined) props.restore = restoreProps(restore);
    if (isTemplateSource(template)) {
      // The resource's id is its volid, and unlike the volid output it stays known in a
      // preview while the Template/OciImage is updated in place: no false replace here.
      props.template = pulumi.CustomResource.isInstance(template) ? template.id : template.volid;
      // Explicit inputs win over what the image says. The OciImage reports "" / {} when PVE
      // sets none (PVE 8, init images): known, unlike a missing output in a preview.
      if (args.entrypoint === undefined && template.entrypoint) props.entrypoint = template.entrypoint.apply((v) => v || undefined);
      if (args.env === undefined && template.env) props.env = template.env.apply((v) => (v && Object.keys(v).length ? v : undefined));
      // Tells the provider these follow the template (unknown in a preview while the image is
      // updated in place, yet unchanged as long as the template is).
      const fromTemplate = (["entrypoint", "env"] as const).filter((k) => args[k] === undefined && template[k]);
      if (fromTemplate.length) props.fromTemplate = fromTemplate;
    } else {
      props.template = template;
    }
    // Every declared output must be a property Pulumi registers, or it is `undefined` on the
    // object (not an Output) whenever the program leaves that input out.
    for (const k of OUTPUT_KEYS) if (props[k] === undefined) props[k] = undefined;
    // Secret as an input too: additionalSecretOutputs covers only the outputs, so the state's
    // `inputs` and the CLI's --json events carried the password in plain text (found by
    // test/resilience/cli.test.ts, secrets check).
    if (args.password !== undefined) props.password = pulumi.secret(args.password);
    super("Container", name, props, opts, { secretOutputs: ["password"] });
    declaredIsTemplate.set(this, args.isTemplate);
  }
}
