/**
 * Plain node:https helpers for the sandbox conformance suite (deliberately not the
 * project's client, so the sandbox is tested on its own terms).
 */
import * as crypto from "node:crypto";
import * as https from "node:https";
import * as zlib from "node:zlib";
import { expect } from "chai";
import { writeTar } from "../../sandbox/tarball";
import { startSandbox, type SandboxHandle, type SandboxOptions } from "../../sandbox";
import { parseUpid } from "../../provider/proxmox/upid";

export interface Resp {
  status: number;
  reason: string;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

export interface Auth {
  token?: string;
  ticket?: string;
  csrf?: string;
}

export function request(
  sb: { endpoint: string; caCertPem: string },
  method: string,
  path: string,
  opts: { auth?: Auth | null; form?: Record<string, string | number | string[]>; json?: unknown; body?: Buffer | string; headers?: Record<string, string>; raw?: boolean } = {},
): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const auth = opts.auth;
    if (auth?.token) headers.Authorization = `PVEAPIToken=${auth.token}`;
    if (auth?.ticket) headers.Cookie = `PVEAuthCookie=${encodeURIComponent(auth.ticket)}`;
    if (auth?.csrf) headers.CSRFPreventionToken = auth.csrf;
    let body: Buffer | undefined;
    if (opts.form) {
      const usp = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.form)) for (const x of Array.isArray(v) ? v : [v]) usp.append(k, String(x));
      body = Buffer.from(usp.toString());
      headers["Content-Type"] = "application/x-www-form-urlencoded";
    } else if (opts.json !== undefined) {
      body = Buffer.from(JSON.stringify(opts.json));
      headers["Content-Type"] = "application/json";
    } else if (opts.body !== undefined) {
      body = Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body);
    }
    if (body) headers["Content-Length"] = String(body.length);
    const url = new URL(opts.raw ? path : `/api2/json${path}`, sb.endpoint);
    const req = https.request(url, { method, headers, ca: sb.caCertPem, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: any;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? "", headers: res.headers, text, json });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A started sandbox plus a root-token API shortcut. */
export interface Env {
  sb: SandboxHandle;
  api(method: string, path: string, opts?: Parameters<typeof request>[3]): Promise<Resp>;
  /** Wait for a task and return its status object. */
  wait(upid: string, timeoutMs?: number): Promise<any>;
  /** Run a request that returns a UPID and wait for the task. */
  task(method: string, path: string, form?: Record<string, string | number | string[]>): Promise<any>;
  log(upid: string): Promise<string[]>;
}

export async function startEnv(opts: SandboxOptions = {}): Promise<Env> {
  const sb = await startSandbox({ port: 0, authFailureDelayMs: 0, taskDurationMs: 5, ...opts });
  const api: Env["api"] = (method, path, o = {}) => request(sb, method, path, { auth: { token: sb.apiToken }, ...o });
  const wait = async (upid: string, timeoutMs = 10000) => {
    const node = parseUpid(upid).node;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await api("GET", `/nodes/${node}/tasks/${encodeURIComponent(upid)}/status`);
      if (r.status !== 200) throw new Error(`task status ${r.status} ${r.text}`);
      if (r.json.data.status === "stopped") return r.json.data;
      if (Date.now() > deadline) throw new Error(`task ${upid} did not finish`);
      await new Promise((res) => setTimeout(res, 10));
    }
  };
  const task: Env["task"] = async (method, path, form) => {
    const r = await api(method, path, form ? { form } : {});
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${r.reason} ${r.text}`);
    return wait(r.json.data);
  };
  const log = async (upid: string) => {
    const node = parseUpid(upid).node;
    const r = await api("GET", `/nodes/${node}/tasks/${encodeURIComponent(upid)}/log?limit=0`);
    return r.json.data.map((l: { t: string }) => l.t);
  };
  return { sb, api, wait, task, log };
}

export const DEBIAN = "debian-12-standard_12.7-1_amd64.tar.gz";
export const ALPINE = "alpine-3.20-default_20240908_amd64.tar.gz";

/** Fetch the built-in appliance into `local` via POST aplinfo. */
export async function fetchTemplate(env: Env, template = DEBIAN, node = "pve1"): Promise<string> {
  const st = await env.task("POST", `/nodes/${node}/aplinfo`, { storage: "local", template });
  if (st.exitstatus !== "OK") throw new Error(`aplinfo download failed: ${st.exitstatus}`);
  return `local:vztmpl/${template}`;
}

export async function createCt(env: Env, vmid: number, extra: Record<string, string | number> = {}, node = "pve1"): Promise<any> {
  const st = await env.task("POST", `/nodes/${node}/lxc`, { vmid, ostemplate: `local:vztmpl/${DEBIAN}`, rootfs: "local-lvm:1", ...extra });
  if (st.exitstatus !== "OK") throw new Error(`create ${vmid} failed: ${st.exitstatus}`);
  return st;
}

// ---- OCI image-layout archives and template upload (shared by modes and pve-behaviour) ----

async function tar(entries: Array<{ name: string; data: Buffer | string }>): Promise<Buffer> {
  return writeTar(entries.map((e) => ({ name: e.name, data: e.data })));
}

/** A minimal OCI image-layout archive with one gzip layer. */
export async function ociArchive(opts: { osRelease?: string; config: Record<string, unknown> }): Promise<Buffer> {
  const layerFiles = [{ name: "bin/app", data: "#!/bin/sh\n" }];
  if (opts.osRelease) layerFiles.push({ name: "etc/os-release", data: opts.osRelease });
  const layerTar = await tar(layerFiles);
  const layer = zlib.gzipSync(layerTar);
  const sha = (b: Buffer | string) => crypto.createHash("sha256").update(b).digest("hex");
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: opts.config, rootfs: { type: "layers", diff_ids: [`sha256:${sha(layerTar)}`] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${sha(config)}`, size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: `sha256:${sha(layer)}`, size: layer.length }],
  }));
  const index = JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${sha(manifest)}`, size: manifest.length }] });
  return tar([
    { name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' },
    { name: "index.json", data: index },
    { name: `blobs/sha256/${sha(manifest)}`, data: manifest },
    { name: `blobs/sha256/${sha(config)}`, data: config },
    { name: `blobs/sha256/${sha(layer)}`, data: layer },
  ]);
}

export async function uploadTemplate(env: Env, filename: string, data: Buffer): Promise<void> {
  const boundary = "----sbtest";
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="content"\r\n\r\nvztmpl\r\n--${boundary}\r\nContent-Disposition: form-data; name="filename"; filename="${filename}"\r\nContent-Type: application/x-tar\r\n\r\n`),
    data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const r = await env.api("POST", "/nodes/pve1/storage/local/upload", { body, headers: { "Content-Type": `multipart/form-data; boundary=${boundary}` } });
  expect(r.status, r.text).to.equal(200);
  expect((await env.wait(r.json.data)).exitstatus).to.equal("OK");
}
