/**
 * The transport: everything a request needs that is not about one API area. It owns the
 * connection (axios over a TLS-checking agent, tlsAgent.ts), the credentials (auth.ts),
 * the server's version and clock, and runs each request through transport-call.ts:
 *  1. matched against the API schema of the server's version (detected once with GET
 *     /version; 9.1 until known) and validated locally, so nothing invalid is sent;
 *  2. encoded per BEHAVIOR.md 1.3 (form body for POST/PUT, query string for GET/DELETE);
 *  3. sent with token or ticket credentials;
 *  4. retried by the rules in retry.ts, asking the caller's `verifyEffect` before resending
 *     anything that may have acted;
 *  5. logged once at debug level and counted in `metrics.recordApiCall`;
 *  6. failing with a typed error (errors.ts).
 *
 * Dependencies point one way: the API areas (lxc.ts, storage.ts, cluster.ts, tasks.ts) use
 * the transport; the transport knows none of them. What a retry must check about an area's
 * objects (a task, a CT, a volume) comes in as the `verifyEffect` callback.
 */
import axios, { type AxiosInstance } from "axios";
import type * as https from "node:https";
import type { ZodTypeAny, z } from "zod";
import { z as zod } from "zod";
import type { Logger } from "../logging";
import { loadSchema, type EndpointMatch, type HttpMethod, type PveVersion } from "./schema";
import { validateParams } from "./validate";
import { encodeParams, ParamEncodingError, type EncodedParams, type Params } from "./encode";
import type { ConnectionSettings } from "./settings";
import { createHttpsAgent } from "./tlsAgent";
import { createAuthenticator, TICKET_RENEW_AFTER_MS, type Authenticator, type TicketData } from "./auth";
import { PveValidationError } from "./errors";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry";
import { zStr } from "./coerce";
import { runCall } from "./transport-call";

export interface TransportOptions {
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

/** What a caller may answer after an ambiguous failure: see `RequestOptions.verifyEffect`. */
export type EffectVerifier = () => Promise<boolean | string>;

export interface RequestOptions<S extends ZodTypeAny | undefined = undefined> {
  /** zod schema for `data`; the result is typed by it. */
  schema?: S;
  /** Override the retry class (default: GET/PUT/DELETE idempotent, POST not). */
  idempotent?: boolean;
  /**
   * Called after a failure where the server may have acted (lost answer on a non-idempotent
   * call) or said it did nothing (worker-start failure, any method) before sending again.
   * Return true if the effect is there (the call counts as done and resolves to null), a
   * UPID string if the effect is a running/finished task (the call resolves to it), false
   * to send the request again.
   */
  verifyEffect?: EffectVerifier;
  /** Lock-contention wait for this call (ms); 0 disables it. */
  lockWaitMs?: number;
  /** How long worker-start failures are retried (ms; the operation's timeout). Default: the policy's. */
  retryBudgetMs?: number;
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

export type Result<S> = S extends ZodTypeAny ? z.output<S> : unknown;

export interface VersionInfo {
  version: string;
  release: string;
  repoid?: string;
  major: number;
  minor: number;
}

/** State shared by a transport and its `withLogger` views. */
export interface TransportState {
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

/** A request matched against the schema and encoded, ready to send. */
export interface PreparedRequest {
  template: string;
  encoded: EncodedParams;
  version: PveVersion;
}

function createHttp(settings: ConnectionSettings, agent: https.Agent): AxiosInstance {
  return axios.create({
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
}

const VersionSchema = zod.object({ version: zStr, release: zStr.optional(), repoid: zStr.optional() }).passthrough();


export class PveTransport {
  protected constructor(
    protected readonly state: TransportState,
    readonly log: Logger,
  ) {}

  /** Connection, credentials and policy for `settings`; the login goes through `this`'s own request. */
  protected static createState(settings: ConnectionSettings, opts: TransportOptions, log: Logger, login: () => PveTransport): TransportState {
    const agent = createHttpsAgent(settings.tls, log, { keepAlive: opts.keepAlive });
    const post = (params: Record<string, string>) =>
      login().request("POST", "/access/ticket", params, { noAuth: true, noVersionDetect: true, lockWaitMs: 0 }) as Promise<TicketData>;
    return {
      settings,
      http: createHttp(settings, agent),
      agent,
      auth: createAuthenticator(settings.auth, post, opts.ticketRenewAfterMs ?? TICKET_RENEW_AFTER_MS),
      policy: { ...DEFAULT_RETRY_POLICY, ...(opts.retry ?? {}) },
      requestTimeoutMs: opts.requestTimeoutMs ?? 60_000,
      schemaVersion: opts.schemaVersion,
      clockOffsetMs: 0,
    };
  }

  /** The same transport (shared connection, auth, caches) logging through `logger`. */
  withLogger(logger: Logger): this {
    const Ctor = this.constructor as new (state: TransportState, log: Logger) => this;
    return new Ctor(this.state, logger);
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

  /** GET /version, cached for the transport's lifetime (one request however many ask at once). */
  async version(): Promise<VersionInfo> {
    if (this.state.version) return this.state.version;
    this.state.versionPromise ??= this.fetchVersion().finally(() => {
      this.state.versionPromise = undefined;
    });
    return this.state.versionPromise;
  }

  private async fetchVersion(): Promise<VersionInfo> {
    const v = await this.request("GET", "/version", undefined, { schema: VersionSchema, noVersionDetect: true });
    const release = v.release ?? v.version.split(".").slice(0, 2).join(".");
    const [major, minor] = release.split(".").map((n) => Number(n));
    this.state.version = { version: v.version, release, repoid: v.repoid, major, minor };
    return this.state.version;
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

  /**
   * Match and validate a request against the schema. Returns the template and the
   * encoded parameters. Throws PveValidationError.
   */
  async prepare(method: HttpMethod, path: string, params: Params | undefined, opts: { noVersionDetect?: boolean; skipValidation?: boolean } = {}): Promise<PreparedRequest> {
    const version: PveVersion = this.state.schemaVersion ?? (opts.noVersionDetect ? "9.1" : await this.schemaVersion());
    const match = loadSchema(version).find(method, path);
    if (!match) {
      throw new PveValidationError(
        { method, endpoint: path, path, errors: { path: `PVE ${version} has no ${method} ${path}` } },
        "This endpoint does not exist in the API of the server's PVE version; upgrade PVE or avoid the feature.",
      );
    }
    const base = { method, endpoint: match.template, path };
    let encoded: EncodedParams;
    try {
      encoded = encodeParams(params, match.info.parameters?.properties);
    } catch (e) {
      if (e instanceof ParamEncodingError) throw new PveValidationError({ ...base, errors: { [e.param]: e.message } });
      throw e;
    }
    if (!opts.skipValidation) checkParams(base, encoded, match);
    for (const k of Object.keys(match.pathParams)) delete encoded[k];
    return { template: match.template, encoded, version };
  }

  /** One API call: prepare, then send and retry (transport-call.ts). */
  async request<S extends ZodTypeAny | undefined = undefined>(method: HttpMethod, path: string, params?: Params, opts: RequestOptions<S> = {}): Promise<Result<S>> {
    const started = Date.now();
    const prepared = await this.prepare(method, path, params, opts);
    return runCall<S>(this.state, { method, path, prepared, opts, log: opts.logger ?? this.log, started });
  }
}

type SchemaMatch = EndpointMatch;

/** Local parameter check against the schema (the same rules as PVE's, BEHAVIOR.md 1.2). */
function checkParams(base: { method: string; endpoint: string; path: string }, encoded: EncodedParams, match: SchemaMatch): void {
  // Path parameters are part of PVE's parameter set; a body key that repeats one is a
  // conflict, which PVE reports as such.
  for (const [k, v] of Object.entries(match.pathParams)) {
    if (encoded[k] !== undefined && encoded[k] !== v) {
      throw new PveValidationError({ ...base, errors: { [k]: "duplicate parameter (already defined in URI) with conflicting values!" } });
    }
  }
  const props = match.info.parameters?.properties;
  const errors = validateParams(props, { ...encoded, ...match.pathParams }, Boolean(match.info.parameters?.additionalProperties));
  if (errors) throw new PveValidationError({ ...base, errors });
}
