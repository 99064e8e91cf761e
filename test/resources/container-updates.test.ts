/**
 * Container updates a genuine Proxmox VE treats differently from a naive client (issue 15),
 * in process against the sandbox: the preview diff with unknown inputs, a mount-point slot
 * that changes what it holds, protection around volume changes, the state after an update
 * that failed part-way, and check failures on secret inputs.
 */
import { expect } from "chai";
import { startSandbox, type SandboxHandle } from "../../sandbox";
import handler from "../../provider/resources/container/handler";
import { providerClient } from "../../provider/resources/operation";
import { UNKNOWN } from "../../provider/resources/validation";
import { useSandboxProvider, applianceTemplate } from "../support/provider";

type Outs = Record<string, any>;

describe("Container updates as a real PVE answers them (in process, against the sandbox)", function () {
  this.timeout(120_000);
  let sb: SandboxHandle;
  let template: string;

  before(async () => {
    sb = await startSandbox({ port: 0, nodes: ["pve1"], taskDurationMs: 5, authFailureDelayMs: 0 });
    // Ticket auth as root@pam: bind mounts are root-only, and API tokens are never root.
    useSandboxProvider(sb, { "proxmox:apiToken": "", "proxmox:username": sb.username, "proxmox:password": sb.password });
    template = await applianceTemplate("alpine");
  });
  after(async () => {
    await sb?.stop();
  });

  const base = (extra: Record<string, unknown> = {}) => ({
    node: "pve1",
    template,
    hostname: "upd-1",
    memory: { dedicated: 256, swap: 0 },
    rootfs: { storage: "local-lvm", size: "1G" },
    started: false,
    resourceName: "upd",
    ...extra,
  });

  async function create(inputs: Record<string, unknown>): Promise<{ id: string; outs: Outs }> {
    const checked = await handler.check!({}, inputs);
    expect(checked.failures ?? []).to.deep.equal([]);
    const r = await handler.create(checked.inputs);
    return { id: r.id, outs: r.outs as Outs };
  }
  /** diff then update, as `pulumi up` does. */
  async function up(ct: { id: string; outs: Outs }, inputs: Record<string, unknown>) {
    const checked = await handler.check!({}, inputs);
    expect(checked.failures ?? []).to.deep.equal([]);
    const diff = await handler.diff!(ct.id, ct.outs, checked.inputs);
    const outs = diff.changes ? ((await handler.update!(ct.id, ct.outs, checked.inputs)).outs as Outs) : ct.outs;
    return { diff, outs };
  }
  const config = async (vmid: number) => providerClient().lxc.getConfig("pve1", vmid, { current: true }) as Promise<Record<string, unknown>>;

  it("preview with unknown inputs: only replace fields may replace; the rest is an update, as up then does", async () => {
    const ct = await create(base({ entrypoint: "/bin/sh", env: { A: "1" } }));
    // The engine passes unknowns raw (check keeps them); defaults like unprivileged are not applied.
    const raw = (extra: Record<string, unknown>) => ({ ...base({ entrypoint: "/bin/sh", env: { A: "1" } }), ...extra });
    const cases: Array<[string, Record<string, unknown>, string[]]> = [
      ["entrypoint/env of an OciImage (PVE 8 report no value)", { entrypoint: UNKNOWN, env: UNKNOWN }, []],
      ["a nested value", { networks: [{ name: "eth0", bridge: "vmbr0", ip: UNKNOWN }] }, []],
      ["hostname", { hostname: UNKNOWN }, []],
      ["template", { template: UNKNOWN }, ["template"]],
      ["unprivileged", { unprivileged: UNKNOWN }, ["unprivileged"]],
      ["vmid set from an output", { vmid: UNKNOWN }, ["vmid"]],
    ];
    for (const [what, extra, replaces] of cases) {
      const checked = await handler.check!({}, raw(extra));
      expect(checked.failures ?? [], what).to.deep.equal([]);
      const d = await handler.diff!(ct.id, ct.outs, checked.inputs);
      expect(d.changes, what).to.equal(true);
      expect(d.replaces ?? [], what).to.deep.equal(replaces);
    }
    // Known and unchanged, next to an unknown that is not a replace field: no replace.
    const d = await handler.diff!(ct.id, ct.outs, (await handler.check!({}, raw({ description: UNKNOWN }))).inputs);
    expect(d.replaces ?? []).to.deep.equal([]);
    await handler.delete!(ct.id, ct.outs);
  });

  it("a mount-point slot changes what it holds (new volume → bind → existing volume) without mpN + delete=mpN", async () => {
    let ct = await create(base({ mountPoints: [{ slot: 0, storage: "local-lvm", size: "1G", path: "/data" }] }));
    const vmid = Number(ct.id);
    const firstVol = ct.outs.volids.mp0 as string;

    let step = await up(ct, base({ mountPoints: [{ slot: 0, hostPath: "/srv/shared", path: "/data" }] }));
    expect(step.diff.replaces ?? []).to.deep.equal([]);
    let cfg = await config(vmid);
    expect(String(cfg.mp0)).to.match(/^\/srv\/shared,mp=\/data/);
    // PVE keeps the replaced volume as unusedN (its data is not thrown away).
    expect(Object.entries(cfg).filter(([k]) => k.startsWith("unused")).map(([, v]) => v)).to.deep.equal([firstVol]);
    ct = { id: ct.id, outs: step.outs };

    step = await up(ct, base({ mountPoints: [{ slot: 0, volume: firstVol, path: "/data" }] }));
    cfg = await config(vmid);
    expect(String(cfg.mp0)).to.match(new RegExp(`^${firstVol},mp=/data`));
    ct = { id: ct.id, outs: step.outs };

    step = await up(ct, base({ mountPoints: [{ slot: 0, storage: "local-lvm", size: "1G", path: "/data" }] }));
    cfg = await config(vmid);
    expect(String(cfg.mp0)).to.not.include(firstVol);
    expect(Object.values(cfg)).to.include(firstVol); // unusedN again
    // Converged: the program diffs to nothing against the recorded outputs.
    const again = await handler.diff!(ct.id, step.outs, (await handler.check!({}, base({ mountPoints: [{ slot: 0, storage: "local-lvm", size: "1G", path: "/data" }] }))).inputs);
    expect(again.changes).to.equal(false);
    await handler.delete!(ct.id, step.outs);
  });

  it("protection: cleared before volume changes, set after them; a CT that stays protected is refused clearly", async () => {
    const mp = (size: string) => ({ mountPoints: [{ slot: 0, storage: "local-lvm", size, path: "/data" }] });
    let ct = await create(base({ protection: true, ...mp("1G") }));
    const vmid = Number(ct.id);

    // Stays protected and a volume changes: refused at diff time (preview), nothing sent.
    const kept = await handler.diff!(ct.id, ct.outs, (await handler.check!({}, base({ protection: true, ...mp("2G") }))).inputs).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(kept?.message).to.match(/^protection: .*refuses every rootfs\/mount-point change.*\(mp0\).*Set protection: false/);

    // Unprotect and remove the mount point in one up.
    let step = await up(ct, base({ protection: false }));
    let cfg = await config(vmid);
    expect(cfg.mp0).to.equal(undefined);
    expect(Number(cfg.protection ?? 0)).to.equal(0);
    ct = { id: ct.id, outs: step.outs };

    // Add a mount point and protect in one up: protection comes last.
    step = await up(ct, base({ protection: true, ...mp("1G") }));
    cfg = await config(vmid);
    expect(String(cfg.mp0)).to.match(/mp=\/data/);
    expect(Number(cfg.protection)).to.equal(1);
    await up({ id: ct.id, outs: step.outs }, base({ protection: false, ...mp("1G") }));
    await handler.delete!(ct.id, step.outs);
  });

  it("an update that fails part-way records what was applied, so the next preview is true", async () => {
    const ct = await create(base());
    const vmid = Number(ct.id);
    const next = base({ hostname: "upd-2", rootfs: { storage: "local-lvm", size: "2G" } });
    const checked = await handler.check!({}, next);
    await sb.admin.addFault({ method: "PUT", path: `/nodes/pve1/lxc/${vmid}/config`, action: "status", status: 500, message: "config update refused" });
    const err = (await handler.update!(ct.id, ct.outs, checked.inputs).then(
      () => undefined,
      (e: Error) => e,
    )) as (Error & { id?: string; properties?: Outs }) | undefined;
    expect(err?.message).to.include("config update refused");
    // The engine stores `properties` as the outputs (ErrorResourceInitFailed).
    expect(err?.id).to.equal(ct.id);
    expect(err?.properties?.rootfs?.size).to.equal("2G");
    expect(err?.properties?.hostname).to.equal("upd-1");
    const d = await handler.diff!(ct.id, err!.properties!, checked.inputs);
    expect(d.changes).to.equal(true);
    expect(d.replaces ?? []).to.deep.equal([]);
    // The retry only sets the hostname: no resize of a disk that is already 2G.
    const retry = await handler.update!(ct.id, err!.properties!, checked.inputs);
    expect((retry.outs as Outs).hostname).to.equal("upd-2");
    expect(String((await config(vmid)).rootfs)).to.match(/size=2G/);
    await handler.delete!(ct.id, retry.outs as Outs);
  });

  it("a check failure on the password names the field but never carries its value", async () => {
    const secret = "ab9";
    const r = await handler.check!({}, base({ password: secret }));
    expect(r.failures).to.have.length(1);
    const f = r.failures![0];
    // The engine prints `property <p> value <v> has a problem` when a property is given.
    expect(f.property).to.equal("");
    expect(f.reason).to.match(/password: must be at least 5 characters/);
    expect(JSON.stringify(f)).to.not.include(secret);
    // Other fields keep their property, so the CLI still points at them.
    const other = await handler.check!({}, base({ hostname: "bad_host!" }));
    expect(other.failures?.[0]?.property).to.equal("hostname");
  });

  it("a check failure on OciImage credentials (stored as a secret) carries no property either", async () => {
    const oci = (await import("../../provider/resources/oci-image/handler")).default;
    const r = await oci.check!({}, { node: "pve1", source: "registry.example/app:1", credentials: { user: "u", password: "Sup3r-s3cret-9" } });
    const mine = (r.failures ?? []).filter((f) => /^OciImage credentials/.test(f.reason));
    expect(mine.map((f) => f.reason).join("\n")).to.match(/unknown field\(s\) 'user'/);
    expect(mine.map((f) => f.property)).to.deep.equal(mine.map(() => ""));
    expect(JSON.stringify(r.failures)).to.not.include("Sup3r-s3cret-9");
  });

  it("sent no request the PVE schema rejects", async () => {
    expect((await sb.admin.counters()).violationCount).to.equal(0);
  });
});
