/**
 * The declarative permission check every PVE API method carries in its schema
 * (`permissions: {check: [...]}` / `{user: 'all'}`), evaluated as pve-access-control's
 * `PVE::RPCEnvironment::check_api2_permissions` / `exec_api2_perm_check` do it — before the
 * handler runs and before the parameters are verified. That is why a request for a CT the
 * caller may not see is a 403 naming `/vms/<id>, VM.Audit` even when the CT does not exist
 * (transcript step `no ACL: GET config of foreign CT`).
 *
 * Only `root@pam` itself skips the check; an API token authenticates as its token ID, so
 * even `root@pam!x` without privilege separation is checked (against root's privileges).
 */
import type { Identity } from "./index";
import { ApiError, permError } from "../http/errors";

/** What the evaluator needs from the sandbox's Auth and state. */
export interface PermContext {
  has(id: Identity, path: string, priv: string): boolean;
  userExists(userid: string): boolean;
}

type Check = unknown[];

/** `check_api2_permissions`: throws PVE's 403 (or the 500 of a missing user) on refusal. */
export function checkApiPermissions(ctx: PermContext, perm: unknown, id: Identity, params: Record<string, unknown>): void {
  if (id.authid === "root@pam") return;
  const p = perm as { user?: string; check?: Check } | undefined;
  if (!p) throw permError("user != root@pam");
  if (p.user === "all" || p.user === "world") return;
  if (p.check) {
    execCheck(ctx, p.check, id, params, false);
    return;
  }
  throw permError();
}

/** Options trail a check as a flat key/value list in the schema dump (`"any", 1`). */
function options(list: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[String(list[i])] = list[i + 1];
  return out;
}

function templatePath(tmpl: string, params: Record<string, unknown>): string {
  const path = tmpl.replace(/\{([^}]+)\}/g, (_m, k: string) => String(params[k] ?? ""));
  // `normalize_path`: collapse slashes, no trailing slash.
  return "/" + path.split("/").filter(Boolean).join("/");
}

/** `check` / `check_any` with PVE's messages: `<path>, <priv>` or `<path>, <a>|<b>`. */
function checkFull(ctx: PermContext, id: Identity, path: string, privs: string[], any: boolean, noerr: boolean): boolean {
  if (any) {
    if (privs.some((pr) => ctx.has(id, path, pr))) return true;
    if (noerr) return false;
    throw permError(`${path}, ${privs.join("|")}`);
  }
  for (const pr of privs) {
    if (ctx.has(id, path, pr)) continue;
    if (noerr) return false;
    throw permError(`${path}, ${pr}`);
  }
  return true;
}

/** `check_user_exist`: `no such user ('<id>')`, a plain 500. */
function userExists(ctx: PermContext, userid: string, noerr: boolean): boolean {
  if (ctx.userExists(userid)) return true;
  if (noerr) return false;
  throw new ApiError(500, `no such user ('${userid}')`);
}

function execCheck(ctx: PermContext, check: Check, id: Identity, params: Record<string, unknown>, noerr: boolean): boolean {
  const [test, ...rest] = check;
  switch (test) {
    case "and":
      for (const sub of rest) execCheck(ctx, sub as Check, id, params, false);
      return true;
    case "or":
      for (const sub of rest) if (execCheck(ctx, sub as Check, id, params, true)) return true;
      if (noerr) return false;
      throw permError();
    case "perm": {
      const [tmpl, privs, ...opts] = rest as [string, string[], ...unknown[]];
      const o = options(opts);
      if (o.require_param && params[String(o.require_param)] === undefined) {
        if (noerr) return false;
        throw permError();
      }
      return checkFull(ctx, id, templatePath(tmpl, params), privs, !!o.any, noerr);
    }
    case "userid-param": {
      const userid = String(params.userid ?? "");
      const sub = rest[0];
      if (sub === "self") {
        if (!userExists(ctx, userid, noerr)) return false;
        // A token's user is its token ID, so a token never passes as "self".
        if (id.authid === userid) return true;
        if (noerr) return false;
        throw permError();
      }
      const realm = userid.slice(userid.lastIndexOf("@") + 1);
      return checkFull(ctx, id, `/access/realm/${realm}`, [String(sub)], false, noerr);
    }
    case "userid-group": {
      // The sandbox has no groups: only User.Modify (etc.) on /access/groups grants this.
      const [privs, ...opts] = rest as [string[], ...unknown[]];
      const o = options(opts);
      const userid = String(params.userid ?? "");
      const checkExisting = o.groups_param !== "create";
      if (checkExisting && !userExists(ctx, userid, noerr)) return false;
      if (privs.some((pr) => ctx.has(id, "/access/groups", pr))) return true;
      if (o.groups_param) {
        const groups = String(params.groups ?? "").split(/[,;\s]+/).filter(Boolean);
        throw permError(groups.length ? `/access/groups/${groups[0]}, ${privs.join("|")}` : `/access/groups, ${privs.join("|")}`);
      }
      if (noerr) return false;
      throw permError();
    }
    case "perm-modify": {
      const path = templatePath(String(rest[0]), params);
      const privs = ["Permissions.Modify"];
      if (/^\/storage\/.+$/.test(path)) privs.push("Datastore.Allocate");
      else if (/^\/vms\/.+$/.test(path)) privs.push("VM.Allocate");
      else if (/^\/pool\/.+$/.test(path)) privs.push("Pool.Allocate");
      return checkFull(ctx, id, path, privs, true, noerr);
    }
    default:
      // A check form the sandbox does not know: let the handler's own checks decide.
      return true;
  }
}
