/**
 * OS type autodetection (`PVE::LXC::Setup` `$autodetect_type`, BEHAVIOR.md §4.2, §7):
 * from `/etc/os-release` inside the template when the sandbox can read it, else from the
 * template's file name (`debian-12-standard_...`).
 */
import * as fs from "node:fs";
import * as zlib from "node:zlib";
import { spawnSync } from "node:child_process";
import { readTar } from "../../tarball";
import { decompress as zstdDecompress } from "fzstd";

const KNOWN = ["debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos"];
const ALIASES: Record<string, string> = {
  rocky: "centos", almalinux: "centos", rhel: "centos", rockylinux: "centos", arch: "archlinux",
  "opensuse-leap": "opensuse", "opensuse-tumbleweed": "opensuse", sles: "opensuse",
};

/** Map an os-release ID (or ID_LIKE list) to a PVE ostype. */
export function ostypeFromId(id: string, idLike?: string): string | undefined {
  for (const cand of [id, ...(idLike ?? "").split(/\s+/)]) {
    const c = cand.toLowerCase();
    if (KNOWN.includes(c)) return c;
    if (ALIASES[c]) return ALIASES[c];
  }
  return undefined;
}

export function ostypeFromFilename(name: string): string | undefined {
  const head = name.replace(/^.*\//, "").split(/[-_]/)[0].toLowerCase();
  return ostypeFromId(head);
}

export function archFromFilename(name: string): string | undefined {
  const m = /_(amd64|arm64|i386|armhf|riscv64)\.tar/.exec(name);
  return m ? m[1] : undefined;
}

function decompress(file: string): Buffer | undefined {
  try {
    const data = fs.readFileSync(file);
    if (/\.tar$/i.test(file)) return data;
    if (/\.tar\.gz$/i.test(file)) return zlib.gunzipSync(data);
    if (/\.tar\.zst$/i.test(file)) return Buffer.from(zstdDecompress(data));
    const tool = /\.tar\.xz$/i.test(file) ? "xz" : /\.tar\.bz2$/i.test(file) ? "bzip2" : undefined;
    if (!tool) return undefined;
    const r = spawnSync(tool, ["-dc", file], { maxBuffer: 256 * 1024 * 1024 });
    return r.status === 0 ? r.stdout : undefined;
  } catch {
    return undefined;
  }
}

/** `{found:false}` when the tar has no os-release; undefined when the file is unreadable. */
export async function osReleaseOfTemplate(file: string): Promise<{ found: boolean; id?: string; idLike?: string } | undefined> {
  const tar = decompress(file);
  if (!tar) return undefined;
  let text: string | undefined;
  try {
    for (const e of readTar(tar, (n) => n === "etc/os-release" || n === "usr/lib/os-release")) {
      if (e.data && (e.name === "etc/os-release" || text === undefined)) text = e.data.toString("utf8");
    }
  } catch {
    return undefined;
  }
  if (text === undefined) return { found: false };
  const field = (k: string) => new RegExp(`^${k}=("?)([^"\\n]*)\\1$`, "m").exec(text!)?.[2];
  return { found: true, id: field("ID") ?? "", idLike: field("ID_LIKE") };
}
