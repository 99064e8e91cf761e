/**
 * Worker-start failures (issue 19): PVE answers `HTTP 500 got no worker upid - start worker
 * failed` when fork_worker never heard from the worker it forked; the worker is killed
 * before it runs (nothing done) but is listed as a finished task of the caller with an
 * empty log. Every worker-starting call must look for its effect (and not take that listed
 * task for it), send again, log the retry, and end with exactly one real task.
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import { PveApiError, type PveClient } from "../../provider/proxmox";
import { captureLogger } from "../../provider/logging";
import { sandbox, tokenClient, ensureTemplate, ctConfig } from "./support/sandbox";

describe("worker-start failures (got no worker upid)", function () {
  this.timeout(60_000);
  let sb: SandboxHandle;
  let c: PveClient;
  let logs: ReturnType<typeof captureLogger>;
  const count = async (key: string) => (await sb.admin.counters()).requests[key] ?? 0;

  before(async () => {
    sb = await sandbox();
    logs = captureLogger({ level: "warn" });
    c = tokenClient(sb, { logger: logs.logger, retry: { baseDelayMs: 10, maxDelayMs: 50 } });
    await ensureTemplate(c);
  });
  after(async () => {
    c.close();
    await sb.stop();
  });

  /** Inject one no-worker failure on `key`, run `call`, check one resend, one retry log line and the ghost task. */
  async function survives<T>(key: string, call: () => Promise<T>, retryLine = /did not start the task/): Promise<T> {
    const [method, path] = key.split(" ");
    await sb.admin.clearFaults();
    await sb.admin.resetCounters();
    logs.records.length = 0;
    await sb.admin.addFault({ method, path, action: "no-worker", user: c.principal.id });
    const result = await call();
    expect(await count(key), `${key}: the failed request and one resend`).to.equal(2);
    expect((await sb.admin.counters()).violations).to.deep.equal([]);
    const retries = logs.records.filter((r) => retryLine.test(String(r.msg)));
    expect(retries.length, `${key}: one warn line per retry`).to.equal(1);
    if (/did not start/.test(String(retries[0].msg))) expect(retries[0].why).to.match(/HTTP 500: got no worker upid - start worker failed/);
    return result;
  }

  it("the sandbox answers like PVE's fork_worker: 500, the text as reason and message, a listed task with an empty log", async () => {
    const vmid = (await c.createContainer({ node: "pve1", config: ctConfig() })).vmid;
    await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/lxc/{vmid}/status/start", action: "no-worker", user: c.principal.id });
    // A client that does not retry worker-start failures, to see the raw answer.
    const raw = tokenClient(sb, { retry: { workerStartWaitMs: 0 } });
    const err = await raw.lxc.start("pve1", vmid).then(() => undefined, (e) => e as PveApiError);
    raw.close();
    expect(err, "the call failed").to.be.instanceOf(PveApiError);
    expect(err!.status).to.equal(500);
    expect(err!.reason).to.equal("got no worker upid - start worker failed");
    expect(err!.pveMessage).to.equal("got no worker upid - start worker failed");
    const listed = (await c.tasks.list("pve1", { source: "all", typefilter: "vzstart", vmid })).filter((t) => t.status === "unable to read tail (got 0 bytes)");
    expect(listed.length, "the killed worker is listed").to.be.greaterThan(0);
    const log = await c.tasks.log(listed[0].upid, { start: 0, limit: 0 });
    expect(log.lines).to.deep.equal([{ n: 1, t: "no content" }]);
    expect((await c.lxc.status("pve1", vmid)).status, "nothing was done").to.equal("stopped");
    await c.lxc.destroyAndWait("pve1", vmid, { purge: true });
  });

  it("every worker-starting call is sent again and ends with one real task", async () => {
    const node = "pve1";
    const since = Math.floor(c.serverNow() / 1000);
    const created = await survives("POST /nodes/{node}/lxc", () => c.createContainer({ node, config: ctConfig({ hostname: "nw" }) }));
    const vmid = created.vmid;
    expect(created.task?.exitstatus).to.equal("OK");
    const ghosts = (await c.tasks.list(node, { source: "all", typefilter: "vzcreate", since })).filter((t) => t.status === "unable to read tail (got 0 bytes)");
    expect(ghosts.length, "the killed worker is listed, and was not taken for the create").to.equal(1);

    await survives("POST /nodes/{node}/lxc/{vmid}/status/start", () => c.lxc.startAndWait(node, vmid));
    expect((await c.lxc.status(node, vmid)).status).to.equal("running");
    await survives("POST /nodes/{node}/lxc/{vmid}/status/shutdown", () => c.lxc.shutdownAndWait(node, vmid, { timeout: 5 }));
    await c.lxc.startAndWait(node, vmid);
    await survives("POST /nodes/{node}/lxc/{vmid}/status/stop", () => c.lxc.stopAndWait(node, vmid));
    expect((await c.lxc.status(node, vmid)).status).to.equal("stopped");

    await survives("POST /nodes/{node}/lxc/{vmid}/snapshot", () => c.lxc.createSnapshotAndWait(node, vmid, { snapname: "s1" }));
    await survives("POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback", () => c.lxc.rollbackAndWait(node, vmid, "s1"));
    await survives("DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}", () => c.lxc.deleteSnapshotAndWait(node, vmid, "s1"));
    expect((await c.lxc.listSnapshots(node, vmid)).map((s) => s.name)).to.deep.equal(["current"]);

    await survives("PUT /nodes/{node}/lxc/{vmid}/resize", () => c.lxc.resizeAndWait(node, vmid, { disk: "rootfs", size: "+1G" }));
    expect(String((await c.lxc.getConfig(node, vmid)).rootfs), "grown once, not twice").to.match(/size=2G/);
    await survives("POST /nodes/{node}/lxc/{vmid}/move_volume", () => c.lxc.moveVolumeAndWait(node, vmid, { volume: "rootfs", storage: "shared-nfs", delete: true }));
    await survives("POST /nodes/{node}/lxc/{vmid}/migrate", () => c.lxc.migrateAndWait(node, vmid, { target: "pve2" }));
    expect((await c.cluster.findGuest(vmid))?.node).to.equal("pve2");
    await survives("DELETE /nodes/{node}/lxc/{vmid}", () => c.lxc.destroyAndWait("pve2", vmid, { purge: true }));
    expect(await c.cluster.findGuest(vmid), "destroyed").to.equal(undefined);
  });

  it("an upload and a volume delete are sent again too", async () => {
    const fs = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    const file = path.join(os.tmpdir(), `nw-${process.pid}.tar.gz`);
    const { tarGz } = await import("../resilience/world");
    fs.writeFileSync(file, await tarGz());
    try {
      // The sandbox answers before reading the body (a real PVE reads it all first), so the
      // client sees the answer as a broken stream: retried as a lost answer, not as a 500.
      const up = await survives(
        "POST /nodes/{node}/storage/{storage}/upload",
        () => c.storage.upload({ node: "pve1", storage: "local", content: "vztmpl", filePath: file }),
        /did not start the task|upload attempt failed/,
      );
      expect(up.task?.exitstatus).to.equal("OK");
      await survives("DELETE /nodes/{node}/storage/{storage}/content/{volume}", () => c.storage.deleteVolumeAndWait("pve1", up.volid));
      expect(await c.storage.findVolume("pve1", up.volid)).to.equal(undefined);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it("gives up with PVE's message once the operation's budget is spent", async () => {
    // A vmid no earlier test used: the task search reaches 2 s back and would find their starts.
    const vmid = (await c.createContainer({ node: "pve1", vmid: 4242, config: ctConfig({ hostname: "nw2" }) })).vmid;
    await sb.admin.clearFaults();
    await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/lxc/{vmid}/status/start", action: "no-worker", times: 1000 });
    const started = Date.now();
    const err = await c.lxc.startAndWait("pve1", vmid, {}, { wait: { timeoutMs: 400 } }).then(() => undefined, (e) => e as Error);
    expect(err?.message).to.match(/got no worker upid - start worker failed/);
    expect(Date.now() - started, "within the budget (plus one backoff)").to.be.lessThan(2000);
    await sb.admin.clearFaults();
    await c.lxc.destroyAndWait("pve1", vmid, { purge: true });
  });
});
