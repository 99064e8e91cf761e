/**
 * The OciImage resource handler. Server mode asks PVE (>= 9.1) to pull the image itself
 * (oci-registry-pull: no registry auth); client mode pulls with our registry client
 * (auth, any PVE), converts it (OCI archive for 9.1 app containers, or a flattened rootfs
 * template) and streams it up. Either way the outputs carry the image's digest and the
 * entrypoint/env a Container needs, and refresh notices a tag that moved.
 */
import * as fs from "node:fs";
import type * as pulumi from "@pulumi/pulumi";
import { ociImageArgsSchema, type OciImageArgs } from "./args";
import { checkInputs, hideSecretValues, parseInputs, unknownPaths } from "../validation";
import { runOperation, type OperationContext } from "../operation";
import type { ResourceHandler } from "../registry";
import type { PveClient } from "../../proxmox/client";
import { shellJoin } from "../../proxmox/shellQuote";
import { buildTemplate, resolveImage, type ImageOptions, type ImageMetadata } from "../../oci";
import { parseSource, type ImageSource } from "../../oci/source";
import { formatReference } from "../../oci/reference";
import { canWriteZstd } from "../../oci/compression";
import { formatBytes } from "../../logging/progress";
import { registerSecret } from "../../logging";

const TYPE = "OciImage";
const DEFAULT_TIMEOUTS_S = { create: 1800, delete: 300 };
const REPLACE_ON = ["node", "storage", "source", "platform", "fileName", "mode", "format", "compression"] as const;

export interface OciImageOutputs extends OciImageArgs {
  volid: string;
  size: number;
  /** The manifest digest the stored template was made from. */
  manifestDigest?: string;
  /** What the source resolves to now (refresh); differs from manifestDigest when a tag moved. */
  latestDigest?: string;
  /** Who did the work: "server" or "client". */
  resolvedMode: "server" | "client";
  /** What is stored: an OCI archive or a rootfs template. */
  resolvedFormat: "oci-archive" | "rootfs";
  imageConfig: { entrypoint: string[]; cmd: string[]; env: string[]; workdir?: string; user?: string; stopSignal?: string };
  /** For Container (PVE >= 9.1): Entrypoint + Cmd as PVE stores it, shell-quoted. */
  entrypoint?: string;
  env?: Record<string, string>;
  workdir?: string;
  user?: string;
}

function envRecord(env: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of env) {
    const i = kv.indexOf("=");
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

const timeoutMs = (a: OciImageArgs, k: keyof typeof DEFAULT_TIMEOUTS_S) => (a.timeouts?.[k] ?? DEFAULT_TIMEOUTS_S[k]) * 1000;

function imageOptions(a: OciImageArgs, ctx: OperationContext): ImageOptions {
  if (a.credentials) registerSecret(a.credentials.password);
  return {
    platform: a.platform,
    credentials: a.credentials,
    dockerConfig: a.dockerConfig,
    tls: a.registryCaCert || a.insecureRegistry ? { ca: a.registryCaCert, insecureSkipVerify: a.insecureRegistry } : undefined,
    plainHttp: a.insecureRegistry,
    logger: ctx.log,
  };
}

/**
 * A rootfs template's compression: the user's `compression`, else what `fileName`'s
 * extension says, else zstd where the server reads .tar.zst templates (PVE >= 7; smaller
 * and several times faster to write than gzip) and this machine can write it, else gzip.
 */
export function rootfsCompression(a: Pick<OciImageArgs, "compression" | "fileName">, v: { major: number }): "gzip" | "zstd" {
  if (a.compression) return a.compression;
  if (a.fileName && /\.tar\.zst$/i.test(a.fileName)) return "zstd";
  if (a.fileName && /\.tar\.gz$/i.test(a.fileName)) return "gzip";
  return v.major >= 7 && canWriteZstd() ? "zstd" : "gzip";
}

async function supportsAppContainers(client: PveClient): Promise<boolean> {
  const v = await client.version();
  return v.major > 9 || (v.major === 9 && v.minor >= 1);
}

/** "auto": the server pulls when it can (9.1+, a registry tag, no credentials), else we do. */
async function chooseMode(a: OciImageArgs, src: ImageSource, client: PveClient): Promise<"server" | "client"> {
  const modern = await supportsAppContainers(client);
  if (a.mode === "server") {
    if (!modern) throw new Error(`mode: 'server' needs Proxmox VE 9.1 or later (oci-registry-pull); ${a.node} runs ${(await client.version()).version}. Use mode 'client' or 'auto'.`);
    return "server";
  }
  if (a.mode === "client") return "client";
  const serverCan =
    modern &&
    src.transport === "docker" &&
    !!src.ref.tag &&
    !src.ref.digest &&
    !a.credentials &&
    !a.dockerConfig &&
    !a.insecureRegistry &&
    !a.registryCaCert &&
    a.format !== "rootfs" &&
    serverFileNameOk(a.fileName);
  return serverCan ? "server" : "client";
}

/** The server always stores `<name>.tar` (an OCI archive): a name with another extension cannot be kept. */
function serverFileNameOk(fileName: string | undefined): boolean {
  return !fileName || /\.tar$/i.test(fileName) || !/\.(tar\.[a-z0-9]+|tgz|t[gx]z|tzst)$/i.test(fileName);
}

/** PVE's `normalize_content_filename`: path dropped, other characters → `_`. */
function pveFileBase(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1).replace(/[^A-Za-z0-9_.-]/g, "_");
}

function metadataOutputs(meta: ImageMetadata | undefined, appContainers: boolean) {
  const imageConfig = {
    entrypoint: meta?.entrypoint ?? [],
    cmd: meta?.cmd ?? [],
    env: meta?.env ?? [],
    ...(meta?.workingDir ? { workdir: meta.workingDir } : {}),
    ...(meta?.user ? { user: meta.user } : {}),
    ...(meta?.stopSignal ? { stopSignal: meta.stopSignal } : {}),
  };
  const words = [...imageConfig.entrypoint, ...imageConfig.cmd];
  // PVE only sets an entrypoint for images that do not boot an init system (BEHAVIOR.md 7).
  const app = appContainers && words.length > 0 && !words[0].startsWith("/sbin/init");
  return {
    imageConfig,
    // Always present ("" / {} when PVE sets none): a missing output is unknown in every
    // preview, and a Container using it would preview a change `up` does not make.
    entrypoint: app ? shellJoin(words) : "",
    env: app && imageConfig.env.length ? envRecord(imageConfig.env) : {},
    ...(imageConfig.workdir ? { workdir: imageConfig.workdir } : {}),
    ...(imageConfig.user ? { user: imageConfig.user } : {}),
  };
}

async function check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
  return runOperation({ resourceType: TYPE, operation: "check", resourceName: news.resourceName as string }, async () =>
    // credentials is stored as a secret (sdk/oci-image.ts): its failures must not carry it.
    hideSecretValues(
      checkInputs(TYPE, ociImageArgsSchema, news, (a) => {
        const src = parseSource(a.source);
        const local = src.transport === "oci" ? src.dir : src.transport === "docker" ? undefined : src.file;
        if (local && !fs.existsSync(local)) return [{ field: "source", message: `'${local}' does not exist on this machine (local sources are read by the provider)` }];
        return [];
      }),
      ["credentials"],
    ),
  );
}

async function diff(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.DiffResult> {
  return runOperation({ resourceType: TYPE, operation: "diff", resourceName: news.resourceName as string }, async () => {
    // Unknown inputs (preview) may change; the known ones are compared with their defaults
    // applied (check leaves inputs raw while any is unknown), or a defaulted `storage` would
    // read as a change and preview a replace that `up` does not do (test/e2e/preview-truth).
    const unknown = new Set(unknownPaths(news).map((p) => p.split(/[.[]/)[0]));
    const candidate: Record<string, unknown> = { ...news };
    for (const k of unknown) olds[k] === undefined ? delete candidate[k] : (candidate[k] = olds[k]);
    const known = unknown.size ? (parseInputs(TYPE, ociImageArgsSchema, candidate) as Record<string, unknown>) : news;
    const same = (k: string) => !unknown.has(k) && JSON.stringify(olds[k] ?? null) === JSON.stringify(known[k] ?? null);
    const inputKeys = Object.keys(ociImageArgsSchema._def.schema.shape);
    const changed = inputKeys.filter((k) => !same(k));
    const replaces: string[] = changed.filter((k) => (REPLACE_ON as readonly string[]).includes(k));
    // Refresh saw the tag point at another image: the stored template is stale.
    if (olds.latestDigest && olds.manifestDigest && olds.latestDigest !== olds.manifestDigest && !replaces.includes("source")) replaces.push("source");
    // The new template usually has the same volid: the old one must go first.
    return { changes: changed.length > 0 || replaces.length > 0, replaces, deleteBeforeReplace: true };
  });
}

async function create(inputs: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult> {
  return runOperation({ resourceType: TYPE, operation: "create", resourceName: inputs.resourceName as string, node: inputs.node as string }, async (ctx) => {
    const a = parseInputs(TYPE, ociImageArgsSchema, inputs);
    const client = ctx.client();
    const src = parseSource(a.source);
    const mode = await chooseMode(a, src, client);
    const app = await supportsAppContainers(client);
    ctx.bind({ mode });
    const outs = mode === "server" ? await pullOnServer(client, a, src, ctx, app) : await convertAndUpload(client, a, ctx, app);
    return { id: outs.volid, outs };
  });
}

async function pullOnServer(client: PveClient, a: OciImageArgs, src: ImageSource, ctx: OperationContext, app: boolean): Promise<OciImageOutputs> {
  if (src.transport !== "docker") throw new Error("internal: server mode needs a registry source");
  if (!serverFileNameOk(a.fileName)) {
    throw new Error(`fileName: '${a.fileName}' has a compressed-template extension, but mode 'server' stores an OCI archive (PVE appends .tar); use a name ending in .tar or mode 'client' with format 'rootfs'.`);
  }
  const reference = formatReference({ ...src.ref, digest: undefined });
  const base = a.fileName ? a.fileName.replace(/\.tar$/i, "") : pveFileBase(reference);
  const volid = `${a.storage}:vztmpl/${base}.tar`;
  if (await client.storage.findVolume(a.node, volid)) {
    throw new Error(`${volid} already exists and Proxmox's oci-registry-pull refuses to overwrite it. Delete it, or set fileName to another name.`);
  }
  // Our own look at the registry gives the digest and config; PVE's pull gives the file.
  let info: Awaited<ReturnType<typeof resolveImage>> | undefined;
  try {
    info = await resolveImage(src, imageOptions(a, ctx));
  } catch (e) {
    ctx.log.warn({ err: (e as Error).message }, "could not read the image from this machine; digest and entrypoint outputs stay empty");
  }
  const progress = ctx.progress(`pull ${reference}`);
  progress.update("Proxmox is pulling the image (oci-registry-pull)", {}, true);
  await client.storage.ociRegistryPullAndWait(a.node, a.storage, { reference, filename: base }, { wait: { timeoutMs: timeoutMs(a, "create") } });
  const item = await client.storage.findVolume(a.node, volid);
  if (!item) throw new Error(`oci-registry-pull finished but ${volid} is not on ${a.storage}; check the task log on ${a.node}.`);
  progress.done(`stored as ${volid} (${formatBytes(item.size ?? 0)})`);
  return {
    ...a,
    volid,
    size: item.size ?? 0,
    manifestDigest: info?.manifestDigest,
    latestDigest: info?.manifestDigest,
    resolvedMode: "server",
    resolvedFormat: "oci-archive",
    ...metadataOutputs(info?.metadata, app),
  } as OciImageOutputs;
}

async function convertAndUpload(client: PveClient, a: OciImageArgs, ctx: OperationContext, app: boolean): Promise<OciImageOutputs> {
  // PVE 8 cannot run OCI archives as app containers: give it a rootfs template instead.
  const format = a.format ?? (app ? "oci-archive" : "rootfs");
  const progress = ctx.progress(`image ${a.source}`);
  let lastPhase = "";
  const built = await buildTemplate({
    ...imageOptions(a, ctx),
    source: a.source,
    format,
    compression: format === "rootfs" ? rootfsCompression(a, await client.version()) : undefined,
    onProgress: (e) => {
      const line = `${e.phase}${e.bytesTotal ? ` ${formatBytes(e.bytesDone)} of ${formatBytes(e.bytesTotal)}` : ""}`;
      progress.update(line, { phase: e.phase, bytesDone: e.bytesDone, bytesTotal: e.bytesTotal }, e.phase !== lastPhase);
      lastPhase = e.phase;
    },
  });
  for (const w of built.warnings) await ctx.warn(`image conversion: ${w}`);
  const fileName = a.fileName ?? built.fileName;
  // PVE picks the decompressor (and app-container detection) by the file name's extension.
  const wanted = format === "oci-archive" ? ".tar" : built.compression === "zstd" ? ".tar.zst" : ".tar.gz";
  if (!fileName.toLowerCase().endsWith(wanted) || (wanted === ".tar" && /\.tar\.[a-z0-9]+$/i.test(fileName))) {
    throw new Error(`fileName: '${fileName}' does not fit the ${format}${format === "rootfs" ? ` (${built.compression ?? "gzip"})` : ""} format; Proxmox reads templates by extension, so name it '*${wanted}' or leave fileName unset.`);
  }
  const uploadProgress = ctx.progress(`upload ${fileName}`);
  const res = await client.storage.upload({
    node: a.node,
    storage: a.storage,
    content: "vztmpl",
    filePath: built.file,
    filename: fileName,
    checksum: { algorithm: "sha256", value: built.sha256 },
    waitOptions: { timeoutMs: timeoutMs(a, "create") },
    onProgress: (p) => uploadProgress.update(`${Math.floor((p.bytes / Math.max(p.total, 1)) * 100)}% of ${formatBytes(p.total)}`),
    logger: ctx.log,
  });
  uploadProgress.done(`stored as ${res.volid}${built.cached ? " (conversion reused from the cache)" : ""}`);
  return {
    ...a,
    volid: res.volid,
    size: res.size,
    manifestDigest: built.manifestDigest,
    latestDigest: built.manifestDigest,
    resolvedMode: "client",
    resolvedFormat: format,
    ...metadataOutputs(built.metadata, app),
  } as OciImageOutputs;
}

async function read(id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult> {
  return runOperation({ resourceType: TYPE, operation: "read", resourceName: props.resourceName as string }, async (ctx) => {
    const client = ctx.client();
    const o = props as unknown as OciImageOutputs;
    const item = await client.storage.findVolume(o.node, id);
    if (!item) return { id: "", props: {} };
    let latestDigest = o.latestDigest;
    try {
      const a = parseInputs(TYPE, ociImageArgsSchema, stripOutputs(props));
      latestDigest = (await resolveImage(a.source, imageOptions(a, ctx))).manifestDigest;
      if (latestDigest !== o.manifestDigest) ctx.log.info({ from: o.manifestDigest, to: latestDigest }, "the image's tag now points at another digest; the next up replaces the template");
    } catch (e) {
      ctx.log.warn({ err: (e as Error).message }, "could not check the image for a newer digest");
    }
    return { id, props: { entrypoint: "", env: {}, ...props, size: item.size ?? o.size, latestDigest } };
  });
}

const OUTPUT_KEYS = ["volid", "size", "manifestDigest", "latestDigest", "resolvedMode", "resolvedFormat", "imageConfig", "entrypoint", "env", "workdir", "user"];
function stripOutputs(props: Record<string, unknown>): Record<string, unknown> {
  const out = { ...props };
  for (const k of OUTPUT_KEYS) delete out[k];
  return out;
}

async function update(_id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult> {
  // Only settings that do not change the stored template get here (credentials, TLS, timeouts).
  return runOperation({ resourceType: TYPE, operation: "update", resourceName: news.resourceName as string }, async () => {
    const a = parseInputs(TYPE, ociImageArgsSchema, news);
    const kept: Record<string, unknown> = {};
    for (const k of OUTPUT_KEYS) if (olds[k] !== undefined) kept[k] = olds[k];
    return { outs: { ...a, ...kept } };
  });
}

async function destroy(id: string, props: Record<string, unknown>): Promise<void> {
  return runOperation({ resourceType: TYPE, operation: "delete", resourceName: props.resourceName as string }, async (ctx) => {
    const client = ctx.client();
    const o = props as unknown as OciImageOutputs;
    if (!(await client.storage.findVolume(o.node, id))) return;
    await client.storage.deleteVolumeAndWait(o.node, id, { wait: { timeoutMs: timeoutMs(o, "delete") } });
  });
}

const handler: ResourceHandler = { check, diff, create, read, update, delete: destroy };
export default handler;
