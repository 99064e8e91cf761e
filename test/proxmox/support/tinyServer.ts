/**
 * A tiny loopback HTTPS server for what the sandbox cannot do precisely: a certificate
 * that does not match the pin, a CA-signed certificate, a reset at an exact point. It
 * answers every request with the handler's result and records what it received. It is
 * deliberately not a PVE: tests that need PVE behaviour use the sandbox.
 */
import * as https from "node:https";
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

const CERTS = path.join(__dirname, "certs");
export type CertName = "self-a" | "self-b" | "leaf";

export function certPem(name: CertName | "ca"): string {
  return fs.readFileSync(path.join(CERTS, `${name}.crt`), "utf8");
}

/** SHA-256 fingerprint of a fixture certificate, `AA:BB:...`. */
export function certFingerprint(name: CertName | "ca"): string {
  return new crypto.X509Certificate(certPem(name)).fingerprint256;
}

export interface Received {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export interface TinyServer {
  endpoint: string;
  received: Received[];
  /** TLS handshakes completed (a pinned client must not send anything after a mismatch). */
  handshakes: number;
  stop(): Promise<void>;
}

export type Handler = (req: Received, res: ServerResponse) => void;

export const jsonData = (data: unknown) => (_req: Received, res: ServerResponse) => {
  res.writeHead(200, { "Content-Type": "application/json;charset=UTF-8" });
  res.end(JSON.stringify({ data }));
};

export async function startTinyServer(cert: CertName, handler: Handler = jsonData({ version: "9.1.1", release: "9.1", repoid: "abcdef12" })): Promise<TinyServer> {
  const server = https.createServer({ cert: certPem(cert), key: fs.readFileSync(path.join(CERTS, `${cert}.key`)) });
  const state: TinyServer = { endpoint: "", received: [], handshakes: 0, stop: async () => undefined };
  server.on("secureConnection", () => state.handshakes++);
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r: Received = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
      state.received.push(r);
      handler(r, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  state.endpoint = `https://127.0.0.1:${port}`;
  state.stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
