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
 * run time and delegates to the kind's handler. Consequences:
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

export function makeProvider(kind: string): pulumi.dynamic.ResourceProvider {
  const moduleId = PROVIDER_MODULE;
  const registry = (): any => {
    try {
      return require(moduleId);
    } catch (err) {
      throw new Error(
        `pulumi-proxmox-lxc: the dynamic provider could not load '${moduleId}' from ${process.cwd()} ` +
          `(${(err as Error).message}). Install pulumi-proxmox-lxc in the Pulumi project ` +
          `(npm install pulumi-proxmox-lxc) so it is in a node_modules folder above the project directory.`,
      );
    }
  };
  const handler = (): any => registry().getHandler(kind);
  // Handlers never see the reserved property; the host re-adds it to every result.
  const strip = (props: any): any => {
    if (props === null || typeof props !== "object") return props;
    const { __provider: _ignored, ...rest } = props;
    return rest;
  };
  return {
    configure: async (req: pulumi.dynamic.ConfigureRequest) => {
      registry().configure(req.config);
    },
    check: async (olds: any, news: any) => {
      const h = handler();
      if (!h.check) return { inputs: news };
      const result = await h.check(strip(olds), strip(news));
      // The checked inputs become the resource's inputs; they must keep `__provider` or later
      // operations could not find their provider.
      const inputs = result.inputs === undefined ? news : { ...result.inputs, __provider: news.__provider };
      return { ...result, inputs };
    },
    diff: async (id: string, olds: any, news: any) => {
      const h = handler();
      return h.diff ? h.diff(id, strip(olds), strip(news)) : {};
    },
    create: async (inputs: any) => handler().create(strip(inputs)),
    read: async (id: string, props: any) => {
      const h = handler();
      return h.read ? h.read(id, strip(props)) : { id, props };
    },
    update: async (id: string, olds: any, news: any) => {
      const h = handler();
      if (!h.update) throw new Error(`pulumi-proxmox-lxc: resource kind '${kind}' cannot be updated in place`);
      return h.update(id, strip(olds), strip(news));
    },
    delete: async (id: string, props: any) => {
      const h = handler();
      if (h.delete) await h.delete(id, strip(props));
    },
  };
}
