/**
 * OciImage inputs: an OCI/Docker image turned into a CT template volume on a node.
 * `mode` picks who does the work: "server" (PVE >= 9.1 pulls it itself; no registry
 * auth), "client" (this provider pulls, converts and uploads; works on PVE 8 and with
 * credentials), "auto" (server when possible, else client).
 */
import { z } from "zod";
import { parseSource } from "../../oci/source";
import { parsePlatform } from "../../oci/platform";

const seconds = z.number().int().positive();

export const ociImageArgsSchema = z
  .object({
    node: z.string().regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i, "must be a Proxmox node name like 'pve1'"),
    storage: z.string().regex(/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, "must be a storage ID like 'local'").default("local"),
    /** `docker://REF` or a bare `REF`, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`. */
    source: z.string().min(1).superRefine((s, ctx) => {
      try {
        parseSource(s);
      } catch (e) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: (e as Error).message });
      }
    }),
    platform: z
      .string()
      .superRefine((p, ctx) => {
        try {
          parsePlatform(p);
        } catch (e) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${(e as Error).message} (use os/arch[/variant], e.g. linux/amd64)` });
        }
      })
      .optional(),
    credentials: z.object({ username: z.string().min(1), password: z.string().min(1) }).strict().optional(),
    /** A docker config.json (or its folder) to read registry credentials from. */
    dockerConfig: z.string().optional(),
    /** Skip TLS verification / allow plain HTTP for this registry (test registries only). */
    insecureRegistry: z.boolean().optional(),
    /** PEM CA bundle for the registry's certificate. */
    registryCaCert: z.string().optional(),
    fileName: z.string().regex(/^[A-Za-z0-9_.-]+$/, "may contain letters, digits, '_', '-' and '.' only (Proxmox renames anything else)").optional(),
    mode: z.enum(["server", "client", "auto"]).default("auto"),
    /** Client mode: an OCI archive (PVE 9.1 app container) or a flattened rootfs template. */
    format: z.enum(["oci-archive", "rootfs"]).optional(),
    compression: z.enum(["gzip", "zstd"]).optional(),
    timeouts: z.object({ create: seconds.optional(), delete: seconds.optional() }).strict().optional(),
    resourceName: z.string().optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.mode === "server" && a.credentials) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["credentials"], message: "cannot be used with mode 'server': Proxmox's oci-registry-pull has no credential parameters; use mode 'client' (or 'auto')" });
    }
    if (a.mode === "server") {
      const src = safeSource(a.source);
      if (src && src.transport !== "docker") {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["mode"], message: `'server' pulls from registries only; '${a.source}' is a local ${src.transport} source: use mode 'client'` });
      } else if (src?.transport === "docker" && (!src.ref.tag || src.ref.digest)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["source"], message: "mode 'server' needs a tag (Proxmox's oci-registry-pull accepts no digests)" });
      }
      if (a.format === "rootfs") ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["format"], message: "'rootfs' needs mode 'client' (the server always stores an OCI archive)" });
    }
    if (a.compression && a.format !== "rootfs") {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["compression"], message: "applies to format 'rootfs' only (an OCI archive keeps the registry's layer compression)" });
    }
  });

function safeSource(s: string): ReturnType<typeof parseSource> | undefined {
  try {
    return parseSource(s);
  } catch {
    return undefined;
  }
}

export type OciImageArgs = z.infer<typeof ociImageArgsSchema>;
