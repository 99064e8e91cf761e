/**
 * Handler registry: the run-time half of every dynamic resource in this package.
 *
 * How a resource works end to end (Noop is the reference; Container, Template, Snapshot and
 * OciImage follow the same pattern):
 *
 *   1. sdk/<kind>.ts declares `class X extends ProxmoxResource` (sdk/resource.ts), passing the
 *      kind string ("Noop", "Container", ...). The Pulumi program runs that code.
 *   2. sdk/loader.ts `makeProvider(kind)` builds the `pulumi.dynamic.ResourceProvider` that
 *      Pulumi serializes into the resource's state (`__provider`). Its methods only capture the
 *      kind string: at run time, inside the dynamic provider host process
 *      (`pulumi-resource-pulumi-nodejs`), they `require("pulumi-proxmox-lxc/provider")` — this
 *      module, from the INSTALLED package — and call `dispatch(kind, op, args)`. So state stays
 *      small (~2.6 KB) and every `up`/`refresh`/`destroy` runs the handler code that is installed
 *      now, never a stale copy frozen into the state file.
 *   3. This registry maps kind -> handler module (loaded lazily, so a Noop-only program never
 *      loads the Proxmox client). To add a resource: write a module whose default export is a
 *      `ResourceHandler` (e.g. provider/resources/container/handler.ts) and add one line to
 *      HANDLER_MODULES. Handlers read settings with `getProviderConfig()`.
 *   4. `configure` is called by the dynamic provider host once per distinct serialized
 *      provider string (i.e. once per kind per process) with the full stack configuration
 *      (the engine passes every namespace to dynamic providers). We keep the raw `proxmox:*`
 *      values; provider/proxmox/settings.ts turns them into validated connection settings.
 *
 * Because the loader only ever calls `dispatch`, everything that is logic (defaults for missing handler methods, hiding the reserved `__provider` property from
 * handlers) lives here, in the installed package, and never in state.
 */
import type * as pulumi from "@pulumi/pulumi";

/** The CRUD contract a handler implements (same shapes as pulumi.dynamic.ResourceProvider). */
export interface ResourceHandler<Inputs = any, Outputs = any> {
  check?(olds: Inputs, news: Inputs): Promise<pulumi.dynamic.CheckResult<Inputs>>;
  diff?(id: string, olds: Outputs, news: Inputs): Promise<pulumi.dynamic.DiffResult>;
  create(inputs: Inputs): Promise<pulumi.dynamic.CreateResult<Outputs>>;
  read?(id: string, props: Outputs): Promise<pulumi.dynamic.ReadResult<Outputs>>;
  update?(id: string, olds: Outputs, news: Inputs): Promise<pulumi.dynamic.UpdateResult<Outputs>>;
  delete?(id: string, props: Outputs): Promise<void>;
}

/** kind -> module path relative to this file. Add new resources here. */
const HANDLER_MODULES: Record<string, string> = {
  Noop: "./noop",
  Container: "./container/handler",
  Template: "./template/handler",
  Snapshot: "./snapshot/handler",
  Backup: "./backup/handler",
  OciImage: "./oci-image/handler",
};

const loaded = new Map<string, ResourceHandler>();

/** Kinds this version of the package can serve. */
export function knownKinds(): string[] {
  return Object.keys(HANDLER_MODULES);
}

export function getHandler(kind: string): ResourceHandler {
  const cached = loaded.get(kind);
  if (cached) return cached;
  const modPath = HANDLER_MODULES[kind];
  if (!modPath) {
    // Happens when state written by a newer package version is driven by an older install.
    throw new Error(
      `pulumi-proxmox-lxc: no handler for resource kind '${kind}' in the installed package ` +
        `(known: ${knownKinds().join(", ")}). Install the package version that created this resource.`,
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(modPath) as { default?: ResourceHandler };
  if (!mod.default || typeof mod.default.create !== "function") {
    throw new Error(`pulumi-proxmox-lxc: handler module for '${kind}' (${modPath}) has no default export with create()`);
  }
  loaded.set(kind, mod.default);
  return mod.default;
}

const PROVIDER_KEY = "__provider";

/** Copy of `props` without the reserved `__provider` (the dynamic provider host re-adds it to results). */
function strip<T>(props: T): T {
  if (props === null || typeof props !== "object" || !(PROVIDER_KEY in (props as object))) return props;
  const { [PROVIDER_KEY]: _ignored, ...rest } = props as Record<string, unknown>;
  return rest as T;
}

/** Operations the loader forwards; names and argument lists are those of pulumi.dynamic.ResourceProvider. */
export type Operation = "configure" | "check" | "diff" | "create" | "read" | "update" | "delete";

/**
 * Entry point for the serialized loader (sdk/loader.ts). Keep this signature stable: state
 * written by every earlier version of the package calls it.
 */
export async function dispatch(kind: string, op: Operation, args: any[]): Promise<any> {
  if (op === "configure") {
    configure((args[0] as pulumi.dynamic.ConfigureRequest).config);
    return undefined;
  }
  const h = getHandler(kind);
  switch (op) {
    case "check": {
      const [olds, news] = args;
      if (!h.check) return { inputs: news };
      const result = await h.check(strip(olds), strip(news));
      // The checked inputs become the resource's inputs and must keep `__provider`, or later
      // operations could not find their provider.
      const inputs = result.inputs === undefined ? news : { ...result.inputs, [PROVIDER_KEY]: news[PROVIDER_KEY] };
      return { ...result, inputs };
    }
    case "diff": {
      const [id, olds, news] = args;
      // No diff method: let the engine compare inputs itself (DIFF_UNKNOWN).
      return h.diff ? h.diff(id, strip(olds), strip(news)) : {};
    }
    case "create":
      return h.create(strip(args[0]));
    case "read": {
      const [id, props] = args;
      return h.read ? h.read(id, strip(props)) : { id, props };
    }
    case "update": {
      const [id, olds, news] = args;
      if (!h.update) throw new Error(`pulumi-proxmox-lxc: resource kind '${kind}' cannot be updated in place`);
      return h.update(id, strip(olds), strip(news));
    }
    case "delete": {
      const [id, props] = args;
      if (h.delete) await h.delete(id, strip(props));
      return undefined;
    }
    default:
      throw new Error(`pulumi-proxmox-lxc: unknown provider operation '${String(op)}' for kind '${kind}'`);
  }
}

/** Stack config keys read from the `proxmox:` namespace. */
export const PROVIDER_CONFIG_KEYS = [
  "endpoint",
  "apiToken",
  "username",
  "password",
  "otp",
  "insecure",
  "caCert",
  "tlsFingerprint",
  "logLevel",
  "logFile",
  "metricsFile",
] as const;

export type ProviderConfigKey = (typeof PROVIDER_CONFIG_KEYS)[number];

/** Raw `proxmox:*` values as strings (secrets already decrypted by the engine); unset keys are absent. */
export type ProviderConfig = Partial<Record<ProviderConfigKey, string>>;

export const CONFIG_NAMESPACE = "proxmox";

let providerConfig: ProviderConfig = {};

/** What `configure` receives: pulumi.dynamic.Config (only `get` is used). */
export interface ConfigSource {
  get(key: string): string | undefined;
}

/**
 * Store the provider configuration. Called from the loader's `configure`; tests may call it
 * directly. Replaces any previous configuration (a process serves one stack).
 */
export function configure(config: ConfigSource): void {
  const next: ProviderConfig = {};
  for (const key of PROVIDER_CONFIG_KEYS) {
    const value = config.get(`${CONFIG_NAMESPACE}:${key}`);
    if (value !== undefined) next[key] = value;
  }
  providerConfig = next;
}

/** The raw provider configuration. Contains secrets: never log or return it as an output. */
export function getProviderConfig(): Readonly<ProviderConfig> {
  return providerConfig;
}
