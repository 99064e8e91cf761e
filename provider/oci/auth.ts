/**
 * Registry credentials: explicit options, or Docker's `config.json` (`auths` with base64
 * `auth` or username/password, and `credHelpers`/`credsStore` via the
 * `docker-credential-<name>` helper protocol). Passwords are registered with the shared
 * logger's secret scrubber and never put in messages.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { registerSecret } from "../logging";
import { OciError } from "./errors";
import { DOCKER_HUB } from "./reference";

export interface RegistryCredentials {
  username: string;
  /** Password or access token. Treated as a secret. */
  password: string;
}

/** Docker config path: explicit, else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(explicit?: string): string {
  if (explicit) {
    try {
      if (fs.statSync(explicit).isDirectory()) return path.join(explicit, "config.json");
    } catch {
      // fall through: a missing explicit path is reported when read
    }
    return explicit;
  }
  if (process.env.DOCKER_CONFIG) return path.join(process.env.DOCKER_CONFIG, "config.json");
  return path.join(os.homedir(), ".docker", "config.json");
}

interface DockerConfigFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The keys Docker may have stored a registry's credentials under. */
function candidateKeys(registry: string): string[] {
  if (registry === DOCKER_HUB) {
    return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io", "https://registry-1.docker.io"];
  }
  return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
}

/**
 * Looks up credentials for `registry` in a Docker config file. Returns undefined when
 * the file or an entry is absent; throws for a file that exists but is unreadable/invalid.
 */
export async function credentialsFromDockerConfig(registry: string, configPath?: string): Promise<RegistryCredentials | undefined> {
  const file = dockerConfigPath(configPath);
  let text: string;
  try {
    text = await fs.promises.readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" && !configPath) return undefined;
    throw new OciError("INVALID_OPTION", `docker config '${file}' cannot be read: ${(err as Error).message}`);
  }
  let cfg: DockerConfigFile;
  try {
    cfg = JSON.parse(text) as DockerConfigFile;
  } catch {
    throw new OciError("INVALID_OPTION", `docker config '${file}' is not valid JSON`);
  }
  const keys = candidateKeys(registry);
  const helperKey = keys.find((k) => cfg.credHelpers?.[k]);
  if (helperKey) return credentialsFromHelper(cfg.credHelpers![helperKey], helperKey === DOCKER_HUB ? keys[0] : helperKey);
  for (const k of keys) {
    const entry = cfg.auths?.[k];
    if (!entry) continue;
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      if (i < 0) throw new OciError("INVALID_OPTION", `docker config '${file}': auths["${k}"].auth is not base64 of 'user:password'`);
      const creds = { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
      registerSecret(creds.password);
      registerSecret(entry.auth);
      return creds;
    }
    if (entry.username && entry.password) {
      registerSecret(entry.password);
      return { username: entry.username, password: entry.password };
    }
    if (entry.identitytoken) {
      throw new OciError("UNSUPPORTED", `docker config '${file}': auths["${k}"] holds only an identity token (OAuth refresh token), which is not supported; pass username/password credentials instead`);
    }
  }
  if (cfg.credsStore) return credentialsFromHelper(cfg.credsStore, keys[0]);
  return undefined;
}

/** Runs `docker-credential-<helper> get` with the server URL on stdin (Docker's protocol). */
function credentialsFromHelper(helper: string, serverUrl: string): Promise<RegistryCredentials | undefined> {
  const bin = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["get"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", (err: NodeJS.ErrnoException) =>
      reject(new OciError("MISSING_TOOL", err.code === "ENOENT" ? `docker credential helper '${bin}' (from the docker config) is not installed` : `${bin}: ${err.message}`)),
    );
    child.on("close", (code) => {
      // The helper prints "credentials not found in native keychain" and exits 1 for none.
      if (code !== 0) return resolve(undefined);
      try {
        const r = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!r.Secret) return resolve(undefined);
        registerSecret(r.Secret);
        resolve({ username: r.Username ?? "", password: r.Secret });
      } catch {
        reject(new OciError("INVALID_OPTION", `${bin} printed something that is not credentials JSON`));
      }
    });
    child.stdin.end(serverUrl);
  });
}

export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `WWW-Authenticate` (RFC 7235): `Bearer realm="…",service="…",scope="…"`. */
export function parseWwwAuthenticate(header: string | string[] | undefined): AuthChallenge[] {
  const values = Array.isArray(header) ? header : header ? [header] : [];
  const out: AuthChallenge[] = [];
  for (const value of values) {
    let pos = 0;
    let current: AuthChallenge | undefined;
    const s = value;
    while (pos < s.length) {
      while (pos < s.length && /[\s,]/.test(s[pos])) pos++;
      const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)/.exec(s.slice(pos));
      if (!m) break;
      const token = m[1];
      pos += token.length;
      while (pos < s.length && s[pos] === " ") pos++;
      if (s[pos] === "=") {
        pos++;
        while (pos < s.length && s[pos] === " ") pos++;
        let val = "";
        if (s[pos] === '"') {
          pos++;
          while (pos < s.length && s[pos] !== '"') {
            if (s[pos] === "\\" && pos + 1 < s.length) pos++;
            val += s[pos++];
          }
          pos++;
        } else {
          const vm = /^[^,\s]*/.exec(s.slice(pos))!;
          val = vm[0];
          pos += val.length;
        }
        if (current) current.params[token.toLowerCase()] = val;
      } else {
        current = { scheme: token.toLowerCase(), params: {} };
        out.push(current);
      }
    }
  }
  return out;
}
