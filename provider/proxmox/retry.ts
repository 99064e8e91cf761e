/**
 * Retry rules of the client, in one place. Written as a small own loop in transport-call.ts
 * rather than with axios-retry because the rules depend on things axios-retry cannot see:
 * whether a POST may already have acted (then `verifyEffect` decides, it is never blindly
 * repeated), PVE's lock-contention messages (a 500 whose text says nothing happened and
 * that is worth waiting out for up to `lockWaitMs`), a single re-login on 401 for ticket
 * auth, and one log line/metric per logical call with its retry count.
 *
 * - Connection failures where nothing reached the server (ECONNREFUSED, DNS, unreachable):
 *   any method, a few attempts (the daemon may be restarting — "briefly").
 * - Ambiguous transport failures (reset, EPIPE, socket hang up, timeout) and gateway
 *   statuses 502/503/504 and 59x pseudo-statuses (BEHAVIOR.md 1.2, proxied requests):
 *   GET, PUT and DELETE are retried (PUT sets values, so repeating it has the same effect;
 *   a DELETE that finds the object gone after an ambiguous first try counts as done);
 *   POST only after its `verifyEffect` says the effect did not happen.
 * - Lock contention (`CT is locked (…)`, `can't lock file … got timeout`, BEHAVIOR.md
 *   4.12) on writes: the server checked before acting, so a retry is always safe; retried
 *   until `lockWaitMs` (default 60 s) has passed.
 * - Worker-start failures (`got no worker upid - start worker failed`, `unable to fork
 *   worker`, … — pve-common RESTEnvironment::fork_worker): PVE forked a task worker, never
 *   heard back from it and killed it before it ran, so nothing was done. Any method is sent
 *   again with backoff until the call's retry budget (the operation's timeout, else
 *   `workerStartWaitMs`) is spent — after the call's `verifyEffect`, if it has one, says the
 *   effect is not there. Each such retry is logged at warn level.
 */

export const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);
export const AMBIGUOUS_CODES = new Set(["ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNABORTED", "ERR_SOCKET_CONNECTION_TIMEOUT", "UND_ERR_SOCKET", "ERR_STREAM_PREMATURE_CLOSE"]);
export const RETRY_STATUSES = new Set([502, 503, 504, 595, 596, 597, 598, 599]);

export interface RetryPolicy {
  /** Attempts after the first for transport/gateway failures. */
  maxRetries: number;
  /** Attempts after the first when the server refused the connection. */
  maxRefusedRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** How long writes wait out lock contention. */
  lockWaitMs: number;
  /** How long a call whose worker failed to start is sent again (unless the call sets a budget). */
  workerStartWaitMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxRetries: 4,
  maxRefusedRetries: 4,
  baseDelayMs: 100,
  maxDelayMs: 5000,
  lockWaitMs: 60_000,
  workerStartWaitMs: 5 * 60_000,
};

/**
 * PVE's answers when it could not start a task worker (pve-common RESTEnvironment.pm
 * fork_worker; HTTP 500, the text as status reason and `message`). The worker never ran:
 * the server demonstrably did nothing, so the call may be sent again.
 */
export const WORKER_NOT_STARTED_RES = [
  /got no worker upid - start worker failed/,
  /starting worker failed: /,
  /got strange worker upid .* - start worker failed/,
  /unable to fork worker - /,
];

/** Is this HTTP answer a worker-start failure (nothing done)? */
export function workerNotStarted(status: number, message: string | undefined): boolean {
  return status >= 500 && status < 600 && WORKER_NOT_STARTED_RES.some((r) => r.test(message ?? ""));
}

/**
 * The task-list status of a worker that was registered but killed before it wrote a
 * line (PVE::Tools::upid_read_status on an empty or missing log): such a task did nothing
 * and must not be taken for the effect of a call.
 */
export const NEVER_RAN_TASK_STATUS = /^unable to (read tail \(got 0 bytes\)|open file - )/;

/** "Equal jitter" exponential backoff: half fixed, half random, capped. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return exp / 2 + Math.random() * (exp / 2);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Classify an error without an HTTP response. */
export function transportKind(err: { code?: string; message?: string }): "not-sent" | "ambiguous" | "tls" | "other" {
  const code = err.code ?? "";
  if (code === "ERR_PVE_TLS_PIN_MISMATCH" || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|HOSTNAME/.test(code)) return "tls";
  if (NOT_SENT_CODES.has(code)) return "not-sent";
  if (AMBIGUOUS_CODES.has(code) || /socket hang up|aborted|timeout/i.test(err.message ?? "")) return "ambiguous";
  return "other";
}
