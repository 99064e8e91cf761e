/**
 * Secret scrubbing shared by the logger, error messages and anything else that turns data
 * into text. Two layers, because neither alone is enough:
 *  - values registered at run time (API token secrets, passwords, tickets, CSRF tokens,
 *    registry credentials) are replaced wherever they appear, whatever the field name;
 *  - well-known credential shapes (PVEAPIToken=..., PVEAuthCookie=..., Basic/Bearer
 *    headers) are masked even when nobody registered the value.
 */

export const REDACTED = "[REDACTED]";

const registered = new Set<string>();

/** Remember a secret so that every later log line and error text has it masked. */
export function registerSecret(value: unknown): void {
  if (typeof value !== "string") return;
  // Very short values would mask innocent text ("1", "on"); real secrets are longer.
  if (value.length < 4) return;
  registered.add(value);
  // URL-encoded forms appear in form bodies and query strings.
  const encoded = encodeURIComponent(value);
  if (encoded !== value) registered.add(encoded);
}

/** For tests: forget every registered secret. */
export function clearRegisteredSecrets(): void {
  registered.clear();
}

const SHAPES: Array<[RegExp, string]> = [
  // PVEAPIToken=user@realm!tokenid=SECRET (also with a space after PVEAPIToken)
  [/(PVEAPIToken[= ][^=\s"']+=)[^\s"',;]+/g, `$1${REDACTED}`],
  [/(PVEAuthCookie=)[^\s"',;]+/g, `$1${REDACTED}`],
  [/(CSRFPreventionToken["']?\s*[:=]\s*["']?)[^\s"',;]+/gi, `$1${REDACTED}`],
  [/\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}/g, `$1 ${REDACTED}`],
  // PVE tickets: PVE:user@realm:HEX::BASE64SIG
  [/PVE:[^:\s"]+:[0-9A-F]{8}::[A-Za-z0-9+/=]+/g, REDACTED],
];

/** Mask registered secrets and credential-shaped substrings in free text. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const secret of registered) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  for (const [re, replacement] of SHAPES) out = out.replace(re, replacement);
  return out;
}

/**
 * Field names whose values are always secret, wherever they sit in a logged object.
 * Used both for pino's `redact` option and for scrubbing plain objects.
 */
export const SECRET_KEYS = [
  "authorization",
  "Authorization",
  "cookie",
  "Cookie",
  "password",
  "apiToken",
  "apitoken",
  "ticket",
  "CSRFPreventionToken",
  "csrfpreventiontoken",
  "csrfToken",
  "secret",
  "token",
  "credentials",
  "auth",
  "identitytoken",
  "registrytoken",
];

/** Deep copy of an object with secret-named keys masked and secret values scrubbed. */
export function redactObject<T>(value: T, depth = 0): T {
  if (depth > 8 || value === null || value === undefined) return value;
  if (typeof value === "string") return scrubSecrets(value) as unknown as T;
  if (Array.isArray(value)) return value.map((v) => redactObject(v, depth + 1)) as unknown as T;
  if (typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = SECRET_KEYS.includes(k) && v !== undefined && v !== null ? REDACTED : redactObject(v, depth + 1);
    }
    return out as T;
  }
  return value;
}
