/**
 * One API call from first send to result: the HTTP exchange, and what to do with each
 * outcome by the rules of retry.ts — send again, ask the caller's `verifyEffect` first,
 * log in again, wait out a lock, or fail with the typed error of errors.ts. Counted and
 * logged once per call (method, path template, status, ms, bytes, retries; never headers
 * or bodies).
 */
import type { ZodTypeAny } from "zod";
import { metrics, scrubSecrets, type Logger } from "../logging";
import type { HttpMethod } from "./schema";
import type { AxiosResponse } from "axios";
import { toSearchParams, wirePath } from "./encode";
import {
  connectionFailure,
  errorFromResponse,
  initFromResponse,
  PveApiError,
  PveConnectionError,
  PveLockedError,
  PveNotFoundError,
  PveTlsError,
  unverifiedFailure,
  type PveErrorInit,
} from "./errors";
import { backoffDelay, RETRY_STATUSES, sleep, transportKind, workerNotStarted } from "./retry";
import { parseResponse } from "./coerce";
import type { PreparedRequest, RequestOptions, Result, TransportState } from "./transport";

export interface CallSpec<S extends ZodTypeAny | undefined> {
  method: HttpMethod;
  path: string;
  prepared: PreparedRequest;
  opts: RequestOptions<S>;
  log: Logger;
  started: number;
}

/** What one exchange gave: an HTTP answer, or a failure without one. */
type Outcome =
  | { kind: "response"; res: AxiosResponse<string>; text: string; json?: { data?: unknown; message?: string; errors?: Record<string, string> } }
  | { kind: "no-response"; code?: string; transport: ReturnType<typeof transportKind>; detail: string; message: string };

/** Either the call's result, or "send again" (the delay has already been waited). */
type Step = { done: true; value: unknown } | { done: false };
const AGAIN: Step = { done: false };

export function runCall<S extends ZodTypeAny | undefined>(state: TransportState, spec: CallSpec<S>): Promise<Result<S>> {
  return new Call(state, spec).run() as Promise<Result<S>>;
}

class Call<S extends ZodTypeAny | undefined> {
  private readonly url: string;
  private readonly body?: string;
  private readonly base: Omit<PveErrorInit, "status">;
  private readonly idempotent: boolean;
  private retries = 0;
  private transportAttempts = 0;
  private refusedAttempts = 0;
  private workerAttempts = 0;
  private reauthed = false;
  /** An earlier attempt may have acted (its answer was lost). */
  private ambiguous = false;
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(
    private readonly state: TransportState,
    private readonly spec: CallSpec<S>,
  ) {
    const { method, path, prepared, opts } = spec;
    const qs = toSearchParams(prepared.encoded).toString();
    const bodyInUrl = method === "GET" || method === "DELETE";
    this.url = wirePath(path) + (bodyInUrl && qs ? `?${qs}` : "");
    this.body = bodyInUrl ? undefined : qs;
    this.base = { method, endpoint: prepared.template, path };
    this.idempotent = opts.idempotent ?? method !== "POST";
  }

  async run(): Promise<unknown> {
    for (;;) {
      const outcome = await this.exchange();
      const step = outcome.kind === "response" ? await this.onResponse(outcome) : await this.onNoResponse(outcome);
      if (step.done) return step.value;
    }
  }

  /** Send once. Errors other than the transport's (a failed login inside headers()) propagate. */
  private async exchange(): Promise<Outcome> {
    let res: AxiosResponse<string>;
    try {
      const headers: Record<string, string> = this.spec.opts.noAuth ? {} : await this.state.auth.headers(this.spec.method);
      if (this.body !== undefined) {
        headers["Content-Type"] = "application/x-www-form-urlencoded";
        this.bytesOut += Buffer.byteLength(this.body);
      }
      const timeout = this.spec.opts.timeoutMs ?? this.state.requestTimeoutMs;
      res = await this.state.http.request<string>({ method: this.spec.method, url: this.url, data: this.body, headers, timeout });
    } catch (e) {
      if (e instanceof PveApiError) throw e;
      const err = e as { code?: string; message?: string; cause?: { code?: string } };
      const code = err.code ?? err.cause?.code;
      const message = err.message ?? String(e);
      return { kind: "no-response", code, transport: transportKind({ code, message }), detail: scrubSecrets(`${code ?? "error"}: ${message}`), message };
    }
    this.noteServerClock(res.headers?.date);
    const text = typeof res.data === "string" ? res.data : "";
    this.bytesIn += Buffer.byteLength(text);
    return { kind: "response", res, text, json: parseJson(text) };
  }

  private noteServerClock(date: unknown): void {
    if (typeof date !== "string") return;
    const t = Date.parse(date);
    if (!Number.isNaN(t)) this.state.clockOffsetMs = t - Date.now();
  }

  // ---- failures without an answer ---------------------------------------------------

  private async onNoResponse(o: Extract<Outcome, { kind: "no-response" }>): Promise<Step> {
    const policy = this.state.policy;
    if (o.transport === "tls") {
      this.record("tls-error");
      throw new PveTlsError({ ...this.base, status: 0, pveMessage: o.detail }, `TLS check failed for ${this.spec.method} ${this.spec.path}: ${scrubSecrets(o.message)}`);
    }
    if (o.transport === "not-sent" && this.refusedAttempts < policy.maxRefusedRetries) {
      this.refusedAttempts++;
      await this.retry(o.detail, backoffDelay(this.refusedAttempts, policy.baseDelayMs * 2, policy.maxDelayMs));
      return AGAIN;
    }
    if (o.transport === "ambiguous" && this.transportAttempts < policy.maxRetries) {
      const step = await this.afterAmbiguous(o.detail);
      if (step) return step;
    }
    this.record(o.code ?? "error");
    throw connectionFailure(this.base, { ...o, kind: o.transport, retries: this.retries, idempotent: this.idempotent, baseUrl: this.state.settings.baseUrl });
  }

  /**
   * The server may have acted: idempotent calls are sent again; others only after their
   * verifier says the effect is not there. Undefined when neither applies (then fail).
   */
  private async afterAmbiguous(why: string): Promise<Step | undefined> {
    this.transportAttempts++;
    this.ambiguous = true;
    const delay = backoffDelay(this.transportAttempts, this.state.policy.baseDelayMs, this.state.policy.maxDelayMs);
    if (this.idempotent) {
      await this.retry(why, delay);
      return AGAIN;
    }
    if (!this.spec.opts.verifyEffect) return undefined;
    await sleep(delay);
    return this.verifyOrRetry(why, 0);
  }

  /** Ask the caller's verifier; done if the effect is there, else send again after `delay`. */
  private async verifyOrRetry(why: string | number, delay: number, warn = false): Promise<Step> {
    const effect = await this.checkEffect();
    if (effect.done) {
      this.record("verified", { verifiedAfter: why });
      return effect;
    }
    await this.retry(`${why} (verified: no effect)`, delay, warn);
    return AGAIN;
  }

  private async checkEffect(): Promise<Step> {
    const verify = this.spec.opts.verifyEffect;
    if (!verify) return AGAIN;
    let r: boolean | string;
    try {
      r = await verify();
    } catch (e) {
      if (!(e instanceof PveConnectionError)) throw e;
      this.record("unverified");
      throw unverifiedFailure(this.base, e);
    }
    if (r === true) return { done: true, value: null };
    if (typeof r === "string") return { done: true, value: r };
    return AGAIN;
  }

  // ---- answers ----------------------------------------------------------------------

  private async onResponse(o: Extract<Outcome, { kind: "response" }>): Promise<Step> {
    const { res } = o;
    if (res.status >= 200 && res.status < 300) return { done: true, value: this.success(res.status, o.json?.data ?? null) };
    const init = initFromResponse(this.base, res, o.text, o.json);
    if (res.status === 401 && !this.spec.opts.noAuth && !this.reauthed && (await this.reauth())) {
      this.reauthed = true;
      await this.retry("401: fresh login", 0);
      return AGAIN;
    }
    if (RETRY_STATUSES.has(res.status) && this.transportAttempts < this.state.policy.maxRetries) {
      const step = await this.afterAmbiguous(`HTTP ${res.status}`);
      if (step) return step;
    }
    if (workerNotStarted(res.status, init.pveMessage) && this.withinWorkerBudget()) return this.afterWorkerNotStarted(init);
    return this.onError(init);
  }

  private success(status: number, data: unknown): unknown {
    this.record(status);
    const { schema } = this.spec.opts;
    return schema ? parseResponse(schema, data, `${this.spec.method} ${this.base.endpoint}`) : data;
  }

  /** Time left for worker-start retries: the call's budget (the operation's timeout) or the policy's. */
  private withinWorkerBudget(): boolean {
    const budget = this.spec.opts.retryBudgetMs ?? this.state.policy.workerStartWaitMs;
    return Date.now() - this.spec.started < budget;
  }

  /**
   * PVE could not start the task worker and did nothing (retry.ts). Check the effect
   * anyway — a task, the CT, the volume — then send again with backoff, logged at warn.
   */
  private async afterWorkerNotStarted(init: PveErrorInit): Promise<Step> {
    this.workerAttempts++;
    const delay = backoffDelay(this.workerAttempts, Math.max(250, this.state.policy.baseDelayMs), this.state.policy.maxDelayMs);
    const why = `HTTP ${init.status}: ${(init.pveMessage ?? "").trim()}`;
    if (this.spec.opts.verifyEffect) return this.verifyOrRetry(why, delay, true);
    await this.retry(why, delay, true);
    return AGAIN;
  }

  /** A final error answer, after waiting out lock contention. */
  private async onError(init: PveErrorInit): Promise<Step> {
    const err = errorFromResponse(init, this.state.auth.principal);
    const { method } = this.spec;
    const lockWaitMs = this.spec.opts.lockWaitMs ?? this.state.policy.lockWaitMs;
    const waited = Date.now() - this.spec.started;
    if (err instanceof PveLockedError && method !== "GET" && waited < lockWaitMs) {
      await this.retry(`locked: ${err.pveMessage}`, Math.min(backoffDelay(this.retries + 1, 250, 3000), Math.max(0, lockWaitMs - waited)));
      return AGAIN;
    }
    if (err instanceof PveLockedError && method !== "GET" && lockWaitMs > 0) {
      this.record(init.status);
      throw new PveLockedError(init, `Still locked after waiting ${Math.round(lockWaitMs / 1000)} s.`);
    }
    if (method === "DELETE" && this.ambiguous && err instanceof PveNotFoundError) {
      // An earlier attempt whose answer was lost already deleted it.
      this.record("verified", { verifiedAfter: "gone" });
      return { done: true, value: null };
    }
    this.record(init.status);
    throw err;
  }

  private async reauth(): Promise<boolean> {
    try {
      return await this.state.auth.refreshAfter401();
    } catch (e) {
      if (e instanceof PveApiError) throw e;
      return false;
    }
  }

  // ---- bookkeeping ------------------------------------------------------------------

  private async retry(why: string, delay: number, warn = false): Promise<void> {
    this.retries++;
    const fields = { method: this.spec.method, endpoint: this.base.endpoint, attempt: this.retries, delayMs: Math.round(delay), why };
    if (warn) this.spec.log.warn(fields, `Proxmox VE did not start the task for ${this.spec.method} ${this.spec.path}; sending it again`);
    else this.spec.log.debug(fields, "pve api retry");
    await sleep(delay);
  }

  private record(status: number | string, extra: Record<string, unknown> = {}): void {
    const durationMs = Date.now() - this.spec.started;
    const { method } = this.spec;
    const { bytesIn, bytesOut, retries } = this;
    metrics.recordApiCall({ endpoint: this.base.endpoint, method, status, durationMs, bytesIn, bytesOut, retries });
    this.spec.log.debug({ method, endpoint: this.base.endpoint, status, ms: durationMs, bytesIn, bytesOut, retries, ...extra }, "pve api call");
  }
}

function parseJson(text: string): Extract<Outcome, { kind: "response" }>["json"] {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
