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

/** The template's tar stream (undefined when it cannot be read). */
export function decompress(file: string): Buffer | undefined {
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

/** The files `$autodetect_type` tests for, besides os-release (`ctr:src/PVE/LXC/Setup.pm`). */
const MARKERS: Array<[string[], string]> = [
  [["etc/debian_version"], "debian"],
  [["etc/devuan_version"], "devuan"],
  [["etc/SuSE-brand", "etc/SuSE-release"], "opensuse"],
  [["etc/fedora-release"], "fedora"],
  [["etc/centos-release", "etc/redhat-release"], "centos"],
  [["etc/arch-release"], "archlinux"],
  [["etc/alpine-release"], "alpine"],
  [["etc/gentoo-release"], "gentoo"],
];
/** PVE's `$plugin_alias`: the only IDs it maps (no ID_LIKE, no rocky/alma). */
const PVE_ALIASES: Record<string, string> = { "opensuse-leap": "opensuse", "opensuse-tumbleweed": "opensuse", arch: "archlinux", sles: "opensuse" };

/** `$parse_os_release`: the value of one variable, quoted or bare. */
function osReleaseVar(text: string, name: string): string | undefined {
  let val: string | undefined;
  for (const line of text.split("\n")) {
    const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)=(.*)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const q = /^'([^']*)'/.exec(m[2]) ?? /^"((?:[^"\\]|\\.)*)"/.exec(m[2]) ?? /^([A-Za-z0-9]*)/.exec(m[2]);
    val = q ? q[1].replace(/\\(.)/g, "$1") : undefined;
  }
  return val;
}

export interface OstypeDetection {
  ostype: string;
  /** Lines PVE prints with `warn` (a task warning only for the unmanaged fallback). */
  notes: string[];
  warning?: string;
}

/**
 * `$autodetect_type` on an extracted template: os-release `ID` (known or aliased), else the
 * distribution marker files in PVE's order (`/etc/debian_version` → debian, …), else "unable
 * to detect" when an os-release exists, else `unmanaged` with a warning. Throws PVE's error.
 * Returns undefined when the template cannot be read (the caller falls back to its name).
 */
export function detectOstypeOfTemplate(file: string): OstypeDetection | undefined {
  const tar = decompress(file);
  if (!tar) return undefined;
  const present = new Set<string>();
  const texts: Record<string, string> = {};
  const wanted = new Set(["etc/os-release", "usr/lib/os-release", "etc/lsb-release"]);
  try {
    for (const e of readTar(tar, (n) => wanted.has(n))) {
      const name = e.name.replace(/\/+$/, "");
      present.add(name);
      if (e.data) texts[name] = e.data.toString("utf8");
    }
  } catch {
    return undefined;
  }
  const has = (n: string) => present.has(n);
  const notes: string[] = [];
  // get_ct_os_release: /etc/os-release, else /usr/lib/os-release (a symlinked one reads the target).
  const osRelease = texts["etc/os-release"] ?? texts["usr/lib/os-release"];
  const id = osRelease !== undefined ? osReleaseVar(osRelease, "ID") : undefined;
  if (id) {
    if (KNOWN.includes(id)) return { ostype: id, notes };
    if (PVE_ALIASES[id]) return { ostype: PVE_ALIASES[id], notes };
    notes.push(`unknown ID '${id}' in /etc/os-release file, trying fallback detection`);
  }
  if (texts["etc/lsb-release"] !== undefined && /^DISTRIB_ID=Ubuntu$/im.test(texts["etc/lsb-release"])) return { ostype: "ubuntu", notes };
  for (const [files, ostype] of MARKERS) if (files.some(has)) return { ostype, notes };
  if (has("nix/store")) return { ostype: "nixos", notes };
  if (has("etc/os-release")) throw new Error("unable to detect OS distribution");
  return { ostype: "unmanaged", notes, warning: "/etc/os-release file not found and autodetection failed, falling back to 'unmanaged'" };
}
