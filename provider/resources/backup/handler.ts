/**
 * The Backup resource handler: an on-demand vzdump of a container (provider/proxmox/vzdump.ts).
 *
 * - create runs vzdump on the CT's current node (found by vmid) and records the volume the
 *   task made (its log names the archive). The id is the volume ID.
 * - `notesTemplate` and `protected` change in place (PUT …/content/{volume}); `vmid`,
 *   `mode`, `compress`, `storage` and a new `trigger` value make a new backup (replace: the
 *   new one first, then the old one is deleted). `node`, `retainOnDelete`, `timeouts` only
 *   change the state: the backup stays where it was made (`backupNode`).
 * - Protection: `protectedByResource` records whether this resource set the flag. delete
 *   clears a flag it set; a flag set outside makes delete refuse (nothing a user protected is
 *   removed behind their back). An undeclared `protected` leaves the flag alone.
 * - refresh: a backup deleted outside is gone from the state; notes changed outside show as
 *   a `notesTemplate` change (when the program declares one), `protected` as itself.
 */
import type * as pulumi from "@pulumi/pulumi";
import { backupArgsSchema, DEFAULT_COMPRESS, DEFAULT_MODE, type BackupArgs } from "./args";
import { renderNotes, templateFor, usesVariable } from "./notes";
import { checkInputs, parseInputs, UNKNOWN } from "../validation";
import { runOperation, partialFailure, type OperationContext } from "../operation";
import { PveTaskFailedError, PveTaskTimeoutError } from "../../proxmox/errors";
import { VzdumpApi, backupVolid, type VzdumpParams } from "../../proxmox/vzdump";
import type { ResourceHandler } from "../registry";
import type { PveClient } from "../../proxmox/client";
import type { ContentItem } from "../../proxmox/storage";
import { sleep } from "../../proxmox/retry";

const TYPE = "Backup";

export interface BackupOutputs extends BackupArgs {
  /** The backup's volume ID, e.g. `local:backup/vzdump-lxc-100-2026_11_28-09_30_00.tar.zst`. */
  volume: string;
  /** The node the backup ran on; the volume is read and deleted through it. */
  backupNode: string;
  size: number;
  /** Unix time of the backup (from its file name). */
  ctime: number;
  notes: string;
  /** The volume's protection flag as Proxmox has it. */
  protected: boolean;
  /** Whether this resource set `protected` (so delete may clear it). */
  protectedByResource: boolean;
}

const COMPUTED = ["volume", "backupNode", "size", "ctime", "notes", "protectedByResource"] as const;
/** Inputs whose change makes a new backup. */
const REPLACE_FIELDS = ["vmid", "mode", "compress", "storage"] as const;
const DEFAULT_TIMEOUTS_S = { create: 3600, delete: 600 };
const timeoutMs = (a: Pick<BackupArgs, "timeouts">, k: keyof typeof DEFAULT_TIMEOUTS_S) => (a.timeouts?.[k] ?? DEFAULT_TIMEOUTS_S[k]) * 1000;

function parse(inputs: Record<string, unknown>): BackupArgs {
  const args: Record<string, unknown> = { ...inputs };
  for (const k of COMPUTED) delete args[k];
  return parseInputs(TYPE, backupArgsSchema, args);
}

function stripUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** A field as compared by diff: defaults filled in, so `compress: "zstd"` equals unset. */
function normalized(o: Record<string, unknown>, k: string): unknown {
  if (k === "mode") return o.mode ?? DEFAULT_MODE;
  if (k === "compress") return o.compress ?? DEFAULT_COMPRESS;
  return o[k] ?? null;
}

/**
 * What the protection flag should become: true/false, or undefined = leave it alone (the
 * program does not declare it and never set it). Removing `protected: true` from the
 * program clears the flag this resource set.
 */
export function wantedProtection(declared: boolean | undefined, ownedBefore: boolean): boolean | undefined {
  if (declared !== undefined) return declared;
  return ownedBefore ? false : undefined;
}

// ---------------------------------------------------------------------------------------

/** The CT's current node; errors name the field and the fix. */
async function locateContainer(client: PveClient, vmid: number): Promise<{ node: string; hostname?: string }> {
  const guest = await client.cluster.findGuest(vmid);
  if (!guest) throw new Error(`container: no container ${vmid} exists in the cluster; create it first (or fix the vmid).`);
  if (guest.type !== "lxc") throw new Error(`container: vmid ${vmid} is a QEMU VM on ${guest.node}, not a container; Backup backs up containers only.`);
  return { node: guest.node as string, hostname: guest.name };
}

/** The storages the backup may land on: the declared one (checked), or every backup storage of the node. */
async function targetStorages(vz: VzdumpApi, node: string, storage: string | undefined, ctx: OperationContext): Promise<string[]> {
  const usable = await vz.backupStorages(node, { logger: ctx.log });
  if (!storage) return usable;
  if (usable.includes(storage)) return [storage];
  throw new Error(
    `storage: '${storage}' on node '${node}' does not take backups (no such storage there, disabled, or without content type 'backup'). ` +
      (usable.length ? `Storages on '${node}' that do: ${usable.map((s) => `'${s}'`).join(", ")}. ` : `No storage on '${node}' takes backups. `) +
      `Set storage to one of them, or add 'backup' to the storage's content (Datacenter → Storage → Edit).`,
  );
}

/**
 * The vzdump request for the inputs (always `remove: 0`, added by VzdumpApi). PVE accepts
 * `notes-template` and `protected` only together with `storage` (the schema's `requires`:
 * `missing property - 'protected' requires this property`); without a storage, create
 * writes the rendered notes and the protection after the backup instead.
 */
export function vzdumpParams(a: BackupArgs): VzdumpParams {
  const compress = a.compress ?? DEFAULT_COMPRESS;
  return stripUndefined({
    vmid: a.vmid,
    mode: a.mode ?? DEFAULT_MODE,
    compress: compress === "none" ? "0" : compress,
    storage: a.storage,
    "notes-template": a.storage !== undefined ? a.notesTemplate : undefined,
    protected: a.protected && a.storage !== undefined ? true : undefined,
  }) as VzdumpParams;
}

/**
 * vzdump names an archive by the second it starts: a second backup of the CT within the same
 * second would overwrite the first — and a replacement would then delete the new backup with
 * the old one. So wait until the newest existing backup's second has passed (rarely needed).
 */
async function pastLatestSecond(client: PveClient, vz: VzdumpApi, node: string, storages: string[], vmid: number, ctx: OperationContext): Promise<void> {
  let newest = 0;
  for (const s of storages) for (const i of await vz.list(node, s, vmid, { logger: ctx.log })) newest = Math.max(newest, i.ctime ?? 0);
  const waitMs = (newest + 2) * 1000 - client.serverNow();
  if (newest > 0 && waitMs > 0) {
    ctx.log.debug({ waitMs }, "a backup of this CT was made this second; waiting for the next one");
    await sleep(Math.min(waitMs, 3000));
  }
}

/** A failed vzdump task's message, with the fix for the refusals Proxmox words vaguely. */
export function explainBackupFailure(message: string, vmid: number, storage: string | undefined): string {
  const where = storage ? `storage '${storage}'` : "the backup storage";
  if (/number of protected backups per guest is limited/.test(message)) {
    return `${message}\nTo fix: unprotect or delete older protected backups of CT ${vmid} on ${where}, raise the storage's max-protected-backups, or set protected: false.`;
  }
  if (/max backup limit/.test(message)) {
    return `${message}\nTo fix: this library never prunes (it sends remove=0), so ${where} refuses a backup beyond its prune-backups keep-* limit: delete older backups of CT ${vmid}, or raise the storage's limit.`;
  }
  return message;
}

function outputsFor(a: BackupArgs, node: string, item: ContentItem, attrs: { notes?: string; protected?: boolean }, owned: boolean): BackupOutputs {
  return stripUndefined({
    ...a,
    volume: item.volid,
    backupNode: node,
    size: item.size ?? 0,
    ctime: item.ctime ?? 0,
    notes: attrs.notes ?? item.notes ?? "",
    protected: attrs.protected ?? item.protected ?? false,
    protectedByResource: owned,
  }) as BackupOutputs;
}

/** The listed backup and its full attributes (a listing shows only the first line of notes). */
async function readBackup(client: PveClient, node: string, volid: string, vmid: number, ctx: OperationContext) {
  const item = await new VzdumpApi(client).find(node, volid, vmid, { logger: ctx.log });
  if (!item) return undefined;
  const info = await client.storage.volumeInfo(node, volid, { logger: ctx.log });
  return { item, attrs: { notes: info.notes ?? item.notes ?? "", protected: info.protected ?? item.protected ?? false } };
}

// ---------------------------------------------------------------------------------------

async function check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
  return runOperation({ resourceType: TYPE, operation: "check", resourceName: news.resourceName as string }, async () =>
    // The SDK registers outputs as undefined inputs; they are not inputs.
    checkInputs(TYPE, backupArgsSchema, Object.fromEntries(Object.entries(news).filter(([, v]) => v !== undefined))),
  );
}

async function diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
  return runOperation({ resourceType: TYPE, operation: "diff", resourceName: news.resourceName as string, vmid: olds.vmid as number }, async () => {
    const differs = (k: string) => JSON.stringify(normalized(olds, k)) !== JSON.stringify(normalized(news, k));
    // An unknown value differs from every known one: at preview an unknown vmid (the
    // Container is being replaced — the SDK passes its id, known unless it is) replaces.
    const replaces: string[] = REPLACE_FIELDS.filter(differs);
    const changed = ["node", "notesTemplate", "retainOnDelete", "timeouts", "resourceName"].filter(differs);
    // A new trigger value makes a fresh backup; removing the trigger only records that.
    if (news.trigger !== undefined && differs("trigger")) replaces.push("trigger");
    else if (differs("trigger")) changed.push("trigger");
    if (news.protected === UNKNOWN) changed.push("protected");
    else {
      const declared = news.protected as boolean | undefined;
      const want = wantedProtection(declared, olds.protectedByResource === true);
      const ownedAfter = declared === true;
      if ((want !== undefined && want !== olds.protected) || ownedAfter !== (olds.protectedByResource === true)) changed.push("protected");
    }
    // The new backup is made before the old one is deleted: a backup is never missing.
    return { changes: changed.length + replaces.length > 0, replaces, deleteBeforeReplace: false };
  });
}

async function create(inputs: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
  return runOperation({ resourceType: TYPE, operation: "create", resourceName: inputs.resourceName as string, vmid: inputs.vmid as number }, async (ctx) => {
    const a = parse(inputs);
    const client = ctx.client();
    const vz = new VzdumpApi(client);
    const { node } = await locateContainer(client, a.vmid);
    ctx.bind({ node });
    if (a.node && a.node !== node) ctx.log.info({ declared: a.node, actual: node }, "container is on another node than declared; backing up there");
    const storages = await targetStorages(vz, node, a.storage, ctx);
    await pastLatestSecond(client, vz, node, storages, a.vmid, ctx);
    const params = vzdumpParams(a);
    ctx.log.info({ mode: params.mode, compress: params.compress, storage: a.storage ?? "(node default)" }, "starting backup");
    let upid: string;
    try {
      ({ upid } = await vz.run(node, params, { logger: ctx.log, wait: { timeoutMs: timeoutMs(a, "create") } }));
    } catch (e) {
      if (e instanceof PveTaskTimeoutError) throw await timedOut(e, vz, e.upid, a, node, storages);
      if (e instanceof PveTaskFailedError) throw new Error(explainBackupFailure(e.message, a.vmid, a.storage));
      throw e;
    }
    const item = await vz.locate(node, upid, a.vmid, a.storage, { logger: ctx.log });
    if (!item) throw new Error(`the backup task ${upid} of CT ${a.vmid} finished, but no new backup of it is listed on ${a.storage ? `storage '${a.storage}'` : `the backup storages of '${node}'`}; check the task log on the node.`);
    ctx.bind({ volume: item.volid });
    // Without `storage` PVE refuses notes-template and protected (the schema's `requires`): set them now.
    const after: { notes?: string; protected?: boolean } = {};
    if (a.notesTemplate !== undefined && params["notes-template"] === undefined) after.notes = await notesFor(client, a.notesTemplate, a.vmid, node);
    if (a.protected && params.protected === undefined) after.protected = true;
    if (Object.keys(after).length) await client.storage.updateVolumeAttributes(node, item.volid, after, { logger: ctx.log });
    const found = await readBackup(client, node, item.volid, a.vmid, ctx);
    if (!found) throw new Error(`backup ${item.volid} disappeared right after it was made; check the node's task log (a prune job?).`);
    ctx.log.info({ volume: item.volid, size: found.item.size }, "backup made");
    return { id: item.volid, outs: outputsFor(a, node, found.item, found.attrs, a.protected === true) };
  });
}

/**
 * The task outlived timeouts.create and was not cancelled: when the log already names the
 * archive and the storage is known (declared, or the node's only backup storage), record the
 * backup (a partial failure), so the next `up`/`refresh` tracks it instead of making a second one.
 */
async function timedOut(e: PveTaskTimeoutError, vz: VzdumpApi, upid: string, a: BackupArgs, node: string, storages: string[]): Promise<Error> {
  const target = await vz.archiveOf(upid).catch(() => undefined);
  const storage = a.storage ?? (storages.length === 1 ? storages[0] : undefined);
  if (!target || !storage) return e;
  const volid = backupVolid(storage, target);
  const outs = { ...a, volume: volid, backupNode: node, size: 0, ctime: 0, notes: "", protected: a.protected === true, protectedByResource: a.protected === true };
  return partialFailure(e, volid, stripUndefined(outs));
}

async function read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
  return runOperation({ resourceType: TYPE, operation: "read", resourceName: props.resourceName as string, vmid: props.vmid as number }, async (ctx) => {
    const volid = String(props.volume ?? id);
    const node = String(props.backupNode ?? props.node);
    const found = await readBackup(ctx.client(), node, volid, Number(props.vmid), ctx);
    if (!found) {
      ctx.log.info({ volume: volid }, "backup is gone");
      return { id: "", props: {} };
    }
    const declared = parse(props);
    // Notes changed outside: show it as a notesTemplate change, so the next `up` rewrites them.
    // (Not for a backup recorded while its task still ran, ctime 0: its notes were not read yet.)
    if (declared.notesTemplate !== undefined && props.ctime && found.attrs.notes !== props.notes) {
      ctx.log.info({ volume: volid }, "backup notes were changed outside the program");
      declared.notesTemplate = templateFor(found.attrs.notes);
    }
    return { id, props: outputsFor(declared, node, found.item, found.attrs, props.protectedByResource === true) };
  });
}

/** The notes `template` renders to for this backup, as vzdump renders them. */
async function notesFor(client: PveClient, template: string, vmid: number, node: string): Promise<string> {
  let guestname: string | undefined;
  if (usesVariable(template, "guestname")) {
    const guest = await client.cluster.findGuest(vmid);
    if (!guest) throw new Error(`notesTemplate: uses {{guestname}}, but CT ${vmid} no longer exists to take the name from; write the name literally.`);
    // vzdump's guestname: the CT's hostname, or CT<vmid> without one (cluster resources list it as `name`).
    guestname = guest.name ?? `CT${vmid}`;
  }
  const cluster = usesVariable(template, "cluster") ? await client.cluster.clusterName() : undefined;
  return renderNotes(template, { vmid, node, guestname, cluster });
}

async function update(id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
  return runOperation({ resourceType: TYPE, operation: "update", resourceName: news.resourceName as string, vmid: olds.vmid as number }, async (ctx) => {
    const a = parse(news);
    const client = ctx.client();
    const volid = String(olds.volume ?? id);
    const node = String(olds.backupNode);
    const found = await readBackup(client, node, volid, a.vmid, ctx);
    if (!found) throw new Error(`backup ${volid} no longer exists; run \`pulumi refresh\`, then \`pulumi up\` makes a new one.`);
    const change: { notes?: string; protected?: boolean } = {};
    if (JSON.stringify(olds.notesTemplate ?? null) !== JSON.stringify(a.notesTemplate ?? null)) {
      // Removing notesTemplate clears the notes it wrote.
      const notes = a.notesTemplate === undefined ? "" : await notesFor(client, a.notesTemplate, a.vmid, node);
      if (notes !== found.attrs.notes) change.notes = notes;
    }
    const want = wantedProtection(a.protected, olds.protectedByResource === true);
    if (want !== undefined && want !== found.attrs.protected) change.protected = want;
    if (Object.keys(change).length) {
      ctx.log.info({ volume: volid, notes: change.notes !== undefined, protected: change.protected }, "updating backup attributes");
      await client.storage.updateVolumeAttributes(node, volid, change, { logger: ctx.log });
    }
    const after = Object.keys(change).length ? await readBackup(client, node, volid, a.vmid, ctx) : found;
    if (!after) throw new Error(`backup ${volid} vanished during the update; check the node's task log.`);
    return { outs: outputsFor(a, node, after.item, after.attrs, a.protected === true) };
  });
}

/** Why delete will not remove a backup protected outside the program, and the ways out. */
export function protectedRefusal(volid: string, node: string): string {
  const storage = volid.split(":")[0];
  return (
    `Backup ${volid} is protected, and this program did not protect it (protected was set outside Pulumi); it is not deleted. ` +
    `To fix, either: remove the protection in Proxmox (Storage '${storage}' → Backups → Change Protection, or ` +
    `\`pvesh set /nodes/${node}/storage/${storage}/content/${volid} --protected 0\`) and run the command again; ` +
    `or set retainOnDelete: true and \`pulumi up\`, so Pulumi forgets the backup and keeps it; ` +
    `or set protected: true and \`pulumi up\`, so this resource owns the flag and clears it when it deletes the backup.`
  );
}

async function destroy(id: string, props: Record<string, unknown>): Promise<void> {
  return runOperation({ resourceType: TYPE, operation: "delete", resourceName: props.resourceName as string, vmid: props.vmid as number }, async (ctx) => {
    const volid = String(props.volume ?? id);
    if (props.retainOnDelete === true) {
      ctx.log.info({ volume: volid }, "retainOnDelete: keeping the backup volume");
      return;
    }
    const client = ctx.client();
    const node = String(props.backupNode ?? props.node);
    const found = await readBackup(client, node, volid, Number(props.vmid), ctx);
    if (!found) {
      ctx.log.info({ volume: volid }, "backup already gone");
      return;
    }
    if (found.attrs.protected) {
      if (props.protectedByResource !== true) throw new Error(protectedRefusal(volid, node));
      ctx.log.info({ volume: volid }, "clearing the protection this resource set");
      await client.storage.updateVolumeAttributes(node, volid, { protected: false }, { logger: ctx.log });
    }
    await client.storage.deleteVolumeAndWait(node, volid, { logger: ctx.log, wait: { timeoutMs: timeoutMs(props as Pick<BackupArgs, "timeouts">, "delete") } });
    ctx.log.info({ volume: volid }, "backup deleted");
  });
}

const handler: ResourceHandler = { check, diff, create, read, update, delete: destroy };
export default handler;
