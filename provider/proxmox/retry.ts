/**
 * Retry rules of the client, in one place. Written as a small own loop in client.ts
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
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxRetries: 4,
  maxRefusedRetries: 4,
  baseDelayMs: 100,
  maxDelayMs: 5000,
  lockWaitMs: 60_000,
};

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
