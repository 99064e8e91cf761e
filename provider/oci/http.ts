/**
 * Minimal HTTP(S) client on node:http/https: full control over TLS (custom CA, skipping
 * verification), streaming bodies, and no automatic redirects (the registry client drops
 * credentials when a redirect leaves the registry's origin, e.g. blob storage on S3).
 */
import * as http from "node:http";
import * as https from "node:https";
import * as fs from "node:fs";
import { OciError } from "./errors";

export interface TlsOptions {
  /** Extra CA certificates (PEM) trusted for the registry, in addition to the system's. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** A PEM file with CA certificates to trust. */
  caFile?: string;
  /** Skip certificate verification (testing only; the connection is then not authenticated). */
  insecureSkipVerify?: boolean;
  /** Client certificate and key (PEM files) for registries that require mutual TLS. */
  certFile?: string;
  keyFile?: string;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  url: URL;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  tls?: TlsOptions;
  /** Idle socket timeout in ms (no bytes moving), not a total deadline. */
  timeoutMs?: number;
}

const agents = new Map<string, https.Agent>();

function httpsAgent(tls: TlsOptions | undefined): https.Agent {
  const ca: Array<string | Buffer> = [];
  if (tls?.ca) ca.push(...(Array.isArray(tls.ca) ? tls.ca : [tls.ca]));
  if (tls?.caFile) ca.push(readTlsFile(tls.caFile, "tls.caFile"));
  const key = JSON.stringify({ ca: ca.map(String), i: !!tls?.insecureSkipVerify, c: tls?.certFile, k: tls?.keyFile });
  let agent = agents.get(key);
  if (!agent) {
    agent = new https.Agent({
      keepAlive: true,
      // Custom CAs add to the system roots rather than replacing them.
      ca: ca.length ? [...require("node:tls").rootCertificates, ...ca] : undefined,
      rejectUnauthorized: !tls?.insecureSkipVerify,
      cert: tls?.certFile ? readTlsFile(tls.certFile, "tls.certFile") : undefined,
      key: tls?.keyFile ? readTlsFile(tls.keyFile, "tls.keyFile") : undefined,
    });
    agents.set(key, agent);
  }
  return agent;
}

const httpAgent = new http.Agent({ keepAlive: true });

function readTlsFile(p: string, field: string): Buffer {
  try {
    return fs.readFileSync(p);
  } catch (err) {
    throw new OciError("INVALID_OPTION", `${field}: cannot read '${p}': ${(err as Error).message}`);
  }
}

export function httpRequest(url: URL, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const isHttps = url.protocol === "https:";
    const req = (isHttps ? https : http).request(
      url,
      {
        method: opts.method ?? "GET",
        headers: opts.headers,
        agent: isHttps ? httpsAgent(opts.tls) : httpAgent,
      },
      (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url }),
    );
    req.setTimeout(opts.timeoutMs ?? 60_000, () => {
      const e = new Error(`no response from ${url.host} within ${(opts.timeoutMs ?? 60_000) / 1000}s`) as NodeJS.ErrnoException;
      e.code = "ETIMEDOUT";
      req.destroy(e);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Reads a (small) body fully, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit = 8 << 20): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    n += (c as Buffer).length;
    if (n > limit) {
      res.body.destroy();
      throw new OciError("REGISTRY_ERROR", `response from ${res.url.host} is larger than ${limit} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Discards a body so the keep-alive socket can be reused. */
export function discard(res: HttpResponse): void {
  res.body.resume();
}

const RETRYABLE_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH", "ECONNABORTED", "UND_ERR_SOCKET"]);

/** Transport failures worth another attempt (not TLS verification or protocol errors). */
export function isRetryableTransportError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return !!e && (RETRYABLE_CODES.has(e.code ?? "") || /socket hang up|aborted/i.test(e.message ?? ""));
}

/** A TLS handshake against a plain-HTTP server: the signal to fall back to HTTP on loopback. */
export function isTlsToPlainHttpError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return !!e && (e.code === "EPROTO" || /wrong version number|packet length too long/i.test(e.message ?? ""));
}
