/**
 * The HTTPS request pipeline, in PVE's order (BEHAVIOR.md §1, §2): transport checks (path
 * form, method, chunked, body on GET/DELETE, size), credentials (401 with empty body after
 * the configured delay), CSRF, routing against the version's schema (501), parameter
 * decoding and schema validation (400 + errors map, counted as a violation), then the
 * handler. Every response has PVE's headers; status ≥ 400 closes the connection. Faults
 * can reset the connection before or after the handler acts.
 */
import type * as http from "node:http";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import Busboy from "busboy";
import { validateParams } from "../../provider/proxmox/validate";
import type { HttpMethod } from "../../provider/proxmox/schema";
import { RawReply, type ApiRequest, type Core } from "../core";
import type { Identity } from "../auth";
import type { FaultSpec } from "../faults";
import { ApiError, AuthError, paramError } from "./errors";
import { mergeParams, normaliseParams, parseBody, parseUrlencoded, stringifyParams } from "./params";
import { handleAdmin } from "../admin";
import { serveAppliance } from "../model/storage/appliances";

const MAX_BODY = 512 * 1024;
const KNOWN_METHODS = new Set(["GET", "POST", "PUT", "DELETE"]);

interface Reply {
  status: number;
  reason?: string;
  body?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

function baseHeaders(status: number): Record<string, string> {
  const h: Record<string, string> = { Server: "pve-api-daemon/3.0", "Cache-Control": "max-age=0", Pragma: "no-cache", Expires: new Date().toUTCString() };
  if (status >= 400) h.Connection = "close";
  return h;
}

function send(res: http.ServerResponse, r: Reply, acceptEncoding = ""): number {
  let status = r.status;
  let reason = r.reason;
  let body = r.body;
  // A reason line with CR/LF turns the reply into an empty 400 (§1.2).
  if (reason !== undefined && /[\r\n]/.test(reason)) {
    status = 400;
    reason = "Bad Request";
    body = undefined;
  }
  const headers = { ...baseHeaders(status), ...(r.headers ?? {}) };
  let buf = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8");
  if (body !== undefined) headers["Content-Type"] = r.contentType ?? "application/json;charset=UTF-8";
  // Bodies over 1024 bytes are gzip-compressed when the client accepts it (§1.1).
  if (buf.length > 1024 && /\bgzip\b/.test(acceptEncoding) && headers["Content-Type"] !== "application/octet-stream") {
    buf = zlib.gzipSync(buf);
    headers["Content-Encoding"] = "gzip";
  }
  headers["Content-Length"] = String(buf.length);
  if (res.headersSent || res.destroyed) return 0;
  res.writeHead(status, reason ?? undefined, headers);
  res.end(buf);
  return buf.length;
}

function jsonReply(status: number, payload: Record<string, unknown>, reason?: string): Reply {
  return { status, reason, body: JSON.stringify(payload) };
}

export function errorReply(e: ApiError): Reply {
  const payload: Record<string, unknown> = { data: null, message: e.message };
  if (e.errors) payload.errors = e.errors;
  return jsonReply(e.status, payload, e.message.split("\n")[0]);
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new ApiError(501, "for data too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function resetConnection(req: http.IncomingMessage, res: http.ServerResponse): void {
  // A TCP RST as far as Node allows: destroy the socket without a response.
  // resetAndDestroy() needs a TCP handle; TLS sockets wrap theirs, so fall back to destroy().
  const sock = req.socket as import("node:net").Socket & { resetAndDestroy?: () => void };
  try {
    sock.resetAndDestroy?.();
  } catch {
    // not a TCP handle
  }
  sock.destroy();
  res.destroy();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createRequestHandler(core: Core): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const requestCounter = core.metrics.counter("pve_sandbox_requests_total", "Requests served by the sandbox by method, endpoint template and status.");
  return (req, res) => {
    const started = Date.now();
    let endpoint = "";
    const finish = (status: number, bytes: number) => {
      requestCounter.inc({ method: req.method ?? "", endpoint, status: String(status) });
      core.log.debug({ method: req.method, path: (req.url ?? "").split("?")[0], status, ms: Date.now() - started, bytes }, "request");
    };
    handle(core, req, res, (t) => (endpoint = t)).then(
      (r) => {
        if (r === "dropped") return finish(0, 0);
        const bytes = send(res, r, String(req.headers["accept-encoding"] ?? ""));
        finish(r.status, bytes);
      },
      async (e) => {
        const r = e instanceof ApiError ? errorReply(e) : errorReply(new ApiError(500, String((e as Error)?.message ?? e)));
        if (!(e instanceof ApiError)) core.log.error({ err: e }, "sandbox handler crashed");
        // Every 401 is delayed, the handler's own (bad login) included (§2.3).
        if (r.status === 401 && core.authFailureDelayMs) await sleep(core.authFailureDelayMs);
        finish(r.status, send(res, r, String(req.headers["accept-encoding"] ?? "")));
      },
    );
  };
}

async function handle(core: Core, req: http.IncomingMessage, res: http.ServerResponse, setEndpoint: (t: string) => void): Promise<Reply | "dropped"> {
  const method = (req.method ?? "GET").toUpperCase();
  const url = new URL(req.url ?? "/", "https://sandbox");
  let pathname: string;
  try {
    pathname = decodeURIComponent(url.pathname);
  } catch {
    pathname = url.pathname;
  }

  if (pathname.startsWith("/_sandbox/appliances/")) return serveAppliance(core, pathname.slice("/_sandbox/appliances/".length));
  if (pathname.startsWith("/_sandbox/")) {
    setEndpoint("admin");
    return handleAdmin(core, req, method, pathname.slice("/_sandbox".length), url);
  }

  const m = /^\/api2\/([a-z][a-z0-9]+)(\/.*)?$/.exec(pathname);
  if (!m) return { status: 501, reason: "no such uri", body: "no such uri", contentType: "text/plain;charset=UTF-8" };
  const format = m[1];
  const rel = (m[2] ?? "/").replace(/\/+$/, "") || "/";
  if (!KNOWN_METHODS.has(method)) throw new ApiError(501, `method '${method}' not available`);
  const hm = method as HttpMethod;

  if (req.headers["transfer-encoding"]?.toLowerCase().includes("chunked")) throw new ApiError(501, "chunked transfer encoding not supported");
  const contentLength = Number(req.headers["content-length"] ?? 0);
  if ((hm === "GET" || hm === "DELETE") && contentLength > 0) throw new ApiError(501, `Unexpected content for method '${hm}'`);

  const match = core.schema.find(hm, rel);
  const template = match?.template ?? rel;
  const counterKey = `${hm} ${template}`;
  setEndpoint(template);
  core.counters.requests[counterKey] = (core.counters.requests[counterKey] ?? 0) + 1;

  const fault = core.faults.match(hm, match?.template, rel);
  if (fault?.action === "reset-before") {
    resetConnection(req, res);
    return "dropped";
  }
  if (fault?.action === "status") {
    const msg = fault.message ?? "injected fault";
    return jsonReply(fault.status ?? 500, { data: null, message: `${msg}\n` }, msg);
  }

  // ---- authentication (before routing, as pve-http-server does) ----
  const isTicketCreate = hm === "POST" && rel === "/access/ticket";
  let id: Identity | undefined;
  if (isTicketCreate) {
    if (/^PVEAPIToken/.test(String(req.headers.authorization ?? ""))) {
      throw new ApiError(403, "Permission check failed (URI '/access/ticket' not available with API token, need proper ticket.)");
    }
  } else {
    try {
      id = core.auth.authenticate(req.headers);
    } catch (e) {
      if (!(e instanceof AuthError)) throw e;
      req.resume();
      if (core.authFailureDelayMs) await sleep(core.authFailureDelayMs);
      return { status: 401, reason: e.reason };
    }
    if (id.via === "ticket" && hm !== "GET") {
      const isUpload = hm === "POST" && match?.template === "/nodes/{node}/storage/{storage}/upload";
      if (!isUpload && !core.auth.verifyCsrf(String(req.headers.csrfpreventiontoken ?? ""), id.userid)) {
        req.resume();
        if (core.authFailureDelayMs) await sleep(core.authFailureDelayMs);
        return { status: 401, reason: "Permission denied - invalid csrf token" };
      }
    }
    if (id.via === "token" && match?.info.allowtoken === 0) {
      throw new ApiError(403, `Permission check failed (URI '${rel}' not available with API token, need proper ticket.)`);
    }
  }

  if (!match) {
    req.resume();
    const msg = `Method '${hm} ${rel}' not implemented`;
    core.counters.violations.push({ method: hm, path: rel, errors: { method: msg } });
    throw new ApiError(501, msg);
  }

  // ---- body ----
  const query = parseUrlencoded(url.search.slice(1));
  let body: Record<string, unknown> = {};
  let uploadTmp: string | undefined;
  if (match.template === "/nodes/{node}/storage/{storage}/upload" && hm === "POST" && /^multipart\/form-data/i.test(String(req.headers["content-type"] ?? ""))) {
    if (!req.headers["content-length"]) throw new ApiError(501, "upload without content length not supported");
    // Upload is CSRF-exempt; Datastore.AllocateTemplate is checked before any byte is stored (§2.1).
    if (id) {
      try {
        core.auth.check(id, `/storage/${match.pathParams.storage}`, ["Datastore.AllocateTemplate"]);
      } catch (e) {
        req.resume();
        throw e;
      }
    }
    const up = await receiveUpload(core, req, res, fault);
    if (up === "dropped") return "dropped";
    body = up.fields;
    uploadTmp = up.tmpfile;
    delete query.tmpfilename;
  } else if (hm === "POST" || hm === "PUT") {
    if (contentLength > MAX_BODY) {
      req.resume();
      throw new ApiError(501, "for data too large");
    }
    body = parseBody(req.headers["content-type"], await readBody(req, MAX_BODY));
  } else {
    req.resume();
  }

  try {
    const props = match.info.parameters?.properties ?? {};
    let params = mergeParams(hm === "GET" || hm === "DELETE" ? {} : body, query, match.pathParams);
    // pve-manager checks the method's declared permissions before it verifies the parameters
    // (`rest_handler`: check_api2_permissions, then handle), and before any handler looks the
    // object up — so no access means 403 even for a CT that does not exist.
    if (id) core.auth.checkApi(match.info.permissions, id, params);
    // PVE's schema pins tmpfilename to /var/tmp/pveupload-<hex>; the real file lives in the data dir.
    if (uploadTmp) params.tmpfilename = `/var/tmp/${path.basename(uploadTmp)}`;
    normaliseParams(props, params);
    const errors = validateParams(props, params, match.info.parameters?.additionalProperties === 1);
    if (errors) {
      core.counters.violations.push({ method: hm, path: rel, errors });
      throw paramError(errors);
    }
    params = stringifyParams(params);

    const handler = core.routes.get(counterKey);
    if (!handler) throw new ApiError(501, `Method '${hm} ${rel}' not implemented`);
    const apiReq: ApiRequest = { core, method: hm, template: match.template, path: rel, params, id: id ?? { userid: "", authid: "", via: "ticket" }, uploadFile: uploadTmp };
    const data = await handler(apiReq);
    if (fault?.action === "reset-after") {
      resetConnection(req, res);
      return "dropped";
    }
    if (data instanceof RawReply) return { status: 200, body: data.body, contentType: data.contentType };
    const payload: Record<string, unknown> = { data: data === undefined ? null : data };
    if (apiReq.total !== undefined) payload.total = apiReq.total;
    if (format === "extjs") payload.success = 1;
    return jsonReply(200, payload);
  } finally {
    if (uploadTmp) fs.rm(uploadTmp, { force: true }, () => undefined);
  }
}

/**
 * Multipart upload streamed to `<data>/tmp/pveupload-<md5>` (§6.2): `content`,
 * `checksum-algorithm`, `checksum` before the file part named `filename`. A client that
 * disconnects mid-upload leaves no temp file behind.
 */
function receiveUpload(
  core: Core,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  fault: FaultSpec | undefined,
): Promise<{ fields: Record<string, unknown>; tmpfile?: string } | "dropped"> {
  return new Promise((resolve, reject) => {
    const tmpDir = path.join(core.dataDir, "tmp");
    fs.mkdirSync(tmpDir, { recursive: true });
    const tmpfile = path.join(tmpDir, `pveupload-${crypto.createHash("md5").update(crypto.randomBytes(16)).digest("hex")}`);
    const fields: Record<string, unknown> = {};
    let sawFile = false;
    let settled = false;
    let out: fs.WriteStream | undefined;
    const cleanup = () => {
      out?.destroy();
      fs.rm(tmpfile, { force: true }, () => undefined);
    };
    const done = (v: { fields: Record<string, unknown>; tmpfile?: string } | "dropped" | Error) => {
      if (settled) return;
      settled = true;
      if (v instanceof Error) {
        cleanup();
        reject(v);
      } else resolve(v);
    };
    let bb: Busboy.Busboy;
    try {
      bb = Busboy({ headers: req.headers, preservePath: true });
    } catch (e) {
      req.resume();
      return done(new ApiError(501, `upload 'Content-Type '${req.headers["content-type"]}' not implemented`));
    }
    req.on("aborted", () => {
      cleanup();
      done("dropped");
    });
    req.on("close", () => {
      if (!settled && !req.complete) {
        cleanup();
        done("dropped");
      }
    });
    bb.on("field", (name, value) => {
      if (sawFile) return; // parts after the file are ignored
      fields[name] = value;
    });
    bb.on("file", (name, stream, info) => {
      if (sawFile) {
        stream.resume();
        return;
      }
      sawFile = true;
      if (name !== "filename") {
        stream.resume();
        return done(new ApiError(500, `wrong field name '${name}' for file upload, expected 'filename'`));
      }
      fields.filename = info.filename;
      out = fs.createWriteStream(tmpfile, { mode: 0o600 });
      let bytes = 0;
      stream.on("data", (c: Buffer) => {
        bytes += c.length;
        if (fault?.action === "reset-mid-upload" && bytes >= (fault.afterBytes ?? 0)) {
          cleanup();
          resetConnection(req, res);
          done("dropped");
        }
      });
      stream.pipe(out);
    });
    bb.on("error", () => done(new ApiError(500, "upload failed")));
    bb.on("close", () => {
      if (settled) return;
      const finishOk = () => done({ fields, tmpfile: sawFile ? tmpfile : undefined });
      if (out && !out.closed) out.on("close", finishOk);
      else finishOk();
    });
    req.pipe(bb);
  });
}
