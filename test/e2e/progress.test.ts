/**
 * What reaches the user's terminal during a long `pulumi up`: the provider writes progress
 * lines to stderr and the engine shows them in the CLI output (docs/logging.md). Checked
 * with a template upload big enough to report several steps.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { PulumiStack } from "../support/pulumi";
import { pulumiPath } from "../support/cli";
import { sandboxConfig } from "../support/e2e";
import { tmpDir } from "../oci/support";

describe("e2e: progress lines in the real CLI output", function () {
  this.timeout(10 * 60 * 1000);
  let sb: SandboxHandle;
  let stack: PulumiStack;

  before(async function () {
    this.timeout(45 * 60 * 1000);
    await pulumiPath();
    sb = await startSandbox({ port: 0, taskDurationMs: 20, authFailureDelayMs: 0 });
    const dir = tmpDir("e2e-progress-");
    const file = path.join(dir, "big-template.tar.gz");
    // Incompressible-looking content is irrelevant here: only the byte count drives progress.
    const fd = fs.openSync(file, "w");
    const chunk = Buffer.alloc(1024 * 1024, 7);
    for (let i = 0; i < 192; i++) fs.writeSync(fd, chunk);
    fs.closeSync(fd);
    stack = await PulumiStack.create({
      programSource: `
import { Template } from "pulumi-proxmox-lxc";
export const volid = new Template("tpl", { node: "pve1", path: ${JSON.stringify(file)} }).volid;
`,
      config: sandboxConfig(sb),
      env: { PULUMI_PROXMOX_PROGRESS: "1" },
    });
  });
  after(async () => {
    if (stack) await stack.remove();
    if (sb) await sb.stop();
  });

  it("shows upload progress while `pulumi up` runs", async () => {
    const res = await stack.run(["up", "--yes", "--non-interactive", "--skip-preview"]);
    const out = res.stdout + res.stderr;
    const lines = out.split("\n").filter((l) => l.includes("[proxmox] Template tpl upload big-template.tar.gz"));
    console.log(`      progress lines seen in the CLI output: ${lines.length}`);
    expect(lines.length, out.slice(-2000)).to.be.greaterThan(1);
    expect(lines.some((l) => /: 0% of 192\.0 MiB/.test(l) || /: \d+% of 192\.0 MiB/.test(l))).to.equal(true);
    expect(lines.some((l) => /100% of 192\.0 MiB/.test(l))).to.equal(true);
    await stack.run(["destroy", "--yes", "--non-interactive", "--skip-preview"]);
  });
});
