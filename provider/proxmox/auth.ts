/**
 * Authentication (BEHAVIOR.md 2.1–2.3).
 *  - API token: `Authorization: PVEAPIToken=user@realm!id=secret` on every request; no
 *    CSRF token needed; a 401 is final.
 *  - Ticket: POST /access/ticket (username, password, otp), then `Cookie: PVEAuthCookie`
 *    on every request and `CSRFPreventionToken` on POST/PUT/DELETE. Tickets live 2 h; the
 *    client renews at 1 h 45 (POST /access/ticket with the current ticket as password, so
 *    a one-time code is not needed again), and on a 401 logs in again once per call.
 */
import { registerSecret } from "../logging";
import type { AuthSettings } from "./settings";
import { PveAuthenticationError } from "./errors";

export interface Principal {
  kind: "token" | "user";
  id: string;
}

export interface Authenticator {
  readonly principal: Principal;
  /** Headers for a request; logs in first when needed. */
  headers(method: string): Promise<Record<string, string>>;
  /** After a 401: try to get fresh credentials. False when that cannot help. */
  refreshAfter401(): Promise<boolean>;
}

export class TokenAuthenticator implements Authenticator {
  readonly principal: Principal;
  private readonly header: string;
  constructor(auth: Extract<AuthSettings, { kind: "token" }>) {
    registerSecret(auth.secret);
    this.header = `PVEAPIToken=${auth.tokenId}=${auth.secret}`;
    registerSecret(this.header);
    this.principal = { kind: "token", id: auth.tokenId };
  }
  async headers(): Promise<Record<string, string>> {
    return { Authorization: this.header };
  }
  async refreshAfter401(): Promise<boolean> {
    return false;
  }
}

export interface TicketData {
  ticket: string;
  CSRFPreventionToken: string;
  username?: string;
  NeedTFA?: number | string;
}

/** Performs the unauthenticated POST /access/ticket (the client's raw request). */
export type TicketPoster = (params: Record<string, string>) => Promise<TicketData>;

export const TICKET_RENEW_AFTER_MS = 105 * 60 * 1000;

export class TicketAuthenticator implements Authenticator {
  readonly principal: Principal;
  private ticket?: string;
  private csrf?: string;
  private obtainedAt = 0;
  private inflight?: Promise<void>;

  constructor(
    private readonly auth: Extract<AuthSettings, { kind: "password" }>,
    private readonly post: TicketPoster,
    private readonly renewAfterMs = TICKET_RENEW_AFTER_MS,
    private readonly now: () => number = Date.now,
  ) {
    registerSecret(auth.password);
    this.principal = { kind: "user", id: auth.username };
  }

  async headers(method: string): Promise<Record<string, string>> {
    if (!this.ticket || this.now() - this.obtainedAt >= this.renewAfterMs) await this.refresh(Boolean(this.ticket));
    const h: Record<string, string> = { Cookie: `PVEAuthCookie=${this.ticket}` };
    if (method !== "GET") h.CSRFPreventionToken = this.csrf!;
    return h;
  }

  async refreshAfter401(): Promise<boolean> {
    this.ticket = undefined;
    await this.refresh(false);
    return true;
  }

  /** Single-flight: concurrent callers share one login. */
  private refresh(renew: boolean): Promise<void> {
    if (!this.inflight) {
      this.inflight = (async () => {
        try {
          if (renew && this.ticket) {
            try {
              await this.store(await this.post({ username: this.auth.username, password: this.ticket }));
              return;
            } catch {
              // Renewal refused (ticket expired or revoked): fall back to a full login.
            }
          }
          await this.login();
        } finally {
          this.inflight = undefined;
        }
      })();
    }
    return this.inflight;
  }

  private async login(): Promise<void> {
    const { username, password, otp } = this.auth;
    const params: Record<string, string> = { username, password };
    // Legacy `otp` parameter (accepted by PVE for TOTP users). If the server answers with
    // a TFA challenge instead, complete it with the same code (PVE 7.2+ flow).
    if (otp) params.otp = otp;
    let data = await this.post(params);
    if (data.NeedTFA && Number(data.NeedTFA) === 1) {
      if (!otp) {
        throw new PveAuthenticationError(
          { status: 401, method: "POST", endpoint: "/access/ticket", path: "/access/ticket", pveMessage: "two-factor authentication required" },
          `User ${username} has two-factor authentication enabled. Set proxmox:otp (env PROXMOX_VE_OTP) to a current one-time code, or use an API token (no second factor needed).`,
        );
      }
      registerSecret(data.ticket);
      const response = /^(totp|recovery|yubico|webauthn|u2f):/.test(otp) ? otp : `totp:${otp}`;
      data = await this.post({ username, "tfa-challenge": data.ticket, password: response });
    }
    this.store(data);
  }

  private store(data: TicketData): void {
    if (!data?.ticket || !data.CSRFPreventionToken) {
      throw new PveAuthenticationError(
        { status: 200, method: "POST", endpoint: "/access/ticket", path: "/access/ticket", pveMessage: "no ticket in response" },
        "Login to Proxmox VE returned no ticket/CSRF token. Check that proxmox:endpoint points at a PVE API (…:8006).",
      );
    }
    registerSecret(data.ticket);
    registerSecret(data.CSRFPreventionToken);
    this.ticket = data.ticket;
    this.csrf = data.CSRFPreventionToken;
    this.obtainedAt = this.now();
  }
}

/** The authenticator for the configured credentials; `post` performs the unauthenticated login. */
export function createAuthenticator(auth: AuthSettings, post: TicketPoster, renewAfterMs = TICKET_RENEW_AFTER_MS): Authenticator {
  return auth.kind === "token" ? new TokenAuthenticator(auth) : new TicketAuthenticator(auth, post, renewAfterMs);
}
