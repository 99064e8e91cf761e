/**
 * Authentication and permissions as PVE does them (BEHAVIOR.md §2): tickets
 * `PVE:<userid>:<8 hex>::<base64 sig>` (an HMAC here instead of PVE's RSA signature — the
 * shape and lifetime rules are what clients see), CSRF tokens bound to user and time, API
 * tokens `user@realm!id=<uuid>` with privilege separation, and ACL evaluation on paths.
 */
import * as crypto from "node:crypto";
import type { Store, AclEntry } from "../state";
import { ApiError, AuthError, paramError, permError } from "../http/errors";
import { ALL_PRIVS, rolePrivs } from "./privileges";
import { checkApiPermissions } from "./apiPermissions";
import { registerSecret } from "../../provider/logging";

export interface Identity {
  /** `user@realm` — the owning user. */
  userid: string;
  /** Token name when authenticated by API token. */
  tokenid?: string;
  /** `user@realm` or `user@realm!token` — what UPIDs record. */
  authid: string;
  via: "ticket" | "token";
}

/**
 * The 401 reason for every bad ticket or token. Recorded from PVE 8.4.21 (transcript `wrong
 * token (401)`, `deleted user's token (401)`); 9.1.5 answers the same (BEHAVIOR.md §2.3).
 * Older point releases sent the raw error (`invalid token value!`, …) — not emulated.
 */
const AUTH_FAILED = "Authentication failed!";

/** PVE grants 300 s of clock-skew grace on top of the ticket lifetime (§2.1). */
const GRACE_SEC = 300;
const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");

export class Auth {
  constructor(
    private readonly store: Store,
    private ticketLifetimeSec: number,
  ) {}

  setTicketLifetime(sec: number): void {
    this.ticketLifetimeSec = sec;
  }

  /**
   * Invalidate every ticket (and CSRF token) minted so far by rotating the signing keys.
   * A time cut-off (`notBefore = now + 1`) also refused tickets from a login made right
   * after, for up to 2 s — PVE never refuses a fresh ticket, and a client's one re-login
   * after a 401 then failed (found by test/resilience: ticket expiring mid-run).
   */
  expireTickets(): void {
    this.store.state.secrets.ticketKey = crypto.randomBytes(24).toString("base64url");
    this.store.state.secrets.csrfKey = crypto.randomBytes(24).toString("base64url");
    this.store.save();
  }

  private sign(data: string): string {
    return crypto.createHmac("sha256", this.store.state.secrets.ticketKey).update(data).digest("base64");
  }

  mintTicket(userid: string, now = Math.floor(Date.now() / 1000)): string {
    const plain = `PVE:${userid}:${hex8(now)}`;
    return `${plain}::${this.sign(plain)}`;
  }

  /** Verify a ticket; returns the userid or undefined. */
  verifyTicket(ticket: string): string | undefined {
    const m = /^(PVE:([^:\s]+):([0-9A-F]{8}))::(.+)$/.exec(ticket);
    if (!m) return undefined;
    const expected = this.sign(m[1]);
    if (expected.length !== m[4].length || !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(m[4]))) return undefined;
    const t = parseInt(m[3], 16);
    const now = Math.floor(Date.now() / 1000);
    if (now - t > this.ticketLifetimeSec + (this.ticketLifetimeSec >= GRACE_SEC ? GRACE_SEC : 0)) return undefined;
    if (t - now > GRACE_SEC) return undefined;
    const user = this.store.state.users[m[2]];
    if (!user || !user.enable) return undefined;
    return m[2];
  }

  /** `<8 hex>:<base64 HMAC-SHA256("<time>:<userid>")>` without padding (§2.1). */
  csrfToken(userid: string, now = Math.floor(Date.now() / 1000)): string {
    const t = hex8(now);
    const sig = crypto.createHmac("sha256", this.store.state.secrets.csrfKey).update(`${t}:${userid}`).digest("base64").replace(/=+$/, "");
    return `${t}:${sig}`;
  }

  verifyCsrf(token: string | undefined, userid: string): boolean {
    if (!token) return false;
    const m = /^([0-9A-F]{8}):(\S+)$/.exec(token);
    if (!m) return false;
    const t = parseInt(m[1], 16);
    if (this.csrfToken(userid, t) !== token) return false;
    const age = Math.floor(Date.now() / 1000) - t;
    return age <= this.ticketLifetimeSec + GRACE_SEC;
  }

  /** Password check for POST /access/ticket (a valid ticket also works as the password). */
  checkPassword(userid: string, password: string): boolean {
    const user = this.store.state.users[userid];
    if (!user || !user.enable) return false;
    if (user.expire && user.expire < Date.now() / 1000) return false;
    const expected = userid === "root@pam" ? this.store.state.rootPassword : user.password;
    if (expected === undefined) return false;
    const a = Buffer.from(expected);
    const b = Buffer.from(password);
    return a.length === b.length && crypto.timingSafeEqual(a, b);
  }

  /**
   * Credentials from a request, in PVE's precedence: cookie, `Authorization: PVEAuthCookie=`,
   * then `Authorization: PVEAPIToken=` (§2.1). Throws AuthError with the 401 reason.
   */
  authenticate(headers: Record<string, string | string[] | undefined>): Identity {
    const cookieHeader = String(headers.cookie ?? "");
    const cookie = /(?:^|;\s*)PVEAuthCookie=([^;]*)/.exec(cookieHeader)?.[1];
    const authz = String(headers.authorization ?? "");
    let ticket: string | undefined;
    if (cookie) ticket = decodeURIComponent(cookie);
    else if (/^PVEAuthCookie=/.test(authz)) ticket = authz.slice("PVEAuthCookie=".length);
    if (ticket !== undefined) {
      const userid = this.verifyTicket(ticket);
      if (!userid) throw new AuthError(AUTH_FAILED);
      return { userid, authid: userid, via: "ticket" };
    }
    const tm = /^PVEAPIToken[= ](.+)$/.exec(authz);
    if (tm) {
      const value = tm[1];
      const eq = value.lastIndexOf("=");
      const full = eq > 0 ? value.slice(0, eq) : "";
      const secret = eq > 0 ? value.slice(eq + 1) : "";
      const mm = /^([^!\s]+@[^!\s]+)!([A-Za-z][A-Za-z0-9.\-_]+)$/.exec(full);
      const user = mm ? this.store.state.users[mm[1]] : undefined;
      const token = mm && user ? user.tokens[mm[2]] : undefined;
      // A deleted user takes its tokens with it: their next request is a 401 like any bad token.
      if (!mm || !user || !token || !user.enable) throw new AuthError(AUTH_FAILED);
      const a = Buffer.from(token.secret);
      const b = Buffer.from(secret);
      if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) throw new AuthError(AUTH_FAILED);
      const now = Date.now() / 1000;
      if ((token.expire && token.expire < now) || (user.expire && user.expire < now)) throw new AuthError(AUTH_FAILED);
      return { userid: mm[1], tokenid: mm[2], authid: full, via: "token" };
    }
    throw new AuthError("No ticket");
  }

  /** Privileges from ACLs of one ugid on a path (most specific entry wins, as PVE). */
  private aclPrivs(ugid: string, path: string): Set<string> {
    const acls = this.store.state.acls.filter((a) => a.ugid === ugid);
    const segs = path.split("/").filter(Boolean);
    // Walk from the root down; a more specific path's entries replace inherited ones.
    let privs = new Set<string>();
    for (let i = 0; i <= segs.length; i++) {
      const p = "/" + segs.slice(0, i).join("/");
      const here = acls.filter((a) => a.path === p && (i === segs.length || a.propagate));
      if (here.length) {
        privs = new Set();
        for (const a of here) for (const pr of rolePrivs(a.roleid)) privs.add(pr);
      }
    }
    return privs;
  }

  /** Effective privileges (§2.2: token privsep → intersection with the user's). */
  privs(id: Identity, path: string): Set<string> {
    if (id.userid === "root@pam" && (!id.tokenid || !this.store.state.users["root@pam"].tokens[id.tokenid]?.privsep)) {
      return new Set(ALL_PRIVS);
    }
    const forPath = (ugid: string) => {
      const direct = this.aclPrivs(ugid, path);
      // Guests in a pool also inherit the pool's ACLs.
      const vm = /^\/vms\/(\d+)$/.exec(path);
      if (vm) {
        for (const [poolid, pool] of Object.entries(this.store.state.pools)) {
          if (pool.vms.includes(Number(vm[1]))) for (const p of this.aclPrivs(ugid, `/pool/${poolid}`)) direct.add(p);
        }
      }
      return direct;
    };
    const userPrivs = id.userid === "root@pam" ? new Set(ALL_PRIVS) : forPath(id.userid);
    if (!id.tokenid) return userPrivs;
    const token = this.store.state.users[id.userid]?.tokens[id.tokenid];
    if (!token?.privsep) return userPrivs;
    const tokenPrivs = forPath(id.authid);
    return new Set([...userPrivs].filter((p) => tokenPrivs.has(p)));
  }

  has(id: Identity, path: string, priv: string): boolean {
    return this.privs(id, path).has(priv);
  }

  /** The schema's declarative `permissions` of a method, checked before its handler runs. */
  checkApi(perm: unknown, id: Identity, params: Record<string, unknown>): void {
    checkApiPermissions({ has: (i, p, pr) => this.has(i, p, pr), userExists: (u) => !!this.store.state.users[u] }, perm, id, params);
  }

  /** Require all of `privs` on path → 403 `Permission check failed (path, priv)`. */
  check(id: Identity, path: string, privs: string[]): void {
    const have = this.privs(id, path);
    for (const p of privs) if (!have.has(p)) throw permError(`${path}, ${p}`);
  }

  /** Require any of `privs` (PVE joins them with `|` in the message). */
  checkAny(id: Identity, path: string, privs: string[]): void {
    const have = this.privs(id, path);
    if (!privs.some((p) => have.has(p))) throw permError(`${path}, ${privs.join("|")}`);
  }

  /**
   * `$authuser eq 'root@pam'` as PVE's root-only gates test it. With an API token the
   * authenticated user is the token ID (`root@pam!x`), so no token is root — not even one of
   * root@pam without privilege separation (transcript: bind mount refused for `root@pam!e2e`).
   */
  isRoot(id: Identity): boolean {
    return id.authid === "root@pam";
  }

  /** `cap` of the ticket response (§2.1): per-area maps of priv → 1. */
  caps(id: Identity): Record<string, Record<string, number>> {
    const area = (path: string, prefix: string[]) => {
      const out: Record<string, number> = {};
      for (const p of this.privs(id, path)) if (prefix.some((x) => p.startsWith(x))) out[p] = 1;
      return out;
    };
    return {
      vms: area("/vms", ["VM."]),
      storage: area("/storage", ["Datastore."]),
      nodes: area("/nodes", ["Sys."]),
      access: area("/access", ["User.", "Group.", "Permissions.", "Realm."]),
      dc: area("/", ["Sys.", "SDN."]),
      sdn: area("/sdn", ["SDN."]),
      mapping: area("/mapping", ["Mapping."]),
    };
  }

  // ----- management (admin API and /access endpoints) -----

  createUser(userid: string, opts: { password?: string; enable?: 0 | 1; expire?: number; comment?: string } = {}): void {
    if (this.store.state.users[userid]) throw new ApiError(500, `create user failed: user '${userid}' already exists`);
    if (opts.password) registerSecret(opts.password);
    this.store.state.users[userid] = { password: opts.password, enable: opts.enable ?? 1, expire: opts.expire ?? 0, comment: opts.comment, tokens: {} };
    this.store.save();
  }

  createToken(userid: string, tokenid: string, opts: { privsep?: 0 | 1; expire?: number; comment?: string } = {}): { fullTokenid: string; value: string } {
    const user = this.store.state.users[userid];
    if (!user) throw new ApiError(500, `no such user ('${userid}')`);
    // `pve-tokenid` (also for admin-made tokens: a shorter name could never authenticate).
    if (!/^[A-Za-z][A-Za-z0-9.\-_]+$/.test(tokenid)) throw paramError({ tokenid: "value does not match the regex pattern" });
    if (user.tokens[tokenid]) throw paramError({ tokenid: "Token already exists." });
    const secret = crypto.randomUUID();
    registerSecret(secret);
    user.tokens[tokenid] = { secret, privsep: opts.privsep ?? 1, expire: opts.expire ?? 0, comment: opts.comment };
    this.store.save();
    return { fullTokenid: `${userid}!${tokenid}`, value: secret };
  }

  /**
   * DELETE /access/users/{userid}: the user, its tokens and every ACL entry of either
   * (`delete_user_acl`; token ACLs of a gone user are dropped when user.cfg is parsed).
   */
  deleteUser(userid: string): void {
    const user = this.store.state.users[userid];
    if (!user) return; // PVE's handler does not check; the permission check did for non-root
    const gone = new Set([userid, ...Object.keys(user.tokens).map((t) => `${userid}!${t}`)]);
    delete this.store.state.users[userid];
    this.store.state.acls = this.store.state.acls.filter((a) => !gone.has(a.ugid));
    this.store.save();
  }

  /** DELETE /access/users/{userid}/token/{tokenid} (`check_token_exist` texts). */
  deleteToken(userid: string, tokenid: string): void {
    const user = this.store.state.users[userid];
    if (!user) throw new ApiError(500, `no such user ('${userid}')`);
    if (!user.tokens[tokenid]) throw new ApiError(500, `no such token '${tokenid}' for user '${userid}'`);
    delete user.tokens[tokenid];
    this.store.state.acls = this.store.state.acls.filter((a) => a.ugid !== `${userid}!${tokenid}`);
    this.store.save();
  }

  setAcl(entry: { path: string; roles: string[]; users?: string[]; tokens?: string[]; propagate?: 0 | 1; delete?: boolean }): void {
    for (const r of entry.roles) rolePrivs(r);
    const targets: Array<{ ugid: string; type: "user" | "token" }> = [
      ...(entry.users ?? []).map((u) => ({ ugid: u, type: "user" as const })),
      ...(entry.tokens ?? []).map((t) => ({ ugid: t, type: "token" as const })),
    ];
    const acls = this.store.state.acls;
    for (const t of targets) {
      for (const roleid of entry.roles) {
        const idx = acls.findIndex((a: AclEntry) => a.path === entry.path && a.ugid === t.ugid && a.roleid === roleid);
        if (idx >= 0) acls.splice(idx, 1);
        if (!entry.delete) acls.push({ path: entry.path, ugid: t.ugid, type: t.type, roleid, propagate: entry.propagate ?? 1 });
      }
    }
    this.store.save();
  }

  /** Drop ACLs on a path (CT destroy removes `/vms/<vmid>` ACLs, §4.11). */
  removeAclsOn(path: string): void {
    this.store.state.acls = this.store.state.acls.filter((a) => a.path !== path);
  }
}
