/**
 * The serialized half of every dynamic resource in this package.
 *
 * Pulumi stores a dynamic resource's provider in its state (`__provider`) as JavaScript text
 * produced by closure serialization (@pulumi/pulumi runtime/closure): every function is
 * re-emitted from its source with the values it captures. The dynamic provider host
 * (`pulumi-resource-pulumi-nodejs`, i.e. @pulumi/pulumi/cmd/dynamic-provider) later turns that
 * text back into a module with `require-from-string`, whose module paths are the
 * node_modules folders from the host's working directory (the Pulumi project) upwards.
 *
 * So the provider below captures nothing but the kind string: each method `require`s
 * PROVIDER_MODULE — the registry of the copy of this package installed in the project — at
 * run time and calls its `dispatch(kind, op, args)`, which holds all the logic (defaults,
 * hiding `__provider` from handlers). Consequences:
 *   - state stays small (a few KB, asserted by test/e2e/noop.test.ts);
 *   - upgrading the package changes behaviour on the next up/refresh/destroy, with no
 *     stale handler code frozen into state;
 *   - `require` is deliberately NOT captured by the serializer (it treats `require` as a
 *     run-time global), which is what makes this work.
 * The serialized text is identical across runs and machines, so the engine never sees a
 * spurious input change on `__provider`.
 *
 * Do not reference module-level values from inside makeProvider's functions other than
 * string constants: anything captured is serialized into every resource's state.
 */
import type * as pulumi from "@pulumi/pulumi";

/** Resolved by Node's package "exports" map (package.json) to dist/provider/resources/registry.js. */
export const PROVIDER_MODULE = "pulumi-proxmox-lxc/provider";

/**
 * One provider object per kind, shared by every resource of that kind: @pulumi/pulumi caches
 * the serialized text per provider *object* (dynamic/index.js `providerCache`), and
 * serializing is ~15-25 ms of CPU in the program (V8 inspector round trips per function).
 * A new object per resource cost that for every resource: ~3-5 s of program CPU at 200.
 * The map is outside the closures below, so it is never serialized.
 */
const providers = new Map<string, pulumi.dynamic.ResourceProvider>();

export function makeProvider(kind: string): pulumi.dynamic.ResourceProvider {
  let provider = providers.get(kind);
  if (!provider) {
    provider = buildProvider(kind);
    providers.set(kind, provider);
  }
  return provider;
}

function buildProvider(kind: string): pulumi.dynamic.ResourceProvider {
  const moduleId = PROVIDER_MODULE;
  // All logic lives in the registry's `dispatch`; this closure is what every resource's state holds.
  const call = (op: string, args: unknown[]): Promise<any> => {
    let registry: any;
    try {
      registry = require(moduleId);
    } catch (err) {
      throw new Error(
        `pulumi-proxmox-lxc: cannot load '${moduleId}' from ${process.cwd()} (${(err as Error).message}). ` +
          `Install pulumi-proxmox-lxc in the Pulumi project (npm install pulumi-proxmox-lxc).`,
      );
    }
    return registry.dispatch(kind, op, args);
  };
  return {
    configure: (req: pulumi.dynamic.ConfigureRequest) => call("configure", [req]),
    check: (olds: any, news: any) => call("check", [olds, news]),
    diff: (id: string, olds: any, news: any) => call("diff", [id, olds, news]),
    create: (inputs: any) => call("create", [inputs]),
    read: (id: string, props: any) => call("read", [id, props]),
    update: (id: string, olds: any, news: any) => call("update", [id, olds, news]),
    delete: (id: string, props: any) => call("delete", [id, props]),
  };
}
