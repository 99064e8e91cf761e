/**
 * Quickstart: upload a CT template from a local file, run two containers from it, and take a
 * snapshot of one of them.
 *
 * The template is a tiny Debian-flavoured root filesystem (just /etc/os-release and a few
 * files) built by this program with node-tar, byte-for-byte identical on every run, so a
 * second `pulumi up` changes nothing. Against a real Proxmox host, set `rootfsFile` to a real
 * template (e.g. a debian-12-standard .tar.zst you downloaded) instead.
 *
 * Config (`pulumi config set <key> <value>`), all optional:
 *   node            node to deploy on                       (default pve1)
 *   templateStorage storage with content "vztmpl"           (default local)
 *   diskStorage     storage for CT volumes, with snapshots  (default local-lvm)
 *   bridge          network bridge                          (default vmbr0)
 *   rootfsFile      template file to upload; built here when missing
 *                   (default <tmpdir>/pulumi-proxmox-lxc-quickstart/debian-12-mini_12.0_amd64.tar.gz)
 *   webMemory       memory of "web" in MiB                  (default 512; a change is applied in place)
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as tar from "tar";
import { Container, Snapshot, Template } from "pulumi-proxmox-lxc";

const config = new pulumi.Config();
const node = config.get("node") ?? "pve1";
const templateStorage = config.get("templateStorage") ?? "local";
const diskStorage = config.get("diskStorage") ?? "local-lvm";
const bridge = config.get("bridge") ?? "vmbr0";
const webMemory = config.getNumber("webMemory") ?? 512;
const rootfsFile =
  config.get("rootfsFile") ?? path.join(os.tmpdir(), "pulumi-proxmox-lxc-quickstart", "debian-12-mini_12.0_amd64.tar.gz");

/**
 * Write a minimal Debian-like rootfs as a .tar.gz at `file`, unless the file exists. Fixed
 * mtimes and owners make the archive reproducible: the Template's sha256 stays the same.
 */
function ensureMiniRootfs(file: string): void {
  if (fs.existsSync(file)) return;
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), "quickstart-rootfs-"));
  try {
    const files: Record<string, string> = {
      "etc/os-release":
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n' +
        'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
      "etc/debian_version": "12.0\n",
      "etc/hostname": "localhost\n",
      "etc/hosts": "127.0.0.1 localhost\n",
    };
    for (const [rel, text] of Object.entries(files)) {
      fs.mkdirSync(path.join(staging, path.dirname(rel)), { recursive: true });
      fs.writeFileSync(path.join(staging, rel), text);
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    tar.c(
      { gzip: true, file: tmp, cwd: staging, portable: true, mtime: new Date(0), sync: true },
      ["etc/debian_version", "etc/hostname", "etc/hosts", "etc/os-release"],
    );
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
ensureMiniRootfs(rootfsFile);

// Uploaded with constant memory; Proxmox verifies the sha256. New file content replaces it.
const template = new Template("debian-mini", {
  node,
  storage: templateStorage,
  path: rootfsFile,
});

const web = new Container("web", {
  node,
  template, // a Template resource (or a volume ID string)
  hostname: "web",
  description: "quickstart: web server",
  tags: ["quickstart", "web"],
  cpu: { cores: 1 },
  memory: { dedicated: webMemory, swap: 256 },
  rootfs: { storage: diskStorage, size: "2G" },
  networks: [{ name: "eth0", bridge, ip: "10.20.0.10/24", gw: "10.20.0.1" }],
  startOnBoot: true,
});

const db = new Container("db", {
  node,
  template,
  hostname: "db",
  description: "quickstart: database",
  tags: ["quickstart", "db"],
  memory: { dedicated: 1024, swap: 512 },
  rootfs: { storage: diskStorage, size: "4G" },
  mountPoints: [{ slot: 0, storage: diskStorage, size: "2G", path: "/var/lib/data", backup: true }],
  networks: [{ name: "eth0", bridge, ip: "10.20.0.11/24", gw: "10.20.0.1" }],
});

// A snapshot of db (its volumes are on storage with snapshot support, e.g. lvmthin or zfs).
const baseline = new Snapshot("db-baseline", {
  container: db,
  name: "baseline",
  description: "state right after the first deploy",
});

export const templateVolid = template.volid;
export const webVmid = web.vmid;
export const webIp = web.ipv4;
export const dbVmid = db.vmid;
export const dbVolumes = db.volids;
export const snapshot = pulumi.interpolate`${baseline.vmid}@${baseline.name}`;
