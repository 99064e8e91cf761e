/**
 * Storage endpoints (BEHAVIOR.md 6, 8.5): storage list/status, content list/delete,
 * download-url, oci-registry-pull, query-oci-repo-tags, aplinfo. Uploads: upload.ts.
 */
import { z } from "zod";
import type { PveClient } from "./client";
import type { Logger } from "../logging";
import { zBool, zInt, zNum, zStr } from "./coerce";
import type { TaskResult, WaitOptions } from "./tasks";
import { uploadFile, type UploadOptions, type UploadResult } from "./upload";

const enc = encodeURIComponent;

export const StorageSchema = z
  .object({
    storage: z.string(),
    type: z.string().optional(),
    content: z.string().optional(),
    enabled: zBool.optional(),
    active: zBool.optional(),
    shared: zBool.optional(),
    total: zNum.optional(),
    used: zNum.optional(),
    avail: zNum.optional(),
    used_fraction: zNum.optional(),
  })
  .passthrough();
export type StorageInfo = z.output<typeof StorageSchema>;

export const ContentItemSchema = z
  .object({
    volid: z.string(),
    format: z.string().optional(),
    size: zNum.optional(),
    "approximate-size": zNum.optional(),
    ctime: zInt.optional(),
    content: z.string().optional(),
    vmid: zInt.optional(),
    notes: z.string().optional(),
    /** Backups only (BEHAVIOR.md 6.1): 1 when protected from deletion and pruning. */
    protected: zBool.optional(),
    /** Backups only: the guest type, `lxc` or `qemu`. */
    subtype: z.string().optional(),
  })
  .passthrough();
export type ContentItem = z.output<typeof ContentItemSchema>;

export const VolumeInfoSchema = z
  .object({
    path: z.string().optional(),
    size: zNum.optional(),
    used: zNum.optional(),
    format: z.string().optional(),
    notes: z.string().optional(),
    protected: zBool.optional(),
  })
  .passthrough();
export type VolumeInfo = z.output<typeof VolumeInfoSchema>;

export const AplInfoSchema = z
  .object({
    template: z.string(),
    package: z.string().optional(),
    version: zStr.optional(),
    type: z.string().optional(),
    os: z.string().optional(),
    section: z.string().optional(),
    headline: z.string().optional(),
    location: z.string().optional(),
    sha512sum: z.string().optional(),
    md5sum: z.string().optional(),
    architecture: z.string().optional(),
  })
  .passthrough();
export type AplInfo = z.output<typeof AplInfoSchema>;

export type ContentType = "vztmpl" | "iso" | "import" | "rootdir" | "images" | "backup" | "snippets";

interface CallOpts {
  logger?: Logger;
}
interface WaitCallOpts extends CallOpts {
  wait?: Omit<WaitOptions, "logger">;
}

export class StorageApi {
  constructor(private readonly client: PveClient) {}

  private since(): number {
    return Math.floor(this.client.serverNow() / 1000) - 2;
  }

  list(node: string, filter: { content?: string; enabled?: boolean; target?: string; storage?: string } = {}, opts: CallOpts = {}): Promise<StorageInfo[]> {
    return this.client.get(`/nodes/${enc(node)}/storage`, filter, { schema: z.array(StorageSchema), logger: opts.logger });
  }

  status(node: string, storage: string, opts: CallOpts = {}): Promise<StorageInfo> {
    return this.client.get(`/nodes/${enc(node)}/storage/${enc(storage)}/status`, undefined, {
      schema: StorageSchema.extend({ storage: z.string().optional() }).transform((s) => ({ ...s, storage: s.storage ?? storage })),
      logger: opts.logger,
    });
  }

  content(node: string, storage: string, filter: { content?: ContentType; vmid?: number } = {}, opts: CallOpts = {}): Promise<ContentItem[]> {
    return this.client.get(`/nodes/${enc(node)}/storage/${enc(storage)}/content`, filter, { schema: z.array(ContentItemSchema), logger: opts.logger });
  }

  /** The content item with this volid, or undefined. */
  async findVolume(node: string, volid: string, opts: CallOpts = {}): Promise<ContentItem | undefined> {
    const storage = volid.split(":")[0];
    const content = /^[^:]+:([a-z]+)\//.exec(volid)?.[1] as ContentType | undefined;
    const items = await this.content(node, storage, content && ["vztmpl", "iso", "import", "backup", "snippets"].includes(content) ? { content } : {}, opts);
    return items.find((i) => i.volid === volid);
  }

  /**
   * GET …/content/{volume}: size, format, and the full `notes` (a content listing shows
   * only their first line) and `protected`.
   */
  volumeInfo(node: string, volid: string, opts: CallOpts = {}): Promise<VolumeInfo> {
    const storage = volid.split(":")[0];
    return this.client.get(`/nodes/${enc(node)}/storage/${enc(storage)}/content/${volid}`, undefined, { schema: VolumeInfoSchema, logger: opts.logger });
  }

  /** PUT …/content/{volume}: change `notes` and/or `protected` (backups). Idempotent. */
  async updateVolumeAttributes(node: string, volid: string, attrs: { notes?: string; protected?: boolean }, opts: CallOpts = {}): Promise<void> {
    const storage = volid.split(":")[0];
    await this.client.put(`/nodes/${enc(node)}/storage/${enc(storage)}/content/${volid}`, attrs, { logger: opts.logger });
  }

  /**
   * DELETE …/content/{volume} → imgdel UPID, or null (finished within `delay`, or the
   * volume was already gone after a lost answer). BEHAVIOR.md 6.5.
   */
  deleteVolume(node: string, volid: string, params: { delay?: number } = {}, opts: CallOpts = {}): Promise<string | null> {
    const storage = volid.split(":")[0];
    // {volume} takes the rest of the path; slashes stay raw (BEHAVIOR.md 1.1).
    return this.client.delete(`/nodes/${enc(node)}/storage/${enc(storage)}/content/${volid}`, params, {
      schema: z.string().nullable(),
      logger: opts.logger,
      // After a worker-start failure: done if the volume is gone already.
      verifyEffect: async () => !(await this.findVolume(node, volid, opts)),
    });
  }
  async deleteVolumeAndWait(node: string, volid: string, opts: WaitCallOpts = {}): Promise<TaskResult | null> {
    const upid = await this.deleteVolume(node, volid, {}, opts);
    return upid ? this.client.tasks.wait(upid, { ...(opts.wait ?? {}), logger: opts.logger }) : null;
  }

  /** POST …/download-url → download UPID (id = file name). */
  downloadUrl(
    node: string,
    storage: string,
    params: { url: string; content: "vztmpl" | "iso" | "import"; filename: string; checksum?: string; "checksum-algorithm"?: string; compression?: string; "verify-certificates"?: boolean },
    opts: CallOpts = {},
  ): Promise<string> {
    const since = this.since();
    return this.client.post(`/nodes/${enc(node)}/storage/${enc(storage)}/download-url`, params, {
      schema: z.string(),
      logger: opts.logger,
      verifyEffect: async () => (await this.client.tasks.findRecent(node, { type: "download", sinceSec: since }, opts.logger)) ?? false,
    });
  }
  async downloadUrlAndWait(node: string, storage: string, params: Parameters<StorageApi["downloadUrl"]>[2], opts: WaitCallOpts = {}) {
    return this.client.tasks.wait(await this.downloadUrl(node, storage, params, opts), { ...(opts.wait ?? {}), logger: opts.logger });
  }

  /** POST …/oci-registry-pull (PVE 9.1) → ociregistrypull UPID. BEHAVIOR.md 6.6. */
  ociRegistryPull(node: string, storage: string, params: { reference: string; filename?: string }, opts: CallOpts = {}): Promise<string> {
    const since = this.since();
    return this.client.post(`/nodes/${enc(node)}/storage/${enc(storage)}/oci-registry-pull`, params, {
      schema: z.string(),
      logger: opts.logger,
      verifyEffect: async () => (await this.client.tasks.findRecent(node, { type: "ociregistrypull", sinceSec: since }, opts.logger)) ?? false,
    });
  }
  async ociRegistryPullAndWait(node: string, storage: string, params: { reference: string; filename?: string }, opts: WaitCallOpts = {}) {
    return this.client.tasks.wait(await this.ociRegistryPull(node, storage, params, opts), { ...(opts.wait ?? {}), logger: opts.logger });
  }

  /** GET /nodes/{node}/query-oci-repo-tags?reference= (no tag). */
  queryOciRepoTags(node: string, reference: string, opts: CallOpts = {}): Promise<string[]> {
    return this.client.get(`/nodes/${enc(node)}/query-oci-repo-tags`, { reference }, { schema: z.array(zStr), logger: opts.logger });
  }

  /** GET /nodes/{node}/aplinfo — the template index. */
  aplinfo(node: string, opts: CallOpts = {}): Promise<AplInfo[]> {
    return this.client.get(`/nodes/${enc(node)}/aplinfo`, undefined, { schema: z.array(AplInfoSchema), logger: opts.logger });
  }

  /** POST /nodes/{node}/aplinfo {storage, template} → download UPID. */
  aplDownload(node: string, storage: string, template: string, opts: CallOpts = {}): Promise<string> {
    const since = this.since();
    return this.client.post(`/nodes/${enc(node)}/aplinfo`, { storage, template }, {
      schema: z.string(),
      logger: opts.logger,
      verifyEffect: async () => (await this.client.tasks.findRecent(node, { type: "download", id: template, sinceSec: since }, opts.logger)) ?? false,
    });
  }
  async aplDownloadAndWait(node: string, storage: string, template: string, opts: WaitCallOpts = {}) {
    return this.client.tasks.wait(await this.aplDownload(node, storage, template, opts), { ...(opts.wait ?? {}), logger: opts.logger });
  }

  /** Streaming multipart upload (upload.ts). */
  upload(opts: UploadOptions): Promise<UploadResult> {
    return uploadFile(this.client, opts);
  }
}
