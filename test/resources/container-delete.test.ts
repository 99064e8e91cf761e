/**
 * Container delete, in process against the sandbox: what a user relies on (graceful
 * shutdown first, protection refused before anything happens, a CT moved outside Pulumi
 * still found, a gone CT is no error, a lock waited out) and how few requests it takes —
 * the delete addresses the node in the state and lets PVE's own checks answer instead of
 * asking first (bench/pulumi-up: `destroy` of 200 CTs).
 */
import { expect } from "chai";
import type { SandboxHandle } from "../../sandbox";
import handler from "../../provider/resources/container/handler";
import { providerClient } from "../../provider/resources/operation";
import { createChecked, startProviderSandbox } from "../support/provider";

type Outs = Record<string, any>;

describe("Container delete (in process, against the sandbox)", function () {
  this.timeout(120_000);
  let sb: SandboxHandle;
  let template: string;

  before(async () => {
    ({ sb, template } = await startProviderSandbox("debian"));
  });
  after(async () => sb?.stop());

  const base = (extra: Record<string, unknown> = {}) => ({
    node: "pve1",
    template,
    hostname: "del",
    memory: { dedicated: 256, swap: 0 },
    rootfs: { storage: "local-lvm", size: "1G" },
    networks: [],
    resourceName: "del",
    ...extra,
  });

  const up = (inputs: Record<string, unknown>) => createChecked<Outs>(handler, inputs);

  /** Requests the sandbox saw while `fn` ran, by `METHOD /template`. */
  async function requestsDuring(fn: () => Promise<unknown>): Promise<Record<string, number>> {
    await sb.admin.resetCounters();
    await fn();
    const c = await sb.admin.counters();
    expect(c.violationCount).to.equal(0);
    return c.requests;
  }

  const DELETE = "DELETE /nodes/{node}/lxc/{vmid}";
  const SHUTDOWN = "POST /nodes/{node}/lxc/{vmid}/status/shutdown";
  const LOOKUP = "GET /cluster/resources";

  async function tasksOf(vmid: number, node = "pve1"): Promise<string[]> {
    const list = await providerClient().tasks.list(node, { vmid, source: "all", limit: 100 });
    return list.map((t) => t.type);
  }

  it("shuts a running CT down gracefully and deletes it on the node in the state, without looking it up", async () => {
    const ct = await up(base());
    const vmid = Number(ct.id);
    expect(ct.outs.status).to.equal("running");
    await sb.admin.setTaskDuration(0); // as in bench/pulumi-up: each task is done at its first poll
    const seen = await requestsDuring(() => handler.delete!(ct.id, ct.outs)).finally(() => sb.admin.setTaskDuration(5));
    expect(await providerClient().cluster.findGuest(vmid)).to.equal(undefined);
    // The first DELETE is PVE's "container is running" refusal; then shutdown, DELETE.
    expect(seen[SHUTDOWN]).to.equal(1);
    expect(seen[DELETE]).to.equal(2);
    expect(seen[LOOKUP] ?? 0, "no cluster-wide lookup before or after").to.equal(0);
    expect(seen["GET /nodes/{node}/lxc/{vmid}/config"] ?? 0, "protection is PVE's check").to.equal(0);
    expect(seen["GET /nodes/{node}/lxc/{vmid}/status/current"] ?? 0).to.equal(0);
    expect(seen["GET /nodes/{node}/tasks/{upid}/status"]).to.equal(2);
    const types = await tasksOf(vmid);
    expect(types).to.include.members(["vzshutdown", "vzdestroy"]);
    expect(types).to.not.include("vzstop");
  });

  it("deletes a stopped CT with one DELETE and its task poll", async () => {
    const ct = await up(base({ started: false }));
    await sb.admin.setTaskDuration(0);
    const seen = await requestsDuring(() => handler.delete!(ct.id, ct.outs)).finally(() => sb.admin.setTaskDuration(5));
    expect(await providerClient().cluster.findGuest(Number(ct.id))).to.equal(undefined);
    expect(seen).to.deep.equal({ [DELETE]: 1, "GET /nodes/{node}/tasks/{upid}/status": 1 });
  });

  it("finds a CT migrated outside Pulumi on its new node and deletes it there", async () => {
    const ct = await up(base({ started: false }));
    const vmid = Number(ct.id);
    await providerClient().lxc.migrateAndWait("pve1", vmid, { target: "pve2" });
    const seen = await requestsDuring(() => handler.delete!(ct.id, ct.outs));
    expect(await providerClient().cluster.findGuest(vmid)).to.equal(undefined);
    expect(seen[LOOKUP]).to.equal(1);
    expect(seen[DELETE]).to.equal(2); // pve1: does not exist; pve2: deleted
  });

  it("looks the CT up when the node in the state is no longer in the cluster", async () => {
    const ct = await up(base({ started: false }));
    await handler.delete!(ct.id, { ...ct.outs, node: "pve9" });
    expect(await providerClient().cluster.findGuest(Number(ct.id))).to.equal(undefined);
  });

  it("treats a CT that is already gone as deleted", async () => {
    const ct = await up(base({ started: false }));
    await handler.delete!(ct.id, ct.outs);
    await handler.delete!(ct.id, ct.outs);
    // A state without a node (older states) is looked up.
    await handler.delete!(ct.id, { ...ct.outs, node: undefined });
  });

  it("refuses a protected running CT before touching it, naming the fix", async () => {
    const ct = await up(base({ protection: true }));
    const vmid = Number(ct.id);
    let err: Error | undefined;
    const seen = await requestsDuring(() => handler.delete!(ct.id, ct.outs).catch((e: Error) => (err = e)));
    expect(err?.message).to.match(new RegExp(`CT ${vmid} \\('del'\\) has protection enabled, so it was not destroyed\\. Set protection: false`));
    expect(seen[SHUTDOWN] ?? 0).to.equal(0);
    expect((await providerClient().lxc.status("pve1", vmid)).status).to.equal("running");
    const checked = await handler.check!({}, base({ protection: false }));
    const res = await handler.update!(ct.id, ct.outs, checked.inputs);
    await handler.delete!(ct.id, res.outs);
  });

  it("stops a CT whose graceful shutdown fails, then deletes it", async () => {
    const ct = await up(base());
    const vmid = Number(ct.id);
    await sb.admin.failTask({ type: "vzshutdown", vmid, exitstatus: "command 'lxc-stop -n " + vmid + " --nokill --timeout 60' failed: exit code 1" });
    await handler.delete!(ct.id, ct.outs);
    expect(await providerClient().cluster.findGuest(vmid)).to.equal(undefined);
    expect(await tasksOf(vmid)).to.include.members(["vzshutdown", "vzstop", "vzdestroy"]);
  });

  it("waits out a lock held by another operation", async () => {
    const ct = await up(base({ started: false }));
    const vmid = Number(ct.id);
    await sb.admin.holdLock(vmid, "backup", 1);
    await handler.delete!(ct.id, ct.outs);
    expect(await providerClient().cluster.findGuest(vmid)).to.equal(undefined);
  });
});
