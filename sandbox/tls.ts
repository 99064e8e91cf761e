/**
 * The sandbox's self-signed certificate (generated with the `selfsigned` package on first
 * start and kept in the state dir, so fingerprint pinning against it is real across
 * restarts). Memory-only sandboxes reuse one certificate per process to keep tests fast.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { generate } from "selfsigned";
import { writeFileAtomic } from "./persist";

export interface TlsMaterial {
  key: string;
  cert: string;
  /** SHA-256, colon-separated uppercase hex (as PVE shows `ssl_fingerprint`). */
  fingerprint: string;
}

let processCert: Promise<TlsMaterial> | undefined;

export function fingerprintOf(certPem: string): string {
  return new crypto.X509Certificate(certPem).fingerprint256.toUpperCase();
}

async function create(): Promise<TlsMaterial> {
  const now = new Date();
  const pems = await generate([{ name: "commonName", value: "pve-sandbox" }, { name: "organizationName", value: "pulumi-proxmox-lxc sandbox" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: new Date(now.getTime() - 24 * 3600 * 1000),
    notAfterDate: new Date(now.getTime() + 10 * 365 * 24 * 3600 * 1000),
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }, { type: 7, ip: "::1" }] },
    ],
  });
  return { key: pems.private, cert: pems.cert, fingerprint: fingerprintOf(pems.cert) };
}

export async function loadOrCreateTls(stateDir?: string): Promise<TlsMaterial> {
  if (!stateDir) return (processCert ??= create());
  const keyFile = path.join(stateDir, "pve-ssl.key");
  const certFile = path.join(stateDir, "pve-ssl.pem");
  if (fs.existsSync(keyFile) && fs.existsSync(certFile)) {
    const cert = fs.readFileSync(certFile, "utf8");
    return { key: fs.readFileSync(keyFile, "utf8"), cert, fingerprint: fingerprintOf(cert) };
  }
  const t = await create();
  writeFileAtomic(keyFile, t.key, 0o600);
  writeFileAtomic(certFile, t.cert);
  return t;
}
