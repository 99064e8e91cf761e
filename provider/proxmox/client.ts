/**
 * The typed Proxmox VE API client. Every request:
 *  1. is matched against the API schema of the server's version (detected once with GET
 *     /version and cached; 9.1 until known) and validated locally, so nothing invalid is
 *     sent (PveValidationError names the parameter);
 *  2. is encoded per BEHAVIOR.md 1.3 (form body for POST/PUT, query string for GET/DELETE);
 *  3. carries token or ticket credentials (auth.ts), over an agent that verifies TLS,
 *     pins a fingerprint or (opt-in) does neither (tlsAgent.ts);
 *  4. is retried by the rules in retry.ts;
 *  5. is logged once at debug level (method, path template, status, ms, bytes, retries;
 *     never headers or bodies) and counted in `metrics.recordApiCall`;
 *  6. fails with a typed error (errors.ts).
 *
 * Endpoint groups hang off the client: `client.lxc`, `client.cluster`, `client.storage`,
 * `client.tasks`.
 */
import axios, { type AxiosInstance, type AxiosResponse } from "axios";
import type * as https from "node:https";
import type { ZodTypeAny, z } from "zod";
import { getLogger, metrics, scrubSecrets, type Logger } from "../logging";
import { loadSchema, type ApiSchema, type HttpMethod, type PveVersion } from "./schema";
import { validateParams } from "./validate";
import { encodeParams, ParamEncodingError, toSearchParams, wirePath, type Params } from "./encode";
import { parseSettings, type ConfigValues, type ConnectionSettings } from "./settings";
import { createHttpsAgent } from "./tlsAgent";
import { TicketAuthenticator, TokenAuthenticator, type Authenticator, type TicketData, TICKET_RENEW_AFTER_MS } from "./auth";
import {
  errorFromResponse,
  PveApiError,
  PveConnectionError,
  PveLockedError,
  PveNotFoundError,
  PveTlsError,
  PveValidationError,
  type PveErrorInit,
} from "./errors";
import { backoffDelay, DEFAULT_RETRY_POLICY, RETRY_STATUSES, sleep, transportKind, type RetryPolicy } from "./retry";
import { parseResponse, zStr } from "./coerce";
import { z as zod } from "zod";
import { LxcApi } from "./lxc";
import { ClusterApi } from "./cluster";
import { StorageApi } from "./storage";
import { TasksApi, type WaitOptions, type TaskResult } from "./tasks";
import type { CreateContainerOptions, CreateContainerResult } from "./lxc";

export interface PveClientOptions {
  logger?: Logger;
  retry?: Partial<RetryPolicy>;
  /** Per-HTTP-request timeout. Default 60 s. */
  requestTimeoutMs?: number;
  /** Renew the ticket this long after it was obtained. Default 1 h 45 min (tickets live 2 h). */
  ticketRenewAfterMs?: number;
  /** Validate against this schema instead of detecting the server version. */
  schemaVersion?: PveVersion;
  /** Keep-alive connections (default true). */
  keepAlive?: boolean;
}

export interface RequestOptions<S extends ZodTypeAny | undefined = undefined> {
  /** zod schema for `data`; the result is typed by it. */
  schema?: S;
  /** Override the retry class (default: GET/PUT/DELETE idempotent, POST not). */
  idempotent?: boolean;
  /**
   * For non-idempotent POSTs: called after an ambiguous failure (the server may have
   * acted). Return true if the effect is there (the call counts as done and resolves to
   * null), a UPID string if the effect is a running/finished task (the call resolves to
   * it), false to send the request again.
   */
  verifyEffect?: () => Promise<boolean | string>;
  /** Lock-contention wait for this call (ms); 0 disables it. */
  lockWaitMs?: number;
  /** Per-HTTP-request timeout (ms). */
  timeoutMs?: number;
  /** Logger for this call (e.g. with URN and operation). */
  logger?: Logger;
  /** Internal: no authentication (login). */
  noAuth?: boolean;
  /** Internal: do not wait for version detection. */
  noVersionDetect?: boolean;
  /** A body already encoded; for the upload path. */
  skipValidation?: boolean;
}

type Result<S> = S extends ZodTypeAny ? z.output<S> : unknown;

export interface VersionInfo {
  version: string;
  release: string;
  repoid?: string;
  major: number;
  minor: number;
}

/** State shared by a client and its `withLogger` views. */
interface SharedState {
  settings: ConnectionSettings;
  http: AxiosInstance;
  agent: https.Agent;
  auth: Authenticator;
  policy: RetryPolicy;
  requestTimeoutMs: number;
  schemaVersion?: PveVersion;
  version?: VersionInfo;
  versionPromise?: Promise<VersionInfo>;
  /** Server clock minus local clock, from the last `Date` response header. */
  clockOffsetMs: number;
}

const VersionSchema = zod
  .object({ version: zStr, release: zStr.optional(), repoid: zStr.optional() })
  .passthrough();

export class PveClient {
  private constructor(
    private readonly state: SharedState,
    readonly log: Logger,
  ) {}

  /** Build a client from parsed settings. */
  static fromSettings(settings: ConnectionSettings, opts: PveClientOptions = {}): PveClient {
    const log = (opts.logger ?? getLogger()).child({ component: "pve-client" });
    const agent = createHttpsAgent(settings.tls, log, { keepAlive: opts.keepAlive });
    const http = axios.create({
      baseURL: settings.baseUrl,
      httpsAgent: agent,
      // No redirects: follow-redirects would buffer request bodies (uploads) for replay.
      maxRedirects: 0,
      maxBodyLength: Infinity,
      maxContentLength: 512 * 1024 * 1024,
      proxy: false,
      responseType: "text",
      transformResponse: [(d) => d],
      validateStatus: () => true,
      decompress: true,
    });
    const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...(opts.retry ?? {}) };
    const state = { settings, http, agent, policy, requestTimeoutMs: opts.requestTimeoutMs ?? 60_000, schemaVersion: opts.schemaVersion, clockOffsetMs: 0 } as SharedState;
    const client = new PveClient(state, log);
    state.auth =
      settings.auth.kind === "token"
        ? new TokenAuthenticator(settings.auth)
        : new TicketAuthenticator(
            settings.auth,
            (params) =>
              client.request("POST", "/access/ticket", params, { noAuth: true, noVersionDetect: true, lockWaitMs: 0 }) as Promise<TicketData>,
            opts.ticketRenewAfterMs ?? TICKET_RENEW_AFTER_MS,
          );
    return client;
  }

  /** Parse `proxmox:*` config values (with env fallback) and build a client. */
  static connect(config: ConfigValues = {}, opts: PveClientOptions = {}): PveClient {
    return PveClient.fromSettings(parseSettings(config), opts);
  }

  /** The same client (shared connection, auth, caches) logging through `logger`. */
  withLogger(logger: Logger): PveClient {
    return new PveClient(this.state, logger);
  }

  get settings(): ConnectionSettings {
    return this.state.settings;
  }
  get principal() {
    return this.state.auth.principal;
  }
  get retryPolicy(): RetryPolicy {
    return this.state.policy;
  }
  /** Internal: for the upload path, which streams its own body. */
  get internals() {
    return { http: this.state.http, auth: this.state.auth, agent: this.state.agent, settings: this.state.settings };
  }

  get lxc(): LxcApi {
    return new LxcApi(this);
  }
  get cluster(): ClusterApi {
    return new ClusterApi(this);
  }
  get storage(): StorageApi {
    return new StorageApi(this);
  }
  get tasks(): TasksApi {
    return new TasksApi(this);
  }

  /**
   * The server's clock (ms), estimated from `Date` headers (1 s resolution). Used to
   * look for tasks this client started, whatever the local clock says.
   */
  serverNow(): number {
    return Date.now() + this.state.clockOffsetMs;
  }

  /** Close idle keep-alive connections. */
  close(): void {
    this.state.agent.destroy();
  }

  /** GET /version, cached for the client's lifetime. */
  async version(): Promise<VersionInfo> {
    if (this.state.version) return this.state.version;
    if (!this.state.versionPromise) {
      this.state.versionPromise = (async () => {
        const v = await this.request("GET", "/version", undefined, { schema: VersionSchema, noVersionDetect: true });
        const release = v.release ?? v.version.split(".").slice(0, 2).join(".");
        const [major, minor] = release.split(".").map((n) => Number(n));
        const info: VersionInfo = { version: v.version, release, repoid: v.repoid, major, minor };
        this.state.version = info;
        return info;
      })().finally(() => {
        this.state.versionPromise = undefined;
      });
    }
    return this.state.versionPromise;
  }

  /** The schema version validation uses (8.x servers → 8.4, else 9.1). */
  async schemaVersion(): Promise<PveVersion> {
    if (this.state.schemaVersion) return this.state.schemaVersion;
    const v = await this.version();
    this.state.schemaVersion = v.major === 8 ? "8.4" : "9.1";
    return this.state.schemaVersion;
  }

  get<S extends ZodTypeAny | undefined = undefined>(path: string, params?: Params, opts?: RequestOptions<S>): Promise<Result<S>> {
    return this.request("GET", path, params, opts);
  }
  post<S extends ZodTypeAny | undefined = undefined>(path: string, params?: Params, opts?: RequestOptions<S>): Promise<Result<S>> {
    return this.request("POST", path, params, opts);
  }
  put<S extends ZodTypeAny | undefined = undefined>(path: string, params?: Params, opts?: RequestOptions<S>): Promise<Result<S>> {
    return this.request("PUT", path, params, opts);
  }
  delete<S extends ZodTypeAny | undefined = undefined>(path: string, params?: Params, opts?: RequestOptions<S>): Promise<Result<S>> {
    return this.request("DELETE", path, params, opts);
  }

  /** Wait for a worker task (see tasks.ts). */
  waitForTask(upid: string, opts?: WaitOptions): Promise<TaskResult> {
    return this.tasks.wait(upid, opts);
  }

  /** Create a CT, allocating a free VMID when none is given (see lxc.ts). */
  createContainer(opts: CreateContainerOptions): Promise<CreateContainerResult> {
    return this.lxc.createContainer(opts);
  }

  /**
   * Match and validate a request against the schema. Returns the template and the
   * encoded parameters. Throws PveValidationError.
   */
  async prepare(method: HttpMethod, path: string, params: Params | undefined, opts: { noVersionDetect?: boolean; skipValidation?: boolean } = {}) {
    const version: PveVersion = this.state.schemaVersion ?? (opts.noVersionDetect ? "9.1" : await this.schemaVersion());
    const schema: ApiSchema = loadSchema(version);
    const match = schema.find(method, path);
    if (!match) {
      throw new PveValidationError(
        { method, endpoint: path, path, errors: { path: `PVE ${version} has no ${method} ${path}` } },
        "This endpoint does not exist in the API of the server's PVE version; upgrade PVE or avoid the feature.",
      );
    }
    const props = match.info.parameters?.properties;
    let encoded;
    try {
      encoded = encodeParams(params, props);
    } catch (e) {
      if (e instanceof ParamEncodingError) {
        throw new PveValidationError({ method, endpoint: match.template, path, errors: { [e.param]: e.message } });
      }
      throw e;
    }
    if (!opts.skipValidation) {
      // Path parameters are part of PVE's parameter set; a body key that repeats one is
      // a conflict, which PVE reports as such (BEHAVIOR.md 1.2).
      for (const [k, v] of Object.entries(match.pathParams)) {
        if (encoded[k] !== undefined && encoded[k] !== v) {
          throw new PveValidationError({ method, endpoint: match.template, path, errors: { [k]: "duplicate parameter (already defined in URI) with conflicting values!" } });
        }
      }
      const errors = validateParams(props, { ...encoded, ...match.pathParams }, Boolean(match.info.parameters?.additionalProperties));
      if (errors) throw new PveValidationError({ method, endpoint: match.template, path, errors });
    }
    for (const k of Object.keys(match.pathParams)) delete encoded[k];
    return { template: match.template, encoded, version };
  }

  /** The request core. */
  async request<S extends ZodTypeAny | undefined = undefined>(
    method: HttpMethod,
    path: string,
    params?: Params,
    opts: RequestOptions<S> = {},
  ): Promise<Result<S>> {
    const log = opts.logger ?? this.log;
    const started = Date.now();
    const { template, encoded } = await this.prepare(method, path, params, opts);
    const idempotent = opts.idempotent ?? method !== "POST";
    const lockWaitMs = opts.lockWaitMs ?? this.state.policy.lockWaitMs;
    const policy = this.state.policy;
    const qs = toSearchParams(encoded).toString();
    const bodyInUrl = method === "GET" || method === "DELETE";
    const url = wirePath(path) + (bodyInUrl && qs ? `?${qs}` : "");
    const body = bodyInUrl ? undefined : qs;
    const base: Omit<PveErrorInit, "status"> = { method, endpoint: template, path };

    let retries = 0;
    let transportAttempts = 0;
    let refusedAttempts = 0;
    let reauthed = false;
    let ambiguous = false;
    let lastStatus: number | string = "error";
    let bytesIn = 0;
    let bytesOut = 0;

    const record = (status: number | string, extra: Record<string, unknown> = {}) => {
      const durationMs = Date.now() - started;
      metrics.recordApiCall({ endpoint: template, method, status, durationMs, bytesIn, bytesOut, retries });
      log.debug({ method, endpoint: template, status, ms: durationMs, bytesIn, bytesOut, retries, ...extra }, "pve api call");
    };
    const retry = async (why: string, delay: number) => {
      retries++;
      log.debug({ method, endpoint: template, attempt: retries, delayMs: Math.round(delay), why }, "pve api retry");
      await sleep(delay);
    };
    /** After an ambiguous failure of a non-idempotent call: did it act? */
    const checkEffect = async (): Promise<{ done: true; value: unknown } | { done: false }> => {
      if (!opts.verifyEffect) return { done: false };
      let r: boolean | string;
      try {
        r = await opts.verifyEffect();
      } catch (e) {
        if (e instanceof PveConnectionError) {
          record("unverified");
          throw new PveConnectionError(
            base,
            e.code,
            `the answer to ${method} ${path} was lost and checking whether it took effect failed too (${e.message}). ` +
              "Check the object's state on the server before repeating the operation.",
          );
        }
        throw e;
      }
      if (r === true) return { done: true, value: null };
      if (typeof r === "string") return { done: true, value: r };
      return { done: false };
    };

    for (;;) {
      let res: AxiosResponse<string>;
      try {
        const headers: Record<string, string> = opts.noAuth ? {} : await this.state.auth.headers(method);
        if (body !== undefined) {
          headers["Content-Type"] = "application/x-www-form-urlencoded";
          bytesOut += Buffer.byteLength(body);
        }
        res = await this.state.http.request<string>({
          method,
          url,
          data: body,
          headers,
          timeout: opts.timeoutMs ?? this.state.requestTimeoutMs,
        });
      } catch (e) {
        if (e instanceof PveApiError) throw e; // from a login inside headers()
        const err = e as { code?: string; message?: string; cause?: { code?: string } };
        const code = err.code ?? err.cause?.code;
        const kind = transportKind({ code, message: err.message });
        const detail = scrubSecrets(`${code ?? "error"}: ${err.message ?? String(e)}`);
        if (kind === "tls") {
          record("tls-error");
          throw new PveTlsError({ ...base, status: 0, pveMessage: detail }, `TLS check failed for ${method} ${path}: ${scrubSecrets(err.message ?? "")}`);
        }
        if (kind === "not-sent" && refusedAttempts < policy.maxRefusedRetries) {
          refusedAttempts++;
          await retry(detail, backoffDelay(refusedAttempts, policy.baseDelayMs * 2, policy.maxDelayMs));
          continue;
        }
        if (kind === "ambiguous" && transportAttempts < policy.maxRetries) {
          transportAttempts++;
          ambiguous = true;
          if (idempotent) {
            await retry(detail, backoffDelay(transportAttempts, policy.baseDelayMs, policy.maxDelayMs));
            continue;
          }
          if (opts.verifyEffect) {
            await sleep(backoffDelay(transportAttempts, policy.baseDelayMs, policy.maxDelayMs));
            const eff = await checkEffect();
            if (eff.done) {
              record("verified", { verifiedAfter: detail });
              return eff.value as Result<S>;
            }
            await retry(`${detail} (verified: no effect)`, 0);
            continue;
          }
        }
        record(code ?? "error");
        const hint =
          kind === "ambiguous" && !idempotent
            ? " The request may or may not have taken effect on the server; check its state before repeating it."
            : kind === "not-sent"
              ? ` Check that proxmox:endpoint (${this.state.settings.baseUrl}) is reachable.`
              : "";
        throw new PveConnectionError(base, code, `${detail}${retries ? ` (after ${retries} retries)` : ""}.${hint}`);
      }

      lastStatus = res.status;
      const date = res.headers?.date;
      if (typeof date === "string") {
        const t = Date.parse(date);
        if (!Number.isNaN(t)) this.state.clockOffsetMs = t - Date.now();
      }
      const text = typeof res.data === "string" ? res.data : "";
      bytesIn += Buffer.byteLength(text);
      let json: { data?: unknown; message?: string; errors?: Record<string, string> } | undefined;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
      }

      if (res.status >= 200 && res.status < 300) {
        record(res.status);
        const data = json?.data ?? null;
        if (opts.schema) return parseResponse(opts.schema, data, `${method} ${template}`) as Result<S>;
        return data as Result<S>;
      }

      const init: PveErrorInit = {
        ...base,
        status: res.status,
        reason: res.statusText,
        pveMessage: json?.message ?? (text && !json ? text.slice(0, 500) : res.statusText),
        errors: json?.errors ?? undefined,
      };

      if (res.status === 401 && !opts.noAuth && !reauthed && (await this.reauth())) {
        reauthed = true;
        await retry("401: fresh login", 0);
        continue;
      }

      if (RETRY_STATUSES.has(res.status) && transportAttempts < policy.maxRetries) {
        transportAttempts++;
        ambiguous = true;
        if (idempotent) {
          await retry(`HTTP ${res.status}`, backoffDelay(transportAttempts, policy.baseDelayMs, policy.maxDelayMs));
          continue;
        }
        if (opts.verifyEffect) {
          await sleep(backoffDelay(transportAttempts, policy.baseDelayMs, policy.maxDelayMs));
          const eff = await checkEffect();
          if (eff.done) {
            record("verified", { verifiedAfter: res.status });
            return eff.value as Result<S>;
          }
          await retry(`HTTP ${res.status} (verified: no effect)`, 0);
          continue;
        }
      }

      const err = errorFromResponse(init, this.state.auth.principal);
      if (err instanceof PveLockedError && method !== "GET" && Date.now() - started < lockWaitMs) {
        const delay = Math.min(backoffDelay(retries + 1, 250, 3000), Math.max(0, lockWaitMs - (Date.now() - started)));
        await retry(`locked: ${err.pveMessage}`, delay);
        continue;
      }
      if (err instanceof PveLockedError && method !== "GET" && lockWaitMs > 0) {
        record(res.status);
        throw new PveLockedError(init, `Still locked after waiting ${Math.round(lockWaitMs / 1000)} s.`);
      }
      if (method === "DELETE" && ambiguous && err instanceof PveNotFoundError) {
        // An earlier attempt whose answer was lost already deleted it.
        record("verified", { verifiedAfter: "gone" });
        return null as Result<S>;
      }
      record(lastStatus);
      throw err;
    }
  }

  private async reauth(): Promise<boolean> {
    try {
      return await this.state.auth.refreshAfter401();
    } catch (e) {
      if (e instanceof PveApiError) throw e;
      return false;
    }
  }
}

/** Convenience: parse config values and build a client. */
export function connect(config: ConfigValues = {}, opts: PveClientOptions = {}): PveClient {
  return PveClient.connect(config, opts);
}
