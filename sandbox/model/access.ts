/**
 * The slice of /access the sandbox offers besides tickets: users, API tokens, ACLs and the
 * permission view, so permission scenarios can also be set up through the PVE API itself
 * (the admin endpoints offer the same without PVE's privilege checks).
 */
import type { Core } from "../core";
import { bool, route } from "../core";
import { ApiError, fail } from "../http/errors";
import { splitList } from "../../provider/proxmox/formats";

export function registerAccess(core: Core): void {
  route(core, "GET", "/access/users", (req) => {
    const out = [];
    for (const [userid, u] of Object.entries(core.store.state.users)) {
      if (!core.auth.isRoot(req.id) && req.id.userid !== userid && !core.auth.has(req.id, "/access/groups", "User.Modify")) continue;
      out.push({ userid, enable: u.enable, expire: u.expire, ...(u.comment ? { comment: u.comment } : {}), tokens: Object.entries(u.tokens).map(([tokenid, t]) => ({ tokenid, privsep: t.privsep, expire: t.expire })) });
    }
    return out;
  });

  route(core, "POST", "/access/users", (req) => {
    core.auth.check(req.id, "/access/groups", ["User.Modify"]);
    const userid = String(req.params.userid);
    if (!/@(pve|pam)$/.test(userid)) throw fail(`domain '${userid.split("@")[1]}' does not exist`);
    core.auth.createUser(userid, {
      password: req.params.password, enable: req.params.enable === undefined ? 1 : bool(req.params.enable) ? 1 : 0,
      expire: Number(req.params.expire ?? 0), comment: req.params.comment,
    });
    return null;
  });

  // Permissions (`self` or User.Modify) are the schema's, checked before the handler runs.
  route(core, "POST", "/access/users/{userid}/token/{tokenid}", (req) => {
    const userid = String(req.params.userid);
    const p = req.params;
    const privsep = p.privsep === undefined ? 1 : bool(p.privsep) ? 1 : 0;
    const t = core.auth.createToken(userid, String(p.tokenid), { privsep, expire: Number(p.expire ?? 0), comment: p.comment });
    // `generate_token` answers the stored hash: privsep as the request sent it (a form field
    // is a string, `"1"`; 1 when absent), expire only when given, comment only when non-empty.
    const info: Record<string, unknown> = { privsep: p.privsep ?? 1 };
    if (p.expire !== undefined) info.expire = p.expire;
    if (p.comment) info.comment = p.comment;
    return { "full-tokenid": t.fullTokenid, info, value: t.value };
  });

  route(core, "DELETE", "/access/users/{userid}/token/{tokenid}", (req) => {
    core.auth.deleteToken(String(req.params.userid), String(req.params.tokenid));
    return null;
  });

  route(core, "DELETE", "/access/users/{userid}", (req) => {
    core.auth.deleteUser(String(req.params.userid));
    return null;
  });

  route(core, "PUT", "/access/acl", (req) => {
    const p = req.params;
    core.auth.check(req.id, String(p.path), ["Permissions.Modify"]);
    if (p.groups) throw new ApiError(500, "groups are not supported by the sandbox");
    const users = p.users ? splitList(String(p.users)) : [];
    const tokens = p.tokens ? splitList(String(p.tokens)) : [];
    for (const u of users) if (!core.store.state.users[u]) throw fail(`user '${u}' does not exist`);
    for (const t of tokens) {
      const [u, name] = t.split("!");
      if (!core.store.state.users[u]?.tokens[name]) throw fail(`no such token '${name}' for user '${u}'`);
    }
    try {
      core.auth.setAcl({ path: String(p.path), roles: splitList(String(p.roles)), users, tokens, propagate: p.propagate === undefined ? 1 : bool(p.propagate) ? 1 : 0, delete: bool(p.delete) });
    } catch (e) {
      throw fail((e as Error).message);
    }
    return null;
  });

  route(core, "GET", "/access/acl", () =>
    core.store.state.acls.map((a) => ({ path: a.path, type: a.type, ugid: a.ugid, roleid: a.roleid, propagate: a.propagate })),
  );

  route(core, "GET", "/access/permissions", (req) => {
    const paths = req.params.path ? [String(req.params.path)] : ["/", "/vms", "/storage", "/nodes", "/pool", "/sdn", "/access", ...new Set(core.store.state.acls.map((a) => a.path))];
    const out: Record<string, Record<string, number>> = {};
    for (const p of paths) {
      const privs: Record<string, number> = {};
      for (const pr of core.auth.privs(req.id, p)) privs[pr] = 1;
      if (Object.keys(privs).length || req.params.path) out[p] = privs;
    }
    return out;
  });
}
