/**
 * One HTTPS exchange for the transport: send a small text body, read the whole answer as
 * text. node:https directly, over the transport's TLS-checking agent (tlsAgent.ts), as the
 * upload path already does. It replaced axios, which cost ~1.5-2 ms of CPU per request
 * (config merging, header objects, adapter layers) and ~0.2 s of module loading per
 * provider process: at 200 containers that was a third of the provider host's CPU over the
 * Noop floor (bench/pulumi-up). What the transport relied on is kept: every status is an
 * answer (retry.ts decides), no redirects are followed, gzip/deflate answers are inflated,
 * and failures carry node's error `code` (ECONNREFUSED, ECONNRESET, TLS codes, …) that
 * retry.ts classifies; a timeout is `ECONNABORTED` "timeout of N ms exceeded".
 */
import * as https from "node:https";
import type { IncomingHttpHeaders } from "node:http";
import * as zlib from "node:zlib";

export interface HttpRequest {
  method: string;
  /** Path (and query) below the base URL, e.g. `/nodes/pve1/lxc`. */
  url: string;
  data?: string;
  headers: Record<string, string>;
  /** Socket idle timeout, ms. */
  timeout: number;
}

export interface HttpResponse {
  status: number;
  statusText: string;
  /** The body as text (inflated when the server compressed it). */
  data: string;
  headers: IncomingHttpHeaders;
}

export interface HttpClient {
  request(r: HttpRequest): Promise<HttpResponse>;
}

/** Larger answers are refused (the biggest real ones, task logs and lists, are a few MB). */
export const MAX_ANSWER_BYTES = 512 * 1024 * 1024;

const USER_AGENT = "pulumi-proxmox-lxc";

function httpError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** `baseUrl` like `https://host:8006/api2/json`; request URLs are appended to it. */
export function createHttpClient(baseUrl: string, agent: https.Agent, maxBytes = MAX_ANSWER_BYTES): HttpClient {
  const base = baseUrl.replace(/\/+$/, "");
  return {
    request: (r) =>
      new Promise<HttpResponse>((resolve, reject) => {
        let settled = false;
        const fail = (e: Error) => {
          if (settled) return;
          settled = true;
          reject(e);
          req.destroy();
        };
        const headers: Record<string, string | number> = { Accept: "application/json, text/plain, */*", "Accept-Encoding": "gzip, deflate", "User-Agent": USER_AGENT, ...r.headers };
        if (r.data !== undefined) headers["Content-Length"] = Buffer.byteLength(r.data);
        const req = https.request(`${base}/${r.url.replace(/^\/+/, "")}`, { method: r.method, agent, headers }, (res) => {
          const parts: Buffer[] = [];
          let length = 0;
          res.on("data", (d: Buffer) => {
            length += d.length;
            if (length <= maxBytes) parts.push(d);
            else fail(httpError(`answer larger than ${maxBytes} bytes`, "ERR_BAD_RESPONSE"));
          });
          res.on("aborted", () => fail(httpError("the answer was cut off (connection closed)", "ECONNRESET")));
          res.on("error", fail);
          res.on("end", () => {
            if (settled) return;
            let body: string;
            try {
              body = inflate(Buffer.concat(parts), res.headers["content-encoding"]);
            } catch (e) {
              return fail(httpError(`cannot decompress the answer: ${(e as Error).message}`, "ERR_BAD_RESPONSE"));
            }
            settled = true;
            resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", data: body, headers: res.headers });
          });
        });
        req.on("error", fail);
        req.setTimeout(r.timeout, () => fail(httpError(`timeout of ${r.timeout}ms exceeded`, "ECONNABORTED")));
        req.end(r.data);
      }),
  };
}

function inflate(body: Buffer, encoding: string | undefined): string {
  const enc = (encoding ?? "").trim().toLowerCase();
  if (enc === "gzip" || enc === "x-gzip") return zlib.gunzipSync(body).toString("utf8");
  if (enc === "deflate") return zlib.inflateSync(body).toString("utf8");
  return body.toString("utf8");
}
