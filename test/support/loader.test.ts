/**
 * Fast checks of the loader/registry contract without the Pulumi CLI (the e2e suite checks the
 * same through the real engine). The serialized-provider checks use @pulumi/pulumi's own
 * closure serializer, i.e. exactly the text that would land in state.
 */
import { expect } from "chai";
import * as pulumi from "@pulumi/pulumi";
import { configure, dispatch, getProviderConfig, knownKinds } from "../../provider/resources/registry";
import { makeProvider, PROVIDER_MODULE } from "../../sdk/loader";
import { withSecretOutputs } from "../../sdk/resource";

/** Serialize the way pulumi.dynamic.Resource does (the captured name `provider` is part of the text). */
function serialize(provider: pulumi.dynamic.ResourceProvider) {
  return pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
}

function configOf(values: Record<string, string>): { get(key: string): string | undefined } {
  return { get: (key: string) => values[key] };
}

describe("registry.dispatch (handler contract)", function () {
  it("check hides __provider from the handler and puts it back into the checked inputs", async function () {
    const result = await dispatch("Noop", "check", [{}, { value: "x", __provider: "P", stray: 1 }]);
    expect(result.failures).to.deep.equal([]);
    // Noop's check keeps only its own fields; __provider is restored by dispatch.
    expect(result.inputs).to.deep.equal({ value: "x", __provider: "P" });
  });

  it("check reports a missing value with the field name", async function () {
    const result = await dispatch("Noop", "check", [{}, { __provider: "P" }]);
    expect(result.failures).to.have.length(1);
    expect(result.failures[0].property).to.equal("value");
    expect(result.failures[0].reason).to.contain("Noop.value is required");
  });

  it("diff ignores __provider and object key order; replaceOnChange makes a value change a replace", async function () {
    const olds = { value: { a: 1, b: [1, 2] }, revision: 3, __provider: "OLD" };
    const same = await dispatch("Noop", "diff", ["id", olds, { value: { b: [1, 2], a: 1 }, __provider: "NEW" }]);
    expect(same.changes).to.equal(false);
    const upd = await dispatch("Noop", "diff", ["id", olds, { value: { a: 2 }, __provider: "OLD" }]);
    expect(upd).to.include({ changes: true });
    expect(upd.replaces).to.deep.equal([]);
    const rep = await dispatch("Noop", "diff", ["id", olds, { value: { a: 2 }, replaceOnChange: true }]);
    expect(rep.replaces).to.deep.equal(["value"]);
  });

  it("create and update never see or return __provider; update counts revisions", async function () {
    const created = await dispatch("Noop", "create", [{ value: 5, __provider: "P" }]);
    expect(created.outs).to.deep.equal({ value: 5, revision: 1 });
    const updated = await dispatch("Noop", "update", [created.id, { ...created.outs, __provider: "P" }, { value: 6, __provider: "P" }]);
    expect(updated.outs).to.deep.equal({ value: 6, revision: 2 });
  });

  it("an unknown kind fails with the kind and the known kinds named", async function () {
    let err: Error | undefined;
    try {
      await dispatch("Nope", "create", [{}]);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.contain("'Nope'").and.contain(knownKinds().join(", "));
  });

  it("configure keeps the proxmox:* keys only, as raw strings", async function () {
    await dispatch("Noop", "configure", [
      { config: configOf({ "proxmox:endpoint": "https://h:8006", "proxmox:insecure": "true", "other:endpoint": "no", "proxmox:bogus": "x" }) },
    ]);
    expect(getProviderConfig()).to.deep.equal({ endpoint: "https://h:8006", insecure: "true" });
    configure(configOf({}));
    expect(getProviderConfig()).to.deep.equal({});
  });
});

describe("sdk/loader makeProvider (what state holds)", function () {
  it("serializes to a few KB that require the installed registry and capture only the kind", async function () {
    const sf = await serialize(makeProvider("Noop"));
    expect(sf.text.length).to.be.lessThan(4096);
    expect(sf.text).to.contain(`moduleId: "${PROVIDER_MODULE}"`).and.contain('kind: "Noop"');
    expect(sf.text).to.contain("require(moduleId)");
    // Nothing of the handler, the registry or the SDK is serialized.
    expect(sf.text).to.not.contain("randomUUID").and.not.contain("getHandler").and.not.contain("__awaiter");
    expect(sf.containsSecrets).to.equal(false);
    const again = await serialize(makeProvider("Noop"));
    expect(again.text, "same text every run: no spurious diff on __provider").to.equal(sf.text);
  });

  it("is one object per kind, so Pulumi serializes it once per program, not once per resource", async function () {
    // @pulumi/pulumi caches the serialized provider per object (dynamic/index.js providerCache).
    expect(makeProvider("Container")).to.equal(makeProvider("Container"));
    expect(makeProvider("Noop")).to.not.equal(makeProvider("Container"));
    const texts = await Promise.all(["Noop", "Container"].map(async (k) => (await serialize(makeProvider(k))).text));
    expect(texts[0]).to.contain('kind: "Noop"');
    expect(texts[1]).to.contain('kind: "Container"');
  });

  it("delegates to the package registry resolved by name", async function () {
    // Resolves through package.json "exports" (self-reference), i.e. dist/: built by `npm test`.
    const provider = makeProvider("Noop");
    const created = await provider.create({ value: "v", __provider: "P" });
    expect(created.outs).to.deep.equal({ value: "v", revision: 1 });
  });
});

describe("sdk/resource withSecretOutputs", function () {
  it("merges secret outputs into additionalSecretOutputs without dropping the caller's", function () {
    expect(withSecretOutputs({ additionalSecretOutputs: ["a"], protect: true }, ["b", "a"])).to.deep.equal({
      additionalSecretOutputs: ["a", "b"],
      protect: true,
    });
    expect(withSecretOutputs(undefined, [])).to.deep.equal({});
  });
});
