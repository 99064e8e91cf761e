/**
 * `pve-lxc report` the way examples/ci/preview.yml runs it: change the program, run
 * `pulumi preview --json > preview.json`, run `pve-lxc report preview.json --deny ...`, and
 * check the Markdown and the exit code — for a change of every kind the report names —
 * against the in-process sandbox. After each preview the change is applied with `up`, so the
 * next step starts from what Proxmox really has, and the report's words are checked against
 * what `up` then did (a migration really moved the CT, a grown disk really grew).
 */
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { SandboxHandle } from "../../sandbox";
import type { PveClient } from "../../provider/proxmox/client";
import type { PulumiStack } from "../support/pulumi";
import { startCliStack, stopCliStack } from "../support/e2e";

interface Knobs {
  node?: string;
  memory?: number;
  nesting?: boolean;
  storage?: string;
  size?: string;
  password?: string;
  vmid?: number;
  pendingChanges?: "reboot" | "leave";
  /** false: the program no longer declares the container. */
  present?: boolean;
}

function program(template: string, k: Knobs = {}): string {
  if (k.present === false) return `export const none = 1;\n`;
  return `
import { Container } from "pulumi-proxmox-lxc";
const web = new Container("web", {
  node: ${JSON.stringify(k.node ?? "pve1")},
  template: ${JSON.stringify(template)},
  ${k.vmid ? `vmid: ${k.vmid},` : ""}
  hostname: "web-1",
  memory: { dedicated: ${k.memory ?? 512} },
  features: { nesting: ${k.nesting ?? true} },
  rootfs: { storage: ${JSON.stringify(k.storage ?? "local-lvm")}, size: ${JSON.stringify(k.size ?? "4G")} },
  networks: [{ name: "eth0", bridge: "vmbr0", ip: "10.10.0.5/24", gw: "10.10.0.1" }],
  password: ${JSON.stringify(k.password ?? "first-password")},
  pendingChanges: ${JSON.stringify(k.pendingChanges ?? "reboot")},
});
export const vmid = web.vmid;
`;
}

describe("e2e: pve-lxc report on pulumi preview --json (the CI steps)", function () {
  this.timeout(15 * 60 * 1000);
  let sb: SandboxHandle;
  let stack: PulumiStack;
  let client: PveClient;
  let template: string;
  let knobs: Knobs = {};

  before(async function () {
    this.timeout(45 * 60 * 1000);
    ({ sb, client, stack, template } = await startCliStack("debian", program));
  });
  after(() => stopCliStack({ sb, stack }));

  /** The CI steps: preview --json to a file, then pve-lxc report on it. */
  async function previewAndReport(change: Knobs, deny?: string): Promise<{ md: string; code: number; stderr: string }> {
    knobs = { ...knobs, ...change };
    stack.writeProgram(program(template, knobs));
    const preview = await stack.run(["preview", "--json"]);
    const file = path.join(stack.dir, "preview.json");
    fs.writeFileSync(file, preview.stdout);
    const cli = path.join(stack.projectDir, "node_modules", "pulumi-proxmox-lxc", "dist", "provider", "cli", "main.js");
    const out = path.join(stack.dir, "report.md");
    if (process.env.REPORT_DEBUG) fs.copyFileSync(file, `/tmp/report-debug-${Date.now()}.json`);
    const r = spawnSync(process.execPath, [cli, "report", file, "--output", out, ...(deny ? ["--deny", deny] : [])], { encoding: "utf8" });
    expect(r.stdout, "stdout and --output hold the same Markdown").to.equal(fs.readFileSync(out, "utf8"));
    return { md: r.stdout, code: r.status ?? -1, stderr: r.stderr };
  }

  it("examples/ci/preview.yml runs these same two commands", () => {
    const workflow = fs.readFileSync(path.join(__dirname, "..", "..", "examples", "ci", "preview.yml"), "utf8");
    expect(workflow).to.match(/pulumi preview --json .*> "\$RUNNER_TEMP\/preview.json"/);
    expect(workflow).to.match(/npx --no-install pve-lxc report "\$RUNNER_TEMP\/preview.json" --deny "\$DENY" --output "\$RUNNER_TEMP\/report.md"/);
  });

  /** `pulumi up`; on failure, the engine's error diagnostics (not the tail of the event stream). */
  async function up(): Promise<void> {
    const r = await stack.run(["up", "--yes", "--skip-preview", "--json"], { allowFailure: true });
    if (r.code === 0) return;
    const errors = r.stdout
      .split("\n")
      .filter((l) => l.includes('"diagnosticEvent"'))
      .map((l) => JSON.parse(l).diagnosticEvent)
      .filter((d) => d.severity === "error")
      .map((d) => d.message);
    throw new Error(`pulumi up failed:\n${errors.join("\n")}\n${r.stderr}`);
  }

  let vmid: number;
  const where = async () => (await client.cluster.findGuest(vmid))?.node;
  const config = async () => client.lxc.getConfig((await where())!, vmid, { current: true });

  it("create: names the container and its node; --deny create fails naming it", async () => {
    const r = await previewAndReport({}, "create");
    expect(r.md, r.md).to.include("| `web` | Container | created |");
    expect(r.md, r.md).to.include("- **created** on `pve1` from `" + template + "`");
    expect(r.code).to.equal(1);
    expect(r.md, r.md).to.include("- `web` (Container) would be created (--deny create)");
    expect(r.stderr).to.include("denied: web (Container) would be created (--deny create)");
    await up();
    vmid = (await stack.outputs()).vmid as number;
  });

  it("no change: says so and exits 0 under every deny", async () => {
    const r = await previewAndReport({}, "create,update,reboot,migrate,move,grow,replace,delete");
    expect(r.md, r.md).to.include("No changes: Proxmox stays as it is.");
    expect(r.code).to.equal(0);
  });

  it("a live change: changed in place without a reboot (--deny reboot passes)", async () => {
    const r = await previewAndReport({ memory: 1024 }, "reboot");
    expect(r.md, r.md).to.include("| `web` | Container (CT " + vmid + " on pve1) | changed in place |");
    expect(r.md, r.md).to.include("- **changed in place, live**: `memory.dedicated`: `512` → `1024`");
    expect(r.md, r.md).to.not.include("reboot");
    expect(r.code).to.equal(0);
    await up();
    expect((await config()).memory).to.equal(1024);
  });

  it("a change Proxmox applies at restart: needs a reboot, and --deny reboot fails naming it", async () => {
    const r = await previewAndReport({ nesting: false }, "reboot");
    expect(r.md, r.md).to.include("changed in place, needs a reboot |");
    expect(r.md, r.md).to.include("- **changed in place, needs a reboot** — `up` reboots the container (`pendingChanges: reboot`): `features.nesting`: `true` → `false`");
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include("denied: web (Container) would be restarted (--deny reboot)");
    await up();
    expect((await config()).features ?? "").to.not.include("nesting=1");
  });

  it("with pendingChanges: leave the same kind of change is left pending, no reboot", async () => {
    const r = await previewAndReport({ nesting: true, pendingChanges: "leave" }, "reboot");
    expect(r.md, r.md).to.include("left pending until the next restart (`pendingChanges: leave`): `features.nesting`: `false` → `true`");
    expect(r.md, r.md).to.include("provider settings, nothing changes in Proxmox: `pendingChanges`: `reboot` → `leave`");
    expect(r.code).to.equal(0);
    // Not applied: a change left pending would show in every later preview. Back to what is deployed.
    knobs = { ...knobs, nesting: false, pendingChanges: "reboot" };
  });

  it("a secret: shown as [secret], and as not applied (create-only)", async () => {
    const r = await previewAndReport({ password: "second-password" });
    expect(r.md, r.md).to.include("`password`: [secret] → [secret]");
    expect(r.md, r.md).to.include("**not changed in Proxmox**");
    expect(r.md, r.md).to.include("| recorded only (create-only input) |");
    expect(r.md, r.md).to.not.include("first-password").and.not.include("second-password");
    expect(r.code).to.equal(0);
    await up();
  });

  it("a bigger disk: disk grown (--deny grow fails)", async () => {
    const r = await previewAndReport({ size: "6G" }, "grow");
    expect(r.md, r.md).to.include("| disk grown |");
    expect(r.md, r.md).to.include("- **disk grown**: `rootfs` `4G` → `6G` (online, nothing is lost)");
    expect(r.code).to.equal(1);
    await up();
    expect((await config()).rootfs).to.match(/size=6G/);
  });

  it("another storage: volume moved, with the stop it needs (--deny move and --deny reboot fail)", async () => {
    const r = await previewAndReport({ storage: "local-zfs" }, "move,reboot");
    expect(r.md, r.md).to.include("- **volume moved**: `rootfs` from `local-lvm` to `local-zfs` (the container is stopped for the move and started again)");
    expect(r.stderr).to.include("would have a volume moved (--deny move)");
    expect(r.stderr).to.include("would be restarted (--deny reboot)");
    expect(r.code).to.equal(1);
    await up();
    expect((await config()).rootfs).to.match(/^local-zfs:/);
  });

  it("another node: migrated (--deny migrate fails)", async () => {
    const r = await previewAndReport({ node: "pve2" }, "migrate");
    expect(r.md, r.md).to.include("| migrated to pve2 |");
    expect(r.md, r.md).to.include("- **migrated** from `pve1` to `pve2` (restart mode: the running container is stopped and started on the target)");
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include("denied: web (Container) would be migrated to another node (--deny migrate)");
    await up();
    expect(await where()).to.equal("pve2");
  });

  it("a different fixed vmid: replaced, data on its volumes is lost (--deny replace fails)", async () => {
    // nesting back on: PVE refuses a token to create a CT with `nesting=0` (only root@pam may).
    const r = await previewAndReport({ vmid: vmid + 100, nesting: true }, "replace");
    expect(r.md, r.md).to.include("| `web` | Container (CT " + vmid + " on pve2) | replaced (data on its volumes is lost) |");
    expect(r.md, r.md).to.include("**data on its volumes is lost**. Because of: `vmid`: `" + vmid + "` → `" + (vmid + 100) + "`");
    expect(r.md, r.md).to.include("also different in the new container: `features.nesting`: `false` → `true`");
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include("denied: web (Container) would be replaced (--deny replace)");
    await up();
    expect(await client.cluster.findGuest(vmid), "the old CT is gone").to.equal(undefined);
    vmid = (await stack.outputs()).vmid as number;
    expect(vmid).to.equal(knobs.vmid);
  });

  it("removed from the program: deleted (--deny delete fails, --deny replace does not)", async () => {
    const denied = await previewAndReport({ present: false }, "delete");
    expect(denied.md, denied.md).to.include("| `web` | Container (CT " + vmid + " on pve2) | deleted |");
    expect(denied.md, denied.md).to.include("- **deleted**: the container and its volumes are destroyed");
    expect(denied.code).to.equal(1);
    const allowed = await previewAndReport({}, "replace,migrate");
    expect(allowed.code).to.equal(0);
    await up();
    expect(await client.cluster.findGuest(vmid)).to.equal(undefined);
  });

  it("bad usage exits 2 with the reason", async () => {
    const cli = path.join(stack.projectDir, "node_modules", "pulumi-proxmox-lxc", "dist", "provider", "cli", "main.js");
    const r = spawnSync(process.execPath, [cli, "report", "--deny", "explode"], { input: "{}", encoding: "utf8" });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.include("--deny: unknown kind 'explode'");
    const notJson = spawnSync(process.execPath, [cli, "report"], { input: "Previewing update (dev)", encoding: "utf8" });
    expect(notJson.status).to.equal(2);
    expect(notJson.stderr).to.include("stdin is not the output of `pulumi preview --json`");
  });
});
