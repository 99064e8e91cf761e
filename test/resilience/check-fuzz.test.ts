/**
 * Bad input, property-based (fast-check), for the resources test/resources/check-fuzz.test.ts
 * does not cover: Template, Snapshot and OciImage check(). For each: check() never throws,
 * every rejection names a field (and the reason says which), and a sample of what check()
 * accepts is really created against the sandbox — where neither the client's own schema
 * validation (PveValidationError, "nothing sent") nor the sandbox's (its violation counter)
 * may refuse it. Errors the handler raises for other reasons (an appliance not in the
 * index, a URL nobody serves) are fine: they are not inputs check() should have caught.
 */
import { expect } from "chai";
import fc from "fast-check";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { dispatch } from "../../provider/resources/registry";
import ociImage from "../../provider/resources/oci-image/handler";
import { tarGz, useSandbox } from "./world";
import type { PveClient } from "../../provider/proxmox/client";

const junk = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 }), fc.object({ maxDepth: 1 }));
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(fc.oneof({ weight: 10, arbitrary: a }, { weight: 1, arbitrary: junk as fc.Arbitrary<unknown> }), { nil: undefined, freq: 2 });
const mostly = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<unknown>) => fc.oneof({ weight: 8, arbitrary: good as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: bad });
const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const timeouts = (keys: string[]) => maybe(fc.record(Object.fromEntries(keys.map((k) => [k, maybe(mostly(fc.integer({ min: 1, max: 3600 }), fc.integer({ min: -5, max: 0 })))])) as Record<string, fc.Arbitrary<unknown>>));
const node = mostly(fc.constant("pve1"), fc.oneof(fc.constantFrom("bad node", "-x", ""), fc.string({ maxLength: 6 })));
const NULL_PORT = "127.0.0.1:9"; // discard port: nothing listens, refused at once

interface Stats {
  tried: number;
  accepted: number;
  rejected: number;
  created: number;
  createErrors: Record<string, number>;
}

describe("resilience: bad input to check() (fast-check)", function () {
  this.timeout(5 * 60 * 1000);
  let sb: SandboxHandle;
  let client: PveClient;
  let dir: string;
  let file: string;
  let ctVmid: number;
  const summary: Record<string, Stats> = {};

  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 2, authFailureDelayMs: 0 });
    // root@pam by ticket: accepted inputs include root-only settings (feature flags other than
    // nesting), which a real node — and the sandbox — refuse to every API token.
    client = useSandbox(sb, "ticket");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "resil-fuzz-"));
    file = path.join(dir, "image.tar.gz");
    fs.writeFileSync(file, await tarGz());
    const apl = (await client.storage.aplinfo("pve1")).find((a) => a.template.startsWith("alpine"))!;
    await client.storage.aplDownloadAndWait("pve1", "shared-nfs", apl.template);
    ctVmid = (await client.lxc.createContainer({ node: "pve1", config: { ostemplate: `shared-nfs:vztmpl/${apl.template}`, rootfs: "local-lvm:1", hostname: "fuzz" } })).vmid;
  });
  after(async () => {
    for (const [kind, s] of Object.entries(summary)) {
      console.log(`      ${kind}: ${s.tried} inputs, ${s.accepted} accepted, ${s.rejected} rejected naming a field; ${s.created} accepted ones sent to the sandbox (handler errors: ${JSON.stringify(s.createErrors)})`);
    }
    await sb?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** check() on `input`; assert the failure contract; return the checked inputs when accepted. */
  async function checked(kind: string, check: (o: object, n: object) => Promise<any>, input: unknown, s: Stats): Promise<Record<string, unknown> | undefined> {
    s.tried++;
    const clean = JSON.parse(JSON.stringify(input)) as Record<string, unknown>;
    let res: { inputs?: Record<string, unknown>; failures?: Array<{ property: string; reason: string }> };
    try {
      res = await check({}, clean);
    } catch (e) {
      throw new Error(`${kind} check() threw on ${JSON.stringify(clean)}: ${(e as Error).stack}`);
    }
    if (res.failures?.length) {
      s.rejected++;
      for (const f of res.failures) {
        // A secret input's failure carries no property (the CLI would print the value with
        // it, issue 15); its reason still names the field.
        const secret = f.property === "" && /^(Container password|OciImage credentials)[.: ]/.test(f.reason);
        if (!secret) expect(f.property, `${kind}: a failure without a field: ${JSON.stringify(f)}`).to.be.a("string").and.not.equal("");
        expect(f.reason, `${kind}: the reason does not name its field: ${JSON.stringify(f)}`).to.include(f.property === "(inputs)" ? "" : f.property);
      }
      return undefined;
    }
    s.accepted++;
    return res.inputs!;
  }

  /** Create accepted inputs against the sandbox: only non-input errors are acceptable. */
  async function create(kind: string, createFn: (i: Record<string, unknown>) => Promise<any>, deleteFn: (id: string, outs: any) => Promise<void>, inputs: Record<string, unknown>, s: Stats): Promise<void> {
    s.created++;
    try {
      const r = await createFn(inputs);
      await deleteFn(r.id, r.outs);
    } catch (e) {
      const err = e as Error & { id?: string; properties?: unknown };
      // Refused by the client's schema validation (nothing sent) or by input parsing: check()
      // should have said so. A server-side 400 about the node's own setup (e.g. "storage
      // 'local' does not support container directories") is not an input check() can judge;
      // a server-side schema violation shows in the sandbox's counter below.
      expect(["PveValidationError", "InputError"], `${kind}: check() accepted ${JSON.stringify(inputs)} but it was refused: ${err.message}`).to.not.include(err.name);
      const key = err.message.replace(/[0-9a-f]{8,}|\d+/g, "#").slice(0, 110);
      s.createErrors[key] = (s.createErrors[key] ?? 0) + 1;
      if (err.id) await deleteFn(err.id, err.properties).catch(() => undefined);
    }
    expect((await sb.admin.counters()).violationCount, `${kind}: sandbox schema violations after ${JSON.stringify(inputs)}`).to.equal(0);
  }

  const stats = (kind: string): Stats => (summary[kind] = { tried: 0, accepted: 0, rejected: 0, created: 0, createErrors: {} });

  it("Template: never crashes, names the field, and what it accepts is sent without a schema violation", async () => {
    const s = stats("Template");
    const algo = fc.constantFrom("md5", "sha1", "sha224", "sha256", "sha384", "sha512");
    const fileName = mostly(fc.constantFrom("a.tar.gz", "my image.tar.zst", "x.tar", "../up.tar.xz", "t.tar.bz2"), fc.constantFrom("x.tgz", "x.iso", "", "x.tar.gz.part"));
    const source = fc.oneof(
      fc.record({ url: mostly(fc.constantFrom(`http://${NULL_PORT}/ct.tar.gz`, `https://${NULL_PORT}/a/b.tar.zst`, `http://user:pw@${NULL_PORT}/c.tar`), fc.constantFrom("ftp://x/y.tar", "not a url", "http:// spaced")) }),
      fc.record({ appliance: mostly(fc.constantFrom("alpine-3.20-default_20240908_amd64.tar.gz", "debian-12-standard", "nonexistent-appliance"), fc.constant("")) }),
      fc.record({ path: mostly(fc.constant(file), fc.constantFrom("/nonexistent/file.tar.gz", "relative.tar.gz", "")) }),
      fc.record({ url: fc.constant(`http://${NULL_PORT}/x.tar.gz`), path: fc.constant(file) }),
      fc.constant({}),
    );
    const arb = fc
      .record(
        {
          node,
          storage: maybe(mostly(fc.constantFrom("local", "shared-nfs", "local-lvm"), fc.constantFrom("Bad Storage", "-x"))),
          fileName: fc.option(fileName, { nil: undefined, freq: 3 }),
          existing: maybe(mostly(fc.constantFrom("fail", "adopt", "overwrite"), fc.constant("ignore"))),
          verifyCertificates: maybe(fc.boolean()),
          timeouts: timeouts(["create", "delete"]),
          bogus: fc.option(junk, { nil: undefined, freq: 10 }),
        },
        { requiredKeys: ["node"] },
      )
      .chain((base) => source.map((src) => ({ ...base, ...src })))
      .chain((a) =>
        // Mostly no checksum or a matching pair; sometimes any combination.
        fc.oneof(
          { weight: 6, arbitrary: fc.constant(a) },
          { weight: 2, arbitrary: algo.chain((al) => hex({ md5: 32, sha1: 40, sha224: 56, sha256: 64, sha384: 96, sha512: 128 }[al]!).map((c) => ({ ...a, checksum: c, checksumAlgorithm: al }))) },
          { weight: 1, arbitrary: fc.record({ checksum: maybe(fc.oneof(hex(32), hex(64), fc.constantFrom("XYZ", "abc"))), checksumAlgorithm: maybe(mostly(algo, fc.constant("crc32"))) }).map((c) => ({ ...a, ...c })) },
        ),
      );
    const samples: Array<Record<string, unknown>> = [];
    await fc.assert(
      fc.asyncProperty(arb, async (input) => {
        const ok = await checked("Template", (o, n) => dispatch("Template", "check", [o, n]), input, s);
        if (ok && samples.length < 25) samples.push(ok);
      }),
      { numRuns: 600, seed: 20261125 },
    );
    for (const i of samples) await create("Template", (x) => dispatch("Template", "create", [x]), (id, outs) => dispatch("Template", "delete", [id, outs]), i, s);
    expect(s.accepted, "enough accepted inputs to test what is sent").to.be.greaterThan(10);
  });

  it("Snapshot: never crashes, names the field, and what it accepts is sent without a schema violation", async () => {
    const s = stats("Snapshot");
    const arb = fc.record(
      {
        node,
        vmid: mostly(fc.integer({ min: 100, max: 999_999_999 }), fc.oneof(fc.integer({ min: -5, max: 99 }), fc.constant("101"), fc.double())),
        name: mostly(fc.oneof(fc.constantFrom("before-upgrade", "s1", "Nightly_2026"), fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_-]{1,39}$/)), fc.oneof(fc.constantFrom("current", "vzdump", "a", "1abc", "with space", "x".repeat(41)), fc.string({ maxLength: 8 }))),
        description: maybe(fc.string({ maxLength: 40 })),
        rollbackTrigger: maybe(fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.boolean())),
        startAfterRollback: maybe(fc.boolean()),
        timeouts: timeouts(["create", "delete", "rollback"]),
        bogus: fc.option(junk, { nil: undefined, freq: 10 }),
      },
      { requiredKeys: ["node", "vmid", "name"] },
    );
    const samples: Array<Record<string, unknown>> = [];
    await fc.assert(
      fc.asyncProperty(arb, async (input) => {
        const ok = await checked("Snapshot", (o, n) => dispatch("Snapshot", "check", [o, n]), input, s);
        if (ok && samples.length < 25) samples.push(ok);
      }),
      { numRuns: 600, seed: 20261125 },
    );
    // Against the one real CT: the accepted name/description/timeouts are what is sent.
    const seen = new Set<string>();
    for (const i of samples) {
      if (seen.has(String(i.name))) continue;
      seen.add(String(i.name));
      await create("Snapshot", (x) => dispatch("Snapshot", "create", [{ ...x, node: "pve1", vmid: ctVmid }]), (id, outs) => dispatch("Snapshot", "delete", [id, outs]), i, s);
    }
    expect(s.accepted, "enough accepted inputs to test what is sent").to.be.greaterThan(20);
    expect((await client.lxc.listSnapshots("pve1", ctVmid)).map((x) => x.name), "every sample snapshot deleted again").to.deep.equal(["current"]);
  });

  it("Container: a sample of what check() accepts is created against the sandbox without a schema violation", async () => {
    // test/resources/check-fuzz.test.ts fuzzes Container check() against the schema offline;
    // here accepted inputs are really created (and destroyed) on the sandbox.
    const s = stats("Container");
    const apl = `shared-nfs:vztmpl/${(await client.storage.aplinfo("pve1")).find((a) => a.template.startsWith("alpine"))!.template}`;
    const arb = fc.record(
      {
        node: mostly(fc.constant("pve1"), fc.constant("bad node")),
        template: mostly(fc.constant(apl), fc.constant("local:iso/x.iso")),
        hostname: maybe(mostly(fc.constantFrom("web", "web-1", "a.b.c"), fc.constantFrom("-bad", "x_y", ""))),
        description: maybe(fc.string({ maxLength: 30 })),
        tags: maybe(fc.array(mostly(fc.constantFrom("prod", "Web", "a+b"), fc.constantFrom("-x", "a b")), { maxLength: 3 })),
        protection: maybe(fc.boolean()),
        started: maybe(fc.boolean()),
        features: maybe(fc.record({ nesting: maybe(fc.boolean()), keyctl: maybe(fc.boolean()) })),
        cpu: maybe(fc.record({ cores: maybe(mostly(fc.integer({ min: 1, max: 16 }), fc.constant(0))), limit: maybe(fc.double({ min: 0, max: 16, noNaN: true })), units: maybe(fc.integer({ min: 0, max: 10000 })) })),
        memory: maybe(fc.record({ dedicated: maybe(mostly(fc.integer({ min: 16, max: 8192 }), fc.constant(8))), swap: maybe(fc.integer({ min: 0, max: 4096 })) })),
        rootfs: maybe(fc.record({ storage: fc.constantFrom("local-lvm", "local-zfs"), size: mostly(fc.constantFrom("1G", "512M", 2), fc.constantFrom("0.3M", "-1G")), mountOptions: maybe(fc.array(fc.constantFrom("noatime", "discard"), { maxLength: 2 })) })),
        mountPoints: maybe(fc.array(fc.record({ slot: fc.integer({ min: 0, max: 3 }), storage: fc.constantFrom("local-lvm", "local-zfs"), size: fc.constantFrom("1G", "256M"), path: mostly(fc.constantFrom("/data", "/srv/x", "/var/log/app"), fc.constant("/a/../b")), backup: maybe(fc.boolean()), readOnly: maybe(fc.boolean()) }), { maxLength: 2 })),
        networks: maybe(fc.array(fc.record({ name: fc.constantFrom("eth0", "eth1"), bridge: maybe(fc.constantFrom("vmbr0", "vmbr1")), ip: maybe(fc.constantFrom("dhcp", "10.0.0.5/24", "manual", "10.0.0.5")), ip6: maybe(fc.constantFrom("auto", "dhcp", "fd00::5/64")), firewall: maybe(fc.boolean()), mtu: maybe(fc.integer({ min: 576, max: 9000 })), tag: maybe(fc.integer({ min: 1, max: 4094 })) }, { requiredKeys: ["name"] }), { maxLength: 2 })),
        dns: maybe(fc.record({ servers: maybe(fc.array(fc.ipV4(), { maxLength: 2 })), searchDomains: maybe(fc.array(fc.constantFrom("example.test", "lan"), { maxLength: 2 })) })),
        startup: maybe(fc.record({ order: maybe(fc.integer({ min: 0, max: 10 })), up: maybe(fc.integer({ min: 0, max: 60 })) })),
        startOnBoot: maybe(fc.boolean()),
        console: maybe(fc.record({ mode: maybe(fc.constantFrom("shell", "console", "tty")), ttys: maybe(fc.integer({ min: 0, max: 6 })) })),
        timezone: maybe(fc.constantFrom("host", "Europe/Berlin", "UTC")),
        password: maybe(mostly(fc.string({ minLength: 5, maxLength: 12 }), fc.string({ maxLength: 4 }))),
        env: maybe(fc.dictionary(fc.constantFrom("A", "PATH", "B_2"), fc.string({ maxLength: 6 }).filter((v) => !/[\x00-\x1f\x7f]/.test(v)), { maxKeys: 2 })),
        pendingChanges: maybe(fc.constantFrom("reboot", "leave")),
      },
      { requiredKeys: ["node", "template"] },
    );
    const samples: Array<Record<string, unknown>> = [];
    await fc.assert(
      fc.asyncProperty(arb, async (input) => {
        const ok = await checked("Container", (o, n) => dispatch("Container", "check", [o, n]), input, s);
        if (ok && samples.length < 30) samples.push(ok);
      }),
      { numRuns: 400, seed: 20261125 },
    );
    for (const i of samples) {
      await create("Container", (x) => dispatch("Container", "create", [{ ...x, protection: false }]), (id, outs) => dispatch("Container", "delete", [id, outs]), i, s);
    }
    expect(s.accepted, "enough accepted inputs to test what is sent").to.be.greaterThan(10);
    expect((await client.cluster.containers()).map((g) => Number(g.vmid)), "every sample CT destroyed again").to.deep.equal([ctVmid]);
  });

  it("OciImage: never crashes, names the field, and what it accepts is sent without a schema violation", async () => {
    const s = stats("OciImage");
    const arb = fc.record(
      {
        node,
        storage: maybe(mostly(fc.constantFrom("local", "shared-nfs"), fc.constant("Bad Storage"))),
        source: mostly(
          fc.constantFrom(`${NULL_PORT}/app:1.0`, `docker://${NULL_PORT}/lib/alpine:3.20`, `${NULL_PORT}/app@sha256:${"a".repeat(64)}`, `oci:${dir}:v1`, `oci-archive:${file}`, "oci-archive:/nonexistent.tar"),
          fc.oneof(fc.constantFrom("", "UPPER/case:tag", "docker://", "oci:"), fc.string({ maxLength: 10 })),
        ),
        platform: maybe(mostly(fc.constantFrom("linux/amd64", "linux/arm64/v8"), fc.constantFrom("windows", "linux/", "x/y/z/w"))),
        credentials: maybe(fc.record({ username: mostly(fc.constant("ci"), fc.constant("")), password: mostly(fc.constant("registry-pw-123"), fc.constant("")) })),
        insecureRegistry: maybe(fc.boolean()),
        fileName: maybe(mostly(fc.constantFrom("app.tar", "app-1.0.tar.zst"), fc.constantFrom("bad name.tar", "a/b"))),
        mode: maybe(mostly(fc.constantFrom("server", "client", "auto"), fc.constant("remote"))),
        format: maybe(mostly(fc.constantFrom("oci-archive", "rootfs"), fc.constant("qcow2"))),
        compression: maybe(mostly(fc.constantFrom("gzip", "zstd"), fc.constant("lz4"))),
        timeouts: timeouts(["create", "delete"]),
      },
      { requiredKeys: ["node", "source"] },
    );
    const samples: Array<Record<string, unknown>> = [];
    await fc.assert(
      fc.asyncProperty(arb, async (input) => {
        const ok = await checked("OciImage", (o, n) => ociImage.check!(o, n), input, s);
        if (ok && samples.length < 12) samples.push(ok);
      }),
      { numRuns: 500, seed: 20261125 },
    );
    // Sources point at a refused loopback port or local files: what goes to the sandbox is the
    // oci-registry-pull or upload request, which must pass the schema.
    for (const i of samples) await create("OciImage", (x) => ociImage.create(x), (id, outs) => ociImage.delete!(id, outs), { ...i, timeouts: { create: 20 } }, s);
    expect(s.accepted, "enough accepted inputs to test what is sent").to.be.greaterThan(10);
  });
});
