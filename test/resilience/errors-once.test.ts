/**
 * An error from a dynamic-provider operation reaches the user once, without a stack trace,
 * with the typed error's message (issue 19 item 4). @pulumi/pulumi's dynamic provider host
 * prints `${err}: ${err.stack}` to stderr for check, diff, read and delete failures before
 * returning the error to the engine, which prints it again; operation.ts keeps that echo
 * of errors it has already shaped out of the output.
 */
import { expect } from "chai";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { PveClient } from "../../provider/proxmox/client";
import { pulumiPath } from "../support/cli";
import { PulumiStack } from "../support/pulumi";

describe("resilience: provider errors are printed once (CLI)", function () {
  this.timeout(10 * 60 * 1000);
  let sb: SandboxHandle;
  let client: PveClient;
  let stack: PulumiStack | undefined;

  before(async function () {
    await pulumiPath();
    sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 20, authFailureDelayMs: 0 });
    client = PveClient.connect({ endpoint: sb.endpoint, apiToken: sb.apiToken, tlsFingerprint: sb.tlsFingerprint, logLevel: "silent" });
    const apl = (await client.storage.aplinfo("pve1")).find((a) => a.template.startsWith("alpine"))!;
    await client.storage.aplDownloadAndWait("pve1", "local", apl.template);
    stack = await PulumiStack.create({
      programSource: `import { Container } from "pulumi-proxmox-lxc";\nnew Container("once", { node: "pve1", template: "local:vztmpl/${apl.template}", rootfs: { storage: "local-lvm", size: "1G" }, started: false });\n`,
      config: { "proxmox:endpoint": sb.endpoint, "proxmox:apiToken": { value: sb.apiToken, secret: true }, "proxmox:tlsFingerprint": sb.tlsFingerprint },
    });
    const r = await stack.run(["up", "--yes", "--skip-preview"], { allowFailure: true });
    expect(r.code, r.stderr).to.equal(0);
  });
  after(async () => {
    await sb?.admin.clearFaults();
    await stack?.run(["destroy", "--yes", "--skip-preview"], { allowFailure: true });
    await stack?.remove();
    client?.close();
    await sb?.stop();
  });

  it("a failed delete: the typed error's message once, no stack trace", async () => {
    const text = "storage 'local-lvm' is not online";
    await sb.admin.addFault({ method: "DELETE", path: "/nodes/{node}/lxc/{vmid}", action: "status", status: 500, message: text, times: 100 });
    const r = await stack!.run(["destroy", "--yes", "--skip-preview"], { allowFailure: true });
    const out = r.stdout + r.stderr;
    if (process.env.SHOW) console.log(out);
    expect(r.code, "the destroy failed").to.not.equal(0);
    // The engine's own display repeats a resource's error on its progress line; the summary
    // ("Diagnostics:") is where each message must appear once, and nothing may carry a trace.
    const diagnostics = out.slice(out.indexOf("Diagnostics:"));
    expect(diagnostics.split(text).length - 1, `printed once in the summary:\n${out}`).to.equal(1);
    expect(out, "no echo by the provider host").to.not.match(/PveApiError: .*: PveApiError/);
    expect(out, "no stack trace").to.not.match(/\n.*\s+at .+[(:]\d+:\d+\)?/);
    expect(out, "the typed error's message").to.match(/Proxmox VE API DELETE \/nodes\/pve1\/lxc\/\d+ failed \(HTTP 500\): storage 'local-lvm' is not online/);
  });
});
