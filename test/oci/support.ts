/**
 * Test fixtures for the OCI library: synthetic images written as OCI layouts, real
 * `docker-registry` instances (htpasswd and bearer-token auth) on loopback, and tree
 * manifests to compare extracted filesystems.
 *
 * The Debian tools are required, not optional: a missing one fails the test with the
 * install line, so CI cannot silently skip coverage.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as net from "node:net";
import * as http from "node:http";
import * as zlib from "node:zlib";
import { createHash, createPrivateKey, createPublicKey, createSign, randomBytes } from "node:crypto";
import { ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import * as tarStream from "tar-stream";
import * as bcrypt from "bcryptjs";
import { generate as generateCert } from "selfsigned";

export const execFileP = promisify(execFile);

// Tests never touch the user's real cache: calls without cacheDir use this one.
const defaultCache = fs.mkdtempSync(path.join(os.tmpdir(), "oci-default-cache-"));
process.env.PULUMI_PROXMOX_LXC_OCI_CACHE = defaultCache;
process.on("exit", () => fs.rmSync(defaultCache, { recursive: true, force: true }));

export const INSTALL_HINT = "run scripts/ensure-tools as root, as npm test does (it installs the missing Debian packages: docker-registry skopeo umoci runc zstd ...)";

/** Fails (never skips) when a required binary is missing. */
export function requireTool(name: string): string {
  const r = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  if (r.status !== 0 || !r.stdout.trim()) throw new Error(`required tool '${name}' is not installed: ${INSTALL_HINT}`);
  return r.stdout.trim();
}

const tmpRoots: string[] = [];
export function tmpDir(prefix = "oci-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpRoots.push(d);
  return d;
}
export function cleanupTmp(): void {
  for (const d of tmpRoots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export async function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  requireTool(cmd);
  try {
    const { stdout } = await execFileP(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${e.message}\n${e.stderr ?? ""}${e.stdout ?? ""}`);
  }
}

// ------------------------------------------------------------------ images

export interface Entry {
  name: string;
  type?: "file" | "dir" | "symlink" | "link" | "char" | "block" | "fifo";
  mode?: number;
  uid?: number;
  gid?: number;
  content?: string | Buffer;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Written as pax SCHILY.xattr records (UTF-8 values only: tar-stream limitation). */
  xattrs?: Record<string, string>;
}

const TYPE_MAP = { file: "file", dir: "directory", symlink: "symlink", link: "link", char: "character-device", block: "block-device", fifo: "fifo" } as const;

/** A layer tar written with tar-stream (an encoder independent of the one under test). */
export async function layerTar(entries: Entry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on("data", (c: unknown) => chunks.push(c as Buffer));
    pack.on("end", () => resolve());
    pack.on("error", reject);
  });
  for (const e of entries) {
    const type = e.type ?? "file";
    const content = type === "file" ? Buffer.from(e.content ?? "") : undefined;
    const pax = e.xattrs ? Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v])) : undefined;
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        {
          name: e.name,
          type: TYPE_MAP[type],
          mode: e.mode ?? (type === "dir" ? 0o755 : type === "symlink" ? 0o777 : 0o644),
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime: new Date(1_700_000_000_000),
          linkname: e.linkname,
          devmajor: e.devmajor,
          devminor: e.devminor,
          size: content?.length ?? 0,
          ...(pax ? { pax } : {}),
        },
        content ?? Buffer.alloc(0),
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export type Compression = "gzip" | "zstd" | "none";

export function compress(data: Buffer, c: Compression): Buffer {
  if (c === "gzip") return zlib.gzipSync(data);
  if (c === "none") return data;
  requireTool("zstd");
  const r = spawnSync("zstd", ["-q", "-c", "-3"], { input: data, maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr}`);
  return r.stdout;
}

export interface LayerSpec {
  entries?: Entry[];
  /** A prebuilt uncompressed tar instead of entries. */
  tar?: Buffer;
  compression?: Compression;
}

export interface ImageSpec {
  layers: LayerSpec[];
  config?: Record<string, unknown>;
  platform?: { os: string; architecture: string; variant?: string };
}

const sha = (b: Buffer) => "sha256:" + createHash("sha256").update(b).digest("hex");

function putBlob(dir: string, data: Buffer): { digest: string; size: number } {
  const digest = sha(data);
  const p = path.join(dir, "blobs", "sha256", digest.slice(7));
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
  return { digest, size: data.length };
}

const LAYER_MT: Record<Compression, string> = {
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  none: "application/vnd.oci.image.layer.v1.tar",
};

async function writeImage(dir: string, img: ImageSpec): Promise<{ digest: string; size: number; mediaType: string; platform: ImageSpec["platform"] }> {
  const platform = img.platform ?? { os: "linux", architecture: "amd64" };
  const layers = [];
  const diffIds = [];
  for (const l of img.layers) {
    const tar = l.tar ?? (await layerTar(l.entries ?? []));
    diffIds.push(sha(tar));
    const c = l.compression ?? "gzip";
    layers.push({ mediaType: LAYER_MT[c], ...putBlob(dir, compress(tar, c)) });
  }
  const config = {
    created: "2024-01-01T00:00:00Z",
    ...platform,
    config: img.config ?? {},
    rootfs: { type: "layers", diff_ids: diffIds },
    history: img.layers.map(() => ({ created: "2024-01-01T00:00:00Z", created_by: "test" })),
  };
  const cfg = putBlob(dir, Buffer.from(JSON.stringify(config)));
  const manifest = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg }, layers };
  return { mediaType: manifest.mediaType, ...putBlob(dir, Buffer.from(JSON.stringify(manifest))), platform };
}

/** Writes an OCI image layout with tagged images or multi-platform indexes. */
export async function writeOciLayout(dir: string, tags: Record<string, ImageSpec | ImageSpec[]>): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const manifests = [];
  for (const [tag, spec] of Object.entries(tags)) {
    const ann = { "org.opencontainers.image.ref.name": tag };
    if (Array.isArray(spec)) {
      const entries = [];
      for (const img of spec) entries.push(await writeImage(dir, img));
      const index = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: entries };
      manifests.push({ mediaType: index.mediaType, ...putBlob(dir, Buffer.from(JSON.stringify(index))), annotations: ann });
    } else {
      const m = await writeImage(dir, spec);
      manifests.push({ mediaType: m.mediaType, digest: m.digest, size: m.size, annotations: ann });
    }
  }
  fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests }));
}

/** The host's dash plus the libraries it loads, as layer entries (for runc tests). */
export function hostShellEntries(): Entry[] {
  const out: Entry[] = [];
  const ldd = spawnSync("ldd", ["/bin/dash"], { encoding: "utf8" });
  if (ldd.status !== 0) throw new Error(`ldd /bin/dash failed: ${ldd.stderr}`);
  const libs = [...ldd.stdout.matchAll(/(\/[^\s]+\.so[^\s]*)/g)].map((m) => m[1]);
  const seenDirs = new Set<string>();
  const addDirs = (p: string) => {
    const parts = p.split("/").filter(Boolean).slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!seenDirs.has(d)) {
        seenDirs.add(d);
        out.push({ name: `${d}/`, type: "dir" });
      }
    }
  };
  for (const [dest, src] of [["bin/sh", "/bin/dash"], ...libs.map((l) => [l.slice(1), l])]) {
    addDirs(dest);
    out.push({ name: dest, content: fs.readFileSync(fs.realpathSync(src)), mode: 0o755 });
  }
  return out;
}

// ------------------------------------------------------------------ trees

/** One line per path: type, mode, owner, and content hash / link target / hardlink peers. */
export async function treeManifest(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const inodes = new Map<number, string[]>();
  const walk = async (rel: string) => {
    const abs = rel ? path.join(root, rel) : root;
    const st = await fs.promises.lstat(abs);
    const mode = (st.mode & 0o7777).toString(8);
    const own = `${st.uid}:${st.gid}`;
    if (st.isDirectory()) {
      if (rel) out[rel] = `dir ${mode} ${own}`;
      for (const name of (await fs.promises.readdir(abs)).sort()) await walk(rel ? `${rel}/${name}` : name);
    } else if (st.isSymbolicLink()) {
      out[rel] = `symlink ${own} -> ${await fs.promises.readlink(abs)}`;
    } else if (st.isFile()) {
      const h = createHash("sha256").update(await fs.promises.readFile(abs)).digest("hex").slice(0, 16);
      out[rel] = `file ${mode} ${own} ${st.size} ${h}`;
      if (st.nlink > 1) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), rel]);
    } else {
      out[rel] = `special ${mode} ${own}`;
    }
  };
  await walk("");
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    for (const p of group) out[p] += ` links=${group.filter((x) => x !== p).sort().join(",")}`;
  }
  return out;
}

/** `umoci unpack` of an image in an OCI layout: the reference result. */
export async function umociUnpack(layout: string, tag: string): Promise<string> {
  const bundle = path.join(tmpDir("umoci-"), "bundle");
  await run("umoci", ["unpack", "--image", `${layout}:${tag}`, bundle]);
  return path.join(bundle, "rootfs");
}

/** Extracts a rootfs template with GNU tar, as PVE does, keeping owners and modes. */
export async function gnuTarExtract(file: string): Promise<string> {
  const dir = tmpDir("gnutar-");
  const z = file.endsWith(".zst") ? ["--zstd"] : file.endsWith(".gz") ? ["-z"] : [];
  await run("tar", [...z, "-x", "-p", "--same-owner", "--numeric-owner", "-f", file, "-C", dir]);
  return dir;
}

// ------------------------------------------------------------------ registries

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TestCert {
  certFile: string;
  keyFile: string;
  pem: string;
}

/** A self-signed cert for 127.0.0.1, used for TLS and for signing registry tokens. */
export async function makeCert(dir: string): Promise<TestCert> {
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  const pems = await generateCert([{ name: "commonName", value: "127.0.0.1" }], {
    keySize: 2048,
    algorithm: "sha256",
    extensions: [
      { name: "basicConstraints", cA: true },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] },
    ],
  });
  fs.writeFileSync(certFile, pems.cert);
  fs.writeFileSync(keyFile, pems.private, { mode: 0o600 });
  return { certFile, keyFile, pem: pems.cert };
}

/** libtrust key ID (what docker-registry matches a token's `kid` against). */
function libtrustKeyId(certPem: string): string {
  const der = createPublicKey(certPem).export({ type: "spki", format: "der" });
  const sum = createHash("sha256").update(der).digest().subarray(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let s = "";
  for (const byte of sum) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      s += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) s += alphabet[(value << (5 - bits)) & 31];
  return s.match(/.{1,4}/g)!.join(":");
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

export interface RegistryHandle {
  host: string;
  users: Record<string, string>;
  output(): string;
  /** GET requests for blobs seen in the registry's access log. */
  blobGets(): number;
  tokenRequests: number;
  stop(): Promise<void>;
}

export async function startRegistry(opts: { auth: "htpasswd" | "token"; users: Record<string, string>; cert?: TestCert }): Promise<RegistryHandle> {
  requireTool("docker-registry");
  const dir = tmpDir("registry-");
  const port = await freePort();
  let tokenServer: http.Server | undefined;
  const handle = { tokenRequests: 0 };
  let authYaml: string;
  if (opts.auth === "htpasswd") {
    const lines = Object.entries(opts.users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 4)}`);
    fs.writeFileSync(path.join(dir, "htpasswd"), lines.join("\n") + "\n");
    authYaml = `  htpasswd:\n    realm: test-realm\n    path: ${path.join(dir, "htpasswd")}\n`;
  } else {
    if (!opts.cert) throw new Error("token auth needs a cert");
    const cert = opts.cert;
    const key = createPrivateKey(fs.readFileSync(cert.keyFile));
    const kid = libtrustKeyId(cert.pem);
    const tport = await freePort();
    tokenServer = http.createServer((req, res) => {
      handle.tokenRequests++;
      const url = new URL(req.url ?? "/", "http://x");
      const auth = req.headers.authorization;
      let user: string | undefined;
      if (auth?.startsWith("Basic ")) {
        const [u, ...rest] = Buffer.from(auth.slice(6), "base64").toString().split(":");
        if (opts.users[u] !== rest.join(":")) {
          res.writeHead(401, { "Content-Type": "application/json" }).end(JSON.stringify({ details: "invalid credentials" }));
          return;
        }
        user = u;
      }
      if (!user) {
        // Anonymous pulls are not allowed on this registry.
        res.writeHead(401).end();
        return;
      }
      const access = url.searchParams.getAll("scope").map((s) => {
        const [type, name, actions] = s.split(":");
        return { type, name, actions: actions.split(",") };
      });
      const now = Math.floor(Date.now() / 1000);
      const header = { typ: "JWT", alg: "RS256", kid };
      const claims = { iss: "test-issuer", sub: user, aud: url.searchParams.get("service"), exp: now + 600, nbf: now - 60, iat: now, jti: randomBytes(8).toString("hex"), access };
      const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const sig = createSign("RSA-SHA256").update(signing).sign(key);
      const token = `${signing}.${b64url(sig)}`;
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ token, access_token: token, expires_in: 600 }));
    });
    await new Promise<void>((r) => tokenServer!.listen(tport, "127.0.0.1", r));
    authYaml = `  token:\n    realm: http://127.0.0.1:${tport}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: ${cert.certFile}\n`;
  }
  const tlsYaml = opts.cert && opts.auth === "token" ? `  tls:\n    certificate: ${opts.cert.certFile}\n    key: ${opts.cert.keyFile}\n` : "";
  const config =
    `version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, "data")}\n` +
    `http:\n  addr: 127.0.0.1:${port}\n  secret: test-secret\n${tlsYaml}auth:\n${authYaml}`;
  fs.writeFileSync(path.join(dir, "config.yml"), config);
  const child: ChildProcess = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  let exited = false;
  child.on("exit", () => (exited = true));
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
    await new Promise<void>((r) => (tokenServer ? tokenServer.close(() => r()) : r()));
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) throw new Error(`docker-registry exited at start:\n${output}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not listen on 127.0.0.1:${port}:\n${output}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.end();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host: `127.0.0.1:${port}`,
    users: opts.users,
    output: () => output,
    blobGets: () => (output.match(/"GET \/v2\/[^ "]+\/blobs\/sha256:[a-f0-9]+ HTTP/g) ?? []).length,
    get tokenRequests() {
      return handle.tokenRequests;
    },
    stop,
  };
}

/** Pushes an image from an OCI layout with skopeo. */
export async function pushImage(reg: RegistryHandle, layout: string, tag: string, dest: string, extra: string[] = []): Promise<void> {
  const [user, pass] = Object.entries(reg.users)[0];
  await run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", `${user}:${pass}`, ...extra, `oci:${layout}:${tag}`, `docker://${reg.host}/${dest}`], { timeoutMs: 60_000 });
}
