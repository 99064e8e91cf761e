/**
 * Issue 20 through the real Pulumi CLI: a container whose DHCP never answers is created
 * after a bounded wait with an engine warning the user sees in the `pulumi up` output, and
 * `pulumi refresh` does not wait for its address (the provider's read time, from the
 * metrics file, stays far below the wait).
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as path from "node:path";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { PveClient } from "../../provider/proxmox/client";
import { PulumiStack } from "../support/pulumi";
import { pulumiPath } from "../support/cli";
import { sandboxConfig } from "../support/e2e";
import { tmpDir } from "../oci/support";

const WAIT_S = 4;

/** Seconds the provider spent in Container `operation`s (sum of the histogram). */
function operationSeconds(prom: string, operation: string): number {
  const line = prom.split("\n").find((l) => l.startsWith("pve_provider_operation_duration_seconds_sum") && l.includes('resource_type="Container"') && l.includes(`operation="${operation}"`));
  expect(line, `no ${operation} timing in the metrics file:\n${prom}`).to.be.a("string");
  return Number(line!.split(" ").pop());
}

describe("e2e: Container addresses without a DHCP lease", function () {
  this.timeout(10 * 60 * 1000);
  let sb: SandboxHandle;
  let stack: PulumiStack;
  let metricsFile: string;

  before(async function () {
    this.timeout(45 * 60 * 1000);
    await pulumiPath();
    sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 20, authFailureDelayMs: 0 });
    await sb.admin.setDhcp({ bridge: "vmbr1", answers: false });
    const client = PveClient.connect({ endpoint: sb.endpoint, apiToken: sb.apiToken, tlsFingerprint: sb.tlsFingerprint });
    const apl = (await client.storage.aplinfo("pve1")).find((a) => a.template.startsWith("debian"))!;
    await client.storage.aplDownloadAndWait("pve1", "local", apl.template);
    client.close();
    metricsFile = path.join(tmpDir("e2e-addresses-"), "metrics.prom");
    stack = await PulumiStack.create({
      programSource: `
import { Container } from "pulumi-proxmox-lxc";
const ct = new Container("isolated", {
  node: "pve1",
  template: ${JSON.stringify(`local:vztmpl/${apl.template}`)},
  rootfs: { storage: "local-lvm", size: "2G" },
  networks: [{ name: "eth0", bridge: "vmbr1", ip: "dhcp" }],
  waitForIp: { timeout: ${WAIT_S} },
});
export const ipv4 = ct.ipv4;
export const status = ct.status;
`,
      config: sandboxConfig(sb, { "proxmox:metricsFile": metricsFile }),
      env: { PULUMI_PROXMOX_PROGRESS: "1" },
    });
  });
  after(async () => {
    if (stack) {
      await stack.run(["destroy", "--yes", "--non-interactive", "--skip-preview"], { allowFailure: true });
      await stack.remove();
    }
    if (sb) await sb.stop();
  });

  it("`up` creates it with a warning naming the interface and the causes; `refresh` does not wait", async () => {
    const up = await stack.run(["up", "--yes", "--non-interactive", "--skip-preview"]);
    const out = up.stdout + up.stderr;
    expect(out, out.slice(-3000)).to.include("[proxmox] Container isolated addresses: waiting for an IPv4 address (DHCP) on eth0");
    // An engine warning (counted as one), not a plain stderr line.
    expect(out).to.include(`warning: Container isolated: no address on eth0 (IPv4, dhcp) after ${WAIT_S} s`);
    expect(out).to.match(/created \(\d+s\) 1 warning/);
    expect(out).to.include("no DHCP server answering on bridge vmbr1");
    expect(operationSeconds(fs.readFileSync(metricsFile, "utf8"), "create")).to.be.at.least(WAIT_S);
    const outputs = await stack.outputs();
    expect(outputs.status).to.equal("running");
    expect(outputs.ipv4).to.deep.equal({});

    fs.rmSync(metricsFile, { force: true });
    const refresh = await stack.run(["refresh", "--yes", "--non-interactive", "--skip-preview"]);
    expect(refresh.stdout + refresh.stderr).to.not.include("waiting for");
    const readS = operationSeconds(fs.readFileSync(metricsFile, "utf8"), "read");
    console.log(`      provider time in refresh's read: ${readS.toFixed(3)} s (the create waited ${WAIT_S} s)`);
    expect(readS).to.be.below(WAIT_S / 2);
  });
});
