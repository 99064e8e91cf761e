/**
 * What the provider host loads per command. Module loading is the largest fixed cost of a
 * dynamic provider host (bench/pulumi-up: `wrapSafe` at the top of its profile), and a
 * `pulumi preview` of an unchanged stack only runs check and diff, which make no API call.
 * Each case runs in a fresh node process, so nothing loaded by other tests counts.
 */
import { expect } from "chai";
import { execFileSync } from "node:child_process";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "..", "..");

/** Runs `body` (JS, `dispatch` in scope) in a fresh process; returns the modules it loaded. */
function modulesAfter(body: string): string[] {
  const script = `
    const { dispatch } = require("./provider/resources/registry");
    (async () => {
      ${body}
      process.stdout.write(JSON.stringify(Object.keys(require.cache).map((f) => require("node:path").relative(process.cwd(), f))));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = execFileSync(process.execPath, ["-r", "ts-node/register/transpile-only", "-e", script], {
    cwd: ROOT,
    env: { ...process.env, PULUMI_PROXMOX_LOG_FILE: "-", PULUMI_PROXMOX_LOG_LEVEL: "silent" },
    encoding: "utf8",
  });
  return JSON.parse(out) as string[];
}

describe("provider host module loading", function () {
  this.timeout(120_000);

  it("a Container check and diff (a preview) load neither the API client nor its HTTP stack", function () {
    const inputs = `{ resourceName: "ct0", node: "pve1", template: "local:vztmpl/alpine.tar.zst", hostname: "ct0", rootfs: { storage: "local-lvm", size: "2G" } }`;
    const mods = modulesAfter(`
      const checked = await dispatch("Container", "check", [{}, ${inputs}]);
      if (checked.failures && checked.failures.length) throw new Error(JSON.stringify(checked.failures));
      const olds = { ...checked.inputs, unprivileged: true, vmid: 100, status: "running", volids: { rootfs: "local-lvm:vm-100-disk-0" }, hwaddrs: {}, ipv4: {}, ipv6: {} };
      const d = await dispatch("Container", "diff", ["100", olds, checked.inputs]);
      if (d.changes) throw new Error("unexpected change: " + JSON.stringify(d));
    `);
    expect(mods.some((m) => m.includes("resources/container/handler")), "the handler itself is loaded").to.equal(true);
    expect(mods.filter((m) => /node_modules\/axios\//.test(m))).to.deep.equal([]);
    expect(mods.filter((m) => /provider\/proxmox\/(client|transport|lxc|storage|upload|tasks)\./.test(m))).to.deep.equal([]);
  });
});
