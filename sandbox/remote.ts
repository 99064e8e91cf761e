/**
 * The admin API for tests in another process than the sandbox (e.g. a sandbox started by
 * `pve-lxc sandbox --connection-file F` while the Pulumi CLI runs the provider): the same
 * SandboxAdmin methods over the `/_sandbox/` HTTP endpoints, pinned to the sandbox's cert.
 */
import * as fs from "node:fs";
import * as https from "node:https";
import type { SandboxAdmin, SandboxCounters } from "./admin";

export interface SandboxConnection {
  endpoint: string;
  apiToken: string;
  tlsFingerprint: string;
  username: string;
  password: string;
  nodes: string[];
  pveVersion?: string;
  adminSecret: string;
  caCertPem: string;
}

export function readConnectionFile(file: string): SandboxConnection {
  return JSON.parse(fs.readFileSync(file, "utf8")) as SandboxConnection;
}

export function connectSandboxAdmin(conn: SandboxConnection): SandboxAdmin {
  const call = (method: string, path: string, body?: unknown): Promise<any> =>
    new Promise((resolve, reject) => {
      const url = new URL(`/_sandbox${path}`, conn.endpoint);
      const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = https.request(
        url,
        {
          method, ca: conn.caCertPem, checkServerIdentity: () => undefined,
          headers: { "X-Sandbox-Admin": conn.adminSecret, ...(data ? { "Content-Type": "application/json", "Content-Length": String(data.length) } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            if ((res.statusCode ?? 0) >= 400) return reject(new Error(`sandbox admin ${method} ${path}: ${res.statusCode} ${res.statusMessage}`));
            if (path === "/metrics") return resolve(text);
            resolve(text ? JSON.parse(text).data : null);
          });
        },
      );
      req.on("error", reject);
      req.end(data);
    });
  return {
    addFault: (spec) => call("POST", "/faults", spec),
    clearFaults: () => call("DELETE", "/faults"),
    failTask: (spec) => call("POST", "/task-failures", spec),
    holdLock: (vmid, lock, seconds) => call("POST", "/locks", { vmid, lock, seconds }),
    failHotplug: (spec) => call("POST", "/hotplug-failures", spec),
    expireTickets: () => call("POST", "/expire-tickets", {}),
    setDhcp: (rule) => call("PUT", "/dhcp", rule),
    setTaskDuration: (ms) => call("PUT", "/task-duration", typeof ms === "number" ? { ms } : { byType: ms }),
    counters: () => call("GET", "/counters") as Promise<SandboxCounters>,
    resetCounters: () => call("DELETE", "/counters"),
    writeVolumeMarker: (volid, text) => call("PUT", "/volume-marker", { volid, text }),
    readVolumeMarker: async (volid) => (await call("GET", `/volume-marker?volid=${encodeURIComponent(volid)}`)) ?? undefined,
    createUser: (userid, opts) => call("POST", "/users", { userid, ...(opts ?? {}) }),
    createToken: (userid, tokenid, opts) => call("POST", "/tokens", { userid, tokenid, ...(opts ?? {}) }),
    setAcl: (spec) => call("PUT", "/acl", spec),
    rawConfig: async (vmid) => (await call("GET", `/raw-config?vmid=${vmid}`)) ?? undefined,
    prometheus: () => call("GET", "/metrics"),
    haManage: (vmid, state) => call("POST", "/ha-resources", { vmid, state }),
    setHaDelay: (ms) => call("PUT", "/ha-delay", { ms }),
  };
}
