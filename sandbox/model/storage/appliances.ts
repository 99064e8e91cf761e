/**
 * A small built-in appliance index (BEHAVIOR.md §6.4): tiny, deterministic CT templates the
 * sandbox builds itself (a tar with `/etc/os-release`, gzip-compressed), served over the
 * sandbox's own HTTPS at `/_sandbox/appliances/<file>` with real md5/sha512 sums, so
 * aplinfo downloads and download-url exercise a real fetch.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { writeTar } from "../../tarball";
import type { Core } from "../../core";

interface Appliance {
  template: string;
  package: string;
  version: string;
  os: string;
  headline: string;
  osRelease: string;
}

export const APPLIANCES: Appliance[] = [
  { template: "alpine-3.20-default_20240908_amd64.tar.gz", package: "alpine-3.20-default", version: "3.20-1", os: "alpine", headline: "Alpine Linux 3.20", osRelease: 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n' },
  { template: "debian-12-standard_12.7-1_amd64.tar.gz", package: "debian-12-standard", version: "12.7-1", os: "debian-12", headline: "Debian 12 Bookworm (standard)", osRelease: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' },
  { template: "ubuntu-24.04-standard_24.04-2_amd64.tar.gz", package: "ubuntu-24.04-standard", version: "24.04-2", os: "ubuntu-24.04", headline: "Ubuntu 24.04 Noble (standard)", osRelease: 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n' },
];

const MTIME = new Date("2024-09-08T00:00:00Z");

function buildTar(a: Appliance): Buffer {
  const mtime = MTIME.getTime() / 1000;
  const tar = writeTar([
    ...["./", "./etc/", "./root/", "./sbin/"].map((name) => ({ name, type: "dir" as const, mtime })),
    { name: "./etc/os-release", data: a.osRelease, mtime },
    { name: "./etc/hostname", data: "localhost\n", mtime },
    { name: "./sbin/init", data: "#!/bin/sh\nexec sleep infinity\n", mode: 0o755, mtime },
  ]);
  return zlib.gzipSync(tar, { level: 9 });
}

export function applianceDir(core: Core): string {
  return path.join(core.dataDir, "appliances");
}

export async function ensureAppliances(core: Core): Promise<void> {
  const dir = applianceDir(core);
  fs.mkdirSync(dir, { recursive: true });
  for (const a of APPLIANCES) {
    const f = path.join(dir, a.template);
    if (!fs.existsSync(f)) fs.writeFileSync(f, buildTar(a));
  }
}

export function aplinfoRecords(core: Core): Array<Record<string, string>> {
  return APPLIANCES.map((a) => {
    const data = fs.readFileSync(path.join(applianceDir(core), a.template));
    return {
      package: a.package, version: a.version, type: "lxc", os: a.os, section: "system",
      maintainer: "pulumi-proxmox-lxc sandbox <sandbox@localhost>", architecture: "amd64",
      location: `${core.endpoint}/_sandbox/appliances/${a.template}`, infopage: `${core.endpoint}/_sandbox/appliances/`,
      md5sum: crypto.createHash("md5").update(data).digest("hex"), sha512sum: crypto.createHash("sha512").update(data).digest("hex"),
      headline: a.headline, description: `${a.headline} — a tiny template built by the sandbox.`, source: `${core.endpoint}/_sandbox/appliances/aplinfo.dat`,
      template: a.template, certified: "yes",
    };
  });
}

/** Unauthenticated static file serving for the appliance files (a "mirror"). */
export function serveAppliance(core: Core, name: string): { status: number; body?: Buffer | string; contentType?: string; reason?: string } {
  const a = APPLIANCES.find((x) => x.template === name);
  if (!a) return { status: 404, reason: "Not Found", body: "not found\n", contentType: "text/plain" };
  return { status: 200, body: fs.readFileSync(path.join(applianceDir(core), a.template)), contentType: "application/octet-stream" };
}
