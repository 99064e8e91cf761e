/**
 * The synthetic images the OCI tests share. "main" exercises every changeset rule of the
 * image spec across three layers (gzip, gzip, zstd).
 */
import { Entry, ImageSpec, hostShellEntries } from "./support";

const passwd = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:User:/home/user:/bin/sh\n";
const group = "root:x:0:\nusers:x:100:user\nuser:x:1000:\n";

export const layer1: Entry[] = [
  { name: "etc/", type: "dir" },
  { name: "etc/passwd", content: passwd },
  { name: "etc/group", content: group },
  { name: "etc/old.conf", content: "to be deleted\n" },
  { name: "etc/motd", content: "a file that becomes a directory\n" },
  { name: "etc/os-release", content: "ID=testos\n" },
  { name: "usr/", type: "dir" },
  { name: "usr/bin/", type: "dir" },
  { name: "usr/bin/hello", content: "#!/bin/sh\necho hello\n", mode: 0o755 },
  { name: "usr/bin/suid", content: "setuid\n", mode: 0o4755 },
  { name: "usr/bin/sgid", content: "setgid\n", mode: 0o2711, gid: 100 },
  { name: "usr/bin/link-to-hello", type: "symlink", linkname: "hello" },
  { name: "usr/bin/hl1", content: "hardlinked content\n", mode: 0o755 },
  { name: "usr/bin/hl2", type: "link", linkname: "usr/bin/hl1" },
  { name: "usr/bin/hl3", type: "link", linkname: "usr/bin/hl1" },
  { name: "bin", type: "symlink", linkname: "usr/bin" },
  { name: "tmp/", type: "dir", mode: 0o1777 },
  { name: "var/", type: "dir" },
  { name: "var/lib/", type: "dir" },
  { name: "var/lib/app/", type: "dir", mode: 0o750, uid: 1000, gid: 1000 },
  { name: "var/lib/app/a", content: "a\n" },
  { name: "var/lib/app/b", content: "b\n" },
  { name: "var/lib/app/sub/", type: "dir" },
  { name: "var/lib/app/sub/c", content: "c\n" },
  { name: "var/cache/", type: "dir" },
  { name: "var/cache/junk/", type: "dir" },
  { name: "var/cache/junk/1", content: "1\n" },
  { name: "var/cache/keep", content: "keep\n" },
  { name: "opt/", type: "dir" },
  { name: "opt/data/", type: "dir" },
  { name: "opt/data/x", content: "x\n" },
  { name: "home/", type: "dir" },
  { name: "home/user/", type: "dir", mode: 0o700, uid: 1000, gid: 1000 },
  { name: "home/user/.profile", content: "export X=1\n", uid: 1000, gid: 1000 },
  { name: "share/", type: "dir" },
  { name: "share/h1", content: "original h1\n" },
  { name: "share/h2", type: "link", linkname: "share/h1" },
  { name: "share/dup", content: "first version in the same layer\n" },
  { name: "share/dup", content: "second version in the same layer\n" },
  { name: "xattr-file", content: "x", xattrs: { "user.test": "value" } },
  { name: "fifo", type: "fifo", mode: 0o600 },
];

export const layer2: Entry[] = [
  { name: "etc/", type: "dir" },
  { name: "etc/.wh.old.conf" },
  { name: "etc/os-release", content: "ID=testos\nVERSION_ID=2\n" },
  { name: "etc/motd/", type: "dir", mode: 0o755 },
  { name: "etc/motd/inner", content: "inside\n" },
  { name: "var/cache/.wh.junk" },
  { name: "var/lib/app/", type: "dir", mode: 0o755, uid: 0, gid: 0 },
  { name: "var/lib/app/.wh..wh..opq" },
  { name: "var/lib/app/new", content: "new\n" },
  { name: "opt/data", content: "now a file\n" },
  { name: "usr/bin/hello", content: "#!/bin/sh\necho hello v2\n", mode: 0o700 },
  { name: "home/user/", type: "dir", mode: 0o750, uid: 1000, gid: 1000 },
];

export const layer3: Entry[] = [
  // h1 is replaced: h2 (a hardlink in layer 1) keeps the old content
  { name: "share/h1", content: "replaced h1\n" },
  { name: "usr/bin/.wh.hl3" },
  // no parent entries: srv/ and srv/www/ are implied
  { name: "srv/www/index.html", content: "<h1>hi</h1>\n", uid: 33, gid: 33 },
  { name: "/abs/path", content: "absolute names are made relative\n" },
];

export const mainImage: ImageSpec = {
  layers: [
    { entries: layer1, compression: "gzip" },
    { entries: layer2, compression: "gzip" },
    { entries: layer3, compression: "zstd" },
  ],
  config: {
    Entrypoint: ["/usr/bin/hello"],
    Cmd: ["--flag"],
    Env: ["PATH=/usr/bin:/bin", "FOO=bar"],
    WorkingDir: "/srv",
    User: "user",
    StopSignal: "SIGQUIT",
    Volumes: { "/data": {} },
    ExposedPorts: { "80/tcp": {} },
    Labels: { "org.example": "yes" },
  },
};

/** An image that runs: the host's dash, printing who and where it is. */
export function runnableImage(): ImageSpec {
  return {
    layers: [
      { entries: [...hostShellEntries(), { name: "etc/", type: "dir" }, { name: "etc/passwd", content: passwd }, { name: "etc/group", content: group }, { name: "home/user/", type: "dir", uid: 1000, gid: 1000 }] },
      { entries: [{ name: "srv/", type: "dir" }, { name: "srv/greeting", content: "hello-from-image" }] },
    ],
    config: {
      Entrypoint: ["/bin/sh", "-c"],
      Cmd: ['read g < greeting; echo "$g user=$HOME cwd=$PWD foo=$FOO"'],
      Env: ["FOO=bar"],
      WorkingDir: "/srv",
      User: "user",
    },
  };
}

/** One small image per platform, each saying which it is. */
export function multiArch(): ImageSpec[] {
  return [
    { platform: { os: "linux", architecture: "amd64" }, layers: [{ entries: [{ name: "arch", content: "amd64\n" }] }] },
    { platform: { os: "linux", architecture: "arm64", variant: "v8" }, layers: [{ entries: [{ name: "arch", content: "arm64\n" }] }] },
    { platform: { os: "linux", architecture: "arm", variant: "v7" }, layers: [{ entries: [{ name: "arch", content: "armv7\n" }] }] },
  ];
}
