/**
 * Template inputs. A CT template volume `<storage>:vztmpl/<file>` comes from exactly one
 * source: a URL (download-url), an appliance from the node's index (aplinfo), or a local
 * file (streaming upload). Extension and checksum rules are PVE's (BEHAVIOR.md 6.1-6.4),
 * checked before anything is sent.
 */
import { z } from "zod";
import * as path from "node:path";

/** PVE's accepted vztmpl extensions (sto `$VZTMPL_EXT_RE_1`, case-insensitive). */
export const TEMPLATE_EXTENSIONS = [".tar", ".tar.gz", ".tar.xz", ".tar.zst", ".tar.bz2"];

export const CHECKSUM_LENGTHS: Record<string, number> = { md5: 32, sha1: 40, sha224: 56, sha256: 64, sha384: 96, sha512: 128 };

/** The file name PVE will store: path stripped, characters outside [A-Za-z0-9_.-] → `_`. */
export function normaliseFileName(name: string): string {
  return path.posix.basename(name.replace(/\\/g, "/")).replace(/[^A-Za-z0-9_.-]/g, "_");
}

/** An error text for a bad template file name, or undefined. */
export function extensionProblem(fileName: string): string | undefined {
  const lower = fileName.toLowerCase();
  if (TEMPLATE_EXTENSIONS.some((e) => lower.endsWith(e))) return undefined;
  if (lower.endsWith(".tgz")) {
    return `'${fileName}' ends in .tgz, which Proxmox accepts for backups but refuses for CT templates; name it '${fileName.slice(0, -4)}.tar.gz'`;
  }
  return `'${fileName}' has no CT template extension; Proxmox accepts ${TEMPLATE_EXTENSIONS.join(", ")}`;
}

const seconds = z.number().int().positive();

export const templateArgsSchema = z
  .object({
    node: z.string().regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i, "must be a Proxmox node name like 'pve1'"),
    storage: z.string().regex(/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, "must be a storage ID like 'local'").default("local"),
    url: z.string().regex(/^https?:\/\/\S+$/, "must be an http(s) URL").optional(),
    appliance: z.string().min(1).optional(),
    path: z.string().min(1).optional(),
    checksum: z.string().regex(/^[0-9a-f]+$/i, "must be a hex digest").transform((s) => s.toLowerCase()).optional(),
    checksumAlgorithm: z.enum(["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]).optional(),
    fileName: z.string().min(1).optional(),
    existing: z.enum(["fail", "adopt", "overwrite"]).default("fail"),
    verifyCertificates: z.boolean().optional(),
    timeouts: z.object({ create: seconds.optional(), delete: seconds.optional() }).strict().optional(),
    /** Set by the SDK: the Pulumi resource name, for logs. */
    resourceName: z.string().optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    const sources = (["url", "appliance", "path"] as const).filter((k) => a[k] !== undefined);
    if (sources.length !== 1) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: sources.length ? [sources[1]] : ["url"],
        message: "set exactly one source: url (download), appliance (from the node's appliance index) or path (upload a local file)",
      });
    }
    if (a.checksum !== undefined) {
      const algo = a.checksumAlgorithm ?? (a.path !== undefined ? "sha256" : undefined);
      if (!algo) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["checksumAlgorithm"], message: "is required with checksum (md5, sha1, sha224, sha256, sha384 or sha512)" });
      } else if (a.checksum.length !== CHECKSUM_LENGTHS[algo]) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["checksum"], message: `a ${algo} digest has ${CHECKSUM_LENGTHS[algo]} hex digits, this one has ${a.checksum.length}` });
      }
    }
    if (a.checksumAlgorithm !== undefined && a.checksum === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["checksum"], message: "is required with checksumAlgorithm" });
    }
    if (a.appliance !== undefined && (a.checksum !== undefined || a.fileName !== undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["appliance"], message: "takes its file name and checksum from the appliance index; remove checksum/fileName" });
    }
    // An appliance is named by the index (package or file name), which PVE vouches for.
    const name = a.appliance !== undefined ? undefined : templateFileName(a);
    if (name !== undefined) {
      const problem = extensionProblem(name);
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [a.fileName ? "fileName" : sources[0] ?? "fileName"], message: problem });
    }
  });

export type TemplateArgs = z.infer<typeof templateArgsSchema>;

/** The file name on the storage, when known before talking to PVE (appliances: the index decides). */
export function templateFileName(a: { url?: string; path?: string; appliance?: string; fileName?: string }): string | undefined {
  if (a.fileName) return normaliseFileName(a.fileName);
  if (a.path) return normaliseFileName(a.path);
  if (a.url) {
    try {
      return normaliseFileName(decodeURIComponent(new URL(a.url).pathname));
    } catch {
      return undefined;
    }
  }
  return a.appliance;
}

/** `.tar.zst` → `tzst` etc., as PVE reports `format` in content listings. */
export function templateFormat(fileName: string): string {
  const l = fileName.toLowerCase();
  if (l.endsWith(".tar.gz")) return "tgz";
  if (l.endsWith(".tar.xz")) return "txz";
  if (l.endsWith(".tar.zst")) return "tzst";
  if (l.endsWith(".tar.bz2")) return "tbz2";
  return "tar";
}
