/**
 * What a user debugging a failed `pulumi up` gets: JSON lines with the resource, the
 * operation, a request id, node and vmid; API calls at debug level; no secret anywhere;
 * and a Prometheus metrics file after each operation.
 */
import { expect } from "chai";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import { configure } from "../../provider/resources/registry";
import handler from "../../provider/resources/container/handler";
import { resetProviderClient, providerClient } from "../../provider/resources/operation";
import { flushLogs } from "../../provider/logging";

describe("provider operation logs and metrics", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oplogs-"));
  const logFile = path.join(dir, "provider.log");
  const metricsFile = path.join(dir, "metrics.prom");

  before(async () => {
    sb = await startSandbox({ port: 0, taskDurationMs: 5, authFailureDelayMs: 0 });
    const cfg: Record<string, string> = {
      "proxmox:endpoint": sb.endpoint,
      "proxmox:apiToken": sb.apiToken,
      "proxmox:tlsFingerprint": sb.tlsFingerprint,
      "proxmox:logLevel": "debug",
      "proxmox:logFile": logFile,
      "proxmox:metricsFile": metricsFile,
    };
    configure({ get: (k) => cfg[k] });
    resetProviderClient();
  });
  after(async () => {
    await sb?.stop();
    configure({ get: (k) => (k === "proxmox:logLevel" ? "silent" : undefined) });
  });

  it("carries context on every line, redacts secrets and writes parseable metrics", async () => {
    const client = providerClient();
    const apl = (await client.storage.aplinfo("pve1"))[0];
    await client.storage.aplDownloadAndWait("pve1", "local", apl.template);
    const password = "hunter2-very-secret";
    const inputs = { node: "pve1", template: `local:vztmpl/${apl.template}`, rootfs: { storage: "local-lvm", size: "2G" }, password, resourceName: "db", started: false };
    const checked = await handler.check!({}, inputs);
    const created = await handler.create(checked.inputs);
    await handler.delete!(created.id, created.outs);
    // A failing operation logs its error with the same context.
    await handler.delete!("999999", { node: "pve1", resourceName: "ghost" }).catch(() => undefined);
    flushLogs();

    const lines = fs.readFileSync(logFile, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const createLines = lines.filter((l) => l.operation === "create");
    expect(createLines.length).to.be.greaterThan(2);
    for (const l of createLines) expect(l).to.include({ resourceType: "Container", resourceName: "db" }).and.to.have.property("requestId");
    expect(createLines.some((l) => l.vmid === Number(created.id) && l.msg === "container created")).to.equal(true);
    const apiLines = lines.filter((l) => l.msg === "pve api call" && l.operation === "create" && l.endpoint && l.status);
    expect(apiLines.length, "API calls are logged at debug level inside the operation").to.be.greaterThan(0);

    const text = fs.readFileSync(logFile, "utf8");
    const tokenSecret = sb.apiToken.slice(sb.apiToken.lastIndexOf("=") + 1);
    for (const secret of [password, tokenSecret, sb.password]) expect(text).to.not.include(secret);

    const prom = fs.readFileSync(metricsFile, "utf8");
    for (const line of prom.split("\n").filter((l) => l && !l.startsWith("#"))) {
      expect(line).to.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$/);
    }
    expect(prom).to.match(/pve_provider_operation_duration_seconds_count\{resource_type="Container",operation="create",outcome="ok"\} 1/);
    expect(prom).to.match(/pve_api_requests_total\{endpoint="\/nodes\/\{node\}\/lxc",method="POST",status="200"\} \d+/);
  });
});
