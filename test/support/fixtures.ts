/**
 * Test data and peers shared by several suites: a minimal CT template and a loopback
 * registry without auth (like the public registries PVE's server-side pull can use).
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as tarStream from "tar-stream";

/** A minimal CT template: a gzipped tar with /etc/os-release (the sandbox reads it for ostype). */
export async function templateTarGz(osRelease = "ID=alpine\nVERSION_ID=3.20\n", padding = 0): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on("end", () => resolve());
    pack.on("error", reject);
  });
  pack.entry({ name: "./etc/os-release", mode: 0o644 }, osRelease);
  pack.entry({ name: "./sbin/init", mode: 0o755 }, "#!/bin/sh\nexec sleep infinity\n");
  // Incompressible padding, so tests can control the upload size.
  if (padding) pack.entry({ name: "./pad.bin", mode: 0o644 }, crypto.randomBytes(padding));
  pack.finalize();
  await ended;
  return zlib.gzipSync(Buffer.concat(chunks), { level: 1 });
}

export interface AnonymousRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  proc: ChildProcess;
  stop(): void;
}

function requireTools(...tools: string[]): void {
  for (const tool of tools) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      throw new Error(`required tool '${tool}' is missing: run scripts/ensure-tools as root, as npm test does (it installs the missing Debian packages: docker-registry skopeo ...)`);
    }
  }
}

async function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Debian's docker-registry on a free loopback port, no auth, storage in a temp dir. */
export async function startAnonymousRegistry(): Promise<AnonymousRegistry> {
  requireTools("docker-registry", "skopeo");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "anon-registry-"));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, "config.yml"), `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const proc = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], { stdio: "ignore" });
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) =>
      net
        .connect(port, "127.0.0.1")
        .on("connect", function (this: net.Socket) {
          this.end();
          resolve(true);
        })
        .on("error", () => resolve(false)),
    );
    if (up) break;
    if (i > 100) throw new Error("docker-registry did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host: `127.0.0.1:${port}`,
    proc,
    stop: () => {
      proc.kill("SIGTERM");
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `skopeo copy` into a loopback registry (no TLS verification, no credentials). */
export function skopeoCopy(from: string, to: string): void {
  const r = spawnSync("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", from, to], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`skopeo copy ${from} ${to} failed: ${r.stderr}`);
}
