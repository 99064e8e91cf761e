/**
 * sdk/resource.ts ProxmoxResource: what a resource costs the user's program. Pulumi's
 * constructor stamps 4 promises per property with `new Error().stack` for its promise-leak
 * report; we skip those stacks (they are most of a Container's program CPU under ts-node),
 * unless PULUMI_DEBUG_PROMISE_LEAKS asks for them, and keep everything else.
 */
import { expect } from "chai";
import * as pulumi from "@pulumi/pulumi";
import { Container, Noop } from "../../sdk";

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
