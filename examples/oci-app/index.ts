/**
 * oci-app: an OCI image as a Proxmox VE application container.
 *
 * `OciImage` turns the image into a CT template volume; given as the Container's `template`,
 * it also supplies the image's entrypoint (Entrypoint + Cmd) and environment. Here the
 * environment is the image's plus one variable from stack config, so changing `greeting`
 * updates the container in place (Proxmox applies env changes on the next start; the default
 * `pendingChanges: "reboot"` restarts it).
 *
 * Source: by default a small OCI image layout that this program writes itself (one layer with
 * a shell script as the app, fixed timestamps, so the same digest on every run), converted
 * and uploaded by the provider (mode "client"). Set `image` to use a registry instead, e.g.
 * `registry.example.com/team/app:1.0` or a local `docker run -p 5000:5000 registry:2`
 * (`127.0.0.1:5000/app:1.0` with `insecureRegistry: true`).
 *
 * Config:
 *   node          (default pve1)
 *   storage       template storage, content "vztmpl" (default local)
 *   diskStorage   the container's rootfs storage     (default local-lvm)
 *   bridge        (default vmbr0)
 *   image         registry reference; unset = the generated OCI layout
 *   layoutDir     where to write the OCI layout (default <tmpdir>/pulumi-proxmox-lxc-oci-app/layout)
 *   greeting      APP_GREETING in the container      (default hello)
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import * as pulumi from "@pulumi/pulumi";
import * as tar from "tar";
import { Container, OciImage } from "pulumi-proxmox-lxc";

const config = new pulumi.Config();
const node = config.get("node") ?? "pve1";
const image = config.get("image");
const layoutDir = config.get("layoutDir") ?? path.join(os.tmpdir(), "pulumi-proxmox-lxc-oci-app", "layout");

const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

/** Write `blob` into the layout; returns its descriptor fields. */
function putBlob(dir: string, blob: Buffer): { digest: string; size: number } {
  const hex = sha256(blob);
  const file = path.join(dir, "blobs", "sha256", hex);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (!fs.existsSync(file)) fs.writeFileSync(file, blob);
  return { digest: `sha256:${hex}`, size: blob.length };
}

/**
 * A one-layer OCI image layout (OCI image spec v1) tagged "1.0": /app/server prints the
 * greeting, /etc/os-release says Alpine. Reproducible: fixed mtimes, owners and gzip header.
 */
function ensureOciLayout(dir: string): void {
  if (fs.existsSync(path.join(dir, "index.json"))) return;
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), "oci-app-rootfs-"));
  try {
    const files: Record<string, [string, number]> = {
      "app/server": ['#!/bin/sh\necho "$APP_GREETING from $(hostname)"\nexec sleep infinity\n', 0o755],
      "etc/os-release": ['NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n', 0o644],
      "etc/passwd": ["root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n", 0o644],
      "etc/group": ["root:x:0:\napp:x:1000:\n", 0o644],
    };
    for (const [rel, [text, mode]] of Object.entries(files)) {
      fs.mkdirSync(path.join(staging, path.dirname(rel)), { recursive: true });
      fs.writeFileSync(path.join(staging, rel), text, { mode });
      fs.chmodSync(path.join(staging, rel), mode);
    }
    const tarFile = path.join(staging, "..", `${path.basename(staging)}.tar`);
    tar.c({ file: tarFile, cwd: staging, portable: true, mtime: new Date(0), sync: true }, ["app", "etc"]);
    const layerTar = fs.readFileSync(tarFile);
    fs.rmSync(tarFile);
    fs.mkdirSync(dir, { recursive: true });
    const layer = putBlob(dir, zlib.gzipSync(layerTar, { level: 9 }));
    const configBlob = putBlob(
      dir,
      Buffer.from(
        JSON.stringify({
          architecture: "amd64",
          os: "linux",
          config: {
            Entrypoint: ["/app/server"],
            Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "APP_GREETING=hello"],
            WorkingDir: "/app",
            User: "1000:1000",
          },
          rootfs: { type: "layers", diff_ids: [`sha256:${sha256(layerTar)}`] },
        }),
      ),
    );
    const manifest = putBlob(
      dir,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", ...configBlob },
          layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
        }),
      ),
    );
    fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    fs.writeFileSync(
      path.join(dir, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            ...manifest,
            annotations: { "org.opencontainers.image.ref.name": "1.0" },
          },
        ],
      }),
    );
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

if (!image) ensureOciLayout(layoutDir);

const app = new OciImage("app-image", {
  node,
  storage: config.get("storage") ?? "local",
  // A local layout is read by the provider (mode "client"); a registry tag may be pulled by
  // Proxmox VE 9.1 itself ("auto" picks that when it can).
  source: image ?? `oci:${layoutDir}:1.0`,
  mode: image ? "auto" : "client",
  // No fileName: the provider names the file after the image, with the extension of the
  // format it picks (.tar for an OCI archive on PVE 9.1, .tar.zst for a rootfs on PVE 8).
});

const greeting = config.get("greeting") ?? "hello";

const web = new Container("app", {
  node,
  template: app, // volid + the image's entrypoint (and env, unless given below)
  hostname: "oci-app",
  memory: { dedicated: 256 },
  rootfs: { storage: config.get("diskStorage") ?? "local-lvm", size: "1G" },
  networks: [{ name: "eth0", bridge: config.get("bridge") ?? "vmbr0", ip: "dhcp" }],
  // The image's environment, with APP_GREETING from stack config.
  env: app.env.apply((env) => ({ ...(env ?? {}), APP_GREETING: greeting })),
});

export const templateVolid = app.volid;
export const manifestDigest = app.manifestDigest;
export const entrypoint = web.entrypoint;
export const env = web.env;
export const vmid = web.vmid;
