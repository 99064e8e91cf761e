/**
 * runtime-spec 1.x `config.json` for an image: process from the image config (args, env,
 * cwd, user resolved against the rootfs' /etc/passwd and /etc/group), the standard Linux
 * mounts and namespaces, Docker's default capability set, and resource limits.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { OciError } from "./errors";
import { ImageMetadata } from "./metadata";

export interface RuntimeOptions {
  hostname?: string;
  /** Replaces Entrypoint+Cmd. */
  args?: string[];
  /** Extra `KEY=value` entries; they override the image's for the same key. */
  env?: string[];
  /** Memory limit in bytes (linux.resources.memory.limit). */
  memoryBytes?: number;
  /** CPU limit in cores, e.g. 0.5 (cpu quota over a 100 ms period). */
  cpus?: number;
  /** Maximum number of processes. */
  pidsLimit?: number;
  /** Soft/hard RLIMIT_NOFILE (default 1024). */
  nofile?: number;
  readonlyRootfs?: boolean;
  /** Share the host's network namespace instead of an isolated one (default false). */
  hostNetwork?: boolean;
}

export interface ProcessUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
  /** Home directory from /etc/passwd, for HOME. */
  home?: string;
}

const DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Reads a file inside the rootfs without following a symlink out of it; undefined if absent. */
async function readRootfsFile(rootfs: string, rel: string): Promise<string | undefined> {
  let fh: fs.promises.FileHandle;
  try {
    // Each component is checked: the image controls /etc and could make it a symlink.
    let cur = rootfs;
    const parts = rel.split("/");
    for (const part of parts.slice(0, -1)) {
      cur = path.join(cur, part);
      const st = await fs.promises.lstat(cur);
      if (!st.isDirectory()) return undefined;
    }
    fh = await fs.promises.open(path.join(rootfs, rel), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > 4 << 20) return undefined;
    return await fh.readFile("utf8");
  } finally {
    await fh.close();
  }
}

function parseColonFile(text: string | undefined): string[][] {
  return (text ?? "").split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(":"));
}

/** Resolves `user`, `uid`, `user:group`, `uid:gid` against the rootfs like Docker/PVE. */
export async function resolveUser(rootfs: string, spec: string | undefined): Promise<ProcessUser> {
  const s = (spec ?? "").trim();
  const passwd = parseColonFile(await readRootfsFile(rootfs, "etc/passwd"));
  const groups = parseColonFile(await readRootfsFile(rootfs, "etc/group"));
  const [u, g] = s ? s.split(":", 2) : ["0", undefined];
  if ((s.match(/:/g) ?? []).length > 1 || u === "") {
    throw new OciError("BUNDLE", `image config User '${s}' has an invalid format (expected user, uid, user:group or uid:gid)`);
  }
  let uid: number;
  let gid: number | undefined;
  let home: string | undefined;
  let userName: string | undefined;
  const byName = passwd.find((p) => p[0] === u);
  if (/^[0-9]+$/.test(u)) {
    uid = Number(u);
    const entry = passwd.find((p) => p[2] === u);
    if (entry) {
      gid = Number(entry[3]);
      home = entry[5];
      userName = entry[0];
    }
  } else if (byName) {
    uid = Number(byName[2]);
    gid = Number(byName[3]);
    home = byName[5];
    userName = byName[0];
  } else {
    throw new OciError("BUNDLE", `image config User '${s}': no user '${u}' in the image's /etc/passwd`);
  }
  if (g !== undefined) {
    if (/^[0-9]+$/.test(g)) gid = Number(g);
    else {
      const ge = groups.find((x) => x[0] === g);
      if (!ge) throw new OciError("BUNDLE", `image config User '${s}': no group '${g}' in the image's /etc/group`);
      gid = Number(ge[2]);
    }
  }
  gid ??= 0;
  // Supplementary groups only when the group was not given explicitly (Docker's rule).
  const additionalGids =
    g === undefined && userName
      ? groups.filter((x) => (x[3] ?? "").split(",").includes(userName!)).map((x) => Number(x[2])).filter((x) => x !== gid)
      : [];
  return { uid, gid, additionalGids: additionalGids.length ? additionalGids : undefined, home };
}

export function runtimeConfig(meta: ImageMetadata, user: ProcessUser, opts: RuntimeOptions = {}): Record<string, unknown> {
  const args = opts.args ?? [...meta.entrypoint, ...meta.cmd];
  if (!args.length) {
    throw new OciError("BUNDLE", "the image has no Entrypoint or Cmd: pass the command to run (args)");
  }
  const env = new Map<string, string>();
  for (const e of [DEFAULT_PATH, ...meta.env, ...(opts.env ?? [])]) {
    const i = e.indexOf("=");
    env.set(i < 0 ? e : e.slice(0, i), e);
  }
  if (!env.has("HOME")) env.set("HOME", `HOME=${user.home || "/"}`);
  const resources: Record<string, unknown> = { devices: [{ allow: false, access: "rwm" }] };
  if (opts.memoryBytes) resources.memory = { limit: opts.memoryBytes };
  if (opts.cpus) resources.cpu = { quota: Math.round(opts.cpus * 100_000), period: 100_000 };
  if (opts.pidsLimit) resources.pids = { limit: opts.pidsLimit };
  const nofile = opts.nofile ?? 1024;
  const namespaces = [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "cgroup" }];
  if (!opts.hostNetwork) namespaces.push({ type: "network" });
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids ? { additionalGids: user.additionalGids } : {}) },
      args,
      env: [...env.values()],
      cwd: meta.workingDir || "/",
      capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: nofile, soft: nofile }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: !!opts.readonlyRootfs },
    hostname: opts.hostname ?? "container",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] },
    ],
    linux: {
      resources,
      namespaces,
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
    annotations: {},
  };
}
