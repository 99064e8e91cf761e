/**
 * The Container resource handler: create, read (refresh), update, delete, adopt.
 * Pure decisions live in ./plan (what changes), ./pveConfig (how inputs map to PVE keys)
 * and ./project (what refresh compares); this file does the talking to Proxmox, in an
 * order that never loses data: migrate, then move disks, then grow them, then the config,
 * then pending changes per policy, pool and power state.
 */
import type * as pulumi from "@pulumi/pulumi";
import { containerArgsSchema, rootOnlyReasons, type ContainerArgs } from "./args";
import { fromPveConfig, mountPointString, rootfsString, toPveKeys, stripUndefined } from "./pveConfig";
import { planChanges, canonical, REPLACE_FIELDS, type ChangePlan } from "./plan";
import { refreshedArgs } from "./project";
import { withSafetySnapshot } from "./safety";
import { ADDRESS_FIELDS, AddressesRequiredError, awaitedAddresses, currentAddresses, emptyAddresses, waitForAddresses, waitsNow, withStatic } from "./addresses";
import { checkInputs, parseInputs, unknownPaths } from "../validation";
import { runOperation, partialFailure, type OperationContext, type PartialFailure } from "../operation";
import { getProviderConfig, type ResourceHandler } from "../registry";
import type { PveClient } from "../../proxmox/client";
import { vmidAllocator } from "../../proxmox/vmids";
import { PveTaskTimeoutError } from "../../proxmox/errors";
import { parseUpid } from "../../proxmox/upid";
import { sizeBytes } from "./args";

/** The size a disk (`rootfs` / `mpN`) has in an observed config, if known. */
function diskSize(observed: ContainerArgs, disk: string): string | undefined {
  if (disk === "rootfs") return observed.rootfs?.size;
  return observed.mountPoints?.find((m) => `mp${m.slot}` === disk)?.size;
}

const TYPE = "Container";

/** Outputs: the inputs as Proxmox has them, plus what only Proxmox knows. */
export interface ContainerOutputs extends ContainerArgs {
  vmid: number;
  status: string;
  /** `rootfs` / `mpN` → volume ID (host path for bind mounts). */
  volids: Record<string, string>;
  /** `netN` → MAC address. */
  hwaddrs: Record<string, string>;
  /** Interface name → global unicast addresses (CIDR). */
  ipv4: Record<string, string[]>;
  ipv6: Record<string, string[]>;
}

const COMPUTED = ["status", "volids", "hwaddrs", "ipv4", "ipv6"] as const;

const DEFAULT_TIMEOUTS_S = { create: 600, update: 600, delete: 300, start: 120, shutdown: 60, migrate: 1800 };
const timeoutMs = (a: ContainerArgs, k: keyof typeof DEFAULT_TIMEOUTS_S) => (a.timeouts?.[k] ?? DEFAULT_TIMEOUTS_S[k]) * 1000;

/** The user the provider connects as (for root-only checks), from stack config or env. */
function connectingUser(): string | undefined {
  const cfg = getProviderConfig();
  const token = cfg.apiToken ?? process.env.PROXMOX_VE_API_TOKEN;
  if (token) return token.split("!")[0];
  return cfg.username ?? process.env.PROXMOX_VE_USERNAME;
}

/** The previous inputs as recorded in state: outputs minus what is computed. */
function previousArgs(olds: Record<string, unknown>, next: ContainerArgs): ContainerArgs {
  const prev: Record<string, unknown> = { ...olds };
  for (const k of COMPUTED) delete prev[k];
  // An allocated vmid is state, not input: compare it only when the program sets one.
  if (next.vmid === undefined) delete prev.vmid;
  return prev as ContainerArgs;
}

function parse(inputs: unknown): ContainerArgs {
  const { vmid: _v, ...rest } = inputs as Record<string, unknown>;
  // Outputs carry the allocated vmid; inputs only when the user set it.
  return parseInputs(TYPE, containerArgsSchema, (inputs as Record<string, unknown>).vmid === undefined ? rest : inputs);
}

// ---------------------------------------------------------------------------------------

async function check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
  return runOperation({ resourceType: TYPE, operation: "check", resourceName: news.resourceName as string }, async () =>
    checkInputs(TYPE, containerArgsSchema, news, (a) => {
      const who = connectingUser();
      if (!who || who === "root@pam") return [];
      return rootOnlyReasons(a).map((r) => {
        const i = r.indexOf(": ");
        return { field: r.slice(0, i), message: `${r.slice(i + 2)}; the provider connects as ${who}` };
      });
    }),
  );
}

async function diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
  return runOperation({ resourceType: TYPE, operation: "diff", resourceName: news.resourceName as string, node: olds.node as string, vmid: olds.vmid as number }, async () => {
    if (unknownPaths(news).length) {
      // Preview with values not known yet: anything unknown may change; replace fields may replace.
      const changed = Object.keys({ ...olds, ...news }).filter(
        (k) => !(COMPUTED as readonly string[]).includes(k) && JSON.stringify(canonical(olds[k])) !== JSON.stringify(canonical(news[k])) && !(k === "vmid" && news.vmid === undefined),
      );
      const replaces = changed.filter((k) => (REPLACE_FIELDS as readonly string[]).includes(k));
      return { changes: changed.length > 0, replaces, deleteBeforeReplace: news.vmid !== undefined };
    }
    const next = parse(news);
    const plan = planChanges(previousArgs(olds, next), next, {
      volids: (olds.volids as Record<string, string>) ?? {},
      hwaddrs: (olds.hwaddrs as Record<string, string>) ?? {},
    });
    // A fixed vmid cannot exist twice: the old CT must go before the new one is created.
    return { changes: plan.changed.length > 0, replaces: plan.replaces, deleteBeforeReplace: next.vmid !== undefined };
  });
}

// ---------------------------------------------------------------------------------------

/** PVE create parameters for the inputs. */
export function createParams(a: ContainerArgs): Record<string, string | number> {
  const p: Record<string, string | number> = { ostemplate: a.template!, ...toPveKeys(a), unprivileged: a.unprivileged ? 1 : 0 };
  if (a.rootfs) p.rootfs = rootfsString(a.rootfs);
  for (const m of a.mountPoints ?? []) p[`mp${m.slot}`] = mountPointString(m);
  if (a.password !== undefined) p.password = a.password;
  if (a.sshPublicKeys !== undefined) p["ssh-public-keys"] = a.sshPublicKeys;
  if (a.pool !== undefined) p.pool = a.pool;
  if (a.haManaged !== undefined) p["ha-managed"] = a.haManaged ? 1 : 0;
  return p;
}

/**
 * Read the CT and express it as outputs in the shape of `declared`. `known.status` skips the
 * status read when the caller has just set the power state itself (one request less per
 * created container, bench/pulumi-up); a CT without network devices is not asked for
 * addresses. `wait` (./addresses `waitsNow`): whether to wait for DHCP/SLAAC addresses —
 * never on refresh.
 */
async function readOutputs(
  client: PveClient,
  declared: ContainerArgs,
  vmid: number,
  node: string,
  ctx: OperationContext,
  known: { pool?: string; status?: "running" | "stopped" } = {},
  wait: boolean | number = false,
): Promise<ContainerOutputs> {
  const cfg = await client.lxc.getConfig(node, vmid, { current: true });
  const st = known.status ? { status: known.status, uptime: 0 } : await client.lxc.status(node, vmid);
  const status = st.status;
  const observed = fromPveConfig(cfg);
  const running = status === "running";
  const args = refreshedArgs(declared as unknown as Record<string, unknown>, observed.args as Record<string, unknown>, { node, running, pool: known.pool ?? declared.pool });
  const outs = (a: { ipv4: Record<string, string[]>; ipv6: Record<string, string[]> }) =>
    stripUndefined({ ...(args as unknown as ContainerArgs), vmid, node, status, volids: observed.volids, hwaddrs: observed.hwaddrs, ...a });
  if (!Object.keys(observed.hwaddrs).length) return outs(emptyAddresses());
  if (!waitsNow(wait, running, st.uptime)) return outs(await currentAddresses(client, node, vmid, declared, running));
  // Just started by create (known.status), no DHCP/SLAAC address awaited: it has its static
  // addresses, and a read this early shows no other (bench/pulumi-up: -1 request per
  // container). Refresh reads them.
  if (known.status === "running" && wait === true && !awaitedAddresses(declared).length) return outs(withStatic(emptyAddresses(), declared.networks));
  try {
    return outs(await waitForAddresses(client, node, vmid, declared, ctx));
  } catch (e) {
    // waitForIp.required: fail, but record the CT as it is (the next `up` waits again).
    if (e instanceof AddressesRequiredError) throw partialFailure(e, String(vmid), outs(e.addresses));
    throw e;
  }
}

async function setPower(client: PveClient, node: string, vmid: number, a: ContainerArgs, ctx: OperationContext): Promise<void> {
  const st = await client.lxc.status(node, vmid);
  if (a.started && st.status !== "running") {
    ctx.log.info("starting container");
    await client.lxc.startAndWait(node, vmid, {}, { wait: { timeoutMs: timeoutMs(a, "start") } });
  } else if (!a.started && st.status === "running") {
    await stopGracefully(client, node, vmid, a, ctx);
  }
}

/** Shutdown within the timeout, then a hard stop. */
async function stopGracefully(client: PveClient, node: string, vmid: number, a: ContainerArgs, ctx: OperationContext): Promise<void> {
  const timeout = Math.round(timeoutMs(a, "shutdown") / 1000);
  try {
    await client.lxc.shutdownAndWait(node, vmid, { timeout }, { wait: { timeoutMs: (timeout + 30) * 1000 } });
  } catch (e) {
    ctx.log.warn({ err: (e as Error).message }, "graceful shutdown failed; stopping");
    await client.lxc.stopAndWait(node, vmid, {}, { wait: { timeoutMs: timeoutMs(a, "shutdown") } });
  }
}

async function create(inputs: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
  return runOperation({ resourceType: TYPE, operation: "create", resourceName: inputs.resourceName as string, node: inputs.node as string }, async (ctx) => {
    const a = parse(inputs);
    const client = ctx.client();
    if (a.adopt) return adopt(client, a, ctx);
    let vmid: number;
    try {
      ({ vmid } = await client.lxc.createContainer({
        node: a.node,
        vmid: a.vmid,
        vmids: vmidAllocator(client), // one allocator per run: no nextid collisions inside it
        config: createParams(a),
        waitOptions: { timeoutMs: timeoutMs(a, "create") },
        logger: ctx.log,
      }));
    } catch (e) {
      // The create task outlived timeouts.create: it was not cancelled, so the CT is (about to
      // be) there. Record it, or the next `up` creates a second one next to an orphan
      // (found by test/resilience: task slower than the timeout during create).
      if (e instanceof PveTaskTimeoutError) {
        const id = Number(parseUpid(e.upid).id);
        throw partialFailure(e, String(id), stripUndefined({ ...a, vmid: id, status: "unknown", volids: {}, hwaddrs: {}, ipv4: {}, ipv6: {} }));
      }
      throw e;
    }
    ctx.bind({ vmid });
    ctx.log.info({ vmid }, "container created");
    try {
      // A CT we just created is stopped (no start=1 in the create): start it (if wanted)
      // without asking for its status first — one request less per container
      // (bench/pulumi-up.ts). HA-managed ones may be started by the HA manager meanwhile,
      // so those still check.
      if (a.haManaged) await setPower(client, a.node, vmid, a, ctx);
      else if (a.started) {
        ctx.log.info("starting container");
        await client.lxc.startAndWait(a.node, vmid, {}, { wait: { timeoutMs: timeoutMs(a, "start") } });
      }
      const known = a.haManaged ? {} : { status: a.started ? ("running" as const) : ("stopped" as const) };
      return { id: String(vmid), outs: await readOutputs(client, a, vmid, a.node, ctx, known, true) };
    } catch (e) {
      if ((e as PartialFailure).id) throw e;
      // The CT exists: record it, so the next `up` converges instead of leaving an orphan.
      throw partialFailure(e, String(vmid), stripUndefined({ ...a, vmid, status: "unknown", volids: {}, hwaddrs: {}, ipv4: {}, ipv6: {} }));
    }
  });
}

async function locate(client: PveClient, vmid: number): Promise<{ node: string; pool?: string } | undefined> {
  const guest = await client.cluster.findGuest(vmid);
  if (!guest) return undefined;
  if (guest.type !== "lxc") {
    throw new Error(`VMID ${vmid} belongs to a QEMU VM on ${guest.node}, not a container. Use another vmid.`);
  }
  return { node: guest.node as string, pool: (guest as { pool?: string }).pool };
}

/** Take an existing CT under management: read it, then converge it to the inputs. */
async function adopt(client: PveClient, a: ContainerArgs, ctx: OperationContext): Promise<pulumi.dynamic.CreateResult> {
  const vmid = a.vmid!;
  ctx.bind({ vmid });
  const where = await locate(client, vmid);
  if (!where) throw new Error(`adopt: no container with vmid ${vmid} exists in the cluster. Remove adopt: true to create it, or fix vmid.`);
  const cfg = fromPveConfig(await client.lxc.getConfig(where.node, vmid, { current: true }));
  if (cfg.args.unprivileged !== a.unprivileged) {
    throw new Error(
      `adopt: CT ${vmid} is ${cfg.args.unprivileged ? "unprivileged" : "privileged"} but the inputs say unprivileged: ${a.unprivileged}. ` +
        `Set unprivileged: ${cfg.args.unprivileged} to match (changing it would need a new container).`,
    );
  }
  const status = await client.lxc.status(where.node, vmid);
  const current = refreshedArgs(a as unknown as Record<string, unknown>, cfg.args as Record<string, unknown>, { node: where.node, running: status.status === "running", pool: where.pool }) as unknown as ContainerArgs;
  const plan = planChanges(current, a, { volids: cfg.volids, hwaddrs: cfg.hwaddrs });
  ctx.log.info({ changes: plan.changed }, "adopting container");
  const began = Date.now();
  await execute(client, vmid, where.node, a, plan, ctx);
  return { id: String(vmid), outs: await readOutputs(client, a, vmid, a.node, ctx, {}, addressWait(plan, began)) };
}

async function read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
  return runOperation({ resourceType: TYPE, operation: "read", resourceName: props.resourceName as string, vmid: id }, async (ctx) => {
    const client = ctx.client();
    const vmid = Number(id);
    const where = await locate(client, vmid);
    if (!where) {
      ctx.log.info("container is gone");
      return { id: "", props: {} };
    }
    const declared = { ...props } as Record<string, unknown>;
    for (const k of COMPUTED) delete declared[k];
    const outs = await readOutputs(client, declared as unknown as ContainerArgs, vmid, where.node, ctx, { pool: where.pool });
    return { id, props: outs };
  });
}

async function update(id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
  return runOperation({ resourceType: TYPE, operation: "update", resourceName: news.resourceName as string, node: olds.node as string, vmid: id }, async (ctx) => {
    const client = ctx.client();
    const vmid = Number(id);
    const a = parse(news);
    const plan = planChanges(previousArgs(olds, a), a, { volids: (olds.volids as Record<string, string>) ?? {}, hwaddrs: (olds.hwaddrs as Record<string, string>) ?? {} });
    const where = await locate(client, vmid);
    if (!where) throw new Error(`CT ${vmid} no longer exists; run \`pulumi refresh\` so Pulumi forgets it, then \`pulumi up\` creates it again.`);
    const run = () => execute(client, vmid, where.node, a, plan, ctx);
    const began = Date.now();
    await (a.safetySnapshot ? withSafetySnapshot(client, where.node, vmid, plan, ctx, run) : run());
    return { outs: await readOutputs(client, a, vmid, a.node, ctx, {}, addressWait(plan, began)) };
  });
}

/** An update waits for addresses if it changed what they depend on, or (re)started the CT. */
const addressWait = (plan: ChangePlan, began: number) => plan.changed.some((k) => (ADDRESS_FIELDS as readonly string[]).includes(k)) || began;

/** Carry out a plan. Order matters: see the header comment. */
async function execute(client: PveClient, vmid: number, startNode: string, a: ContainerArgs, plan: ChangePlan, ctx: OperationContext): Promise<void> {
  let node = startNode;
  if (plan.createOnlyChanged.length) {
    ctx.log.warn({ fields: plan.createOnlyChanged }, `${plan.createOnlyChanged.join(", ")} only apply when a container is created; change them inside the container`);
  }
  const isRunning = async () => (await client.lxc.status(node, vmid)).status === "running";

  if (node !== a.node) {
    const running = await isRunning();
    const moves = plan.diskMoves;
    // One target storage for every volume: let the migration put them there directly.
    const single = moves.length > 0 && moves.every((m) => m.storage === moves[0].storage) ? moves[0].storage : undefined;
    ctx.log.info({ from: node, to: a.node, restart: running }, "migrating container");
    await client.lxc.migrateAndWait(
      node,
      vmid,
      { target: a.node, restart: running || undefined, "target-storage": single },
      { wait: { timeoutMs: timeoutMs(a, "migrate") } },
    );
    node = a.node;
    if (single) plan.diskMoves = [];
  }

  let stoppedForMove = false;
  if (plan.diskMoves.length) {
    // PVE cannot move volumes of a running CT (BEHAVIOR.md 4.7).
    if (await isRunning()) {
      await stopGracefully(client, node, vmid, a, ctx);
      stoppedForMove = true;
    }
    for (const m of plan.diskMoves) {
      ctx.log.info(m, "moving volume");
      await client.lxc.moveVolumeAndWait(node, vmid, { volume: m.disk, storage: m.storage, delete: true }, { wait: { timeoutMs: timeoutMs(a, "update") } });
    }
  }
  // The plan compares with the size in state; an earlier update that failed or timed out
  // after its resize task ran may have grown the disk already, and PVE refuses a resize to
  // the current size ("disk is already at specified size"), so the re-run would never
  // converge (found by test/resilience: resize task slower than timeouts.update).
  const sizesNow = plan.diskResizes.length ? fromPveConfig(await client.lxc.getConfig(node, vmid, { current: true })) : undefined;
  for (const r of plan.diskResizes) {
    const now = diskSize(sizesNow!.args as ContainerArgs, r.disk);
    if (now !== undefined && sizeBytes(now) >= sizeBytes(r.size)) {
      ctx.log.info({ ...r, current: now }, "volume already has the requested size; not resizing");
      continue;
    }
    ctx.log.info(r, "growing volume");
    await client.lxc.resizeAndWait(node, vmid, { disk: r.disk, size: r.size }, { wait: { timeoutMs: timeoutMs(a, "update") } });
  }

  const set = { ...plan.set };
  if (plan.diskRewrites.length || Object.keys(set).length || plan.delete.length) {
    const cfg = await client.lxc.getConfig(node, vmid, { current: true });
    const volids = fromPveConfig(cfg).volids;
    for (const r of plan.diskRewrites) set[r.disk] = r.render(volids[r.disk]);
    if (Object.keys(set).length || plan.delete.length) {
      await client.lxc.updateConfig(node, vmid, { set, delete: plan.delete, digest: cfg.digest });
    }
  }

  if (await isRunning()) {
    const pending = (await client.lxc.pending(node, vmid)).filter((p) => p.key !== "digest" && (p.pending !== undefined || p.delete !== undefined));
    if (pending.length) {
      const keys = pending.map((p) => p.key);
      if (a.pendingChanges === "reboot") {
        ctx.log.info({ keys }, "changes need a restart to apply; rebooting (pendingChanges: reboot)");
        await client.lxc.rebootAndWait(node, vmid, {}, { wait: { timeoutMs: timeoutMs(a, "start") + timeoutMs(a, "shutdown") } });
      } else {
        ctx.log.warn({ keys }, "changes stay pending until the next restart (pendingChanges: leave)");
      }
    }
  }

  if (plan.pool) {
    if (plan.pool.from) await client.cluster.updatePoolMembers(plan.pool.from, { vms: [vmid], remove: true });
    if (plan.pool.to) await client.cluster.updatePoolMembers(plan.pool.to, { vms: [vmid] });
  }
  if (plan.power || stoppedForMove || a.started !== (await isRunning())) await setPower(client, node, vmid, a, ctx);
}

async function destroy(id: string, props: Record<string, unknown>): Promise<void> {
  return runOperation({ resourceType: TYPE, operation: "delete", resourceName: props.resourceName as string, node: props.node as string, vmid: id }, async (ctx) => {
    const client = ctx.client();
    const vmid = Number(id);
    const a = props as unknown as ContainerArgs;
    const where = await locate(client, vmid);
    if (!where) {
      ctx.log.info("container already gone");
      return;
    }
    const cfg = await client.lxc.getConfig(where.node, vmid, { current: true });
    if (cfg.protection) {
      throw new Error(
        `CT ${vmid}${props.resourceName ? ` ('${props.resourceName}')` : ""} has protection enabled, so it was not destroyed. ` +
          `Set protection: false and run \`pulumi up\` first if you really mean to delete it.`,
      );
    }
    if ((await client.lxc.status(where.node, vmid)).status === "running") await stopGracefully(client, where.node, vmid, a, ctx);
    await client.lxc.destroyAndWait(where.node, vmid, { purge: true, "destroy-unreferenced-disks": true }, { wait: { timeoutMs: timeoutMs(a, "delete") } });
    // The destroy task deletes the config last; make sure the CT is really gone.
    const deadline = Date.now() + timeoutMs(a, "delete");
    while (await locate(client, vmid)) {
      if (Date.now() > deadline) throw new Error(`CT ${vmid} still exists after its destroy task finished; check the node's task log.`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });
}

const handler: ResourceHandler = { check, diff, create, read, update, delete: destroy };
export default handler;

