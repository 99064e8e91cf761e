/**
 * Container addresses (issue 20, issue 15 item 10): the outputs come from `ip-addresses`
 * (all addresses, link-local and loopback left out), create/update wait only for what
 * DHCP/SLAAC hands out and only up to `waitForIp.timeout`, a wait that runs out is a
 * warning naming the interface and the likely causes (an error with `required`), and
 * refresh never waits. In process, against the sandbox with DHCP made silent or slow.
 */
import { expect } from "chai";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import handler from "../../provider/resources/container/handler";
import { addressesOf, awaitedAddresses, timeoutMessage } from "../../provider/resources/container/addresses";
import { providerClient } from "../../provider/resources/operation";
import { PveClient, parseSettings } from "../../provider/proxmox";
import type { LxcInterface } from "../../provider/proxmox/lxc";
import { captureLogger } from "../../provider/logging";
import { useSandboxProvider, applianceTemplate } from "../support/provider";
import { certFingerprint, startTinyServer, type TinyServer } from "../proxmox/support/tinyServer";

/** What a real PVE 8.4 host answers for a CT with DHCP + SLAAC: `inet6` is the LAST address, the link-local one. */
const REAL_ANSWER: LxcInterface[] = [
  {
    name: "eth0",
    hwaddr: "bc:24:11:aa:bb:cc",
    inet: "192.168.7.20/24",
    inet6: "fe80::be24:11ff:feaa:bbcc/64",
    "ip-addresses": [
      { "ip-address": "192.168.7.20", "ip-address-type": "inet", prefix: 24 },
      { "ip-address": "2001:db8:7::be24:11ff:feaa:bbcc", "ip-address-type": "inet6", prefix: 64 },
      { "ip-address": "fd00:7::20", "ip-address-type": "inet6", prefix: 128 },
      { "ip-address": "fe80::be24:11ff:feaa:bbcc", "ip-address-type": "inet6", prefix: 64 },
    ],
  },
  {
    name: "eth1",
    hwaddr: "bc:24:11:aa:bb:cd",
    inet: "169.254.3.9/16",
    inet6: "fe80::be24:11ff:feaa:bbcd/64",
    "ip-addresses": [
      { "ip-address": "169.254.3.9", "ip-address-type": "inet", prefix: 16 },
      { "ip-address": "fe80::be24:11ff:feaa:bbcd", "ip-address-type": "inet6", prefix: 64 },
    ],
  },
  {
    name: "lo",
    hwaddr: "00:00:00:00:00:00",
    inet: "127.0.0.1/8",
    inet6: "::1/128",
    "ip-addresses": [
      { "ip-address": "127.0.0.1", "ip-address-type": "inet", prefix: 8 },
      { "ip-address": "::1", "ip-address-type": "inet6", prefix: 128 },
    ],
  },
];

describe("Container addresses: which ones", () => {
  it("reads every address from ip-addresses, leaving out link-local and loopback", () => {
    expect(addressesOf(REAL_ANSWER)).to.deep.equal({
      ipv4: { eth0: ["192.168.7.20/24"] },
      ipv6: { eth0: ["2001:db8:7::be24:11ff:feaa:bbcc/64", "fd00:7::20/128"] },
    });
  });

  it("waits by default only for families an interface gets by dhcp/auto", () => {
    const nets = (n: Record<string, unknown>) => ({ networks: [{ name: "eth0", bridge: "vmbr0", ...n }] }) as Parameters<typeof awaitedAddresses>[0];
    expect(awaitedAddresses(nets({ ip: "10.0.0.5/24", ip6: "fd00::5/64" }))).to.deep.equal([]);
    expect(awaitedAddresses(nets({ ip6: "dhcp" }))).to.deep.equal([{ family: "ipv6", name: "eth0", mode: "dhcp", bridge: "vmbr0" }]);
    expect(awaitedAddresses(nets({ ip: "dhcp", ip6: "auto" })).map((w) => w.family)).to.deep.equal(["ipv4", "ipv6"]);
    expect(awaitedAddresses({ ...nets({ ip: "dhcp", ip6: "auto" }), waitForIp: { ipv6: false } }).map((w) => w.family)).to.deep.equal(["ipv4"]);
    // true: an address of that family on any interface, e.g. one configured inside the CT.
    expect(awaitedAddresses({ ...nets({ ip: "manual" }), waitForIp: { ipv4: true } })).to.deep.equal([{ family: "ipv4" }]);
    expect(awaitedAddresses({ ...nets({ ip: "dhcp" }), started: false })).to.deep.equal([]);
    expect(awaitedAddresses({ networks: [{ name: "eth0", ip: "dhcp", linkDown: true }] } as Parameters<typeof awaitedAddresses>[0])).to.deep.equal([]);
  });

  it("a timeout message names the interface, the bridge and the likely causes", () => {
    const text = timeoutMessage([{ family: "ipv4", name: "eth0", mode: "dhcp", bridge: "vmbr1" }, { family: "ipv6", name: "eth1", mode: "auto", bridge: "vmbr2" }], 30, false);
    expect(text).to.include("eth0 (IPv4, dhcp)").and.include("eth1 (IPv6, auto)").and.include("after 30 s");
    expect(text).to.include("no DHCP server answering on bridge vmbr1");
    expect(text).to.include("router advertisements on bridge vmbr2");
    expect(text).to.include("no DHCP client").and.include("firewall");
    expect(text).to.include("waitForIp.timeout").and.include("waitForIp.required: true");
    expect(timeoutMessage([{ family: "ipv4", name: "eth0", mode: "dhcp" }], 5, true)).to.include("waitForIp.required is true").and.include("The container exists");
  });
});

describe("Container addresses: GET …/interfaces as PVE 8.4 answers it", () => {
  let s: TinyServer;
  const answers: Record<string, unknown> = {};
  before(async () => {
    s = await startTinyServer("self-a", (req, res) => {
      res.writeHead(200, { "Content-Type": "application/json;charset=UTF-8" });
      res.end(JSON.stringify({ data: answers[req.url.split("?")[0]] ?? null }));
    });
  });
  after(() => s.stop());

  it("a stopped CT's `{data: null}` is no interfaces; a running one's list parses with its ip-addresses", async () => {
    const c = PveClient.fromSettings(parseSettings({ endpoint: s.endpoint, apiToken: "root@pam!t=7d1f0c55-0000-4a4a-9b9b-123456789abc", tlsFingerprint: certFingerprint("self-a") }, {}), {
      schemaVersion: "9.1",
      logger: captureLogger({ level: "warn" }).logger,
    });
    try {
      expect(await c.lxc.interfaces("vm", 900)).to.deep.equal([]);
      // The transcript's running CT: eth0 first, no inet keys, empty ip-addresses.
      answers["/api2/json/nodes/vm/lxc/901/interfaces"] = [
        { "hardware-address": "bc:24:11:00:00:01", hwaddr: "bc:24:11:00:00:01", "ip-addresses": [], name: "eth0" },
        { "hardware-address": "00:00:00:00:00:00", hwaddr: "00:00:00:00:00:00", "ip-addresses": [], name: "lo" },
      ];
      expect(addressesOf(await c.lxc.interfaces("vm", 901))).to.deep.equal({ ipv4: {}, ipv6: {} });
      answers["/api2/json/nodes/vm/lxc/902/interfaces"] = REAL_ANSWER;
      expect(addressesOf(await c.lxc.interfaces("vm", 902)).ipv6.eth0).to.deep.equal(["2001:db8:7::be24:11ff:feaa:bbcc/64", "fd00:7::20/128"]);
    } finally {
      c.close();
    }
  });
});

describe("Container addresses: waiting (in process, against the sandbox)", function () {
  this.timeout(120_000);
  let sb: SandboxHandle;
  let template: string;
  const created: string[] = [];

  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1", "pve2"], taskDurationMs: 5, authFailureDelayMs: 0 });
    useSandboxProvider(sb);
    template = await applianceTemplate("debian");
    // vmbr1 has no DHCP server and no router: its interfaces only ever get link-local addresses.
    await sb.admin.setDhcp({ bridge: "vmbr1", answers: false });
  });
  after(async () => {
    for (const id of created) await handler.delete!(id, { node: "pve1" }).catch(() => undefined);
    await sb?.stop();
  });

  const base = (net: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    node: "pve1",
    template,
    rootfs: { storage: "local-lvm", size: "4G" },
    networks: [{ name: "eth0", ...net }],
    resourceName: "addr",
    ...extra,
  });

  /** Run `fn` with progress lines on, returning what it wrote to stderr. */
  async function stderrOf<T>(fn: () => Promise<T>): Promise<{ result?: T; error?: Error; text: string; ms: number }> {
    const write = process.stderr.write.bind(process.stderr);
    const prev = process.env.PULUMI_PROXMOX_PROGRESS;
    let text = "";
    process.env.PULUMI_PROXMOX_PROGRESS = "1";
    process.stderr.write = ((chunk: string | Uint8Array) => ((text += chunk.toString()), true)) as typeof process.stderr.write;
    const t0 = Date.now();
    try {
      return { result: await fn(), text, ms: Date.now() - t0 };
    } catch (e) {
      return { error: e as Error, text, ms: Date.now() - t0 };
    } finally {
      process.stderr.write = write;
      process.env.PULUMI_PROXMOX_PROGRESS = prev;
    }
  }

  async function create(inputs: Record<string, unknown>) {
    const checked = await handler.check!({}, inputs);
    expect(checked.failures ?? []).to.deep.equal([]);
    const run = await stderrOf(() => handler.create(checked.inputs));
    const id = run.result?.id ?? (run.error as { id?: string } | undefined)?.id;
    if (id) created.push(id);
    return { ...run, inputs: checked.inputs, id, outs: run.result?.outs as Record<string, any> | undefined };
  }

  it("a CT whose DHCP never answers is created after waitForIp.timeout, with empty addresses and a warning", async () => {
    const r = await create(base({ bridge: "vmbr1", ip: "dhcp" }, { waitForIp: { timeout: 2 } }));
    expect(r.error).to.equal(undefined);
    expect(r.outs!.status).to.equal("running");
    expect(r.outs!.ipv4).to.deep.equal({});
    expect(r.outs!.ipv6).to.deep.equal({});
    expect(r.ms).to.be.within(1900, 10_000);
    expect(r.text).to.match(/waiting for an IPv4 address \(DHCP\) on eth0: \d+ s left/);
    expect(r.text).to.include("warning: no address on eth0 (IPv4, dhcp) after 2 s");
    expect(r.text).to.include("no DHCP server answering on bridge vmbr1").and.include("no DHCP client").and.include("firewall");

    // Refresh never waits, even with a long waitForIp in the state: it reports what the CT has now.
    const props = { ...r.outs!, waitForIp: { timeout: 30 } };
    const t0 = Date.now();
    const read = await handler.read!(r.id!, props);
    expect(Date.now() - t0).to.be.below(1500);
    expect(read.props!.ipv4).to.deep.equal({});
    const diffAt = Date.now();
    expect((await handler.diff!(r.id!, read.props!, { ...r.inputs, waitForIp: { timeout: 30 } })).changes).to.equal(false);
    expect(Date.now() - diffAt).to.be.below(500);

    // An update that neither restarts the CT nor touches its networks does not wait again.
    const tagged = await handler.check!({}, { ...base({ bridge: "vmbr1", ip: "dhcp" }, { waitForIp: { timeout: 30 } }), tags: ["x"] });
    const t1 = Date.now();
    const upd = await handler.update!(r.id!, read.props!, tagged.inputs);
    expect(Date.now() - t1).to.be.below(5000);
    expect((upd.outs as Record<string, any>).tags).to.deep.equal(["x"]);
  });

  it("with waitForIp.required the create fails naming the interface, but the CT is recorded", async () => {
    const r = await create(base({ bridge: "vmbr1", ip: "dhcp" }, { waitForIp: { timeout: 1, required: true } }));
    expect(r.error?.message).to.include("no address on eth0 (IPv4, dhcp) after 1 s").and.include("waitForIp.required is true");
    const partial = r.error as Error & { id?: string; properties?: Record<string, any> };
    expect(partial.id).to.match(/^\d+$/);
    expect(partial.properties!.status).to.equal("running");
    expect(partial.properties!.ipv4).to.deep.equal({});
    expect(await providerClient().cluster.findGuest(Number(partial.id))).to.not.equal(undefined);
  });

  it("an ip6: dhcp-only network does not wait for IPv4, and IPv6 comes from ip-addresses without link-local", async () => {
    const r = await create(base({ bridge: "vmbr0", ip6: "dhcp" }, { timeouts: { start: 120 } }));
    expect(r.error).to.equal(undefined);
    expect(r.ms).to.be.below(5000);
    expect(r.outs!.ipv4).to.deep.equal({});
    expect(r.outs!.ipv6.eth0).to.have.length(1);
    expect(r.outs!.ipv6.eth0[0]).to.match(/^fd00:20::/);
    const raw = await providerClient().lxc.interfaces("pve1", Number(r.id));
    expect(raw.find((i) => i.name === "eth0")!["ip-addresses"]!.some((a) => a["ip-address"]!.startsWith("fe80:"))).to.equal(true);
  });

  it("an ip6: dhcp network whose DHCPv6 never answers waits waitForIp.timeout, not timeouts.start", async () => {
    const r = await create(base({ bridge: "vmbr1", ip6: "dhcp" }, { waitForIp: { timeout: 1 }, timeouts: { start: 120 } }));
    expect(r.error).to.equal(undefined);
    expect(r.ms).to.be.below(6000);
    expect(r.outs!.ipv6).to.deep.equal({});
    expect(r.text).to.include("no address on eth0 (IPv6, dhcp)").and.include("no DHCPv6 server answering on bridge vmbr1");
  });

  it("waits for a slow lease and reports it; static addresses need no wait", async () => {
    await sb.admin.setDhcp({ bridge: "vmbr0", family: "ipv4", delayMs: 1500 });
    try {
      const r = await create(base({ bridge: "vmbr0", ip: "dhcp", ip6: "fd00:5::7/64" }));
      expect(r.error).to.equal(undefined);
      expect(r.ms).to.be.at.least(1400);
      expect(r.outs!.ipv4.eth0).to.have.length(1);
      expect(r.outs!.ipv6.eth0).to.deep.equal(["fd00:5::7/64"]);
      expect(r.text).to.match(/waiting for an IPv4 address \(DHCP\) on eth0: (2\d|30) s left/);
      expect(r.text).to.include("got the awaited addresses");
      const fixed = await create(base({ bridge: "vmbr0", ip: "10.9.0.5/24" }));
      expect(fixed.outs!.ipv4).to.deep.equal({ eth0: ["10.9.0.5/24"] });
      expect(fixed.text).to.not.include("waiting for");
    } finally {
      await sb.admin.setDhcp({ reset: true });
      await sb.admin.setDhcp({ bridge: "vmbr1", answers: false });
    }
  });

  it("waitForIp: { ipv4: false } does not wait at all", async () => {
    const r = await create(base({ bridge: "vmbr1", ip: "dhcp" }, { waitForIp: { ipv4: false, timeout: 30 } }));
    expect(r.error).to.equal(undefined);
    expect(r.ms).to.be.below(3000);
    expect(r.text).to.equal("");
  });

  it("a migration of a CT without a lease waits at most waitForIp.timeout, as a create does", async () => {
    const r = await create(base({ bridge: "vmbr1", ip: "dhcp" }, { waitForIp: { timeout: 1 } }));
    expect(r.error).to.equal(undefined);
    const moved = await handler.check!({}, base({ bridge: "vmbr1", ip: "dhcp" }, { node: "pve2", waitForIp: { timeout: 1 }, timeouts: { start: 120 } }));
    const d = await handler.diff!(r.id!, r.outs!, moved.inputs);
    expect(d.replaces ?? []).to.deep.equal([]);
    const run = await stderrOf(() => handler.update!(r.id!, r.outs!, moved.inputs));
    expect(run.error).to.equal(undefined);
    const outs = run.result!.outs as Record<string, any>;
    expect(outs.node).to.equal("pve2");
    expect(outs.ipv4).to.deep.equal({});
    expect(run.ms).to.be.below(8000);
    expect(run.text).to.include("warning: no address on eth0 (IPv4, dhcp) after 1 s");
  });

  it("a create that awaits no address reports the static ones without reading the interfaces (one request less)", async () => {
    const IFACES = "GET /nodes/{node}/lxc/{vmid}/interfaces";
    const before = (await sb.admin.counters()).requests[IFACES] ?? 0;
    const r = await create(base({ bridge: "vmbr0", ip: "10.9.0.6/24", ip6: "fd00:5::8/64" }));
    expect(r.error).to.equal(undefined);
    expect(r.outs!.ipv4).to.deep.equal({ eth0: ["10.9.0.6/24"] });
    expect(r.outs!.ipv6).to.deep.equal({ eth0: ["fd00:5::8/64"] });
    expect((await sb.admin.counters()).requests[IFACES] ?? 0).to.equal(before);
    // Refresh reads what the CT has now.
    const read = await handler.read!(r.id!, r.outs!);
    expect((read.props as Record<string, any>).ipv4.eth0).to.include("10.9.0.6/24");
    expect((await sb.admin.counters()).requests[IFACES]).to.equal(before + 1);
  });

  it("check() names the field of a bad waitForIp", async () => {
    const bad = await handler.check!({}, base({ bridge: "vmbr0", ip: "dhcp" }, { waitForIp: { timeout: -1, ipv4: "yes" } }));
    expect((bad.failures ?? []).map((f) => f.property)).to.deep.equal(["waitForIp", "waitForIp"]);
    const reasons = (bad.failures ?? []).map((f) => f.reason).join("\n");
    expect(reasons).to.include("waitForIp.timeout").and.include("waitForIp.ipv4");
    const unknown = await handler.check!({}, base({ bridge: "vmbr0", ip: "dhcp" }, { waitForIp: { ipv5: true } }));
    expect((unknown.failures ?? []).map((f) => f.reason).join(" ")).to.include("waitForIp").and.include("ipv5");
  });

  it("the sandbox saw no schema violations", async () => {
    expect((await sb.admin.counters()).violations).to.deep.equal([]);
  });
});
