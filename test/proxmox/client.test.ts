import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import {
  PveApiError,
  PveConfigChangedError,
  PveConnectionError,
  PveLockedError,
  PveNotFoundError,
  PveParameterError,
  PveTaskFailedError,
  PveTaskTimeoutError,
  PveValidationError,
  PveClient,
  parseSettings,
  DEFAULT_RETRY_POLICY,
} from "../../provider/proxmox";
import { captureLogger, metrics } from "../../provider/logging";
import { sandbox, tokenClient, ensureTemplate, ctConfig } from "./support/sandbox";

async function rejects<T extends Error>(p: Promise<unknown>, cls: new (...a: any[]) => T): Promise<T> {
  try {
    await p;
  } catch (e) {
    expect(e, String((e as Error)?.stack ?? e)).to.be.instanceOf(cls);
    return e as T;
  }
  throw new Error(`expected ${cls.name}`);
}

describe("PVE client against the sandbox", function () {
  let sb: SandboxHandle;
  let c: PveClient;
  const count = async (key: string) => (await sb.admin.counters()).requests[key] ?? 0;
  const newCt = async (extra: Record<string, unknown> = {}) => (await c.createContainer({ node: "pve1", config: ctConfig(extra) })).vmid;

  before(async () => {
    sb = await sandbox({ lockTimeoutMs: 300 });
    c = tokenClient(sb, { retry: { baseDelayMs: 10, maxDelayMs: 100, lockWaitMs: 5000 } });
    await ensureTemplate(c);
  });
  after(async () => {
    c.close();
    await sb.stop();
  });
  beforeEach(async () => {
    await sb.admin.clearFaults();
    await sb.admin.resetCounters();
    await sb.admin.setTaskDuration(20);
  });
  afterEach(async () => {
    expect((await sb.admin.counters()).violations, "the client must never send a request the sandbox finds invalid").to.deep.equal([]);
  });

  describe("version and schema", () => {
    it("caches GET /version and validates with the matching schema", async () => {
      const v1 = await c.version();
      const v2 = await c.version();
      expect(v1).to.equal(v2);
      expect(v1.major).to.equal(9);
      expect(await count("GET /version")).to.equal(0); // detected before this test, cached since
      expect(await c.schemaVersion()).to.equal("9.1");
    });

    it("an 8.4 server is validated with the 8.4 schema", async () => {
      const old = await sandbox({ pveVersion: "8.4" });
      const c8 = tokenClient(old);
      try {
        expect((await c8.version()).release).to.equal("8.4");
        expect(await c8.schemaVersion()).to.equal("8.4");
        // oci-registry-pull does not exist in 8.4: refused locally, not sent.
        const e = await rejects(c8.storage.ociRegistryPull("pve1", "local", { reference: "docker.io/library/alpine:3.20" }), PveValidationError);
        expect(e.message).to.include("PVE 8.4 has no POST");
      } finally {
        c8.close();
        await old.stop();
      }
    });
  });

  describe("typed errors from real responses", () => {
    it("PveNotFoundError: missing CT config, unknown task", async () => {
      const e = await rejects(c.lxc.getConfig("pve1", 9999), PveNotFoundError);
      expect(e.status).to.equal(500);
      expect(e.pveMessage).to.equal("Configuration file 'nodes/pve1/lxc/9999.conf' does not exist");
      await rejects(c.tasks.status("UPID:pve1:00000001:0034C5D6:6B000000:vzstart:9999:root@pam:"), PveNotFoundError);
    });

    it("PveLockedError with the lock name, and lock contention waited out on writes", async () => {
      const vmid = await newCt();
      await sb.admin.holdLock(vmid, "snapshot", 1);
      const locked = await rejects(c.put(`/nodes/pve1/lxc/${vmid}/config`, { memory: 300 }, { lockWaitMs: 0 }), PveLockedError);
      expect(locked.lock).to.equal("snapshot");
      expect(locked.message).to.include("pct unlock");
    });

    it("lock contention (CT is locked, flock timeout) is retried within lockWaitMs", async () => {
      const vmid = await newCt();
      await sb.admin.holdLock(vmid, "backup", 1);
      const t0 = Date.now();
      await c.lxc.updateConfig("pve1", vmid, { set: { memory: 320 } });
      expect(Date.now() - t0).to.be.greaterThan(700);
      expect(await count("PUT /nodes/{node}/lxc/{vmid}/config")).to.be.greaterThan(1);
      expect((await c.lxc.getConfig("pve1", vmid)).memory).to.equal(320);

      await sb.admin.holdLock(vmid, "flock", 1);
      const flock = await rejects(c.put(`/nodes/pve1/lxc/${vmid}/config`, { memory: 330 }, { lockWaitMs: 0 }), PveLockedError);
      expect(flock.lock).to.equal("flock");
      expect(flock.pveMessage).to.match(/can't lock file .* got timeout/);
      await c.lxc.updateConfig("pve1", vmid, { set: { memory: 340 } }); // waits for the flock
      expect((await c.lxc.getConfig("pve1", vmid)).memory).to.equal(340);
    });

    it("a worker that failed on the lock (start, snapshot: checked inside the task) is started again", async () => {
      const vmid = await newCt();
      await sb.admin.holdLock(vmid, "backup", 1);
      const t = await c.lxc.createSnapshotAndWait("pve1", vmid, { snapname: "afterlock" });
      expect(t.exitstatus).to.equal("OK");
      expect(await count("POST /nodes/{node}/lxc/{vmid}/snapshot")).to.be.at.least(2);
      await sb.admin.holdLock(vmid, "backup", 1);
      await c.lxc.startAndWait("pve1", vmid);
      expect((await c.lxc.status("pve1", vmid)).status).to.equal("running");
    });

    it("PveConfigChangedError on a stale digest", async () => {
      const vmid = await newCt();
      const { digest } = await c.lxc.getConfig("pve1", vmid);
      await c.lxc.updateConfig("pve1", vmid, { set: { memory: 400 } });
      const e = await rejects(c.lxc.updateConfig("pve1", vmid, { set: { memory: 500 }, digest }), PveConfigChangedError);
      expect(e.message).to.include("digest mismatch").and.include("Refresh");
    });

    it("PveValidationError: refused locally, naming the parameter, nothing sent", async () => {
      const vmid = await newCt();
      const e = await rejects(c.lxc.updateConfig("pve1", vmid, { set: { memory: "lots" } }), PveValidationError);
      expect(e.errors).to.have.property("memory");
      expect(e.message).to.include("memory").and.include("not sent");
      const e2 = await rejects(c.lxc.updateConfig("pve1", vmid, { set: { net0: { name: "eth0", bridge: "vmbr0", bogus: "1" } } }), PveValidationError);
      expect(e2.message).to.include("net0");
      await rejects(c.lxc.createSnapshot("pve1", vmid, { snapname: "1bad" }), PveValidationError);
      expect(await count("PUT /nodes/{node}/lxc/{vmid}/config")).to.equal(0);
      expect(await count("POST /nodes/{node}/lxc/{vmid}/snapshot")).to.equal(0);
    });

    it("PveParameterError: a 400 with an errors map from the handler", async () => {
      const vmid = await newCt();
      const e = await rejects(c.get("/cluster/nextid", { vmid }), PveParameterError);
      expect(e.errors).to.deep.equal({ vmid: `VM ${vmid} already exists` });
      expect(await c.cluster.isVmidFree(vmid)).to.equal(false);
      expect(await c.cluster.isVmidFree(vmid + 500)).to.equal(true);
    });

    it("PveTaskFailedError carries exitstatus and the log tail", async () => {
      const vmid = await newCt();
      await sb.admin.failTask({ type: "vzstart", vmid, exitstatus: `startup for container '${vmid}' failed` });
      const e = await rejects(c.lxc.startAndWait("pve1", vmid), PveTaskFailedError);
      expect(e.exitstatus).to.equal(`startup for container '${vmid}' failed`);
      expect(e.logTail[e.logTail.length - 1]).to.equal(`TASK ERROR: startup for container '${vmid}' failed`);
      expect(e.message).to.include("vzstart").and.include("Last lines of the task log");
    });

    it("PveTaskTimeoutError says how to raise the timeout; adaptive polling reports progress", async () => {
      const vmid = await newCt();
      await sb.admin.setTaskDuration({ vzstart: 1500 });
      const upid = await c.lxc.start("pve1", vmid);
      const e = await rejects(c.waitForTask(upid, { timeoutMs: 300 }), PveTaskTimeoutError);
      expect(e.message).to.include("timeoutMs").and.include("still running");
      const polls0 = await count("GET /nodes/{node}/tasks/{upid}/status");
      const lines: string[] = [];
      const r = await c.waitForTask(upid, { onProgress: (l) => lines.push(l.t) });
      expect(r.exitstatus).to.equal("OK");
      expect(lines[lines.length - 1]).to.equal("TASK OK");
      const polls = (await count("GET /nodes/{node}/tasks/{upid}/status")) - polls0;
      // ~1.2 s left at 50 ms ×1.5 up to 2 s: a handful of polls, not dozens.
      expect(polls).to.be.within(2, 12);
    });
  });

  describe("retries", () => {
    it("GET: retried after a reset and after a 503 (logged with the retry count)", async () => {
      const cap = captureLogger({ level: "debug" });
      const cl = c.withLogger(cap.logger.child({ urn: "urn:test", op: "read" }));
      await sb.admin.addFault({ method: "GET", path: "/nodes", action: "reset-before" });
      await sb.admin.addFault({ method: "GET", path: "/nodes", action: "status", status: 503, nth: 2 });
      expect((await cl.cluster.nodes()).map((n) => n.node)).to.deep.equal(["pve1", "pve2"]);
      expect(await count("GET /nodes")).to.equal(3);
      const call = cap.records.find((r) => r.msg === "pve api call" && r.endpoint === "/nodes");
      expect(call).to.include({ method: "GET", status: 200, retries: 2, urn: "urn:test", op: "read" });
      expect(call).to.have.property("ms");
      expect(call).to.have.property("bytesIn");
    });

    it("POST create: reset after the server acted → found by its task, no duplicate", async () => {
      const next = await c.cluster.nextId();
      await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/lxc", action: "reset-after" });
      const r = await c.createContainer({ node: "pve1", config: ctConfig({ hostname: "once" }) });
      expect(r.vmid).to.equal(next);
      expect(r.task?.exitstatus).to.equal("OK");
      expect(await count("POST /nodes/{node}/lxc")).to.equal(1);
      const all = (await c.lxc.list("pve1")).filter((x) => x.name === "once");
      expect(all).to.have.length(1);
    });

    it("POST create: reset before the server acted → verified absent, sent again once", async () => {
      await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/lxc", action: "reset-before" });
      await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/lxc", action: "status", status: 596, message: "Broken pipe", nth: 2 });
      const r = await c.createContainer({ node: "pve1", config: ctConfig({ hostname: "twice" }) });
      expect(r.task?.exitstatus).to.equal("OK");
      expect(await count("POST /nodes/{node}/lxc")).to.equal(3);
      expect((await c.lxc.list("pve1")).filter((x) => x.name === "twice")).to.have.length(1);
    });

    it("a POST without verifyEffect is never repeated blindly", async () => {
      const vmid = await newCt();
      await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/lxc/{vmid}/status/start", action: "reset-after" });
      const e = await rejects(c.post(`/nodes/pve1/lxc/${vmid}/status/start`), PveConnectionError);
      expect(e.message).to.include("may or may not have taken effect");
      expect(await count("POST /nodes/{node}/lxc/{vmid}/status/start")).to.equal(1);
    });

    it("start/snapshot: a lost answer resolves to the task that was started", async () => {
      const vmid = await newCt();
      await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/lxc/{vmid}/status/start", action: "reset-after" });
      const t = await c.lxc.startAndWait("pve1", vmid);
      expect(t.upid).to.include(":vzstart:");
      expect(await count("POST /nodes/{node}/lxc/{vmid}/status/start")).to.equal(1);
      await c.lxc.stopAndWait("pve1", vmid);
      await sb.admin.addFault({ method: "POST", path: "/nodes/{node}/lxc/{vmid}/snapshot", action: "reset-after" });
      await c.lxc.createSnapshotAndWait("pve1", vmid, { snapname: "s1" });
      expect(await count("POST /nodes/{node}/lxc/{vmid}/snapshot")).to.equal(1);
      expect((await c.lxc.listSnapshots("pve1", vmid)).map((s) => s.name)).to.include("s1");
    });

    it("PUT config with digest: a lost answer is verified by reading the config back", async () => {
      const vmid = await newCt();
      const { digest } = await c.lxc.getConfig("pve1", vmid);
      await sb.admin.addFault({ method: "PUT", path: "/nodes/{node}/lxc/{vmid}/config", action: "reset-after" });
      await c.lxc.updateConfig("pve1", vmid, { set: { memory: 640, onboot: true }, digest });
      expect(await count("PUT /nodes/{node}/lxc/{vmid}/config")).to.equal(1);
      const cfg = await c.lxc.getConfig("pve1", vmid);
      expect(cfg.memory).to.equal(640);
      expect(cfg.onboot).to.equal(true);
      // Without digest PUT is simply repeated (same values, same effect).
      await sb.admin.addFault({ method: "PUT", path: "/nodes/{node}/lxc/{vmid}/config", action: "reset-after" });
      await c.lxc.updateConfig("pve1", vmid, { set: { memory: 700 } });
      expect(await count("PUT /nodes/{node}/lxc/{vmid}/config")).to.equal(3);
    });

    it("DELETE: a lost answer, then 'does not exist' on the retry, counts as done", async () => {
      const vmid = await newCt();
      await sb.admin.addFault({ method: "DELETE", path: "/nodes/{node}/lxc/{vmid}", action: "reset-after" });
      await c.lxc.destroyAndWait("pve1", vmid);
      // Whichever way the retry went (task found running → locked → gone), the CT is gone.
      await rejects(c.lxc.getConfig("pve1", vmid), PveNotFoundError);
      expect(await count("DELETE /nodes/{node}/lxc/{vmid}")).to.be.at.least(2);
    });

    it("connection refused: a few quick retries, then a clear error naming the endpoint", async () => {
      const cap = captureLogger({ level: "debug" });
      const dead = PveClient.fromSettings(parseSettings({ endpoint: "https://127.0.0.1:1", apiToken: sb.apiToken, tlsFingerprint: sb.tlsFingerprint }, {}), {
        logger: cap.logger,
        schemaVersion: "9.1",
        retry: { baseDelayMs: 5, maxDelayMs: 20 },
      });
      const e = await rejects(dead.cluster.nodes(), PveConnectionError);
      expect(e.code).to.equal("ECONNREFUSED");
      const n = DEFAULT_RETRY_POLICY.maxRefusedRetries;
      expect(e.message).to.include("proxmox:endpoint").and.include(`after ${n} retries`);
      expect(cap.records.filter((r) => r.msg === "pve api retry")).to.have.length(n);
      dead.close();
    });

    it("records metrics per call", async () => {
      metrics.reset();
      await c.cluster.nodes();
      expect(metrics.apiRequests.get({ endpoint: "/nodes", method: "GET", status: "200" })).to.equal(1);
    });
  });

  describe("createContainer VMID allocation", () => {
    it("20 parallel creates on one node get 20 distinct VMIDs, no duplicates", async function () {
      this.timeout(60_000);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => c.createContainer({ node: "pve1", config: ctConfig({ hostname: `par${i}` }) })),
      );
      const ids = results.map((r) => r.vmid);
      expect(new Set(ids).size).to.equal(20);
      const list = await c.lxc.list("pve1");
      for (let i = 0; i < 20; i++) expect(list.filter((x) => x.name === `par${i}`), `par${i}`).to.have.length(1);
      for (const r of results) expect(r.task?.exitstatus).to.equal("OK");
    });

    it("an explicit taken vmid fails with the server's message", async () => {
      const vmid = await newCt();
      const e = await rejects(c.createContainer({ node: "pve1", vmid, config: ctConfig() }), PveApiError);
      expect(e.pveMessage).to.match(/already exists/);
    });
  });
});
