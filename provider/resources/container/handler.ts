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
import { assertBridgesExist } from "./bridges";
import { migrationStorageMap, remainingMoves } from "./migration";
import { versionProblems, type ServerRelease } from "./versions";
import { ADDRESS_FIELDS, AddressesRequiredError, awaitedAddresses, currentAddresses, emptyAddresses, waitForAddresses, waitsNow, withStatic } from "./addresses";
import { checkInputs, hideSecretValues, parseInputs, unknownPaths, InputError } from "../validation";
import { runOperation, partialFailure, type OperationContext, type PartialFailure } from "../operation";
import { getProviderConfig, type ResourceHandler } from "../registry";
import type { PveClient } from "../../proxmox/client";
import { vmidAllocator } from "../../proxmox/vmids";
import { PveApiError, PveNotFoundError, PveTaskTimeoutError } from "../../proxmox/errors";
import { parseUpid } from "../../proxmox/upid";
import { sizeBytes } from "./args";
import { checkCloneHint, effectiveArgs, templateReplaces } from "./origin";
import { cloneContainer, cloneVmidOf } from "./clone";
import { restoreContainer } from "./restore";
import { ensureTemplate, noteTemplateReplace, startedIgnoredWarning, undeclaredTemplateError } from "./templateConversion";

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

/**
 * Who PVE sees (for root-only checks), from stack config or env. With an API token that is
 * the token ID (`root@pam!x`), never `root@pam` itself: PVE's root-only checks compare the
 * authenticated user with `root@pam`, and a token is its own principal (BEHAVIOR.md 2.2).
 */
function connectingPrincipal(): { id: string; token: boolean } | undefined {
  const cfg = getProviderConfig();
  // Credentials come from one source as a unit, as in parseSettings; "" counts as unset.
  const fromConfig = [cfg.apiToken, cfg.username, cfg.password, cfg.otp].some((v) => v);
  const token = fromConfig ? cfg.apiToken : process.env.PROXMOX_VE_API_TOKEN;
  if (token) return { id: token.split("=")[0], token: true };
  const user = fromConfig ? cfg.username : process.env.PROXMOX_VE_USERNAME;
  return user ? { id: user, token: false } : undefined;
}

function rootOnlyFailures(a: ContainerArgs, olds: Record<string, unknown>): Array<{ field: string; message: string }> {
  // Adopting, cloning, restoring: what the CT already has is only known once it is read
  // (converge() checks then).
  if ((a.adopt || a.clone || a.restore) && !Object.keys(olds).length) return [];
  const who = connectingPrincipal();
  if (!who || (!who.token && who.id === "root@pam")) return [];
  // The previous inputs as check() returned them (normalised), or the CT as read (adopt).
  const prev = Object.keys(olds).length ? (stripComputed(olds) as Partial<ContainerArgs>) : undefined;
  const fix = who.token
    ? `the provider connects with the API token ${who.id}, and PVE never treats a token as root@pam. Set proxmox:username to root@pam with proxmox:password (ticket login) for this stack`
    : `the provider connects as ${who.id}; connect as root@pam (proxmox:username/proxmox:password)`;
  return rootOnlyReasons(a, prev).map((r) => {
    const i = r.indexOf(": ");
    return { field: r.slice(0, i), message: `${r.slice(i + 2)}; ${fix}, or drop the setting` };
  });
}

function stripComputed(olds: Record<string, unknown>): Record<string, unknown> {
  const prev: Record<string, unknown> = { ...olds };
  for (const k of COMPUTED) delete prev[k];
  return prev;
}

/** The previous inputs as recorded in state: outputs minus what is computed. */
function previousArgs(olds: Record<string, unknown>, next: ContainerArgs): ContainerArgs {
  const prev = stripComputed(olds);
  // An allocated vmid is state, not input: compare it only when the program sets one.
  if (next.vmid === undefined) delete prev.vmid;
  // Likewise a clone's or restore's unprivileged, when the program leaves it to the source.
  if (next.unprivileged === undefined) delete prev.unprivileged;
  return prev as ContainerArgs;
}

function parse(inputs: unknown): ContainerArgs {
  const { vmid: _v, ...rest } = inputs as Record<string, unknown>;
  // Outputs carry the allocated vmid; inputs only when the user set it.
  return effectiveArgs(parseInputs(TYPE, containerArgsSchema, (inputs as Record<string, unknown>).vmid === undefined ? rest : inputs));
}

// ---------------------------------------------------------------------------------------

/** Inputs stored as secrets (sdk/container.ts): a check failure must not name them. */
const SECRET_INPUTS = ["password"];

async function check(olds: Record<string, unknown>, raw: Record<string, unknown>) {
  return runOperation({ resourceType: TYPE, operation: "check", resourceName: raw.resourceName as string }, async (ctx) => {
    const { news, failures: hinted } = checkCloneHint(raw);
    const warning = startedIgnoredWarning(news);
    if (warning) await ctx.warn(warning);
    const release = usesVersionedInputs(news) ? await serverRelease(ctx) : undefined;
    const outcome = checkInputs(TYPE, containerArgsSchema, news, (a) => [...hinted, ...rootOnlyFailures(a, olds ?? {}), ...(release ? versionProblems(a, release) : [])]);
    return hideSecretValues(outcome, SECRET_INPUTS);
  });
}

/** Inputs whose acceptance depends on the server's release (./versions): only then does check() ask the server. */
function usesVersionedInputs(news: Record<string, unknown>): boolean {
  const nets = Array.isArray(news.networks) ? (news.networks as Array<Record<string, unknown>>) : [];
  return (
    (typeof news.template === "string" && /\.tar$/i.test(news.template)) ||
    news.entrypoint !== undefined ||
    news.env !== undefined ||
    news.haManaged !== undefined ||
    nets.some((n) => n && n.hostManaged !== undefined)
  );
}

/** The server's release for check(), or undefined when it cannot be asked now (create/update check again). */
async function serverRelease(ctx: OperationContext): Promise<ServerRelease | undefined> {
  try {
    return await ctx.client().version();
  } catch (e) {
    ctx.log.debug({ err: (e as Error).message }, "server version unknown at check; version-dependent inputs are checked at create/update");
    return undefined;
  }
}

/**
 * Before anything is sent (also when check could not see every value): refuse root-only
 * changes for a non-root principal and inputs this server's release does not accept.
 */
async function assertSendable(client: PveClient, a: ContainerArgs, olds: Record<string, unknown>): Promise<void> {
  const problems = [...rootOnlyFailures(a, olds), ...versionProblems(a, await client.version())];
  if (problems.length) throw new InputError(TYPE, problems);
}

async function diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
  return runOperation({ resourceType: TYPE, operation: "diff", resourceName: news.resourceName as string, node: olds.node as string, vmid: olds.vmid as number }, async () => {
    const verdict = classify(olds, news);
    noteTemplateReplace(verdict.replaces, news.resourceName);
    // A fixed vmid cannot exist twice: the old CT must go before the new one is created.
    return { changes: verdict.changed.length > 0, replaces: verdict.replaces, deleteBeforeReplace: news.vmid !== undefined };
  });
}

/**
 * What `update` will do, as the engine needs it: changed inputs and the replace reasons.
 * During a preview some inputs may be unknown (outputs of resources changed in the same
 * run). Those are classified by what they are, never by comparing raw text: the known
 * inputs are planned exactly as `update` plans them (defaults applied), with each unknown
 * top-level input standing in at its previous value; an unknown input then counts as a
 * change, and as a replace only when it is itself a replace field (vmid, unprivileged,
 * template), whose value may really change.
 */
export function classify(olds: Record<string, unknown>, news: Record<string, unknown>): { changed: string[]; replaces: string[] } {
  const unknownTop = [...new Set(unknownPaths(news).map((p) => p.split(/[.[]/)[0]))];
  // The image's entrypoint/env (sdk: `template: anOciImage`) are unknown while the OciImage
  // is updated in place (credentials, timeouts); they follow the stored template, so with
  // the same known template they are the values recorded before.
  const sameTemplate = !unknownTop.includes("template") && news.template === olds.template;
  const followsTemplate = (k: string) => sameTemplate && Array.isArray(news.fromTemplate) && news.fromTemplate.includes(k);
  const unknown = unknownTop.filter((k) => !followsTemplate(k));
  const candidate: Record<string, unknown> = { ...news };
  for (const k of unknownTop) {
    if (olds[k] === undefined || (COMPUTED as readonly string[]).includes(k)) delete candidate[k];
    else candidate[k] = olds[k];
  }
  let next: ContainerArgs;
  try {
    next = parse(candidate);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    // A recorded value that does not parse as an input (state of an older version): judge
    // by the raw values; an unknown or differing replace field may replace.
    const differs = (k: string) => unknown.includes(k) || (news[k] !== undefined && JSON.stringify(canonical(news[k])) !== JSON.stringify(canonical(olds[k])));
    const changed = Object.keys(news).filter(differs).sort();
    return { changed, replaces: changed.filter((k) => (REPLACE_FIELDS as readonly string[]).includes(k)) };
  }
  const plan = planChanges(previousArgs(olds, next), next, {
    volids: (olds.volids as Record<string, string>) ?? {},
    hwaddrs: (olds.hwaddrs as Record<string, string>) ?? {},
  });
  // An unknown isTemplate of a template may turn out false: Proxmox cannot convert back.
  const replaceField = (k: string) => (REPLACE_FIELDS as readonly string[]).includes(k) || (k === "isTemplate" && olds.isTemplate === true);
  return {
    changed: [...new Set([...plan.changed, ...unknown])].sort(),
    replaces: [...new Set([...plan.replaces, ...unknown.filter(replaceField)])].sort(),
  };
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
  known: { pool?: string | null; status?: "running" | "stopped" } = {},
  wait: boolean | number = false,
): Promise<ContainerOutputs> {
  const cfg = await client.lxc.getConfig(node, vmid, { current: true });
  const st = known.status ? { status: known.status, uptime: 0 } : await client.lxc.status(node, vmid);
  const status = st.status;
  const observed = fromPveConfig(cfg);
  const running = status === "running";
  // `pool: null`: the caller looked it up and the CT is in no pool.
  const pool = known.pool === null ? undefined : (known.pool ?? declared.pool);
  const args = refreshedArgs(declared as unknown as Record<string, unknown>, observed.args as Record<string, unknown>, { node, running, pool });
  // A clone's/restore's unprivileged comes from its source: record it, so a later explicit value compares.
  if (args.unprivileged === undefined) args.unprivileged = observed.args.unprivileged;
  if (declared.isTemplate !== undefined) args.isTemplate = observed.template;
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
    await assertSendable(client, a, {});
    await assertBridgesExist(client, a.node, a.networks ?? [], ctx.log);
    let vmid: number;
    try {
      const vmids = vmidAllocator(client); // one allocator per run: no nextid collisions inside it
      if (a.clone || a.restore) {
        // The source's config is the starting point; the declared inputs are applied on top.
        const made = a.clone ? await cloneContainer(client, a, vmids, timeoutMs(a, "create"), ctx) : await restoreContainer(client, a, vmids, timeoutMs(a, "create"), ctx);
        ctx.bind({ vmid: made.vmid });
        try {
          return await converge(client, a, made.vmid, made.node, ctx, a.clone ? "cloned" : "restored");
        } catch (e) {
          if ((e as PartialFailure).id) throw e;
          throw partialFailure(e, String(made.vmid), stripUndefined({ ...a, vmid: made.vmid, status: "unknown", volids: {}, hwaddrs: {}, ipv4: {}, ipv6: {} }));
        }
      }
      ({ vmid } = await client.lxc.createContainer({
        node: a.node,
        vmid: a.vmid,
        vmids,
        config: createParams(a),
        waitOptions: { timeoutMs: timeoutMs(a, "create") },
        logger: ctx.log,
      }));
    } catch (e) {
      // The create task outlived timeouts.create: it was not cancelled, so the CT is (about to
      // be) there. Record it, or the next `up` creates a second one next to an orphan
      // (found by test/resilience: task slower than the timeout during create).
      if (e instanceof PveTaskTimeoutError) {
        const id = cloneVmidOf(e) ?? Number(parseUpid(e.upid).id);
        throw partialFailure(e, String(id), stripUndefined({ ...a, vmid: id, status: "unknown", volids: {}, hwaddrs: {}, ipv4: {}, ipv6: {} }));
      }
      throw e;
    }
    ctx.bind({ vmid });
    ctx.log.info({ vmid }, "container created");
    try {
      await restoreDeclaredAppKeys(client, a.node, vmid, a, ctx);
      // A CT we just created is stopped (no start=1 in the create): start it (if wanted)
      // without asking for its status first — one request less per container
      // (bench/pulumi-up.ts). HA-managed ones may be started by the HA manager meanwhile,
      // so those still check.
      if (a.haManaged) await setPower(client, a.node, vmid, a, ctx);
      else if (a.started) {
        ctx.log.info("starting container");
        await client.lxc.startAndWait(a.node, vmid, {}, { wait: { timeoutMs: timeoutMs(a, "start") } });
      }
      if (a.isTemplate) await ensureTemplate(client, a.node, vmid, timeoutMs(a, "create"), ctx, () => stopGracefully(client, a.node, vmid, a, ctx));
      const known = a.haManaged ? {} : { status: a.started ? ("running" as const) : ("stopped" as const) };
      return { id: String(vmid), outs: await readOutputs(client, a, vmid, a.node, ctx, known, true) };
    } catch (e) {
      if ((e as PartialFailure).id) throw e;
      // The CT exists: record it, so the next `up` converges instead of leaving an orphan.
      throw partialFailure(e, String(vmid), stripUndefined({ ...a, vmid, status: "unknown", volids: {}, hwaddrs: {}, ipv4: {}, ipv6: {} }));
    }
  });
}

/**
 * PVE fills `entrypoint`, `env` and `cmode` of an OCI app container from the image during
 * the create task, over what the request said (BEHAVIOR.md 7). Put the declared values back
 * before the first start, so the first `up` ends in the declared state without a reboot.
 */
async function restoreDeclaredAppKeys(client: PveClient, node: string, vmid: number, a: ContainerArgs, ctx: OperationContext): Promise<void> {
  if (a.entrypoint === undefined && a.env === undefined && a.console?.mode === undefined) return;
  const cfg = await client.lxc.getConfig(node, vmid, { current: true });
  const have = fromPveConfig(cfg).args;
  const want = toPveKeys(a);
  const set: Record<string, string> = {};
  const del: string[] = [];
  if (a.entrypoint !== undefined && have.entrypoint !== a.entrypoint) set.entrypoint = a.entrypoint;
  if (a.env !== undefined && JSON.stringify(sortKeys(have.env ?? {})) !== JSON.stringify(sortKeys(a.env))) {
    if (want.env !== undefined) set.env = want.env;
    else del.push("env");
  }
  if (a.console?.mode !== undefined && have.console?.mode !== a.console.mode) set.cmode = a.console.mode;
  if (!Object.keys(set).length && !del.length) return;
  ctx.log.info({ keys: [...Object.keys(set), ...del] }, "Proxmox replaced declared values with the image's during create; setting them back");
  await client.lxc.updateConfig(node, vmid, { set, delete: del, digest: cfg.digest });
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
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
  return converge(client, a, vmid, where.node, ctx, "adopted", where.pool);
}

/**
 * Bring an existing CT — adopted, or just cloned or restored — to the inputs: read what it
 * is, plan from there with the planner, carry the plan out, read the outputs.
 */
async function converge(client: PveClient, a: ContainerArgs, vmid: number, node: string, ctx: OperationContext, how: string, knownPool?: string): Promise<pulumi.dynamic.CreateResult> {
  const pool = knownPool ?? (how === "adopted" ? undefined : (await locate(client, vmid))?.pool);
  const cfg = fromPveConfig(await client.lxc.getConfig(node, vmid, { current: true }));
  if (cfg.template && !a.isTemplate) throw undeclaredTemplateError(vmid, how === "restored" ? "the backup was of a template" : how);
  const status = await client.lxc.status(node, vmid);
  const current = refreshedArgs(a as unknown as Record<string, unknown>, cfg.args as Record<string, unknown>, { node, running: status.status === "running", pool }) as unknown as ContainerArgs;
  if (cfg.template) current.isTemplate = true;
  const plan = planChanges(current, a, { volids: cfg.volids, hwaddrs: cfg.hwaddrs });
  const rootOnly = rootOnlyFailures({ ...a, adopt: false, clone: undefined, restore: undefined }, current as unknown as Record<string, unknown>);
  if (rootOnly.length) throw new InputError(TYPE, rootOnly);
  ctx.log.info({ changes: plan.changed }, `${how} container: applying the declared inputs`);
  const began = Date.now();
  await execute(client, vmid, node, a, plan, ctx);
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
    await assertSendable(client, a, olds);
    const where = await locate(client, vmid);
    if (!where) throw new Error(`CT ${vmid} no longer exists; run \`pulumi refresh\` so Pulumi forgets it, then \`pulumi up\` creates it again.`);
    if (Object.keys(plan.set).some((k) => /^net\d+$/.test(k))) await assertBridgesExist(client, a.node, a.networks ?? [], ctx.log, "nothing was changed");
    const run = () => execute(client, vmid, where.node, a, plan, ctx);
    const began = Date.now();
    const safety = { startMs: timeoutMs(a, "start"), lockMs: timeoutMs(a, "update") };
    try {
      await (a.safetySnapshot ? withSafetySnapshot(client, where.node, vmid, plan, ctx, safety, run) : run());
    } catch (e) {
      throw await withAppliedState(e, client, vmid, a, ctx);
    }
    return { outs: await readOutputs(client, a, vmid, a.node, ctx, {}, addressWait(plan, began)) };
  });
}

/** An update waits for addresses if it changed what they depend on, or (re)started the CT. */
const addressWait = (plan: ChangePlan, began: number) => plan.changed.some((k) => (ADDRESS_FIELDS as readonly string[]).includes(k)) || began;

/**
 * An update that failed part-way (disks grown, then the config PUT refused; a migration
 * done, then a start that failed) has changed the CT. Report what it is now as the
 * resource's outputs (the engine stores them with the error), so the next preview
 * compares with reality instead of the state before this update. Addresses are read as
 * they are, without waiting.
 */
async function withAppliedState(err: unknown, client: PveClient, vmid: number, a: ContainerArgs, ctx: OperationContext): Promise<unknown> {
  try {
    const where = await locate(client, vmid);
    if (!where) return err;
    const outs = await readOutputs(client, a, vmid, where.node, ctx, { pool: where.pool ?? null });
    ctx.log.warn("update failed part-way; the state records what was applied");
    return partialFailure(err, String(vmid), outs as unknown as Record<string, unknown>);
  } catch (readErr) {
    ctx.log.warn({ err: (readErr as Error).message }, "could not read the container after a failed update; the state keeps its previous outputs");
    return err;
  }
}

/** Carry out a plan. Order matters: see the header comment. */
async function execute(client: PveClient, vmid: number, startNode: string, a: ContainerArgs, plan: ChangePlan, ctx: OperationContext): Promise<void> {
  let node = startNode;
  if (plan.createOnlyChanged.length) {
    await ctx.warn(`${plan.createOnlyChanged.join(", ")} only apply when a container is created; change them inside the container`, { fields: plan.createOnlyChanged });
  }
  const isRunning = async () => (await client.lxc.status(node, vmid)).status === "running";
  const protection = plan.protection;
  if (protection?.first || protection?.firstDelete) {
    ctx.log.info("clearing protection before changing volumes (Proxmox refuses volume changes while it is set)");
    await client.lxc.updateConfig(node, vmid, { set: protection.first ?? {}, delete: protection.firstDelete ?? [] });
  }

  if (node !== a.node) {
    const running = await isRunning();
    const storageMap = plan.diskMoves.length ? await migrationMapFor(client, node, vmid, plan.diskMoves) : undefined;
    ctx.log.info({ from: node, to: a.node, restart: running, "target-storage": storageMap }, "migrating container");
    await client.lxc.migrateAndWait(
      node,
      vmid,
      { target: a.node, restart: running || undefined, "target-storage": storageMap },
      { wait: { timeoutMs: timeoutMs(a, "migrate") } },
    );
    node = a.node;
    if (plan.diskMoves.length) {
      // What the migration did not move (shared storage, split storages) is moved next.
      plan.diskMoves = remainingMoves(fromPveConfig(await client.lxc.getConfig(node, vmid, { current: true })).volids, plan.diskMoves);
    }
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
  if (protection?.last) await client.lxc.updateConfig(node, vmid, { set: protection.last, delete: [] });

  if (await isRunning()) {
    const pending = (await client.lxc.pending(node, vmid)).filter((p) => p.key !== "digest" && (p.pending !== undefined || p.delete !== undefined));
    if (pending.length) {
      const keys = pending.map((p) => p.key);
      if (a.pendingChanges === "reboot") {
        ctx.log.info({ keys }, "changes need a restart to apply; rebooting (pendingChanges: reboot)");
        await client.lxc.rebootAndWait(node, vmid, {}, { wait: { timeoutMs: timeoutMs(a, "start") + timeoutMs(a, "shutdown") } });
      } else {
        await ctx.warn(`${keys.join(", ")}: the change stays pending until the next restart of the container (pendingChanges: leave; 'reboot' restarts it now)`, { keys });
      }
    }
  }

  if (plan.pool) await movePool(client, vmid, plan.pool.to, ctx);
  if (plan.power || stoppedForMove || a.started !== (await isRunning())) await setPower(client, node, vmid, a, ctx);
  // Last: a template's config and disks can no longer be changed the same way, and it must be stopped.
  if (a.isTemplate) await ensureTemplate(client, node, vmid, timeoutMs(a, "update"), ctx, () => stopGracefully(client, node, vmid, a, ctx));
}

/**
 * Put the CT into pool `to` (or no pool). PVE refuses to add a member twice, to remove a
 * non-member and to add a CT that is in another pool, so read where it is first (a CT is in
 * at most one pool; /cluster/resources shows it with Pool.Audit) and change only what differs.
 */
async function movePool(client: PveClient, vmid: number, to: string | undefined, ctx: OperationContext): Promise<void> {
  const current = (await locate(client, vmid))?.pool;
  if (current === to) return;
  if (current) {
    ctx.log.info({ pool: current }, "removing container from pool");
    await client.cluster.updatePoolMembers(current, { vms: [vmid], remove: true });
  }
  if (to) {
    ctx.log.info({ pool: to }, "adding container to pool");
    await client.cluster.updatePoolMembers(to, { vms: [vmid] });
  }
}

/** `target-storage` for migrating with disk moves (see ./migration). */
async function migrationMapFor(client: PveClient, node: string, vmid: number, moves: ChangePlan["diskMoves"]): Promise<string | undefined> {
  const volids = fromPveConfig(await client.lxc.getConfig(node, vmid, { current: true })).volids;
  const shared = new Set((await client.storage.list(node)).filter((st) => st.shared).map((st) => st.storage));
  return migrationStorageMap(volids, moves, shared);
}

/**
 * Delete: DELETE on the node the state records, and let PVE answer what we would otherwise
 * ask first (bench/pulumi-up: 7 sequential requests per delete became 2 for a stopped CT,
 * 5 for a running one). PVE's `destroy_vm` checks, before it starts a task and in this
 * order (BEHAVIOR.md 4.11): the config exists, protection, lock, HA without purge, running.
 * So a protected CT is refused before anything happens to it (never shut down first), a
 * running one is shut down gracefully and deleted again, a locked one is waited out by the
 * client, and only "does not exist" (a CT migrated outside Pulumi, or already gone) costs a
 * cluster-wide lookup. The task deletes the config file last, so its OK means gone.
 */
async function destroy(id: string, props: Record<string, unknown>): Promise<void> {
  return runOperation({ resourceType: TYPE, operation: "delete", resourceName: props.resourceName as string, node: props.node as string, vmid: id }, async (ctx) => {
    const client = ctx.client();
    const vmid = Number(id);
    const a = props as unknown as ContainerArgs;
    let node = typeof props.node === "string" && props.node ? props.node : undefined;
    let stops = 0;
    for (let lookups = 0; ; ) {
      if (!node) {
        lookups++;
        node = (await locate(client, vmid))?.node;
        if (!node) {
          ctx.log.info("container already gone");
          return;
        }
      }
      try {
        await client.lxc.destroyAndWait(node, vmid, { purge: true, "destroy-unreferenced-disks": true }, { wait: { timeoutMs: timeoutMs(a, "delete") } });
        return;
      } catch (e) {
        const said = e instanceof PveApiError ? e.pveMessage : "";
        // Not on that node (moved, gone, or the node left the cluster): look it up, a few times at most.
        if ((e instanceof PveNotFoundError || NO_NODE.test(said)) && lookups < 3) {
          node = undefined;
          continue;
        }
        if (PROTECTED.test(said)) {
          throw new Error(
            `CT ${vmid}${props.resourceName ? ` ('${props.resourceName}')` : ""} has protection enabled, so it was not destroyed. ` +
              `Set protection: false and run \`pulumi up\` first if you really mean to delete it.`,
          );
        }
        // Running (also if started again between our shutdown and the DELETE): shut it down, retry.
        if (RUNNING.test(said) && stops++ < 3) {
          await stopGracefully(client, node, vmid, a, ctx);
          continue;
        }
        throw e;
      }
    }
  });
}

/** PVE's `destroy_vm` refusals (BEHAVIOR.md 4.11), synchronous or from the task's own re-check. */
const PROTECTED = /can't remove CT \d+ - protection mode enabled/;
const RUNNING = /unable to destroy CT \d+ - container is running/;
/** pveproxy's answer for a node name that is not in the cluster (PVE::Cluster remote_node_ip). */
const NO_NODE = /hostname lookup '[^']+' failed/;

const handler: ResourceHandler = { check, diff, create, read, update, delete: destroy };
export default handler;

