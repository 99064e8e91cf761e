/**
 * HA-managed containers (issue 15 item 8): PVE answers start/stop/shutdown/migrate of an
 * HA-managed CT with `hastart`/`hastop`/`hamigrate` tasks that end as soon as the request
 * is queued with the HA manager; the CT changes state later. A scripted server plays that
 * timing exactly (the sandbox may not): the `…AndWait` calls must return only once the CT
 * really is running / stopped / on the target node, and fail clearly when it never gets there.
 */
import { expect } from "chai";
import { PveClient, parseSettings } from "../../provider/proxmox";
import { captureLogger } from "../../provider/logging";
import { formatUpid } from "../../provider/proxmox/upid";
import { certFingerprint, startTinyServer, type Received, type TinyServer } from "./support/tinyServer";
import type { ServerResponse } from "node:http";

const TOKEN = "ha@pve!t=11111111-2222-3333-4444-555555555555";

interface Ct {
  node: string;
  status: "running" | "stopped";
  /** The HA manager's state for the CT (status/current `ha.state`). */
  haState?: string;
}

/** A PVE that hands power and migrate requests for CT 100 to an HA manager acting `lagPolls` status reads later. */
function haPve(ct: Ct, lagPolls: number, pending: { apply?: () => void; polls: number }) {
  return (req: Received, res: ServerResponse) => {
    const send = (data: unknown) => {
      res.writeHead(200, { "Content-Type": "application/json;charset=UTF-8" });
      res.end(JSON.stringify({ data }));
    };
    const url = new URL(req.url, "https://x");
    const p = url.pathname.replace(/^\/api2\/json/, "");
    if (p === "/version") return send({ version: "9.1.2", release: "9.1", repoid: "abc" });
    const task = /^\/nodes\/(\w+)\/lxc\/100\/(status\/(start|stop|shutdown)|migrate)$/.exec(p);
    if (req.method === "POST" && task) {
      const action = task[3] ?? "migrate";
      const type = action === "start" ? "hastart" : action === "migrate" ? "hamigrate" : "hastop";
      const target = new URLSearchParams(req.body).get("target");
      pending.polls = 0;
      pending.apply = () => {
        if (action === "start") ct.status = "running";
        else if (action === "migrate") ct.node = target!;
        else ct.status = "stopped";
      };
      return send(formatUpid({ node: task[1], pid: 1234, pstart: 99, starttime: Math.floor(Date.now() / 1000), type, id: "100", user: "ha@pve!t" }));
    }
    if (/\/tasks\/.+\/status$/.test(p)) return send({ status: "stopped", exitstatus: "OK", node: p.split("/")[2], upid: decodeURIComponent(p.split("/")[4]) });
    // The HA manager acts after a few observations of the state.
    const tick = () => {
      if (pending.apply && ++pending.polls >= lagPolls) {
        pending.apply();
        pending.apply = undefined;
      }
    };
    if (/^\/nodes\/\w+\/lxc\/100\/status\/current$/.test(p)) {
      tick();
      return send({ vmid: 100, status: ct.status, ha: { managed: 1, state: ct.haState ?? "started" } });
    }
    if (p === "/cluster/resources") {
      tick();
      return send([{ id: "lxc/100", type: "lxc", vmid: 100, node: ct.node, status: ct.status }]);
    }
    res.writeHead(501);
    res.end();
  };
}

describe("HA-managed containers: waiting for the real state, not the queued request", function () {
  this.timeout(30_000);
  let s: TinyServer | undefined;
  afterEach(async () => s?.stop());

  async function setup(ct: Ct, lagPolls: number) {
    const pending = { polls: 0 } as { apply?: () => void; polls: number };
    s = await startTinyServer("self-a", haPve(ct, lagPolls, pending));
    const client = PveClient.fromSettings(parseSettings({ endpoint: s.endpoint, apiToken: TOKEN, tlsFingerprint: certFingerprint("self-a") }, {}), {
      logger: captureLogger({ level: "warn" }).logger,
      retry: { baseDelayMs: 10, maxDelayMs: 50 },
    });
    return client;
  }

  it("start returns only once the CT runs, stop and shutdown once it is stopped", async () => {
    const ct: Ct = { node: "pve1", status: "stopped" };
    const client = await setup(ct, 3);
    await client.lxc.startAndWait("pve1", 100, {}, { wait: { timeoutMs: 10_000 } });
    expect(ct.status).to.equal("running");
    await client.lxc.shutdownAndWait("pve1", 100, { timeout: 10 }, { wait: { timeoutMs: 10_000 } });
    expect(ct.status).to.equal("stopped");
    await client.lxc.startAndWait("pve1", 100, {}, { wait: { timeoutMs: 10_000 } });
    await client.lxc.stopAndWait("pve1", 100, {}, { wait: { timeoutMs: 10_000 } });
    expect(ct.status).to.equal("stopped");
  });

  it("migrate returns only once the CT is on the target node (running again after a restart migration)", async () => {
    const ct: Ct = { node: "pve1", status: "running" };
    const client = await setup(ct, 3);
    await client.lxc.migrateAndWait("pve1", 100, { target: "pve2", restart: true }, { wait: { timeoutMs: 10_000 } });
    expect(ct.node).to.equal("pve2");
  });

  it("stops waiting when the HA manager reports the CT in its error state", async () => {
    const ct: Ct = { node: "pve1", status: "stopped", haState: "error" };
    const client = await setup(ct, 1_000_000);
    const started = Date.now();
    const err = await client.lxc.startAndWait("pve1", 100, {}, { wait: { timeoutMs: 20_000 } }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/HA manager put it into the 'error' state while carrying out hastart/);
    expect(Date.now() - started).to.be.below(10_000);
  });

  it("fails with an explanation when the HA manager does not act within the timeout", async () => {
    const ct: Ct = { node: "pve1", status: "stopped" };
    const client = await setup(ct, 1_000_000);
    const err = await client.lxc.startAndWait("pve1", 100, {}, { wait: { timeoutMs: 1500 } }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).to.match(/CT 100 is HA-managed: its hastart request was queued, but after 2 s it is stopped instead of running.*ha-manager status/);
  });
});
