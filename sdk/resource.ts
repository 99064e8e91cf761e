/**
 * Base class for this package's resources. A resource is declared as:
 *
 *   export class Thing extends ProxmoxResource {
 *     declare public readonly someOutput: pulumi.Output<string>;   // `declare`: see below
 *     constructor(name: string, args: ThingArgs, opts?: pulumi.CustomResourceOptions) {
 *       super("Thing", name, { ...args, someOutput: undefined }, opts, { secretOutputs: ["password"] });
 *     }
 *   }
 *
 * with a handler registered under the same kind in provider/resources/registry.ts.
 *
 * - Output-only properties must be present in `props` with value `undefined`, so Pulumi
 *   registers them as outputs and fills the class properties.
 * - Output properties must use `declare` (not `!`): with target ES2022 TypeScript emits class
 *   fields that would overwrite, after `super()` returns, the outputs Pulumi just assigned.
 * - `secretOutputs` lists outputs to store encrypted even when their inputs were plain
 *   (merged into `additionalSecretOutputs`), e.g. a generated password.
 * - The type token is `pulumi-nodejs:dynamic/proxmox:<kind>`; changing it needs an alias.
 */
import * as pulumi from "@pulumi/pulumi";
import { makeProvider } from "./loader";

export interface ProxmoxResourceSettings {
  /** Output property names that must always be stored as secrets. */
  secretOutputs?: string[];
}

export const RESOURCE_MODULE = "proxmox";

export function withSecretOutputs(
  opts: pulumi.CustomResourceOptions | undefined,
  secretOutputs: string[] | undefined,
): pulumi.CustomResourceOptions {
  if (!secretOutputs || secretOutputs.length === 0) return opts ?? {};
  const merged = new Set([...(opts?.additionalSecretOutputs ?? []), ...secretOutputs]);
  return { ...opts, additionalSecretOutputs: [...merged] };
}

export abstract class ProxmoxResource extends pulumi.dynamic.Resource {
  protected constructor(
    kind: string,
    name: string,
    props: Record<string, unknown>,
    opts?: pulumi.CustomResourceOptions,
    settings: ProxmoxResourceSettings = {},
  ) {
    super(makeProvider(kind), name, props, withSecretOutputs(opts, settings.secretOutputs), RESOURCE_MODULE, kind);
  }
}
