/**
 * The official PVE API schema (api-viewer data of pve-docs, as JSON; copies of
 * ../shared/pve-api kept in ./schema so the published package carries them).
 *
 * Used by the client (to refuse invalid requests before they are sent, and to look up
 * property-string formats) and by the sandbox (to validate every request exactly as PVE).
 */
import * as fs from "node:fs";
import * as path from "node:path";

export type PveVersion = "9.1" | "8.4";
export const PVE_VERSIONS: PveVersion[] = ["9.1", "8.4"];

export interface ParamSchema {
  type?: string;
  /** A named format (`pve-vmid`) or the keys of a property string. */
  format?: string | Record<string, ParamSchema>;
  optional?: 0 | 1 | boolean;
  default?: unknown;
  default_key?: 0 | 1;
  alias?: string;
  keyAlias?: string;
  pattern?: string;
  enum?: string[];
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  minLength?: number;
  description?: string;
  typetext?: string;
  format_description?: string;
  items?: ParamSchema;
  requires?: string;
  [extra: string]: unknown;
}

export interface MethodInfo {
  description?: string;
  parameters?: { properties?: Record<string, ParamSchema>; additionalProperties?: 0 | 1 };
  returns?: ParamSchema & { properties?: Record<string, ParamSchema> };
  permissions?: unknown;
  protected?: 0 | 1;
  proxyto?: string;
  allowtoken?: 0 | 1;
}

interface SchemaNode {
  path: string;
  text: string;
  leaf?: 0 | 1;
  info?: Partial<Record<HttpMethod, MethodInfo>>;
  children?: SchemaNode[];
}

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

export interface EndpointMatch {
  /** The schema path template, e.g. `/nodes/{node}/lxc/{vmid}/config`. */
  template: string;
  /** Values of the `{placeholders}` in the concrete path. */
  pathParams: Record<string, string>;
  info: MethodInfo;
}

interface TemplateEntry {
  template: string;
  segments: string[];
  /** Position in match order: fewer placeholders first (literal segments win). */
  rank: number;
}

/** A parsed schema with a path lookup. */
export class ApiSchema {
  private readonly byTemplate = new Map<string, SchemaNode>();
  /**
   * Templates by shape — segment count, first and last segment ("*" for a placeholder) —
   * each list in match order. A lookup tries the 4 lists its path can fall in instead of all
   * ~700 templates (it ran on every request: `matchPath` was the provider host's top
   * function after module loading in bench/pulumi-up).
   */
  private readonly byShape = new Map<string, TemplateEntry[]>();
  /** Templates ending in `{volume}`, which also match longer paths (see matchSegments). */
  private readonly restTemplates: TemplateEntry[] = [];

  constructor(readonly version: PveVersion, roots: SchemaNode[]) {
    const all: Array<{ template: string; segments: string[] }> = [];
    const walk = (nodes: SchemaNode[]) => {
      for (const n of nodes) {
        this.byTemplate.set(n.path, n);
        all.push({ template: n.path, segments: n.path.split("/").filter(Boolean) });
        if (n.children) walk(n.children);
      }
    };
    walk(roots);
    // Literal segments must win over placeholders (`/nodes/{node}/lxc` vs `{vmid}`).
    all.sort((a, b) => placeholderCount(a.segments) - placeholderCount(b.segments));
    all.forEach((t, rank) => {
      const e = { ...t, rank };
      const key = shapeKey(e.segments.length, literal(e.segments[0]), literal(e.segments[e.segments.length - 1]));
      const list = this.byShape.get(key) ?? [];
      list.push(e);
      this.byShape.set(key, list);
      if (e.segments[e.segments.length - 1] === "{volume}") this.restTemplates.push(e);
    });
  }

  /** Match a concrete path (without `/api2/json`) to its template. */
  matchPath(concrete: string): { template: string; pathParams: Record<string, string> } | undefined {
    const segs = concrete.split("/").filter(Boolean);
    const n = segs.length;
    let best: { entry: TemplateEntry; params: Record<string, string> } | undefined;
    const consider = (list: TemplateEntry[] | undefined) => {
      for (const entry of list ?? []) {
        if (best && entry.rank >= best.entry.rank) return;
        const params = matchSegments(entry.segments, segs);
        if (params) {
          best = { entry, params };
          return;
        }
      }
    };
    for (const first of [segs[0], "*"]) for (const last of [segs[n - 1], "*"]) consider(this.byShape.get(shapeKey(n, first, last)));
    consider(this.restTemplates);
    return best && { template: best.entry.template, pathParams: best.params };
  }

  /** The method description for a template, if PVE (this version) offers it. */
  method(template: string, method: HttpMethod): MethodInfo | undefined {
    return this.byTemplate.get(template)?.info?.[method];
  }

  /** Look up a concrete method+path. `undefined` when PVE would answer 501. */
  find(method: HttpMethod, concrete: string): EndpointMatch | undefined {
    const m = this.matchPath(concrete);
    if (!m) return undefined;
    const info = this.method(m.template, method);
    return info ? { ...m, info } : undefined;
  }

  /** The parameter schema of one parameter (numbered families resolve: net3 → net[n]). */
  param(template: string, method: HttpMethod, name: string): ParamSchema | undefined {
    const props = this.method(template, method)?.parameters?.properties;
    if (!props) return undefined;
    return props[name] ?? props[familyName(name) ?? ""];
  }

  hasTemplate(template: string): boolean {
    return this.byTemplate.has(template);
  }
}

function shapeKey(count: number, first: string | undefined, last: string | undefined): string {
  return `${count}\u0000${first ?? ""}\u0000${last ?? ""}`;
}

/** A literal segment as itself, a `{placeholder}` as "*". */
function literal(segment: string | undefined): string | undefined {
  return segment?.startsWith("{") ? "*" : segment;
}

function placeholderCount(segs: string[]): number {
  return segs.filter((s) => s.startsWith("{")).length;
}

/**
 * `{volume}` in storage content paths swallows the rest of the path (PVE's content handler
 * uses `fragmentDelimiter => ''`, so volids with slashes work unescaped).
 */
function matchSegments(template: string[], concrete: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < template.length; i++) {
    const t = template[i];
    if (t.startsWith("{") && t.endsWith("}")) {
      const name = t.slice(1, -1);
      if (i === template.length - 1 && name === "volume" && concrete.length > i) {
        params[name] = concrete.slice(i).join("/");
        return params;
      }
      if (concrete[i] === undefined) return undefined;
      params[name] = concrete[i];
    } else if (t !== concrete[i]) {
      return undefined;
    }
  }
  return template.length === concrete.length ? params : undefined;
}

/** Numbered parameter families: `net3` → `net[n]`, with PVE's index limits. */
const FAMILY_LIMITS: Record<string, number> = { net: 32, mp: 256, dev: 256, unused: 256 };
export function familyName(name: string): string | undefined {
  const m = /^([a-z]+)(\d+)$/.exec(name);
  if (!m) return undefined;
  const limit = FAMILY_LIMITS[m[1]];
  if (limit === undefined || Number(m[2]) >= limit || (m[2].length > 1 && m[2].startsWith("0"))) return undefined;
  return `${m[1]}[n]`;
}

const cache = new Map<PveVersion, ApiSchema>();

/** Where the schema JSON files live, both in the repo and in the installed package. */
export function schemaDir(): string {
  // dist/provider/proxmox → ../../../provider/proxmox/schema; source tree → ./schema
  const candidates = [path.join(__dirname, "schema"), path.join(__dirname, "..", "..", "..", "provider", "proxmox", "schema")];
  for (const c of candidates) if (fs.existsSync(path.join(c, "pve-9.1.json"))) return c;
  throw new Error(`PVE API schema files not found (looked in ${candidates.join(", ")}). Reinstall pulumi-proxmox-lxc.`);
}

export function loadSchema(version: PveVersion = "9.1"): ApiSchema {
  let s = cache.get(version);
  if (!s) {
    if (!PVE_VERSIONS.includes(version)) throw new Error(`Unsupported PVE schema version '${version}'. Use one of: ${PVE_VERSIONS.join(", ")}.`);
    const roots = JSON.parse(fs.readFileSync(path.join(schemaDir(), `pve-${version}.json`), "utf8")) as SchemaNode[];
    s = new ApiSchema(version, roots);
    cache.set(version, s);
  }
  return s;
}

/** The property-string format of an LXC config key (`net0`, `rootfs`, `features`, ...). */
export function lxcKeyFormat(key: string, version: PveVersion = "9.1"): Record<string, ParamSchema> | undefined {
  const p = loadSchema(version).param("/nodes/{node}/lxc", "POST", key);
  return p && typeof p.format === "object" ? p.format : undefined;
}
