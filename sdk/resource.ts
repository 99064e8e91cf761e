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
    // Pulumi's constructor makes 4 promises per property (runtime/rpc.js transferProperties)
    // and stamps each with `new Error().stack`, read only by its promise-leak report
    // (PULUMI_DEBUG_PROMISE_LEAKS). Under ts-node's source-map support, which every
    // TypeScript program runs with, those stacks were the largest per-resource cost of the
    // program: a Container (~14 properties) cost 2x a Noop's CPU (bench/pulumi-up). They
    // are skipped here; Pulumi's own source position and stack trace of the resource (state
    // `sourcePosition`, `stackTrace`) set their own limit and are unchanged.
    const limit = Error.stackTraceLimit;
    if (!process.env.PULUMI_DEBUG_PROMISE_LEAKS) Error.stackTraceLimit = 0;
    try {
      super(makeProvider(kind), name, props, withSecretOutputs(opts, settings.secretOutputs), RESOURCE_MODULE, kind);
    } catch (err) {
      Error.stackTraceLimit = limit;
      // Thrown while stacks were off (e.g. by a transform): give it this constructor's stack.
      if (err instanceof Error && !/\n\s+at /.test(err.stack ?? "")) Error.captureStackTrace(err, ProxmoxResource);
      throw err;
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}
