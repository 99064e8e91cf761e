/**
 * Migration: the container's node comes from stack config. Change it and `pulumi up`
 * migrates the container (restart mode when it is running), keeping its vmid, volumes and
 * MAC addresses — `pulumi preview` shows an update of `node`, not a replacement.
 *
 *   pulumi config set node pve2 && pulumi up
 *
 * Config:
 *   node            node the container runs on (required)
 *   templateNode    node that holds the template (default pve1). Deploy first with node =
 *                   templateNode (or use a shared templateStorage): Proxmox creates a CT
 *                   only from a template it can read on the CT's node.
 *   templateStorage storage for the template, content "vztmpl"  (default local)
 *   diskStorage     storage for the container's volumes        (default local-lvm)
 *   bridge          network bridge                             (default vmbr0)
 *   appliance       appliance from the node's index (`pveam available`) (default debian-12-standard)
 */
import * as pulumi from "@pulumi/pulumi";
import { Container, Template } from "pulumi-proxmox-lxc";

const config = new pulumi.Config();
const node = config.require("node");
const templateNode = config.get("templateNode") ?? "pve1";
const templateStorage = config.get("templateStorage") ?? "local";
const diskStorage = config.get("diskStorage") ?? "local-lvm";
const bridge = config.get("bridge") ?? "vmbr0";

// The template is only read when the container is created; it stays on templateNode.
const debian = new Template("debian", {
  node: templateNode,
  storage: templateStorage,
  appliance: config.get("appliance") ?? "debian-12-standard",
});

const app = new Container("app", {
  node, // a change migrates the container
  template: debian,
  hostname: "app",
  memory: { dedicated: 512 },
  rootfs: { storage: diskStorage, size: "2G" },
  networks: [{ name: "eth0", bridge, ip: "dhcp" }],
  // Migration of a running CT with local volumes takes longer than most other operations.
  timeouts: { migrate: 1800 },
});

export const vmid = app.vmid;
export const currentNode = app.node;
export const volumes = app.volids;
export const macs = app.hwaddrs;
