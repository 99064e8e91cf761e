/**
 * Property-based: random argument objects thrown at Container check() never crash it,
 * every rejection names a field, and whatever check() accepts maps to a create request the
 * PVE 9.1 schema accepts — so nothing invalid is ever sent.
 */
import { expect } from "chai";
import fc from "fast-check";
import handler, { createParams } from "../../provider/resources/container/handler";
import { containerArgsSchema } from "../../provider/resources/container/args";
import { loadSchema } from "../../provider/proxmox/schema";
import { validateParams } from "../../provider/proxmox/validate";
import { configure } from "../../provider/resources/registry";

const junk = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 }), fc.object({ maxDepth: 1 }));
/** Mostly absent or plausible, sometimes junk: enough valid inputs get through to test what is sent. */
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(fc.oneof({ weight: 12, arbitrary: a }, { weight: 1, arbitrary: junk as fc.Arbitrary<unknown> }), { nil: undefined, freq: 2 });
const mostly = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>) => fc.oneof({ weight: 10, arbitrary: good }, { weight: 1, arbitrary: bad });
const size = fc.oneof(fc.constantFrom("8G", "512M", "1T", "0.5G", "100K", "-1G", "G"), fc.integer({ min: -2, max: 64 }), fc.double({ min: 0.1, max: 8, noNaN: true }));
const name = mostly(fc.constantFrom("web", "web-1", "a.b.c"), fc.oneof(fc.constantFrom("-bad", "x_y", ""), fc.string({ maxLength: 12 })));
const ip4 = fc.oneof(fc.constantFrom("dhcp", "manual", "10.0.0.5/24", "10.0.0.5", "300.1.1.1/24", "fd00::1/64"), fc.ipV4().map((s) => `${s}/24`));
const net = fc.record(
  {
    slot: maybe(fc.integer({ min: -1, max: 40 })),
    name: mostly(fc.constantFrom("eth0", "eth1", "eth2"), fc.oneof(fc.constant("bad name"), fc.string({ maxLength: 6 }))),
    bridge: maybe(fc.constantFrom("vmbr0", "vmbr1", "br 0")),
    ip: maybe(ip4),
    gw: maybe(mostly(fc.constant("10.0.0.1"), fc.oneof(fc.ipV4(), fc.constant("x")))),
    ip6: maybe(fc.constantFrom("auto", "dhcp", "fd00::5/64", "nope")),
    hwaddr: maybe(fc.constantFrom("BC:24:11:00:00:01", "01:00:00:00:00:01", "zz")),
    mtu: maybe(fc.integer({ min: 0, max: 70000 })),
    tag: maybe(fc.integer({ min: 0, max: 5000 })),
    trunks: maybe(fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 3 })),
    firewall: maybe(fc.boolean()),
    hostManaged: maybe(fc.boolean()),
  },
  { requiredKeys: ["name"] },
);
const mp = fc.record({
  slot: mostly(fc.integer({ min: 0, max: 255 }), fc.constantFrom(-1, 300)),
  storage: fc.option(mostly(fc.constantFrom("local-lvm", "local-zfs"), fc.constant("Bad Storage")), { nil: undefined, freq: 4 }),
  size: mostly(fc.constantFrom("1G", "512M"), size),
  volume: fc.option(mostly(fc.constant("local-lvm:vm-100-disk-1"), fc.constant("nope")), { nil: undefined, freq: 8 }),
  hostPath: fc.option(mostly(fc.constant("/srv/data"), fc.constant("relative")), { nil: undefined, freq: 8 }),
  path: mostly(fc.constantFrom("/data", "/logs", "/srv/x"), fc.constantFrom("/a/../b", "data", "/x,y")),
  backup: maybe(fc.boolean()),
  readOnly: maybe(fc.boolean()),
  mountOptions: maybe(fc.array(mostly(fc.constantFrom("noatime", "discard"), fc.constant("bogus")), { maxLength: 2 })),
});

const args = fc.record(
  {
    node: mostly(fc.constantFrom("pve1", "pve-2"), fc.oneof(fc.constant("bad node"), fc.string({ maxLength: 5 }))),
    vmid: maybe(mostly(fc.integer({ min: 100, max: 999_999_999 }), fc.integer({ min: -5, max: 99 }))),
    template: mostly(fc.constant("local:vztmpl/debian-12.tar.zst"), fc.constantFrom("local:iso/x.iso", "nope")),
    hostname: maybe(name),
    description: maybe(fc.string({ maxLength: 20 })),
    tags: maybe(fc.array(mostly(fc.constantFrom("prod", "Web", "a+b", "web"), fc.oneof(fc.constant("-x"), fc.string({ maxLength: 5 }))), { maxLength: 3 })),
    unprivileged: maybe(fc.boolean()),
    protection: maybe(fc.boolean()),
    features: maybe(fc.record({ nesting: maybe(fc.boolean()), fuse: maybe(fc.boolean()), mount: maybe(fc.array(mostly(fc.constantFrom("nfs", "cifs"), fc.constant("b a d")), { maxLength: 2 })) })),
    cpu: maybe(fc.record({ cores: maybe(mostly(fc.integer({ min: 1, max: 64 }), fc.integer({ min: -1, max: 9000 }))), limit: maybe(mostly(fc.double({ min: 0, max: 64, noNaN: true }), fc.double({ min: -1, max: 9000, noNaN: true }))), units: maybe(mostly(fc.integer({ min: 0, max: 10000 }), fc.integer({ min: -1, max: 600000 }))) })),
    memory: maybe(fc.record({ dedicated: maybe(mostly(fc.integer({ min: 16, max: 1 << 20 }), fc.integer({ min: 0, max: 15 }))), swap: maybe(mostly(fc.integer({ min: 0, max: 1 << 20 }), fc.constant(-1))) })),
    rootfs: maybe(fc.record({ storage: mostly(fc.constantFrom("local-lvm", "local-zfs"), fc.constant("x y")), size: mostly(fc.constantFrom("8G", "512M", "1T"), size), mountOptions: maybe(fc.array(mostly(fc.constant("noatime"), fc.constant("bogus")), { maxLength: 2 })) })),
    mountPoints: maybe(fc.array(mp, { maxLength: 2 })),
    networks: maybe(fc.array(net, { maxLength: 2 })),
    dns: maybe(fc.record({ servers: maybe(fc.array(mostly(fc.ipV4(), fc.constant("dns.example")), { maxLength: 2 })), searchDomains: maybe(fc.array(name, { maxLength: 2 })) })),
    startup: maybe(fc.record({ order: maybe(mostly(fc.integer({ min: 0, max: 10 }), fc.constant(-1))), up: maybe(mostly(fc.integer({ min: 0, max: 10 }), fc.constant(-1))) })),
    console: maybe(fc.record({ mode: maybe(mostly(fc.constantFrom("shell", "console", "tty"), fc.constant("vnc"))), ttys: maybe(mostly(fc.integer({ min: 0, max: 6 }), fc.constantFrom(-1, 8))) })),
    timezone: maybe(mostly(fc.constantFrom("host", "Europe/Berlin"), fc.constant("bad zone"))),
    password: maybe(mostly(fc.string({ minLength: 5, maxLength: 10 }), fc.string({ maxLength: 4 }))),
    entrypoint: maybe(fc.oneof(fc.constant("/bin/sh -c 'echo hi'"), fc.string({ maxLength: 8 }))),
    env: maybe(fc.dictionary(mostly(fc.constantFrom("A", "PATH", "B_2"), fc.oneof(fc.constant("bad-name"), fc.string({ maxLength: 4 }))), mostly(fc.string({ maxLength: 6 }).filter((v) => !/[\x00-\x1f\x7f]/.test(v)), fc.string({ maxLength: 6 })), { maxKeys: 3 })),
    startOnBoot: maybe(fc.boolean()),
    pendingChanges: maybe(mostly(fc.constantFrom("reboot", "leave"), fc.constant("later"))),
  },
  { requiredKeys: ["node", "template"] },
);

describe("Container check() under random input (fast-check)", () => {
  before(() => configure({ get: (k) => (k === "proxmox:apiToken" ? "root@pam!t=00000000-0000-0000-0000-000000000000" : k === "proxmox:logLevel" ? "silent" : undefined) }));

  it("never crashes, names a field in every rejection, and never accepts what PVE would refuse", async () => {
    const props = loadSchema("9.1").method("/nodes/{node}/lxc", "POST")!.parameters!.properties;
    let accepted = 0;
    let rejected = 0;
    const reasons: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(args, async (input) => {
        const clean = JSON.parse(JSON.stringify(input)) as Record<string, unknown>;
        const res = await handler.check!({}, clean);
        if (res.failures?.length) {
          rejected++;
          if (process.env.FUZZ_DEBUG) for (const f of res.failures) reasons[f.reason.split(":")[0]] = (reasons[f.reason.split(":")[0]] ?? 0) + 1;
          for (const f of res.failures) {
            // A secret input's failure carries no property (the CLI prints it with the value).
            if (!(f.property === "" && /^(Container password|OciImage credentials)[.: ]/.test(f.reason))) expect(f.property, JSON.stringify(f)).to.be.a("string").and.not.equal("");
            expect(f.reason).to.include(f.property === "(inputs)" ? "" : f.property);
          }
          return;
        }
        accepted++;
        const parsed = containerArgsSchema.parse(res.inputs);
        if (!parsed.template) return; // adopt-only inputs send no create
        const request = { node: parsed.node, vmid: parsed.vmid ?? 100, ...createParams(parsed) };
        const errors = validateParams(props, request);
        expect(errors, `check() accepted ${JSON.stringify(clean)} but PVE would answer ${JSON.stringify(errors)}`).to.equal(undefined);
      }),
      { numRuns: 1000, seed: 20261125 },
    );
    console.log(`      fast-check: ${accepted + rejected} inputs, ${accepted} accepted (all schema-valid), ${rejected} rejected with a named field`);
    if (process.env.FUZZ_DEBUG) console.log(reasons);
    expect(accepted).to.be.greaterThan(10);
  });
});
