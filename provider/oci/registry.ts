/**
 * Registry client for the distribution-spec pull API: manifests by Accept, blobs streamed
 * into the cache with digest verification, and authentication by challenge (anonymous,
 * HTTP Basic, and the Bearer token flow of the Docker token spec).
 */
import * as fs from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { RegistryCredentials, credentialsFromDockerConfig, parseWwwAuthenticate } from "./auth";
import { registerSecret } from "../logging";
import { BlobCache, removeQuietly } from "./cache";
import { DigestVerifier, digestOf } from "./digest";
import { OciError } from "./errors";
import { HttpResponse, TlsOptions, discard, httpRequest, isRetryableTransportError, isTlsToPlainHttpError, readBody } from "./http";
import { Logger, ociLogger } from "./log";
import { MANIFEST_ACCEPT } from "./mediatypes";
import { isLoopbackRegistry, registryApiHost } from "./reference";

export interface RegistryOptions {
  /** Explicit credentials; take precedence over the docker config. Secret. */
  credentials?: RegistryCredentials;
  /** Docker config file or directory; default `$DOCKER_CONFIG` or `~/.docker/config.json`. */
  dockerConfig?: string;
  tls?: TlsOptions;
  /**
   * Plain HTTP: true forces it, false forbids it. Unset: HTTPS, except that loopback
   * registries fall back to HTTP when they do not speak TLS (as Docker does).
   */
  plainHttp?: boolean;
  /** Attempts after a transport failure or 429/5xx (default 3). */
  retries?: number;
  /** Idle timeout for one request in ms (default 60000). */
  timeoutMs?: number;
  logger?: Logger;
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

const USER_AGENT = "pulumi-proxmox-lxc-oci/1";

/** Counts what went over the wire; tests and progress reporting read it. */
export interface RegistryStats {
  requests: number;
  blobDownloads: number;
  blobBytes: number;
}

export class RegistryClient {
  readonly host: string;
  readonly stats: RegistryStats = { requests: 0, blobDownloads: 0, blobBytes: 0 };
  private scheme: "https" | "http";
  private readonly log: Logger;
  private readonly authByScope = new Map<string, string>();
  private basicAuth?: string;
  private credentials?: Promise<RegistryCredentials | undefined>;

  constructor(readonly registry: string, private readonly opts: RegistryOptions = {}) {
    this.host = registryApiHost(registry);
    this.scheme = opts.plainHttp ? "http" : "https";
    this.log = ociLogger(opts.logger).child({ registry });
    // The shared logger scrubs registered values from every line, wherever they appear.
    if (opts.credentials) registerSecret(opts.credentials.password);
  }

  private getCredentials(): Promise<RegistryCredentials | undefined> {
    this.credentials ??= this.opts.credentials
      ? Promise.resolve(this.opts.credentials)
      : credentialsFromDockerConfig(this.registry, this.opts.dockerConfig);
    return this.credentials;
  }

  private url(path: string): URL {
    return new URL(`${this.scheme}://${this.host}${path}`);
  }

  private async rawRequest(url: URL, headers: Record<string, string>, method = "GET"): Promise<HttpResponse> {
    this.stats.requests++;
    return httpRequest(url, { method, headers: { "User-Agent": USER_AGENT, ...headers }, tls: this.opts.tls, timeoutMs: this.opts.timeoutMs });
  }

  /**
   * GET `path` on the registry with authentication, redirects and retries. Returns a 2xx
   * response; maps 401/403/404 and other failures to OciErrors naming the registry.
   */
  async get(path: string, scope: string, headers: Record<string, string> = {}, what = path): Promise<HttpResponse> {
    const retries = this.opts.retries ?? 3;
    let authTries = 0;
    for (let attempt = 0; ; attempt++) {
      let res: HttpResponse;
      try {
        res = await this.followRedirects(this.url(path), scope, headers);
      } catch (err) {
        if (isTlsToPlainHttpError(err) && this.scheme === "https" && this.opts.plainHttp === undefined && isLoopbackRegistry(this.registry)) {
          this.log.debug("registry does not speak TLS; using plain HTTP (loopback registry)");
          this.scheme = "http";
          attempt--;
          continue;
        }
        if (isRetryableTransportError(err) && attempt < retries) {
          this.log.debug({ err: (err as Error).message, attempt }, "transport error; retrying");
          await sleep(250 * 2 ** attempt);
          continue;
        }
        throw new OciError("TRANSPORT", `cannot reach registry ${this.registry} (${this.scheme}://${this.host}): ${(err as Error).message}`, { cause: err });
      }
      if (res.status === 401) {
        const challenge = res.headers["www-authenticate"];
        discard(res);
        if (authTries++ > 0) {
          const creds = await this.getCredentials();
          // Basic credentials sent and still 401: the registry rejected them.
          if (this.basicAuth && creds && !this.authByScope.has(scope)) {
            throw new OciError("AUTH_FAILED", `registry ${this.registry} rejected the credentials of user '${creds.username}' (wrong username or password?)`);
          }
          throw await this.deniedError(what);
        }
        await this.authenticate(challenge, scope, what);
        attempt--;
        continue;
      }
      if ((res.status === 429 || res.status >= 500) && attempt < retries) {
        discard(res);
        this.log.debug({ status: res.status, attempt }, "registry busy or failing; retrying");
        await sleep(500 * 2 ** attempt);
        continue;
      }
      if (res.status >= 200 && res.status < 300) return res;
      const detail = await errorDetail(res);
      if (res.status === 404) throw new OciError("NOT_FOUND", `${what} not found on registry ${this.registry}${detail}`);
      if (res.status === 403) throw new OciError("ACCESS_DENIED", `registry ${this.registry} denied access to ${what}${detail}`);
      throw new OciError("REGISTRY_ERROR", `registry ${this.registry} answered HTTP ${res.status} for ${what}${detail}`);
    }
  }

  private async deniedError(what: string): Promise<OciError> {
    const creds = await this.getCredentials();
    if (!creds) {
      return new OciError("AUTH_REQUIRED", `registry ${this.registry} requires authentication for ${what}, and no credentials were found: pass credentials or add them to the docker config (docker login ${this.registry})`);
    }
    return new OciError("ACCESS_DENIED", `registry ${this.registry} denied user '${creds.username}' access to ${what}`);
  }

  private async followRedirects(url: URL, scope: string, headers: Record<string, string>): Promise<HttpResponse> {
    const origin = url.origin;
    for (let hops = 0; hops < 6; hops++) {
      const auth = url.origin === origin ? this.authByScope.get(scope) ?? this.basicAuth : undefined;
      const res = await this.rawRequest(url, auth ? { ...headers, Authorization: auth } : headers);
      if (res.status >= 300 && res.status < 400 && res.headers.location) {
        discard(res);
        // Blob storage (S3, CDNs) gets no registry credentials: they are for the registry only.
        url = new URL(res.headers.location, url);
        continue;
      }
      return res;
    }
    throw new OciError("REGISTRY_ERROR", `registry ${this.registry}: too many redirects`);
  }

  /** Answers a 401 challenge: sets up Basic auth or fetches a Bearer token for `scope`. */
  private async authenticate(header: string | string[] | undefined, scope: string, what: string): Promise<void> {
    const challenges = parseWwwAuthenticate(header);
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    const creds = await this.getCredentials();
    if (bearer) {
      this.authByScope.set(scope, `Bearer ${await this.fetchToken(bearer.params, scope, creds)}`);
      return;
    }
    if (basic) {
      if (!creds) {
        throw new OciError("AUTH_REQUIRED", `registry ${this.registry} requires authentication (HTTP Basic) for ${what}, and no credentials were found: pass credentials or add them to the docker config (docker login ${this.registry})`);
      }
      if (this.basicAuth) throw new OciError("AUTH_FAILED", `registry ${this.registry} rejected the credentials of user '${creds.username}' (wrong username or password?)`);
      this.basicAuth = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
      return;
    }
    throw new OciError("AUTH_REQUIRED", `registry ${this.registry} answered 401 for ${what} without a usable WWW-Authenticate challenge (need Basic or Bearer)`);
  }

  private async fetchToken(params: Record<string, string>, scope: string, creds: RegistryCredentials | undefined): Promise<string> {
    if (!params.realm) throw new OciError("REGISTRY_ERROR", `registry ${this.registry} sent a Bearer challenge without a realm`);
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw new OciError("REGISTRY_ERROR", `registry ${this.registry} sent an invalid token realm '${params.realm}'`);
    }
    if (realm.protocol !== "https:" && realm.protocol !== "http:") {
      throw new OciError("REGISTRY_ERROR", `registry ${this.registry} sent a token realm with unsupported scheme ${realm.protocol}`);
    }
    if (params.service) realm.searchParams.set("service", params.service);
    realm.searchParams.set("scope", params.scope || scope);
    const headers: Record<string, string> = {};
    if (creds) {
      if (realm.protocol === "http:" && !isLoopbackRegistry(realm.host) && !this.opts.plainHttp) {
        throw new OciError("INVALID_OPTION", `refusing to send credentials for ${this.registry} to a plain-HTTP token service (${realm.host})`);
      }
      headers.Authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
    }
    let res: HttpResponse;
    for (let attempt = 0; ; attempt++) {
      try {
        res = await this.rawRequest(realm, headers);
        break;
      } catch (err) {
        if (isRetryableTransportError(err) && attempt < (this.opts.retries ?? 3)) {
          await sleep(250 * 2 ** attempt);
          continue;
        }
        throw new OciError("TRANSPORT", `cannot reach the token service of registry ${this.registry} (${realm.host}): ${(err as Error).message}`, { cause: err });
      }
    }
    if (res.status === 401 || res.status === 403) {
      discard(res);
      if (creds) throw new OciError("AUTH_FAILED", `the token service of registry ${this.registry} rejected the credentials of user '${creds.username}' (wrong username or password?)`);
      throw new OciError("AUTH_REQUIRED", `registry ${this.registry} requires authentication (anonymous token refused), and no credentials were found: pass credentials or add them to the docker config (docker login ${this.registry})`);
    }
    if (res.status !== 200) {
      const detail = await errorDetail(res);
      throw new OciError("REGISTRY_ERROR", `the token service of registry ${this.registry} answered HTTP ${res.status}${detail}`);
    }
    let body: { token?: string; access_token?: string };
    try {
      body = JSON.parse((await readBody(res, 1 << 20)).toString("utf8"));
    } catch {
      throw new OciError("REGISTRY_ERROR", `the token service of registry ${this.registry} returned something that is not JSON`);
    }
    const token = body.token || body.access_token;
    if (!token) throw new OciError("REGISTRY_ERROR", `the token service of registry ${this.registry} returned no token`);
    this.log.debug({ scope, service: params.service }, "obtained registry token");
    return token;
  }

  /** Fetches a manifest or index by tag or digest; verifies the digest when one was asked for. */
  async getManifest(repository: string, reference: string, accept = MANIFEST_ACCEPT): Promise<FetchedManifest> {
    const what = `manifest ${repository}:${reference}`.replace(":sha", "@sha");
    const res = await this.get(`/v2/${repository}/manifests/${reference}`, `repository:${repository}:pull`, { Accept: accept }, what);
    const bytes = await readBody(res, 4 << 20);
    const digest = digestOf(bytes);
    if (reference.includes(":") && reference !== digest) {
      throw new OciError("DIGEST_MISMATCH", `${what}: registry ${this.registry} returned content with digest ${digest}`);
    }
    let mediaType = String(res.headers["content-type"] ?? "").split(";")[0].trim();
    try {
      const parsed = JSON.parse(bytes.toString("utf8")) as { mediaType?: string };
      if (parsed.mediaType) mediaType = parsed.mediaType;
    } catch {
      throw new OciError("REGISTRY_ERROR", `${what} from registry ${this.registry} is not JSON`);
    }
    this.log.debug({ repository, reference, digest, mediaType }, "fetched manifest");
    return { bytes, mediaType, digest };
  }

  /**
   * Streams a blob into the cache (temp file, digest verified, atomic rename). Retries
   * from the start after transport failures. `onBytes` reports received bytes.
   */
  async downloadBlob(repository: string, digest: string, cache: BlobCache, onBytes?: (n: number) => void): Promise<string> {
    const final = cache.blobPath(digest);
    const retries = this.opts.retries ?? 3;
    for (let attempt = 0; ; attempt++) {
      const tmp = await cache.tempPath(digest);
      let received = 0;
      try {
        const res = await this.get(`/v2/${repository}/blobs/${digest}`, `repository:${repository}:pull`, {}, `blob ${repository}@${digest}`);
        this.stats.blobDownloads++;
        const verifier = new DigestVerifier(digest);
        const out = fs.createWriteStream(tmp, { flags: "wx" });
        try {
          for await (const chunk of res.body) {
            verifier.update(chunk as Buffer);
            received += (chunk as Buffer).length;
            this.stats.blobBytes += (chunk as Buffer).length;
            onBytes?.((chunk as Buffer).length);
            if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", r));
          }
        } finally {
          await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
        }
        verifier.verify(`blob ${repository}@${digest} from registry ${this.registry}`);
        await cache.commit(tmp, final);
        return final;
      } catch (err) {
        await removeQuietly(tmp);
        if (received) onBytes?.(-received);
        if (isRetryableTransportError(err) && attempt < retries) {
          this.log.debug({ digest, attempt, err: (err as Error).message }, "blob download interrupted; retrying");
          await sleep(250 * 2 ** attempt);
          continue;
        }
        if (err instanceof OciError) throw err;
        throw new OciError("TRANSPORT", `downloading blob ${repository}@${digest} from registry ${this.registry} failed: ${(err as Error).message}`, { cause: err });
      }
    }
  }
}

/** The registry's own error text (`{"errors":[{code,message}]}`), for messages. */
async function errorDetail(res: HttpResponse): Promise<string> {
  try {
    const body = (await readBody(res, 64 << 10)).toString("utf8");
    const j = JSON.parse(body) as { errors?: Array<{ code?: string; message?: string }> };
    const e = j.errors?.[0];
    if (e) return `: ${e.code ?? ""}${e.message ? ` (${e.message})` : ""}`;
  } catch {
    // not JSON or unreadable: no detail
  }
  return "";
}
