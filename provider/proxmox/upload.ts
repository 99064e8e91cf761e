/**
 * Streaming upload: POST /nodes/{node}/storage/{storage}/upload (BEHAVIOR.md 6.2).
 *
 * PVE's parser wants `multipart/form-data` with a Content-Length (chunked is refused),
 * the `content`, `checksum-algorithm` and `checksum` parts BEFORE the file part, and the
 * file part named `filename`. The body is therefore a stream of [preamble, file, epilogue]
 * whose length is known up front; the file is never held in memory.
 *
 * Checksum: sha256 is computed in a first streaming pass so it can go in the preamble and
 * PVE's imgcopy task verifies what it received (`checksum mismatch` otherwise). Computing
 * it on the fly is not possible because the parts before the file need it; the alternative
 * (no checksum, compare afterwards) gives the server no way to reject a corrupted upload.
 * Callers who know the checksum (e.g. from a registry) pass it and skip the pass.
 *
 * Transport: node:https with the client's agent (same TLS verification and fingerprint
 * pinning, same keep-alive pool) and two reused read buffers (see postStream): memory stays
 * flat whatever the file size. test/proxmox/upload.test.ts measures the RSS of a 1 GiB upload.
 *
 * Retries: a reset or gateway error is ambiguous — the server may have received it all.
 * Before sending again the client looks for an `imgcopy` task it started since the first
 * attempt (waits for it), and for the volid with the file's size created since then; only
 * when neither is there is the file sent again (whole upload; PVE has no resume).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import * as https from "node:https";
import type { PveClient } from "./client";
import { metrics, scrubSecrets, type Logger } from "../logging";
import { errorFromResponse, PveApiError, PveConnectionError, PveTlsError, PveValidationError } from "./errors";
import { backoffDelay, RETRY_STATUSES, sleep, transportKind, workerNotStarted } from "./retry";
import type { TaskResult, WaitOptions } from "./tasks";
import { wirePath } from "./encode";
import { isUpid } from "./upid";

export type ChecksumAlgorithm = "md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512";

export interface UploadProgress {
  bytes: number;
  total: number;
  /** Average bytes/s since this attempt began. */
  rateBps: number;
  attempt: number;
}

export interface UploadOptions {
  node: string;
  storage: string;
  content: "vztmpl" | "iso" | "import";
  /** Local file to send. */
  filePath: string;
  /** Name on the storage (default: the file's basename). PVE normalises it. */
  filename?: string;
  /** Known checksum (skips the hashing pass), or false to send none. Default: sha256 computed. */
  checksum?: { algorithm: ChecksumAlgorithm; value: string } | false;
  onProgress?: (p: UploadProgress) => void;
  /** Wait for the imgcopy task (default true). */
  wait?: boolean;
  waitOptions?: Omit<WaitOptions, "logger">;
  logger?: Logger;
  /** Whole-upload attempts (default 3). */
  maxAttempts?: number;
  /** Per-attempt timeout (ms); default none (large files on slow links). */
  timeoutMs?: number;
}

export interface UploadResult {
  volid: string;
  size: number;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
  upid?: string;
  task?: TaskResult;
  attempts: number;
  durationMs: number;
  /** True when a lost answer was resolved by finding the finished upload. */
  verifiedAfterFailure?: boolean;
}

/** PVE's filename normalisation (path stripped, other chars → `_`). */
export function normalizeUploadFilename(name: string): string {
  return path.basename(name).replace(/[^A-Za-z0-9_.-]/g, "_");
}

/**
 * Hash a file with one reused 1 MiB buffer: a read stream would allocate a fresh buffer
 * per chunk and leave ~64 MiB of garbage for V8 to collect lazily (measured: +37 MiB RSS
 * for 1 GiB), so this pass costs no memory at all.
 */
export async function sha256File(filePath: string, algorithm: ChecksumAlgorithm = "sha256"): Promise<string> {
  const h = crypto.createHash(algorithm);
  const fh = await fs.promises.open(filePath, "r");
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}

/** The multipart framing around the file. */
export function multipartFraming(boundary: string, fields: Array<[string, string]>, filename: string): { preamble: Buffer; epilogue: Buffer } {
  let pre = "";
  for (const [name, value] of fields) {
    pre += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  }
  pre += `--${boundary}\r\nContent-Disposition: form-data; name="filename"; filename="${filename.replace(/"/g, "_")}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  return { preamble: Buffer.from(pre, "utf8"), epilogue: Buffer.from(`\r\n--${boundary}--\r\n`, "utf8") };
}

export async function uploadFile(client: PveClient, o: UploadOptions): Promise<UploadResult> {
  const log = (o.logger ?? client.log).child({ op: "upload", storage: o.storage, node: o.node });
  const started = Date.now();
  const st = await fs.promises.stat(o.filePath).catch((e: Error) => {
    throw new PveValidationError(
      { method: "POST", endpoint: "/nodes/{node}/storage/{storage}/upload", path: `/nodes/${o.node}/storage/${o.storage}/upload`, errors: { filePath: `cannot read '${o.filePath}': ${e.message}` } },
      "Pass the path of an existing, readable file.",
    );
  });
  const size = st.size;
  const filename = normalizeUploadFilename(o.filename ?? o.filePath);
  const volid = `${o.storage}:${o.content}/${filename}`;

  let checksum: UploadResult["checksum"];
  if (o.checksum === undefined) {
    const t = Date.now();
    checksum = { algorithm: "sha256", value: await sha256File(o.filePath) };
    log.debug({ ms: Date.now() - t, size }, "upload checksum computed");
  } else if (o.checksum) checksum = o.checksum;

  const apiPath = `/nodes/${o.node}/storage/${o.storage}/upload`;
  const fields: Array<[string, string]> = [["content", o.content]];
  if (checksum) fields.push(["checksum-algorithm", checksum.algorithm], ["checksum", checksum.value]);
  // Validate everything (file name included) against the schema before sending a byte.
  const { template } = await client.prepare("POST", apiPath, { ...Object.fromEntries(fields), filename });
  if (!/\.(tar|tar\.gz|tar\.xz|tar\.zst|tar\.bz2)$/i.test(filename) && o.content === "vztmpl") {
    throw new PveValidationError(
      { method: "POST", endpoint: template, path: apiPath, errors: { filename: "wrong file extension" } },
      "CT templates must end in .tar, .tar.gz, .tar.xz, .tar.zst or .tar.bz2 (.tgz is not accepted, BEHAVIOR.md 6.1).",
    );
  }

  const { agent, auth, settings } = client.internals;
  const maxAttempts = o.maxAttempts ?? 3;
  const sinceSec = Math.floor(client.serverNow() / 1000) - 2;
  let reauthed = false;
  let ambiguous = false;
  let workerRetries = 0;
  let lastErr: Error | undefined;
  let totalOut = 0;

  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (ambiguous) {
      // The previous attempt may have landed: look before sending 1 GiB again.
      const done = await findCompletedUpload(client, o, volid, size, sinceSec, log);
      if (done) {
        const res = { volid, size, checksum, attempts: attempt - 1, durationMs: Date.now() - started, verifiedAfterFailure: true, ...done };
        record(template, "verified", started, 0, totalOut, attempt - 1);
        return res;
      }
    }
    const boundary = `----pve-lxc-${crypto.randomBytes(12).toString("hex")}`;
    const { preamble, epilogue } = multipartFraming(boundary, fields, filename);
    const contentLength = preamble.length + size + epilogue.length;
    const attemptStart = Date.now();
    let sent = 0;
    let lastReport = 0;
    const report = (final = false) => {
      if (!o.onProgress) return;
      const now = Date.now();
      if (!final && now - lastReport < 200) return;
      lastReport = now;
      const secs = Math.max(0.001, (now - attemptStart) / 1000);
      o.onProgress({ bytes: sent, total: size, rateBps: sent / secs, attempt });
    };
    let res: { status: number; statusText: string; data: string };
    try {
      const headers = { ...(await auth.headers("POST")), "Content-Type": `multipart/form-data; boundary=${boundary}`, "Content-Length": String(contentLength) };
      res = await postStream({
        url: new URL(settings.baseUrl.replace(/\/$/, "") + wirePath(apiPath)),
        agent,
        headers,
        preamble,
        epilogue,
        filePath: o.filePath,
        timeoutMs: o.timeoutMs,
        onChunk: (n) => {
          sent += n;
          report();
        },
      });
      totalOut += sent;
    } catch (e) {
      totalOut += sent;
      if (e instanceof PveApiError) throw e;
      const err = e as { code?: string; message?: string; cause?: { code?: string } };
      const code = err.code ?? err.cause?.code;
      const kind = transportKind({ code, message: err.message });
      const detail = scrubSecrets(`${code ?? "error"}: ${err.message}`);
      if (kind === "tls") throw new PveTlsError({ method: "POST", endpoint: template, path: apiPath, status: 0, pveMessage: detail }, `TLS check failed for the upload: ${detail}`);
      log.warn({ attempt, sent, size, error: detail }, "upload attempt failed");
      lastErr = new PveConnectionError({ method: "POST", endpoint: template, path: apiPath }, code, `${detail} after ${sent} of ${size} bytes`);
      if (kind === "other") break;
      ambiguous = kind === "ambiguous";
      await sleep(backoffDelay(attempt, 200, 5000));
      continue;
    }
    report(true);
    const text = typeof res.data === "string" ? res.data : "";
    let json: { data?: unknown; message?: string; errors?: Record<string, string> } | undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (res.status >= 200 && res.status < 300 && isUpid(json?.data)) {
      const upid = json!.data as string;
      const secs = (Date.now() - attemptStart) / 1000;
      log.debug({ size, secs, mibPerSec: Math.round(size / 1048576 / Math.max(secs, 0.001)), attempt }, "upload sent");
      record(template, res.status, started, text.length, totalOut, attempt - 1);
      if (o.wait === false) return { volid, size, checksum, upid, attempts: attempt, durationMs: Date.now() - started };
      const task = await client.tasks.wait(upid, { ...(o.waitOptions ?? {}), logger: o.logger });
      return { volid, size, checksum, upid, task, attempts: attempt, durationMs: Date.now() - started };
    }
    const init = { method: "POST", endpoint: template, path: apiPath, status: res.status, reason: res.statusText, pveMessage: json?.message ?? res.statusText, errors: json?.errors };
    if (res.status >= 200 && res.status < 300) {
      record(template, res.status, started, text.length, totalOut, attempt - 1);
      throw new PveApiError(init, `Upload to ${o.storage} on ${o.node} was accepted but no task id (UPID) came back (got ${JSON.stringify(json?.data ?? null).slice(0, 80)}). Check that proxmox:endpoint is a PVE API.`);
    }
    if (res.status === 401 && !reauthed && (await auth.refreshAfter401())) {
      reauthed = true;
      attempt--;
      continue;
    }
    // Gateway errors (may have landed) and worker-start failures (nothing done, retry.ts):
    // look for the volume, then send again.
    if (RETRY_STATUSES.has(res.status) || workerNotStarted(res.status, init.pveMessage)) {
      if (!RETRY_STATUSES.has(res.status)) {
        log.warn({ attempt, why: `HTTP ${res.status}: ${String(init.pveMessage).trim()}` }, `Proxmox VE did not start the task for POST ${apiPath}; sending it again`);
        // Nothing was done: such attempts do not count, within the wait's timeout.
        if (Date.now() - started < (o.waitOptions?.timeoutMs ?? client.retryPolicy.workerStartWaitMs)) {
          attempt--;
          workerRetries++;
        }
      }
      lastErr = errorFromResponse(init, auth.principal);
      ambiguous = true;
      await sleep(backoffDelay(attempt + workerRetries, 200, 5000));
      continue;
    }
    record(template, res.status, started, text.length, totalOut, attempt - 1);
    throw errorFromResponse(init, auth.principal);
  }
  record(template, "error", started, 0, totalOut, maxAttempts - 1);
  throw lastErr ?? new Error("upload failed");
}

function record(endpoint: string, status: number | string, started: number, bytesIn: number, bytesOut: number, retries: number) {
  metrics.recordApiCall({ endpoint, method: "POST", status, durationMs: Date.now() - started, bytesIn, bytesOut, retries });
}

/**
 * After an ambiguous failure: an imgcopy task we started (waited for), or the volid with
 * the right size created since the upload began. Undefined → send again.
 */
async function findCompletedUpload(
  client: PveClient,
  o: UploadOptions,
  volid: string,
  size: number,
  sinceSec: number,
  log: Logger,
): Promise<{ upid?: string; task?: TaskResult } | undefined> {
  // imgcopy tasks carry no file name (empty id), so a task found here may belong to another
  // upload by the same user running in parallel: wait for it, but only the volume itself
  // (right name, right size, written since this upload began) proves this upload landed.
  const upid = await client.tasks.findRecent(o.node, { type: "imgcopy", id: "", sinceSec }, log);
  let task: TaskResult | undefined;
  if (upid) {
    log.info({ upid }, "upload answer was lost, but an imgcopy task exists; waiting for it");
    try {
      task = await client.tasks.wait(upid, { ...(o.waitOptions ?? {}), logger: o.logger });
    } catch (e) {
      log.warn({ upid, error: (e as Error).message }, "that imgcopy task failed");
    }
  }
  const item = await client.storage.findVolume(o.node, volid, { logger: log });
  if (item && item.size === size && (item.ctime === undefined || item.ctime >= sinceSec)) {
    log.info({ volid }, "upload answer was lost, but the volume is there with the right size");
    return task ? { upid, task } : {};
  }
  return undefined;
}

/** Read buffer size for the file part; two of them are all the memory an upload uses. */
const CHUNK = 256 * 1024;

/**
 * POST [preamble, file, epilogue] with an exact Content-Length, reading the file into two
 * buffers that are reused: a buffer is refilled only after the request has flushed it (the
 * write callback), so an upload of any size allocates nothing per chunk and leaves no
 * garbage behind (a read stream's fresh buffer per chunk made RSS grow by ~45 MiB before V8
 * collected them). node:https is used directly because axios, handed a stream, gives no
 * way to know when a chunk has been written.
 */
function postStream(o: {
  url: URL;
  agent: https.Agent;
  headers: Record<string, string>;
  preamble: Buffer;
  epilogue: Buffer;
  filePath: string;
  timeoutMs?: number;
  onChunk: (bytes: number) => void;
}): Promise<{ status: number; statusText: string; data: string }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (e: Error) => {
      if (!settled) {
        settled = true;
        reject(e);
      }
    };
    const req = https.request(o.url, { method: "POST", agent: o.agent, headers: o.headers }, (res) => {
      const parts: Buffer[] = [];
      let length = 0;
      res.on("data", (d: Buffer) => {
        // An upload answer is a UPID or an error message; never keep more than 1 MiB of it.
        if (length < 1024 * 1024) parts.push(d);
        length += d.length;
      });
      res.on("end", () => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", data: Buffer.concat(parts).toString("utf8") });
      });
      res.on("error", fail);
    });
    req.on("error", fail);
    if (o.timeoutMs) {
      req.setTimeout(o.timeoutMs, () => req.destroy(Object.assign(new Error(`upload timed out after ${o.timeoutMs} ms`), { code: "ETIMEDOUT" })));
    }
    const write = (chunk: Buffer) => new Promise<void>((res, rej) => req.write(chunk, (err) => (err ? rej(err) : res())));
    (async () => {
      const fh = await fs.promises.open(o.filePath, "r");
      try {
        await write(o.preamble);
        const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
        let inFlight: Promise<void> | undefined;
        for (let i = 0; ; i++) {
          const buf = buffers[i & 1];
          // This buffer's previous write was awaited one iteration ago: safe to refill.
          const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
          if (inFlight) await inFlight;
          if (bytesRead === 0) break;
          inFlight = write(buf.subarray(0, bytesRead));
          o.onChunk(bytesRead);
        }
        await write(o.epilogue);
        req.end();
      } finally {
        await fh.close();
      }
    })().catch((e: Error) => {
      req.destroy(e);
      fail(e);
    });
  });
}
