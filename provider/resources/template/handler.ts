/**
 * The Template resource handler: a CT template volume `<storage>:vztmpl/<file>` on a node,
 * from a URL (download-url), the node's appliance index (aplinfo) or a local file
 * (streaming upload). BEHAVIOR.md 6.
 *
 * Identity: the resource id is the volid. Anything that changes which bytes end up in the
 * volume replaces it: node, storage, fileName, the source, a url's checksum, and — for
 * `path` — the file's content (sha256, computed in check() and cached per process, see
 * ./fileHash). When old and new volid coincide the old volume is deleted first, since
 * both cannot exist at once.
 */
import type * as pulumi from "@pulumi/pulumi";
import { templateArgsSchema, templateFileName, templateFormat, type TemplateArgs } from "./args";
import { fileDigest, fileProblem } from "./fileHash";
import { resolveAppliance } from "./appliance";
import { checkInputs, InputError, parseInputs, unknownPaths } from "../validation";
import { runOperation, partialFailure, type OperationContext } from "../operation";
import { registerSecret } from "../../logging";
import type { ResourceHandler } from "../registry";
import type { PveClient } from "../../proxmox/client";
import { PveNotFoundError, PveTaskTimeoutError } from "../../proxmox/errors";
import type { ContentItem } from "../../proxmox/storage";
import { formatBytes } from "../../logging/progress";
import type { UploadProgress } from "../../proxmox/upload";
import { uncompressedTarProblem } from "../container/versions";

const TYPE = "Template";

export interface TemplateOutputs extends TemplateArgs {
  volid: string;
  /** Bytes, as the storage reports them. */
  size: number;
  /** tar, tgz, txz, tzst or tbz2 (PVE's names). */
  format: string;
  /** path: sha256 of the uploaded file; url: the given checksum; appliance: the index's sha512. */
  checksum?: string;
  checksumAlgorithm?: TemplateArgs["checksumAlgorithm"];
  /** The size right after create; a refresh that finds another size means the volume changed. */
  createdSize: number;
}

const COMPUTED = ["volid", "size", "format", "createdSize"] as const;

const DEFAULT_TIMEOUTS_S = { create: 1800, delete: 300 };
const timeoutMs = (a: TemplateArgs, k: keyof typeof DEFAULT_TIMEOUTS_S) => (a.timeouts?.[k] ?? DEFAULT_TIMEOUTS_S[k]) * 1000;

/** Storage types that can hold templates (file based). */
const FILE_STORAGE_HINT = "dir, nfs, cifs, cephfs, glusterfs or btrfs";

function parse(inputs: Record<string, unknown>): TemplateArgs {
  const args: Record<string, unknown> = { ...inputs };
  for (const k of COMPUTED) delete args[k];
  return parseInputs(TYPE, templateArgsSchema, args);
}

/** Outputs carry the computed checksum under `checksum`; the declared one is in the inputs. */
function argsFromOutputs(olds: Record<string, unknown>): Record<string, unknown> {
  const a: Record<string, unknown> = { ...olds };
  for (const k of COMPUTED) delete a[k];
  return a;
}

/**
 * A URL fit for logs: credentials in it (https://user:token@host/…) are dropped, and the
 * password is registered so an error that echoes the URL is scrubbed too.
 */
export function loggableUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    registerSecret(decodeURIComponent(u.password));
    u.username = "";
    u.password = "";
    return `${u.toString()} (credentials omitted)`;
  } catch {
    return "(unparsable url)";
  }
}

function sourceOf(a: { url?: unknown; appliance?: unknown; path?: unknown }): "url" | "appliance" | "path" {
  return a.url !== undefined ? "url" : a.appliance !== undefined ? "appliance" : "path";
}

function stripUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

// ---------------------------------------------------------------------------------------

async function check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
  return runOperation({ resourceType: TYPE, operation: "check", resourceName: news.resourceName as string, node: news.node as string }, async (ctx) => {
    // The SDK registers outputs as undefined inputs; they are not inputs.
    news = Object.fromEntries(Object.entries(news).filter(([, v]) => v !== undefined));
    const outcome = checkInputs(TYPE, templateArgsSchema, news);
    if (outcome.failures?.length) return outcome;
    const a = outcome.inputs as Partial<TemplateArgs>;
    const tarFailure = await releaseFailure(a, news, ctx);
    if (tarFailure) return { inputs: news, failures: [tarFailure] };
    if (typeof a.path === "string" && !unknownPaths(news).includes("path")) {
      const problem = await fileProblem(a.path);
      if (problem) return { inputs: news, failures: [{ property: "path", reason: `${TYPE} path: ${problem}` }] };
      if (typeof a.checksum === "string" && !unknownPaths(news).some((p) => p === "checksum" || p === "checksumAlgorithm")) {
        const algo = a.checksumAlgorithm ?? "sha256";
        const d = await fileDigest(a.path, algo);
        if (d.other!.value !== a.checksum) {
          return {
            inputs: news,
            failures: [{ property: "checksum", reason: `${TYPE} checksum: the ${algo} of '${a.path}' is ${d.other!.value}, not ${a.checksum}; fix the checksum or the file` }],
          };
        }
      } else {
        // Hash now so diff() can tell a changed file; cached, so create() does not hash again.
        await fileDigest(a.path);
      }
    }
    return outcome;
  });
}

/**
 * An uncompressed `.tar` name on a server that cannot take it, found at check when the name
 * is known and the server can be asked (create asks again in any case). Only a `.tar` name
 * makes check() ask the server anything.
 */
async function releaseFailure(a: Partial<TemplateArgs>, news: Record<string, unknown>, ctx: OperationContext): Promise<{ property: string; reason: string } | undefined> {
  const unknown = unknownPaths(news);
  if (a.appliance !== undefined || ["fileName", "url", "path"].some((k) => unknown.includes(k))) return undefined;
  const name = templateFileName(a as TemplateArgs);
  if (!name || !/\.tar$/i.test(name)) return undefined;
  let release;
  try {
    release = await ctx.client().version();
  } catch (e) {
    ctx.log.debug({ err: (e as Error).message }, "server version unknown at check; a .tar file name is checked again at create");
    return undefined;
  }
  const problem = uncompressedTarProblem(name, release);
  const property = a.fileName !== undefined ? "fileName" : a.url !== undefined ? "url" : "path";
  return problem ? { property, reason: `${TYPE} ${property}: ${problem}` } : undefined;
}

/** The file name on the storage; for an appliance package name, looked up in the index. */
async function fileNameFor(a: TemplateArgs, ctx: OperationContext): Promise<string | undefined> {
  if (a.appliance === undefined) return templateFileName(a);
  try {
    const found = resolveAppliance(await ctx.client().storage.aplinfo(a.node, { logger: ctx.log }), a.appliance, a.node);
    return found instanceof Error ? undefined : found.template;
  } catch {
    return undefined;
  }
}

async function diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
  return runOperation({ resourceType: TYPE, operation: "diff", resourceName: news.resourceName as string, node: olds.node as string }, async (ctx) => {
    const prev = argsFromOutputs(olds);
    const unknown = unknownPaths(news);
    const replaces = new Set<string>();
    const changed = new Set<string>();
    const differs = (k: string) => JSON.stringify(prev[k] ?? null) !== JSON.stringify(news[k] ?? null);
    for (const k of ["node", "storage", "url", "appliance", "path", "fileName"]) if (differs(k)) replaces.add(k);
    for (const k of ["existing", "verifyCertificates", "timeouts", "resourceName"]) if (differs(k)) changed.add(k);
    const src = sourceOf(news);
    if (src === "url" && (differs("checksum") || differs("checksumAlgorithm"))) replaces.add("checksum");
    if (src === "path" && !replaces.has("path") && !unknown.includes("path") && typeof news.path === "string") {
      // Same path: the content decides. A file that disappeared is reported by check().
      const problem = await fileProblem(news.path);
      if (!problem) {
        const d = await fileDigest(news.path);
        if (olds.checksumAlgorithm === "sha256" && d.sha256 !== olds.checksum) {
          ctx.log.info({ path: news.path, was: olds.checksum, now: d.sha256 }, "local template file changed; the volume will be replaced");
          replaces.add("path");
        }
      }
    }
    // Refresh found another size than we created: the volume was changed behind our back.
    if (typeof olds.createdSize === "number" && typeof olds.size === "number" && olds.size !== olds.createdSize) replaces.add("size");
    for (const r of replaces) changed.add(r);

    let deleteBeforeReplace = false;
    if (replaces.size) {
      const a = unknown.length ? undefined : parse(news);
      const name = a ? await fileNameFor(a, ctx) : undefined;
      const newVolid = a && name ? `${a.storage}:vztmpl/${name}` : undefined;
      const sameVolume = newVolid === olds.volid && a!.node === olds.node;
      // The same appliance named differently (package vs file name) is the same volume.
      if (sameVolume && replaces.size === 1 && replaces.has("appliance") && prev.appliance !== undefined) replaces.delete("appliance");
      // Same volid before and after: the new one cannot be created next to the old one.
      deleteBeforeReplace = replaces.size > 0 && (newVolid === undefined || sameVolume);
    }
    return { changes: changed.size > 0, replaces: [...replaces], deleteBeforeReplace };
  });
}

// ---------------------------------------------------------------------------------------

/** The storage must exist on the node, be enabled and allow `vztmpl`; else say which do. */
async function checkStorage(client: PveClient, a: TemplateArgs, ctx: OperationContext): Promise<void> {
  const alternatives = async () => {
    try {
      const list = await client.storage.list(a.node, { content: "vztmpl", enabled: true }, { logger: ctx.log });
      return list.length
        ? `Storages on '${a.node}' that accept CT templates: ${list.map((s) => `'${s.storage}' (${s.type ?? "?"})`).join(", ")}.`
        : `No storage on '${a.node}' accepts CT templates; enable content 'vztmpl' on a ${FILE_STORAGE_HINT} storage.`;
    } catch {
      return "";
    }
  };
  let st;
  try {
    st = await client.storage.status(a.node, a.storage, { logger: ctx.log });
  } catch (e) {
    if (e instanceof PveNotFoundError) throw new Error(`storage: '${a.storage}' does not exist on node '${a.node}'. ${await alternatives()}`);
    throw e;
  }
  const content = (st.content ?? "").split(/[,;\s]+/).filter(Boolean);
  if (!content.includes("vztmpl")) {
    throw new Error(
      `storage: '${a.storage}' (type ${st.type ?? "?"}) on '${a.node}' does not accept CT templates (its content types: ${content.join(", ") || "none"}). ` +
        `${await alternatives()} Set storage to one of them, or add 'vztmpl' to the storage's content in Datacenter → Storage.`,
    );
  }
  if (st.enabled === false || st.active === false) {
    throw new Error(`storage: '${a.storage}' on '${a.node}' is ${st.enabled === false ? "disabled" : "not active"}. ${await alternatives()}`);
  }
}

/**
 * Upload progress every 10 % (at most every 2 s, and always at the end): on stderr, which
 * the engine shows in the `pulumi up` output, and in the log file with the figures.
 */
function progressLogger(ctx: OperationContext, fileName: string) {
  const reporter = ctx.progress(`upload ${fileName}`);
  let lastDecile = -1;
  let finished = false;
  return (p: UploadProgress) => {
    const pct = p.total ? Math.floor((p.bytes / p.total) * 100) : 100;
    const fields = { file: fileName, bytes: p.bytes, total: p.total, percent: pct, mibPerSec: Math.round((p.rateBps / 1048576) * 10) / 10, attempt: p.attempt };
    const line = `${pct}% of ${formatBytes(p.total)} (${fields.mibPerSec} MiB/s)`;
    if (pct >= 100) {
      if (!finished) reporter.done(line, fields);
      finished = true;
      return;
    }
    const decile = Math.floor(pct / 10);
    if (decile !== lastDecile) {
      lastDecile = decile;
      reporter.update(line, fields);
    }
  };
}

interface Produced {
  checksum?: string;
  checksumAlgorithm?: TemplateArgs["checksumAlgorithm"];
}

/** Put the bytes on the storage; returns the checksum to record. */
async function produce(client: PveClient, a: TemplateArgs, fileName: string, ctx: OperationContext, appliance?: { sha512sum?: string; md5sum?: string }): Promise<Produced> {
  const wait = { timeoutMs: timeoutMs(a, "create") };
  if (a.path !== undefined) {
    const problem = await fileProblem(a.path);
    if (problem) throw new Error(`path: ${problem}`);
    const d = await fileDigest(a.path);
    ctx.log.info({ path: a.path, size: d.size, storage: a.storage }, "uploading template");
    const send = () =>
      client.storage.upload({
        node: a.node,
        storage: a.storage,
        content: "vztmpl",
        filePath: a.path!,
        filename: fileName,
        // The server's imgcopy task verifies it: a corrupted transfer fails instead of landing.
        checksum: { algorithm: "sha256", value: d.sha256 },
        onProgress: progressLogger(ctx, fileName),
        waitOptions: wait,
        logger: ctx.log,
      });
    const r = await send();
    if (r.verifiedAfterFailure) {
      // After a lost answer the client accepts any imgcopy task of ours from the last few
      // seconds as "this upload" (provider/proxmox/upload.ts findCompletedUpload; the task id
      // is empty, so another upload's task matches too). Make sure our file really landed.
      const item = await client.storage.findVolume(a.node, `${a.storage}:vztmpl/${fileName}`, { logger: ctx.log });
      if (!item || Number(item.size) !== d.size) {
        ctx.log.warn({ found: item?.size, expected: d.size }, "the upload the client recovered after a connection failure is not this file; uploading again");
        await send();
      }
    }
    return { checksum: d.sha256, checksumAlgorithm: "sha256" };
  }
  if (a.url !== undefined) {
    ctx.log.info({ url: loggableUrl(a.url), storage: a.storage }, "downloading template on the node");
    const params: Parameters<PveClient["storage"]["downloadUrl"]>[2] = { url: a.url, content: "vztmpl", filename: fileName };
    if (a.checksum) {
      params.checksum = a.checksum;
      params["checksum-algorithm"] = a.checksumAlgorithm;
    }
    if (a.verifyCertificates !== undefined) params["verify-certificates"] = a.verifyCertificates;
    await client.storage.downloadUrlAndWait(a.node, a.storage, params, { logger: ctx.log, wait });
    return { checksum: a.checksum, checksumAlgorithm: a.checksum ? a.checksumAlgorithm : undefined };
  }
  ctx.log.info({ appliance: fileName, storage: a.storage }, "downloading appliance template on the node");
  await client.storage.aplDownloadAndWait(a.node, a.storage, fileName, { logger: ctx.log, wait });
  if (appliance?.sha512sum) return { checksum: appliance.sha512sum.toLowerCase(), checksumAlgorithm: "sha512" };
  if (appliance?.md5sum) return { checksum: appliance.md5sum.toLowerCase(), checksumAlgorithm: "md5" };
  return {};
}

function outputsFor(a: TemplateArgs, item: ContentItem, produced: Produced, createdSize?: number): TemplateOutputs {
  const size = Number(item.size ?? item["approximate-size"] ?? 0);
  return stripUndefined({
    ...a,
    volid: item.volid,
    size,
    format: item.format ?? templateFormat(item.volid),
    checksum: produced.checksum,
    checksumAlgorithm: produced.checksumAlgorithm,
    createdSize: createdSize ?? size,
  }) as TemplateOutputs;
}

async function create(inputs: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
  return runOperation({ resourceType: TYPE, operation: "create", resourceName: inputs.resourceName as string, node: inputs.node as string }, async (ctx) => {
    const a = parse(inputs);
    const client = ctx.client();
    await checkStorage(client, a, ctx);

    let fileName: string;
    let appliance: { sha512sum?: string; md5sum?: string } | undefined;
    if (a.appliance !== undefined) {
      const found = resolveAppliance(await client.storage.aplinfo(a.node, { logger: ctx.log }), a.appliance, a.node);
      if (found instanceof Error) throw found;
      fileName = found.template;
      appliance = found;
    } else {
      fileName = templateFileName(a)!;
      const problem = uncompressedTarProblem(fileName, await client.version());
      if (problem) throw new InputError(TYPE, [{ field: a.fileName !== undefined ? "fileName" : a.url !== undefined ? "url" : "path", message: problem }]);
    }
    const volid = `${a.storage}:vztmpl/${fileName}`;
    ctx.bind({ volid });

    const existing = await client.storage.findVolume(a.node, volid, { logger: ctx.log });
    if (existing) {
      if (a.existing === "fail") {
        throw new Error(
          `${volid} already exists on node '${a.node}'. Set existing: "adopt" to manage that file as it is, ` +
            `existing: "overwrite" to replace it, or choose another fileName/storage.`,
        );
      }
      if (a.existing === "adopt") {
        const produced = await adoptedChecksum(a, existing, appliance, ctx);
        ctx.log.info({ volid, size: existing.size }, "adopted existing template volume");
        return { id: volid, outs: outputsFor(a, existing, produced) };
      }
      // overwrite: an upload replaces the file in place (imgcopy overwrites); download-url
      // and aplinfo refuse to replace a file, so the old one goes first.
      if (a.path === undefined) {
        ctx.log.info({ volid }, "deleting the existing volume before downloading it again (existing: overwrite)");
        await client.storage.deleteVolumeAndWait(a.node, volid, { logger: ctx.log, wait: { timeoutMs: timeoutMs(a, "delete") } });
      } else {
        ctx.log.info({ volid }, "overwriting the existing volume (existing: overwrite)");
      }
    }

    let produced: Produced;
    try {
      produced = await produce(client, a, fileName, ctx, appliance);
    } catch (e) {
      // The upload/download task outlived timeouts.create and was not cancelled: the volume
      // lands anyway. Record it, or the next `up` fails on "already exists" (existing: fail)
      // and leaves an orphan volume (found by test/resilience: imgcopy slower than the timeout).
      if (e instanceof PveTaskTimeoutError) {
        const d = a.path !== undefined ? await fileDigest(a.path) : undefined;
        throw partialFailure(e, volid, stripUndefined({
          ...a, volid, size: d?.size, format: templateFormat(volid), createdSize: d?.size,
          checksum: d ? d.sha256 : a.checksum, checksumAlgorithm: d ? "sha256" : a.checksum ? a.checksumAlgorithm : undefined,
        }));
      }
      throw e;
    }
    const item = await client.storage.findVolume(a.node, volid, { logger: ctx.log });
    if (!item) throw new Error(`the ${sourceOf(a)} task finished, but ${volid} is not listed on '${a.node}'; check the node's task log.`);
    ctx.log.info({ volid, size: item.size }, "template ready");
    return { id: volid, outs: outputsFor(a, item, produced) };
  });
}

/** For an adopted volume: the checksum we can vouch for, after checking what is cheap to check. */
async function adoptedChecksum(a: TemplateArgs, item: ContentItem, appliance: { sha512sum?: string } | undefined, ctx: OperationContext): Promise<Produced> {
  if (a.path !== undefined) {
    const d = await fileDigest(a.path);
    if (item.size !== undefined && Number(item.size) !== d.size) {
      throw new Error(
        `existing: "adopt" — ${item.volid} is ${item.size} bytes but '${a.path}' is ${d.size} bytes, so it is not this file. ` +
          `Use existing: "overwrite" to upload the file over it, or another fileName.`,
      );
    }
    // Same size: assume same content (PVE offers no way to read a remote digest).
    return { checksum: d.sha256, checksumAlgorithm: "sha256" };
  }
  if (a.url !== undefined) {
    if (a.checksum) await ctx.warn(`the adopted ${item.volid} was not verified against checksum (Proxmox cannot hash a stored file on request)`, { volid: item.volid });
    return { checksum: a.checksum, checksumAlgorithm: a.checksum ? a.checksumAlgorithm : undefined };
  }
  return appliance?.sha512sum ? { checksum: appliance.sha512sum.toLowerCase(), checksumAlgorithm: "sha512" } : {};
}

/** The volume, or undefined when it or its whole storage is gone. */
async function findVolumeOrGone(client: PveClient, node: string, volid: string, ctx: OperationContext): Promise<ContentItem | undefined> {
  try {
    return await client.storage.findVolume(node, volid, { logger: ctx.log });
  } catch (e) {
    // The storage itself was removed: so was the volume.
    if (e instanceof PveNotFoundError) return undefined;
    throw e;
  }
}

async function read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
  return runOperation({ resourceType: TYPE, operation: "read", resourceName: props.resourceName as string, node: props.node as string }, async (ctx) => {
    const client = ctx.client();
    const node = props.node as string;
    const item = await findVolumeOrGone(client, node, id, ctx);
    if (!item) {
      ctx.log.info({ volid: id }, "template volume is gone");
      return { id: "", props: {} };
    }
    const size = Number(item.size ?? item["approximate-size"] ?? 0);
    if (typeof props.createdSize === "number" && size !== props.createdSize) {
      await ctx.warn(`${id} changed on the storage since it was created (size ${props.createdSize} → ${size}); the next up replaces it`, { volid: id, createdSize: props.createdSize, size });
    }
    return { id, props: { ...props, size, format: item.format ?? props.format } };
  });
}

/** Only inputs that do not touch the volume change in place (existing, timeouts, ...). */
async function update(id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
  return runOperation({ resourceType: TYPE, operation: "update", resourceName: news.resourceName as string, node: olds.node as string }, async () => {
    const a = parse(news);
    const kept: Record<string, unknown> = {};
    for (const k of [...COMPUTED, "checksum", "checksumAlgorithm"]) kept[k] = olds[k];
    return { outs: stripUndefined({ ...a, ...kept, volid: id }) };
  });
}

async function destroy(id: string, props: Record<string, unknown>): Promise<void> {
  return runOperation({ resourceType: TYPE, operation: "delete", resourceName: props.resourceName as string, node: props.node as string }, async (ctx) => {
    const client = ctx.client();
    const node = props.node as string;
    const secs = (props.timeouts as { delete?: number } | undefined)?.delete ?? DEFAULT_TIMEOUTS_S.delete;
    const item = await findVolumeOrGone(client, node, id, ctx);
    if (!item) {
      ctx.log.info({ volid: id }, "template volume already gone");
      return;
    }
    await client.storage.deleteVolumeAndWait(node, id, { logger: ctx.log, wait: { timeoutMs: secs * 1000 } });
    ctx.log.info({ volid: id }, "template volume deleted");
  });
}

const handler: ResourceHandler = { check, diff, create, read, update, delete: destroy };
export default handler;
