/**
 * Adopt: manage a container that already exists (created by hand, by a script, or by another
 * tool) without recreating it. `adopt: true` with the CT's `vmid` makes the first `pulumi up`
 * read the CT and change only what differs from this declaration; from then on it is an
 * ordinary Container (and `pulumi destroy` deletes it — add the `retainOnDelete: true`
 * resource option to leave it behind instead).
 *
 * `pve-lxc import <node>/<vmid> --name legacy` prints a declaration that matches an existing
 * CT exactly; paste it here instead of writing one by hand.
 *
 * Config:
 *   node         node the CT is on (required)
 *   vmid         the CT's ID (required)
 *   hostname     (default legacy)
 *   memory       MiB (default 512; a change is applied in place)
 *   diskStorage  storage of the CT's root volume (default local-lvm)
 *   rootfsSize   root volume size (default 2G; bigger grows it, smaller is refused)
 *   bridge       network bridge (default vmbr0)
 */
import * as pulumi from "@pulumi/pulumi";
import { Container } from "pulumi-proxmox-lxc";

const config = new pulumi.Config();

const legacy = new Container("legacy", {
  adopt: true,
  node: config.require("node"),
  vmid: config.requireNumber("vmid"),
  hostname: config.get("hostname") ?? "legacy",
  memory: { dedicated: config.getNumber("memory") ?? 512 },
  rootfs: { storage: config.get("diskStorage") ?? "local-lvm", size: config.get("rootfsSize") ?? "2G" },
  networks: [{ name: "eth0", bridge: config.get("bridge") ?? "vmbr0", ip: "dhcp" }],
});

export const vmid = legacy.vmid;
export const status = legacy.status;
export const ipv4 = legacy.ipv4;
