/**
 * Typed errors of the PVE client. Every message says what happened and what to do, and
 * is passed through `scrubSecrets` (tokens, tickets and passwords never reach an error).
 *
 * Classification follows BEHAVIOR.md 1.2 (status + first message line), 2.3 (401/403),
 * 4.3 (missing config), 4.12 (locks) and 1.4 (digest mismatch).
 */
import { scrubSecrets } from "../logging";

export interface PveErrorInit {
  status: number;
  /** The HTTP status-line reason (PVE puts the first message line there). */
  reason?: string;
  /** PVE's `message` (or the reason when the body is empty). */
  pveMessage?: string;
  /** Per-parameter errors (`errors` map of a 400). */
  errors?: Record<string, string>;
  method: string;
  /** Path template, e.g. `/nodes/{node}/lxc/{vmid}/config`. */
  endpoint: string;
  /** Concrete path, e.g. `/nodes/pve1/lxc/100/config`. */
  path: string;
}

/** Base class of everything the client throws about an API call. */
export class PveApiError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly pveMessage: string;
  readonly errors?: Record<string, string>;
  readonly method: string;
  readonly endpoint: string;
  readonly path: string;

  constructor(init: PveErrorInit, message?: string) {
    const pveMessage = (init.pveMessage ?? init.reason ?? "").trim();
    super(scrubSecrets(message ?? defaultMessage(init, pveMessage)));
    this.name = new.target.name;
    this.status = init.status;
    this.reason = scrubSecrets(init.reason ?? "");
    this.pveMessage = scrubSecrets(pveMessage);
    this.errors = init.errors ? Object.fromEntries(Object.entries(init.errors).map(([k, v]) => [k, scrubSecrets(v)])) : undefined;
    this.method = init.method;
    this.endpoint = init.endpoint;
    this.path = init.path;
  }
}

function formatParamErrors(errors: Record<string, string> | undefined): string {
  if (!errors) return "";
  return Object.entries(errors)
    .map(([k, v]) => `\n  ${k}: ${v.trim().replace(/\n/g, "; ")}`)
    .join("");
}

function defaultMessage(init: PveErrorInit, pveMessage: string): string {
  const where = `${init.method} ${init.path}`;
  const status = init.status ? `HTTP ${init.status}` : "no HTTP response";
  return `Proxmox VE API ${where} failed (${status}): ${pveMessage || "no message"}${formatParamErrors(init.errors)}`;
}

/** Credentials rejected (401), or login impossible. */
export class PveAuthenticationError extends PveApiError {}

/** 403 `Permission check failed (...)`. */
export class PvePermissionError extends PveApiError {
  /** ACL path, e.g. `/vms/100`, when PVE named one. */
  readonly aclPath?: string;
  /** Privileges of which one is needed (PVE joins `any` checks with `|`). */
  readonly privileges: string[];
  constructor(init: PveErrorInit, readonly principal?: { kind: "token" | "user"; id: string }) {
    const parsed = parsePermissionMessage(init.pveMessage ?? init.reason ?? "");
    super(init, permissionMessage(init, parsed, principal));
    this.aclPath = parsed.path;
    this.privileges = parsed.privileges;
  }
}

/** `Permission check failed (/vms/100, VM.PowerMgmt)` → path and privileges. */
export function parsePermissionMessage(msg: string): { path?: string; privileges: string[]; detail?: string } {
  const m = /Permission check failed \(([^,()]+), ([^()]+)\)/.exec(msg);
  if (m) return { path: m[1].trim(), privileges: m[2].split("|").map((s) => s.trim()).filter(Boolean) };
  const d = /Permission check failed \((.+)\)/s.exec(msg);
  return { privileges: [], detail: d?.[1]?.trim() };
}

function permissionMessage(
  init: PveErrorInit,
  p: { path?: string; privileges: string[]; detail?: string },
  principal?: { kind: "token" | "user"; id: string },
): string {
  const who = principal ? `the ${principal.kind} ${principal.id}` : "the configured credentials";
  const head = `Permission denied for ${init.method} ${init.path}`;
  if (p.path && p.privileges.length) {
    const privs = p.privileges.length === 1 ? p.privileges[0] : `one of ${p.privileges.join(", ")}`;
    let msg = `${head}: ${who} needs ${privs} on ${p.path} — add an ACL with a role containing it ` +
      `(e.g. 'pveum acl modify ${p.path} --roles <role> ${principal?.kind === "token" ? `--tokens '${principal.id}'` : `--users '${principal?.id ?? "<user>"}'`}')`;
    if (principal?.kind === "token") msg += "; with privilege separation the token's own ACL needs it too, not only its user's";
    return `${msg}.`;
  }
  const detail = p.detail ?? (init.pveMessage ?? init.reason ?? "").trim();
  return `${head}: ${detail || "permission check failed"}. Check the ACLs of ${who} (pveum acl list).`;
}

/** The object does not exist (CT config, storage, task, snapshot, volume). */
export class PveNotFoundError extends PveApiError {}

/** `CT is locked (snapshot)` or a config flock timeout. */
export class PveLockedError extends PveApiError {
  /** The lock name (`snapshot`, `backup`, ...), or `flock` for a file-lock timeout. */
  readonly lock: string;
  constructor(init: PveErrorInit, extra?: string) {
    const text = init.pveMessage ?? init.reason ?? "";
    const m = /CT is locked \(([^)]+)\)/.exec(text);
    const lock = m ? m[1] : "flock";
    const what = m
      ? `the container is locked ('${lock}'): another operation (${lockHint(lock)}) is in progress`
      : "the container's config lock could not be taken (another task holds it)";
    super(init, `${init.method} ${init.path} failed: ${what}.${extra ? " " + extra : ""} Wait for it to finish, or if it is stale run 'pct unlock <vmid>' on the node.`);
    this.lock = lock;
  }
}

function lockHint(lock: string): string {
  const hints: Record<string, string> = {
    backup: "a vzdump backup",
    create: "creation/clone",
    destroyed: "deletion",
    disk: "a clone or volume move",
    migrate: "a migration",
    mounted: "'pct mount'",
    rollback: "a snapshot rollback",
    snapshot: "a snapshot",
    "snapshot-delete": "a snapshot deletion",
    fstrim: "'pct fstrim'",
  };
  return hints[lock] ?? lock;
}

/** Digest mismatch on PUT config: somebody else changed the config in between. */
export class PveConfigChangedError extends PveApiError {
  constructor(init: PveErrorInit) {
    super(
      init,
      `${init.method} ${init.path} failed: the configuration was modified by someone else since it was read (digest mismatch). ` +
        `Refresh (pulumi refresh) and apply again.`,
    );
  }
}

/** A 400 `Parameter verification failed.` from the server. */
export class PveParameterError extends PveApiError {}

/** A worker task ended with an error. */
export class PveTaskFailedError extends PveApiError {
  constructor(
    readonly upid: string,
    readonly exitstatus: string,
    readonly logTail: string[],
    init: Omit<PveErrorInit, "status"> & { status?: number },
  ) {
    const tail = logTail.length ? `\nLast lines of the task log:\n  ${logTail.join("\n  ")}` : "";
    super(
      { ...init, status: init.status ?? 200, pveMessage: exitstatus },
      `Proxmox VE task ${taskLabel(upid)} failed: ${exitstatus}${tail}\n(full log: ${init.path.replace(/\/status$/, "/log")} or the node's Tasks panel)`,
    );
  }
}

/** A task did not finish within the allowed time. */
export class PveTaskTimeoutError extends PveApiError {
  constructor(readonly upid: string, readonly timeoutMs: number, init: Omit<PveErrorInit, "status">) {
    super(
      { status: 0, ...init },
      `Proxmox VE task ${taskLabel(upid)} is still running after ${Math.round(timeoutMs / 1000)} s. It was not cancelled. ` +
        `Raise the timeout (the resource's \`timeouts\` input, or waitForTask({ timeoutMs })) or check the task on the node.`,
    );
  }
}

function taskLabel(upid: string): string {
  const parts = upid.split(":");
  return parts.length >= 8 ? `${parts[5]}${parts[6] ? " " + parts[6] : ""} on ${parts[1]} (${upid})` : upid;
}

/** Refused locally before sending: the request would fail PVE's parameter check. */
export class PveValidationError extends PveApiError {
  constructor(init: Omit<PveErrorInit, "status">, hint?: string) {
    const lines = Object.entries(init.errors ?? {}).map(([k, v]) => `\n  ${k}: ${v.trim().replace(/\n/g, "; ")}`);
    super(
      { status: 0, ...init },
      `Invalid parameters for ${init.method} ${init.endpoint} (not sent): ${lines.join("")}\n` +
        (hint ?? "Fix the named parameter(s); the values must match the PVE API schema."),
    );
  }
}

/** The connection failed (reset, refused, TLS) and retrying did not help or was not safe. */
export class PveConnectionError extends PveApiError {
  constructor(init: Omit<PveErrorInit, "status">, readonly code: string | undefined, detail: string) {
    super({ status: 0, ...init }, `Could not reach Proxmox VE for ${init.method} ${init.path}: ${detail}`);
  }
}

/** The server's certificate did not match the configured pin. */
export class PveTlsError extends PveApiError {}

const NOT_FOUND_RES = [
  /Configuration file '[^']+' does not exist/,
  /storage '[^']+' does not exist/,
  /no such task/,
  /snapshot '[^']+' does not exist/,
  /No such storage/i,
  /volume '[^']+' does not exist/,
  /unable to parse volume ID/,
  /no such (volume|file|cluster node|template|pool)/i,
  /does not exist/,
];

export const LOCK_RES = [/CT is locked \([^)]+\)/, /can't lock file '[^']*' - got timeout/];

/** Turn an HTTP error response into the matching class. */
export function errorFromResponse(
  init: PveErrorInit,
  principal?: { kind: "token" | "user"; id: string },
): PveApiError {
  const text = `${init.pveMessage ?? ""}\n${init.reason ?? ""}\n${Object.values(init.errors ?? {}).join("\n")}`;
  if (init.status === 401) {
    const who = principal ? `${principal.kind} ${principal.id}` : "the configured credentials";
    const hint =
      principal?.kind === "token"
        ? "Check proxmox:apiToken (env PROXMOX_VE_API_TOKEN): the token may be wrong, expired or deleted ('pveum user token list <user>')."
        : /csrf/i.test(text)
          ? "The CSRF token was refused; the session is re-established automatically, so this means the ticket login keeps failing."
          : "Check proxmox:username/proxmox:password (env PROXMOX_VE_USERNAME/PROXMOX_VE_PASSWORD) and proxmox:otp if the user has two-factor auth.";
    return new PveAuthenticationError(init, `Proxmox VE rejected ${who} for ${init.method} ${init.path} (401 ${(init.reason ?? "").trim()}). ${hint}`);
  }
  if (init.status === 403) return new PvePermissionError(init, principal);
  if (/detected modified configuration - file changed by other user/.test(text)) return new PveConfigChangedError(init);
  if (LOCK_RES.some((r) => r.test(text))) return new PveLockedError(init);
  // Before the parameter check: PVE reports some lookups as 400s on a key
  // (`{"upid":"no such task"}`, `{"storage":"No such storage."}`, BEHAVIOR.md 3.3, 8.5).
  if (NOT_FOUND_RES.some((r) => r.test(text))) return new PveNotFoundError(init);
  if (init.status === 400 && init.errors) {
    return new PveParameterError(init, `Proxmox VE refused the parameters of ${init.method} ${init.path}:${formatParamErrors(init.errors)}`);
  }
  return new PveApiError(init);
}

/** The error details of an HTTP answer: PVE's `message` (or the raw text / status reason) and `errors`. */
export function initFromResponse(
  base: Omit<PveErrorInit, "status">,
  res: { status: number; statusText?: string },
  text: string,
  json: { message?: string; errors?: Record<string, string> } | undefined,
): PveErrorInit {
  return {
    ...base,
    status: res.status,
    reason: res.statusText,
    pveMessage: json?.message ?? (text && !json ? text.slice(0, 500) : res.statusText),
    errors: json?.errors ?? undefined,
  };
}

/** A request that got no HTTP answer and is not retried (any more). */
export function connectionFailure(
  base: Omit<PveErrorInit, "status">,
  f: { code?: string; kind: string; detail: string; retries: number; idempotent: boolean; baseUrl: string },
): PveConnectionError {
  const hint =
    f.kind === "ambiguous" && !f.idempotent
      ? " The request may or may not have taken effect on the server; check its state before repeating it."
      : f.kind === "not-sent"
        ? ` Check that proxmox:endpoint (${f.baseUrl}) is reachable.`
        : "";
  return new PveConnectionError(base, f.code, `${f.detail}${f.retries ? ` (after ${f.retries} retries)` : ""}.${hint}`);
}

/** The answer to a non-idempotent call was lost and the check whether it acted failed too. */
export function unverifiedFailure(base: Omit<PveErrorInit, "status">, e: PveConnectionError): PveConnectionError {
  return new PveConnectionError(
    base,
    e.code,
    `the answer to ${base.method} ${base.path} was lost and checking whether it took effect failed too (${e.message}). ` +
      "Check the object's state on the server before repeating the operation.",
  );
}
