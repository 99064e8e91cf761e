/**
 * `pve-lxc report` on hand-written preview documents, for what the sandbox e2e
 * (test/e2e/report.test.ts) does not reach quickly: a stopped container, values unknown until
 * `up`, other resource kinds, several resources with one policy, stdin, a failed preview.
 * The documents have the shape `pulumi preview --json` prints (secrets as "[secret]").
 */
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { analyze, renderMarkdown, violations, type PreviewJson, type PreviewStep } from "../../provider/cli/commands/report";
import { UNKNOWN } from "../../provider/resources/validation";
import { REPO_ROOT } from "../support/cli";

const urn = (kind: string, name: string) => `urn:pulumi:dev::proj::pulumi-nodejs:dynamic/proxmox:${kind}::${name}`;
const type = (kind: string) => `pulumi-nodejs:dynamic/proxmox:${kind}`;

const CT = {
  node: "pve1",
  template: "local:vztmpl/debian-12.tar.zst",
  unprivileged: true,
  hostname: "db",
  memory: { dedicated: 512 },
  features: { nesting: true },
  rootfs: { storage: "local-lvm", size: "8G" },
  started: true,
  pendingChanges: "reboot",
  resourceName: "db",
};

function containerUpdate(name: string, change: Record<string, unknown>, state: { status?: string } = {}): PreviewStep {
  const outputs = { ...CT, __provider: "exports.handler = ...", vmid: 120, status: state.status ?? "running", volids: { rootfs: "local-lvm:vm-120-disk-0" }, hwaddrs: {}, ipv4: {}, ipv6: {} };
  return {
    op: "update",
    urn: urn("Container", name),
    oldState: { type: type("Container"), id: "120", inputs: { ...CT, __provider: "x" }, outputs },
    newState: { type: type("Container"), inputs: { ...CT, ...change, __provider: "x" } },
  };
}

const md = (preview: PreviewJson, deny: Parameters<typeof violations>[1] = []) => renderMarkdown(analyze(preview), preview, { title: "Proxmox changes", deny });

describe("pve-lxc report: preview documents to Markdown", () => {
  it("a stopped container: a restart-class change applies at its next start, no reboot", () => {
    const preview = { steps: [containerUpdate("db", { features: { nesting: false } }, { status: "stopped" })] };
    const [r] = analyze(preview);
    expect([...r.effects]).to.deep.equal(["update"]);
    expect(md(preview)).to.include("**changed in place** (the container is stopped, so this applies at its next start): `features.nesting`: `true` → `false`");
  });

  it("live and reboot changes of one container are listed apart, with the planner's grow", () => {
    const preview = { steps: [containerUpdate("db", { memory: { dedicated: 1024 }, hostname: "db-2", features: { nesting: false }, rootfs: { storage: "local-lvm", size: "16G" } })] };
    const text = md(preview);
    expect(text).to.include("| `db` | Container (CT 120 on pve1) | disk grown, changed in place, needs a reboot |");
    expect(text).to.include("- **disk grown**: `rootfs` `8G` → `16G` (online, nothing is lost)");
    expect(text).to.include("- **changed in place, live**: `hostname`: `db` → `db-2`; `memory.dedicated`: `512` → `1024`");
    expect(text).to.include("`features.nesting`: `true` → `false`");
    expect(text, "the grown size is not listed twice").to.not.include("`rootfs.size`");
  });

  it("a change the planner refuses (a shrinking disk) is reported as refused, with the planner's reason", () => {
    const [r] = analyze({ steps: [containerUpdate("db", { rootfs: { storage: "local-lvm", size: "4G" } })] });
    expect(r.refused).to.match(/rootfs.size: cannot shrink from 8G to 4G/);
    expect(r.details[0]).to.match(/^\*\*refused\*\*: rootfs.size: cannot shrink/);
  });

  it("values known only during up: reported as such, without a finer classification", () => {
    const preview = { steps: [containerUpdate("db", { node: UNKNOWN })] };
    const [r] = analyze(preview);
    expect([...r.effects]).to.deep.equal(["update"]);
    expect(md(preview)).to.include("`node`: `pve1` → (known after up)");
    expect(md(preview)).to.include("changed in place (some values are known only during up)");
  });

  it("other kinds: replace and update with their properties; Noop secrets stay [secret]", () => {
    const preview: PreviewJson = {
      steps: [
        { op: "create-replacement", urn: urn("Template", "debian"), oldState: { type: type("Template"), inputs: { node: "pve1", url: "https://a/x.tar.zst" } }, newState: { type: type("Template"), inputs: { node: "pve1", url: "https://a/y.tar.zst" } }, replaceReasons: ["url"] },
        { op: "replace", urn: urn("Template", "debian"), oldState: { type: type("Template"), inputs: { node: "pve1", url: "https://a/x.tar.zst" } }, newState: { type: type("Template"), inputs: { node: "pve1", url: "https://a/y.tar.zst" } }, replaceReasons: ["url"] },
        { op: "delete-replaced", urn: urn("Template", "debian"), oldState: { type: type("Template"), inputs: { node: "pve1", url: "https://a/x.tar.zst" } } },
        { op: "update", urn: urn("Noop", "n"), oldState: { type: type("Noop"), inputs: { value: 1, secretValue: "[secret]" } }, newState: { type: type("Noop"), inputs: { value: 2, secretValue: "[secret]" } } },
        { op: "same", urn: urn("Noop", "untouched") },
      ],
    };
    const text = md(preview);
    expect(analyze(preview).map((r) => r.name)).to.deep.equal(["debian", "n"]);
    expect(text).to.include("| `debian` | Template | replaced |");
    expect(text).to.include("**replaced** (created anew, the old one deleted). Because of: `url`: `https://a/x.tar.zst` → `https://a/y.tar.zst`");
    expect(text).to.include("| `n` | Noop | changed in place |");
    expect(text).to.include("`value`: `1` → `2`");
  });

  it("--deny names every resource that would do a denied kind, once per kind", () => {
    const preview: PreviewJson = {
      steps: [
        containerUpdate("a", { node: "pve2" }),
        containerUpdate("b", { unprivileged: false }),
        { ...containerUpdate("c", {}), op: "delete", newState: undefined },
        containerUpdate("d", { memory: { dedicated: 2048 } }),
      ],
    };
    preview.steps![1].op = "replace";
    const denied = violations(analyze(preview), ["migrate", "reboot", "replace", "delete"]);
    expect(denied).to.deep.equal([
      "`a` (Container) would be migrated to another node (--deny migrate)",
      "`a` (Container) would be restarted (--deny reboot)",
      "`b` (Container) would be replaced (--deny replace)",
      "`c` (Container) would be deleted (--deny delete)",
    ]);
  });

  it("the command reads stdin, and a preview with errors exits 1 with them in the report", () => {
    const cli = path.join(REPO_ROOT, "provider", "cli", "main.ts");
    const preview = { steps: [], diagnostics: [{ severity: "error", message: "Container db: rootfs.size: cannot shrink from \x1b[90m8G\x1b[39m to 4G" }] };
    const r = spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", cli, "report", "-"], { input: JSON.stringify(preview), encoding: "utf8", cwd: REPO_ROOT });
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stdout).to.include("No changes: Proxmox stays as it is.");
    expect(r.stdout).to.include("### The preview failed\n\nThe changes above may be incomplete: the preview stopped at this error.\n\n```\nContainer db: rootfs.size: cannot shrink from 8G to 4G\n```");
  });
});
