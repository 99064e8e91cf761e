/**
 * The two forms of every lookup, as Pulumi providers offer them (`getAmi` / `getAmiOutput`):
 *
 *   - the Promise form takes plain values and sends its request when called — in a preview
 *     too: the program awaits the value and may branch on it, so the value is used;
 *   - the Output form takes Inputs and returns an Output. By default ("query") it resolves
 *     during a preview too, so the preview of whatever consumes it is exact: an unknown value
 *     fed into a replace field such as `Container.template` would preview as a replacement
 *     that `up` may never do, and a preview must say what `up` will do. `preview: "skip"`
 *     sends no request during a preview; the value is then unknown there, like the output of
 *     a resource still to be created. `pulumi up` always resolves it.
 *
 * Why not "request lazily, only if the value is consumed": a Pulumi Output is eager — its
 * constructor already subscribes to the value, and every `apply` and every resource input
 * does so at once — so there is no point at which "not consumed" could be observed.
 *
 * Inputs are checked (zod) before anything is sent: a bad argument fails with an error that
 * names the field, from both forms.
 */
import * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import type { PveClient } from "../../provider/proxmox/client";
import { parseInputs } from "../../provider/resources/validation";
import { lookupClient } from "./connection";

/** Options of the `…Output` form of a lookup. */
export interface LookupOutputOptions {
  /**
   * During `pulumi preview`: "query" (default) sends the request, so consumers of the result
   * preview exactly; "skip" sends no request and leaves the result unknown.
   */
  preview?: "skip" | "query";
  /** Resources to wait for first (e.g. a Template the lookup should see). While one is being
   * created in a preview, the result is unknown. */
  dependsOn?: pulumi.Input<pulumi.Input<pulumi.Resource>[]> | pulumi.Input<pulumi.Resource>;
}

/** A field of the Output form's arguments: an Input, and for a list a list of Inputs too. */
type InputField<V> = V extends (infer E)[] ? pulumi.Input<pulumi.Input<E>[]> : pulumi.Input<V>;
/** The Output form's argument type for a Promise form's arguments. */
export type Inputs<T> = { [K in keyof T]: InputField<T[K]> };

export interface LookupDefinition<A, R> {
  /** The function name, used in error messages and logs (e.g. "getVolumes"). */
  name: string;
  /** Checks the arguments; strict, so a misspelt field is named. */
  schema: z.ZodType<A, z.ZodTypeDef, unknown>;
  fetch(client: PveClient, args: A): Promise<R>;
}

/** The Promise form: validate, then request. */
export async function runLookup<A, R>(def: LookupDefinition<A, R>, args: unknown): Promise<R> {
  const parsed = parseInputs(def.name, def.schema, args ?? {});
  const client = await lookupClient();
  const log = client.log.child({ lookup: def.name });
  const started = Date.now();
  log.debug({ args: parsed }, "lookup started"); // arguments hold no secrets
  try {
    const result = await def.fetch(client.withLogger(log), parsed);
    log.debug({ durationMs: Date.now() - started }, "lookup finished");
    return result;
  } catch (err) {
    // The client's errors are typed and already scrubbed of secrets; keep their class.
    log.warn({ durationMs: Date.now() - started, err: { type: (err as Error)?.name, message: (err as Error)?.message } }, "lookup failed");
    throw err;
  }
}

/** Every resource in `dependsOn`, resolved to something that is known only once it exists. */
function readiness(dependsOn: LookupOutputOptions["dependsOn"]): pulumi.Output<unknown[]> {
  if (dependsOn === undefined) return pulumi.output([]);
  return (pulumi.output(dependsOn as pulumi.Input<unknown>) as pulumi.Output<unknown>).apply((d) => {
    const list = (Array.isArray(d) ? d : [d]) as pulumi.Resource[];
    // A custom resource's id is unknown while it is being created in a preview.
    return pulumi.all(list.map((r) => (pulumi.CustomResource.isInstance(r) ? r.id : r.urn)));
  });
}

/** The Output form (see the file comment for the preview rule). */
export function runLookupOutput<A, R>(def: LookupDefinition<A, R>, args: unknown, opts: LookupOutputOptions = {}): pulumi.Output<R> {
  const mode = opts.preview ?? "query";
  if (mode !== "skip" && mode !== "query") {
    throw new Error(`${def.name}Output: opts.preview must be "skip" or "query" (got ${JSON.stringify(mode)})`);
  }
  if (pulumi.runtime.isDryRun() && mode === "skip") return pulumi.output(pulumi.unknown) as pulumi.Output<R>;
  return pulumi
    .all([pulumi.output(args as pulumi.Input<unknown>), readiness(opts.dependsOn)])
    .apply(([plain]) => runLookup(def, plain)) as unknown as pulumi.Output<R>;
}

/** `o` without its undefined fields (results read cleanly and export without holes). */
export function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** PVE's `a;b` / `a,b` lists (tags, content types) as an array, empty entries dropped. */
export function splitList(s: string | undefined, sep: RegExp = /[;,\s]+/): string[] {
  return (s ?? "").split(sep).filter((x) => x !== "");
}
