/**
 * The HTTPS agent for the PVE API, one of three modes:
 *  - default: full verification (system CAs, plus `caCert` when given);
 *  - pinned: only a server whose leaf certificate has the configured SHA-256 fingerprint
 *    is accepted, self-signed or not. Node skips `checkServerIdentity` when chain
 *    verification already failed (a self-signed cert), so a `checkServerIdentity` hook
 *    alone cannot be the hard check. Instead `createConnection` hands the socket to the
 *    HTTP request only after `secureConnect` and a fingerprint match — no request byte is
 *    written to an unverified peer. TLS session resumption is disabled so every
 *    connection presents a certificate to check. The host name is not checked in this
 *    mode: the pin is stricter than a name.
 *  - insecure: no verification at all (opt-in, warned about once per process).
 */
import * as https from "node:https";
import * as tls from "node:tls";
import type { Duplex } from "node:stream";
import type { TlsSettings } from "./settings";
import type { Logger } from "../logging";

export class TlsPinMismatchError extends Error {
  readonly code = "ERR_PVE_TLS_PIN_MISMATCH";
  constructor(readonly expected: string, readonly actual: string | undefined, host: string) {
    super(
      `The TLS certificate of ${host} has SHA-256 fingerprint ${actual ?? "(none)"}, which does not match the pinned ` +
        `proxmox:tlsFingerprint (env PROXMOX_VE_TLS_FINGERPRINT) ${expected}. Refusing to connect. If the node's certificate ` +
        `was renewed on purpose, update the pin (GET /nodes shows ssl_fingerprint); otherwise you may be talking to the wrong host.`,
    );
    this.name = "TlsPinMismatchError";
  }
}

class PinnedAgent extends https.Agent {
  constructor(private readonly pin: string, opts: https.AgentOptions) {
    super({ ...opts, rejectUnauthorized: false, maxCachedSessions: 0 });
  }

  override createConnection(options: https.RequestOptions, cb?: (err: Error | null, s: Duplex) => void): Duplex | undefined {
    // The base implementation returns a TLSSocket synchronously (node:https Agent).
    const socket = super.createConnection({ ...options, rejectUnauthorized: false } as https.RequestOptions) as tls.TLSSocket;
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      socket.removeListener("error", onError);
      if (err) {
        socket.destroy();
        cb?.(err, socket);
      } else cb?.(null, socket);
    };
    const onError = (e: Error) => finish(e);
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      const fp = socket.getPeerCertificate()?.fingerprint256;
      if (fp && fp.toUpperCase() === this.pin) finish(null);
      else finish(new TlsPinMismatchError(this.pin, fp, String(options.host ?? options.servername ?? "the server")));
    });
    return undefined;
  }
}

let insecureWarned = false;

export function createHttpsAgent(settings: TlsSettings, log: Logger, opts: { keepAlive?: boolean } = {}): https.Agent {
  const base: https.AgentOptions = { keepAlive: opts.keepAlive ?? true, maxSockets: 16, keepAliveMsecs: 1000 };
  if (settings.fingerprint) return new PinnedAgent(settings.fingerprint, base);
  if (settings.insecure) {
    if (!insecureWarned) {
      insecureWarned = true;
      log.warn(
        "TLS certificate verification is DISABLED (proxmox:insecure / PROXMOX_VE_INSECURE). Anyone on the path can read the API token. " +
          "Prefer proxmox:tlsFingerprint (pin the node's certificate) or proxmox:caCert.",
      );
    }
    return new https.Agent({ ...base, rejectUnauthorized: false });
  }
  if (settings.caCert) {
    // Keep the public roots too: the endpoint may sit behind a proxy with a public cert.
    return new https.Agent({ ...base, ca: [...tls.rootCertificates, settings.caCert] });
  }
  return new https.Agent(base);
}

/** For tests: forget that the insecure warning was logged. */
export function resetInsecureWarning(): void {
  insecureWarned = false;
}
