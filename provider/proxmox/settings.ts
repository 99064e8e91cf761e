/**
 * Connection settings: Pulumi stack config (`proxmox:*`, passed in by the provider's
 * `configure` as a plain map) with a fallback to environment variables compatible with
 * bpg/proxmox (`PROXMOX_VE_*`). Everything is checked here, once, so a bad setup fails
 * with one message naming the config key and the env var, before any request is made.
 *
 * Precedence: each non-auth setting is taken from config, else from the env var.
 * Credentials are taken as a unit: if the config sets any of apiToken/username/password,
 * the env credentials are ignored entirely (a stale PROXMOX_VE_PASSWORD in a shell must
 * not contradict a token in the stack); otherwise they come from the env.
 *
 * TLS decision: `insecure` together with `tlsFingerprint` or `caCert` is refused — the
 * two ask for opposite things (no verification vs. a specific verification) and silently
 * letting either win would hide a mistake. Pinning is the recommended way to talk to a
 * self-signed PVE host.
 */
import * as fs from "node:fs";
import { registerSecret } from "../logging";

export type ConfigValues = Record<string, string | undefined>;

export type AuthSettings =
  | {
      kind: "token";
      /** `user@realm!tokenid` */
      tokenId: string;
      /** `user@realm` */
      user: string;
      secret: string;
    }
  | {
      kind: "password";
      /** `user@realm` */
      username: string;
      password: string;
      otp?: string;
    };

export interface TlsSettings {
  /** Verification off (opt-in; a warning is logged once). */
  insecure: boolean;
  /** PEM text of extra trusted CA certificates. */
  caCert?: string;
  /** SHA-256 fingerprint of the server's leaf certificate, `AA:BB:...` uppercase. */
  fingerprint?: string;
}

export interface ConnectionSettings {
  /** `https://host:8006/api2/json` (no trailing slash). */
  baseUrl: string;
  host: string;
  port: number;
  auth: AuthSettings;
  tls: TlsSettings;
  logLevel?: string;
}

/** Config key → env var, used in every error message. */
export const SETTING_SOURCES = {
  endpoint: "PROXMOX_VE_ENDPOINT",
  apiToken: "PROXMOX_VE_API_TOKEN",
  username: "PROXMOX_VE_USERNAME",
  password: "PROXMOX_VE_PASSWORD",
  otp: "PROXMOX_VE_OTP",
  insecure: "PROXMOX_VE_INSECURE",
  caCert: "PROXMOX_VE_CA_CERT",
  tlsFingerprint: "PROXMOX_VE_TLS_FINGERPRINT",
  logLevel: "PULUMI_PROXMOX_LOG_LEVEL",
} as const;
export type SettingKey = keyof typeof SETTING_SOURCES;

/** A configuration problem; `keys` names the offending settings. */
export class PveSettingsError extends Error {
  constructor(message: string, readonly keys: SettingKey[]) {
    super(message);
    this.name = "PveSettingsError";
  }
}

const both = (k: SettingKey) => `proxmox:${k} (env ${SETTING_SOURCES[k]})`;

function pick(config: ConfigValues, key: SettingKey): string | undefined {
  // Accept both `endpoint` and `proxmox:endpoint` spellings from configure().
  const v = config[key] ?? config[`proxmox:${key}`];
  return v === undefined || v === "" ? undefined : v;
}

/** `https://host`, `https://host:8006`, optionally with `/api2/json`; port 8006 by default. */
export function parseEndpoint(raw: string): { baseUrl: string; host: string; port: number } {
  const err = (why: string) =>
    new PveSettingsError(
      `Invalid ${both("endpoint")}: '${raw}' ${why}. Use the form https://pve.example.com:8006 (port 8006 and /api2/json are optional).`,
      ["endpoint"],
    );
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw err("is not a URL");
  }
  if (url.protocol !== "https:") throw err("must use https:// (PVE only serves the API over TLS, BEHAVIOR.md 1.1)");
  if (url.username || url.password) throw err("must not contain credentials; use proxmox:apiToken or proxmox:username/password");
  if (url.search || url.hash) throw err("must not contain a query or fragment");
  const p = url.pathname.replace(/\/+$/, "");
  if (p !== "" && p !== "/api2/json") throw err(`has an unexpected path '${url.pathname}' (only /api2/json is allowed)`);
  // URL drops a default port (`:443`), so look at the text for an explicit one.
  const explicit = /^https:\/\/(?:\[[^\]]+\]|[^/:?#]+):(\d+)/i.exec(raw.trim());
  const port = explicit ? Number(explicit[1]) : 8006;
  const host = url.hostname;
  const hostForUrl = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return { baseUrl: `https://${hostForUrl}:${port}/api2/json`, host: host.replace(/^\[|\]$/g, ""), port };
}

/**
 * PVE's user name rule (`PVE::Auth::Plugin` `verify_username`): anything but whitespace,
 * ':' and '/' before the last '@realm' — so OpenID e-mail users like
 * `john@example.com@oidc` are valid. Tokens add `!tokenid`; the user part of a token
 * cannot hold '!' or '=' here, so the split stays unambiguous.
 */
const USERNAME_RE = /^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]*$/;
const TOKEN_RE = /^([^\s:/!=]+)@([A-Za-z][A-Za-z0-9.\-_]*)!([A-Za-z][A-Za-z0-9.\-_]*)=(\S+)$/;

/** `user@realm!tokenid=secret` (the form bpg's provider and the PVE UI show). */
export function parseApiToken(raw: string): { tokenId: string; user: string; secret: string } {
  const m = TOKEN_RE.exec(raw.trim());
  if (!m) {
    // Never echo the value: it is (or contains) the secret.
    throw new PveSettingsError(
      `Malformed ${both("apiToken")}: expected user@realm!tokenid=secret (e.g. pulumi@pve!deploy=xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), ` +
        `as shown by 'pveum user token add'.`,
      ["apiToken"],
    );
  }
  return { user: `${m[1]}@${m[2]}`, tokenId: `${m[1]}@${m[2]}!${m[3]}`, secret: m[4] };
}

/** 32 bytes as hex, with or without colons, any case → `AA:BB:...`. */
export function normalizeFingerprint(raw: string): string {
  const hex = raw.trim().replace(/^sha256[:/=]?/i, "").replace(/[:\s]/g, "");
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new PveSettingsError(
      `Invalid ${both("tlsFingerprint")}: expected the SHA-256 fingerprint of the server certificate as 64 hex digits ` +
        `(colons optional), e.g. from 'openssl x509 -in /etc/pve/local/pve-ssl.pem -noout -fingerprint -sha256' ` +
        `or the 'ssl_fingerprint' field of GET /nodes.`,
      ["tlsFingerprint"],
    );
  }
  return hex.toUpperCase().match(/../g)!.join(":");
}

/** PEM text, or a path to a PEM file. */
export function loadCaCert(raw: string): string {
  const looksPem = raw.includes("-----BEGIN");
  let text = raw;
  if (!looksPem) {
    try {
      text = fs.readFileSync(raw.trim(), "utf8");
    } catch (e) {
      throw new PveSettingsError(
        `${both("caCert")} is neither PEM text nor a readable file: ${(e as Error).message}. ` +
          `Pass the CA certificate PEM (e.g. /etc/pve/pve-root-ca.pem) or its path.`,
        ["caCert"],
      );
    }
  }
  if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(text)) {
    throw new PveSettingsError(
      `${both("caCert")} does not contain a PEM certificate (-----BEGIN CERTIFICATE-----). Pass e.g. the content of /etc/pve/pve-root-ca.pem.`,
      ["caCert"],
    );
  }
  return text;
}

function parseBool(key: SettingKey, raw: string | undefined): boolean {
  if (raw === undefined) return false;
  if (/^(1|true|yes|on)$/i.test(raw.trim())) return true;
  if (/^(0|false|no|off)$/i.test(raw.trim())) return false;
  throw new PveSettingsError(`Invalid ${both(key)}: '${raw}' is not a boolean; use true or false.`, [key]);
}

/**
 * Build and check the settings. `config` holds the `proxmox:*` stack config values;
 * `env` defaults to process.env. Secrets are registered with the logger, so they are
 * masked in every later log line and error.
 */
export function parseSettings(config: ConfigValues = {}, env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  const fromEnv = (k: SettingKey) => {
    const v = env[SETTING_SOURCES[k]];
    return v === undefined || v === "" ? undefined : v;
  };
  const get = (k: SettingKey) => pick(config, k) ?? fromEnv(k);

  const endpointRaw = get("endpoint");
  if (!endpointRaw) {
    throw new PveSettingsError(
      `No Proxmox VE endpoint configured. Set ${both("endpoint")}, e.g. 'pulumi config set proxmox:endpoint https://pve.example.com:8006'.`,
      ["endpoint"],
    );
  }
  const endpoint = parseEndpoint(endpointRaw);

  // Credentials as a unit from one source (see the file comment).
  const credKeys: SettingKey[] = ["apiToken", "username", "password", "otp"];
  const configHasCreds = credKeys.some((k) => pick(config, k) !== undefined);
  const cred = (k: SettingKey) => (configHasCreds ? pick(config, k) : fromEnv(k));
  const where = configHasCreds ? "stack config" : "environment";
  const token = cred("apiToken");
  const username = cred("username");
  const password = cred("password");
  const otp = cred("otp");
  for (const s of [token, password]) if (s) registerSecret(s);

  let auth: AuthSettings;
  if (token && password) {
    throw new PveSettingsError(
      `Both ${both("apiToken")} and ${both("password")} are set (in the ${where}). Use one: an API token (recommended) or username+password.`,
      ["apiToken", "password"],
    );
  }
  if (token) {
    if (otp) {
      throw new PveSettingsError(`${both("otp")} only applies to username/password login; API tokens need no second factor. Remove it.`, ["otp"]);
    }
    const t = parseApiToken(token);
    registerSecret(t.secret);
    if (username && username !== t.user) {
      throw new PveSettingsError(
        `${both("username")} is '${username}' but the API token belongs to '${t.user}'. Remove proxmox:username when using a token.`,
        ["username", "apiToken"],
      );
    }
    auth = { kind: "token", ...t };
  } else if (username || password) {
    if (!username || !password) {
      const missing: SettingKey = username ? "password" : "username";
      throw new PveSettingsError(`${both(missing)} is missing: username and password must be set together (in the ${where}).`, [missing]);
    }
    if (!USERNAME_RE.test(username)) {
      throw new PveSettingsError(`Invalid ${both("username")}: '${username}' must be user@realm, e.g. root@pam or john@example.com@oidc.`, ["username"]);
    }
    if (otp !== undefined && !/^\d{6,8}$/.test(otp) && !/^(totp|recovery|yubico):/.test(otp)) {
      throw new PveSettingsError(`Invalid ${both("otp")}: expected a 6–8 digit one-time code (or 'recovery:<key>').`, ["otp"]);
    }
    auth = { kind: "password", username, password, otp };
  } else {
    throw new PveSettingsError(
      `No Proxmox VE credentials configured. Set ${both("apiToken")} (recommended: 'pulumi config set --secret proxmox:apiToken pulumi@pve!deploy=<uuid>'), ` +
        `or ${both("username")} together with ${both("password")}.`,
      ["apiToken", "username", "password"],
    );
  }

  const insecure = parseBool("insecure", get("insecure"));
  const fpRaw = get("tlsFingerprint");
  const caRaw = get("caCert");
  if (insecure && (fpRaw || caRaw)) {
    const other: SettingKey = fpRaw ? "tlsFingerprint" : "caCert";
    throw new PveSettingsError(
      `${both("insecure")} is true together with ${both(other)}: insecure turns verification off, which defeats the ${other}. ` +
        `Remove insecure (recommended) or the ${other}.`,
      ["insecure", other],
    );
  }
  const tls: TlsSettings = {
    insecure,
    fingerprint: fpRaw ? normalizeFingerprint(fpRaw) : undefined,
    caCert: caRaw ? loadCaCert(caRaw) : undefined,
  };

  return { ...endpoint, auth, tls, logLevel: get("logLevel") };
}
