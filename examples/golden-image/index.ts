/**
 * Golden image: build a container once, convert it into a CT template, run three linked
 * clones of it, back one clone up and restore that backup as a new container — all in one
 * program, so one `pulumi up` builds it and one `pulumi destroy` removes it.
 *
 *   golden       a CT from the appliance template, converted into a CT template (isTemplate)
 *   web-0..2     linked clones of golden; their memory, hostname and tags are applied on
 *                top of the copied config (webMemory changes all three in place)
 *   web-0-backup a vzdump backup of web-0 (Backup resource)
 *   web-0-copy   a new container restored from that backup, with its own hostname
 *
 * Config (`pulumi config set <key> <value>`), all optional:
 *   node            node to deploy on                                       (default pve1)
 *   templateStorage storage for the appliance template, content "vztmpl"   (default local)
 *   diskStorage     storage for CT volumes; it must do linked clones:
 *                   lvmthin, zfspool, rbd or btrfs — not dir/nfs          (default local-lvm)
 *   backupStorage   storage for the backup, content "backup"               (default local)
 *   bridge          network bridge                                         (default vmbr0)
 *   appliance       appliance from the node's index (`pveam available`)    (default debian-12-standard)
 *   webMemory       memory of each clone in MiB                            (default 512; changed in place)
 */
import * as pulumi from "@pulumi/pulumi";
import { Backup, Container, Template } from "pulumi-proxmox-lxc";

const config = new pulumi.Config();
const node = config.get("node") ?? "pve1";
const templateStorage = config.get("templateStorage") ?? "local";
const diskStorage = config.get("diskStorage") ?? "local-lvm";
const backupStorage = config.get("backupStorage") ?? "local";
const bridge = config.get("bridge") ?? "vmbr0";
const webMemory = config.getNumber("webMemory") ?? 512;

const debian = new Template("debian", {
  node,
  storage: templateStorage,
  appliance: config.get("appliance") ?? "debian-12-standard",
});

// Built like any container, then converted: Proxmox stops it and turns its volume into a
// base volume that linked clones share. A template is never started.
const golden = new Container("golden", {
  node,
  template: debian,
  hostname: "golden",
  description: "golden image: clone me",
  memory: { dedicated: 512, swap: 0 },
  rootfs: { storage: diskStorage, size: "2G" },
  networks: [{ name: "eth0", bridge, ip: "dhcp" }],
  isTemplate: true,
});

// Linked clones (the default for a template): created in seconds, sharing golden's base
// volume. Clones of one template are queued — Proxmox locks the source for each clone.
const webs = [0, 1, 2].map(
  (i) =>
    new Container(`web-${i}`, {
      node,
      clone: { source: golden },
      hostname: `web-${i}`,
      tags: ["golden-image", "web"],
      memory: { dedicated: webMemory, swap: 0 },
    }),
);

const backup = new Backup("web-0-backup", {
  container: webs[0],
  storage: backupStorage,
  notesTemplate: "{{guestname}} (golden-image example)",
});

// The backup's config is the starting point; what is declared here is applied on top.
const copy = new Container("web-0-copy", {
  node,
  restore: { backup, unique: true }, // unique: new MAC addresses, web-0 still runs
  hostname: "web-0-copy",
  rootfs: { storage: diskStorage, size: "2G" },
});

export const goldenVmid = golden.vmid;
export const goldenIsTemplate = golden.isTemplate;
export const webVmids = webs.map((w) => w.vmid);
export const webVolumes = webs.map((w) => w.volids);
export const backupVolume = backup.volume;
export const copyVmid = copy.vmid;
export const copyHostname = copy.hostname;
