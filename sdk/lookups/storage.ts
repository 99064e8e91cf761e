/**
 * getStorages (GET /nodes/{node}/storage) and getVolumes (GET …/storage/{storage}/content):
 * which storages a node has and what is on them — e.g. the newest Debian CT template.
 */
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { compact, runLookup, runLookupOutput, splitList, type Inputs, type LookupDefinition, type LookupOutputOptions } from "./invoke";

/** Content types a storage can hold (PVE `content`). */
export type StorageContent = "vztmpl" | "iso" | "import" | "rootdir" | "images" | "backup" | "snippets";
const CONTENT = ["vztmpl", "iso", "import", "rootdir", "images", "backup", "snippets"] as const;
const node = z.string().min(1, "must be a node name, e.g. 'pve1'");

export interface GetStoragesArgs {
  node: string;
  /** Only storages that accept this content type (e.g. "vztmpl" for CT templates, "rootdir" for CT disks). */
  content?: StorageContent;
}

export interface ProxmoxStorage {
  storage: string;
  /** Plugin type: dir, lvmthin, zfspool, nfs, btrfs, … */
  type?: string;
  /** Content types it accepts. */
  content: string[];
  enabled?: boolean;
  /** Usable on this node now. */
  active?: boolean;
  /** The same storage on every node (e.g. NFS). */
  shared?: boolean;
  /** Bytes. */
  total?: number;
  used?: number;
  avail?: number;
}

export interface GetStoragesResult {
  /** Sorted by name. */
  storages: ProxmoxStorage[];
}

const storagesDefinition: LookupDefinition<GetStoragesArgs, GetStoragesResult> = {
  name: "getStorages",
  schema: z.object({ node, content: z.enum(CONTENT).optional() }).strict(),
  async fetch(client, args) {
    const list = await client.storage.list(args.node, args.content ? { content: args.content } : {});
    const storages = list.map((s) =>
      compact({ storage: s.storage, type: s.type, content: splitList(s.content), enabled: s.enabled, active: s.active, shared: s.shared, total: s.total, used: s.used, avail: s.avail }),
    );
    return { storages: storages.sort((a, b) => a.storage.localeCompare(b.storage)) };
  },
};

/** The storages of a node. Sends its request when called (in a preview too). */
export function getStorages(args: GetStoragesArgs): Promise<GetStoragesResult> {
  return runLookup(storagesDefinition, args);
}

/** The storages of a node as an Output; resolved during a preview too unless `opts.preview` is "skip". */
export function getStoragesOutput(args: Inputs<GetStoragesArgs>, opts?: LookupOutputOptions): pulumi.Output<GetStoragesResult> {
  return runLookupOutput(storagesDefinition, args, opts);
}

export interface GetVolumesArgs {
  node: string;
  storage: string;
  /** Only volumes of this content type (e.g. "vztmpl"). */
  content?: StorageContent;
  /** Only volumes whose file name (the volid after `<storage>:<type>/`) matches this regular expression, e.g. "^debian-12-". */
  fileNameRegex?: string;
}

export interface ProxmoxVolume {
  /** `<storage>:vztmpl/<file>` etc.: pass it as a Container's `template`. */
  volid: string;
  /** The part after `<storage>:` and the content folder (`vztmpl/`, `iso/`, …). */
  fileName: string;
  content?: string;
  /** tgz, tzst, raw, subvol, … */
  format?: string;
  /** Bytes. */
  size?: number;
  /** Creation time, Unix seconds. */
  ctime?: number;
  /** Owning guest, for disk images and backups. */
  vmid?: number;
  notes?: string;
  protected?: boolean;
}

export interface GetVolumesResult {
  /** Newest first: by `ctime`, then by volid in reverse natural order (of two uploaded in the same second, debian-12 before debian-9). */
  volumes: ProxmoxVolume[];
}

/** By `ctime` descending, then by volid in reverse natural order (debian-12 before debian-9). */
export function newestFirst<V extends { volid: string; ctime?: number }>(volumes: V[]): V[] {
  return [...volumes].sort((a, b) => (b.ctime ?? 0) - (a.ctime ?? 0) || b.volid.localeCompare(a.volid, "en", { numeric: true }));
}

function regex(value: string | undefined): RegExp | undefined {
  return value === undefined ? undefined : new RegExp(value);
}

const volumesDefinition: LookupDefinition<GetVolumesArgs, GetVolumesResult> = {
  name: "getVolumes",
  schema: z
    .object({
      node,
      storage: z.string().min(1, "must be a storage name, e.g. 'local'"),
      content: z.enum(CONTENT).optional(),
      fileNameRegex: z
        .string()
        .refine((s) => { try { return !!new RegExp(s); } catch { return false; } }, "is not a valid regular expression")
        .optional(),
    })
    .strict(),
  async fetch(client, args) {
    const items = await client.storage.content(args.node, args.storage, args.content ? { content: args.content } : {});
    const match = regex(args.fileNameRegex);
    const volumes = items
      .map((i) =>
        compact({
          volid: i.volid,
          // `local:vztmpl/x.tar.zst` → `x.tar.zst`; `local-lvm:vm-100-disk-0` → `vm-100-disk-0`.
          fileName: i.volid.replace(/^[^:]*:/, "").replace(/^(vztmpl|iso|import|backup|snippets)\//, ""),
          content: i.content,
          format: i.format,
          size: i.size,
          ctime: i.ctime,
          vmid: i.vmid,
          notes: i.notes,
          protected: i.protected === undefined ? undefined : Number(i.protected) === 1 || i.protected === true,
        }),
      )
      .filter((v) => !match || match.test(v.fileName));
    return { volumes: newestFirst(volumes) };
  },
};

/** The volumes on a storage, newest first. Sends its request when called (in a preview too). */
export function getVolumes(args: GetVolumesArgs): Promise<GetVolumesResult> {
  return runLookup(volumesDefinition, args);
}

/** The volumes on a storage as an Output; resolved during a preview too unless `opts.preview` is "skip". */
export function getVolumesOutput(args: Inputs<GetVolumesArgs>, opts?: LookupOutputOptions): pulumi.Output<GetVolumesResult> {
  return runLookupOutput(volumesDefinition, args, opts);
}
