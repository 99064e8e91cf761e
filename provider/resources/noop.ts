/**
 * Noop: a resource that manages nothing outside Pulumi's state. It exists to exercise the
 * loader/registry machinery end to end through the real engine (test/e2e/noop.test.ts) and
 * as the engine-floor baseline for bench/: any cost measured for Noop is Pulumi + Node.js +
 * dynamic provider overhead, not Proxmox.
 *
 * Behaviour: `value` (any JSON value) is echoed to the outputs; `revision` counts updates
 * (1 on create); `secretValue` is echoed and marked secret by the SDK class; changing `value`
 * updates in place unless `replaceOnChange` is true, in which case it replaces.
 */
import { randomUUID } from "node:crypto";
import type * as pulumi from "@pulumi/pulumi";
import type { ResourceHandler } from "./registry";
import { UNKNOWN } from "./validation";

export interface NoopInputs {
  value: unknown;
  replaceOnChange?: boolean;
  secretValue?: string;
}

export interface NoopOutputs extends NoopInputs {
  revision: number;
}

const FIELDS = ["value", "replaceOnChange", "secretValue"] as const;

/** Order-insensitive comparison for JSON values (object key order is not a change). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "undefined";
}

function pick(inputs: NoopInputs): NoopInputs {
  const out: NoopInputs = { value: inputs.value };
  if (inputs.replaceOnChange !== undefined) out.replaceOnChange = inputs.replaceOnChange;
  if (inputs.secretValue !== undefined) out.secretValue = inputs.secretValue;
  return out;
}

const handler: ResourceHandler<NoopInputs, NoopOutputs> = {
  async check(_olds, news) {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (news.value === undefined || news.value === null) {
      failures.push({ property: "value", reason: "Noop.value is required: give any string, number, boolean or object." });
    }
    if (news.replaceOnChange !== undefined && typeof news.replaceOnChange !== "boolean") {
      failures.push({ property: "replaceOnChange", reason: `Noop.replaceOnChange must be true or false, got ${typeof news.replaceOnChange}.` });
    }
    if (news.secretValue !== undefined && typeof news.secretValue !== "string") {
      failures.push({ property: "secretValue", reason: `Noop.secretValue must be a string, got ${typeof news.secretValue}.` });
    }
    return { inputs: pick(news), failures };
  },

  async diff(_id, olds, news) {
    const changed = FIELDS.filter((f) => canonical(olds[f]) !== canonical(news[f]));
    // An unknown replaceOnChange (preview) may be true: a changed value may then replace.
    const mayReplace = news.replaceOnChange === true || (news.replaceOnChange as unknown) === UNKNOWN;
    const replaces = mayReplace && changed.includes("value") ? ["value"] : [];
    return { changes: changed.length > 0, replaces, deleteBeforeReplace: false };
  },

  async create(inputs) {
    return { id: randomUUID(), outs: { ...pick(inputs), revision: 1 } };
  },

  async read(id, props) {
    // Nothing outside the state to consult: the state is the truth.
    return { id, props };
  },

  async update(_id, olds, news) {
    return { outs: { ...pick(news), revision: (typeof olds.revision === "number" ? olds.revision : 0) + 1 } };
  },

  async delete() {
    // Nothing to clean up.
  },
};

export default handler;
