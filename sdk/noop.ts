/**
 * Noop: manages nothing outside Pulumi state (see provider/resources/noop.ts). Useful to check
 * an installation end to end and as the engine-overhead baseline in benchmarks.
 */
import * as pulumi from "@pulumi/pulumi";
import { ProxmoxResource } from "./resource";

export interface NoopArgs {
  /** Any JSON value; echoed to the `value` output. Changing it is an update (or a replace, see below). */
  value: pulumi.Input<string | number | boolean | object>;
  /** When true, a change of `value` replaces the resource instead of updating it. Default false. */
  replaceOnChange?: pulumi.Input<boolean>;
  /** Echoed to the `secretValue` output, which is always stored as a secret. */
  secretValue?: pulumi.Input<string>;
}

export class Noop extends ProxmoxResource {
  declare public readonly value: pulumi.Output<string | number | boolean | object>;
  declare public readonly replaceOnChange: pulumi.Output<boolean | undefined>;
  declare public readonly secretValue: pulumi.Output<string | undefined>;
  /** 1 after create, +1 for each in-place update. */
  declare public readonly revision: pulumi.Output<number>;

  constructor(name: string, args: NoopArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      "Noop",
      name,
      { value: args.value, replaceOnChange: args.replaceOnChange, secretValue: args.secretValue, revision: undefined },
      opts,
      { secretOutputs: ["secretValue"] },
    );
  }
}
