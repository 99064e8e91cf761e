/**
 * sdk/resource.ts ProxmoxResource: what a resource costs the user's program. Pulumi's
 * constructor stamps 4 promises per property with `new Error().stack` for its promise-leak
 * report; we skip those stacks (they are most of a Container's program CPU under ts-node),
 * unless PULUMI_DEBUG_PROMISE_LEAKS asks for them, and keep everything else.
 */
import { expect } from "chai";
import * as pulumi from "@pulumi/pulumi";
import { Container, Noop, Template } from "../../sdk";

/** How many stack traces with frames `fn` formats (every `new Error().stack` read does one). */
function stacksDuring(fn: () => void): number {
  const original = Error.prepareStackTrace;
  let count = 0;
  Error.prepareStackTrace = (e, frames) => {
    if (frames.length) count++;
    return original ? original(e, frames) : `${e}\n${frames.map((f) => `    at ${f}`).join("\n")}`;
  };
  try {
    fn();
  } finally {
    Error.prepareStackTrace = original;
  }
  return count;
}

describe("sdk ProxmoxResource (program cost)", function () {
  const registered: pulumi.runtime.MockResourceArgs[] = [];
  before(() =>
    pulumi.runtime.setMocks(
      {
        newResource: (a) => {
          registered.push(a);
          return { id: `${a.name}-id`, state: a.inputs };
        },
        call: (a) => a.inputs,
      },
      "sdk-resource",
      "test",
      false,
    ),
  );
  afterEach(() => delete process.env.PULUMI_DEBUG_PROMISE_LEAKS);

  it("takes one stack trace per resource (Pulumi's source position), not one per property promise", async function () {
    const before = Error.stackTraceLimit;
    let ct: Container | undefined;
    const stacks = stacksDuring(() => {
      ct = new Container("stk-ct", { node: "pve1", template: "local:vztmpl/a.tar.zst", hostname: "a", memory: { dedicated: 256 } });
    });
    // Was 4 per property (~12 properties here) plus Pulumi's own.
    expect(stacks).to.be.within(1, 2);
    expect(Error.stackTraceLimit).to.equal(before);
    expect(await new Promise((r) => ct!.hostname.apply(r))).to.equal("a");
    expect(registered.find((r) => r.name === "stk-ct")?.inputs).to.include({ hostname: "a", node: "pve1" });
  });

  it("keeps the stacks when PULUMI_DEBUG_PROMISE_LEAKS asks for the leak report", function () {
    process.env.PULUMI_DEBUG_PROMISE_LEAKS = "1";
    expect(stacksDuring(() => new Noop("stk-noop", { value: 1 }))).to.be.greaterThan(8);
  });

  it("an error thrown inside the constructor still has a stack, and the limit is restored", function () {
    const before = Error.stackTraceLimit;
    let err: Error | undefined;
    try {
      new Noop("stk-bad", { value: 1 }, { transformations: [() => { throw new Error("transform failed"); }] });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.contain("transform failed");
    expect(err?.stack).to.match(/\n\s+at /);
    expect(Error.stackTraceLimit).to.equal(before);
  });
});

describe("sdk Container outputs", function () {
  before(() =>
    pulumi.runtime.setMocks({ newResource: (a) => ({ id: `${a.name}-id`, state: { ...a.inputs, vmid: 101, status: "running" } }), call: (a) => a.inputs }, "sdk-outputs", "test", false),
  );

  it("every declared output is an Output, also when the program leaves that input out", async () => {
    const ct = new Container("outs-ct", { node: "pve1", template: "local:vztmpl/a.tar.zst" });
    for (const k of ["vmid", "node", "status", "hostname", "volids", "hwaddrs", "ipv4", "ipv6", "tags", "template", "isTemplate", "entrypoint", "env"] as const) {
      expect(pulumi.Output.isInstance(ct[k]), k).to.equal(true);
    }
    expect(await new Promise((r) => ct.tags.apply(r))).to.equal(undefined);
    expect(await new Promise((r) => ct.vmid.apply(r))).to.equal(101);
    // A Template's storage defaults in the provider; the output exists without the input.
    expect(pulumi.Output.isInstance(new Template("outs-t", { node: "pve1", url: "https://example.test/a.tar.zst" }).storage)).to.equal(true);
  });
});
